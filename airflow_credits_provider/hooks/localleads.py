"""LocalLeads hook: balance and the paginated credit ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.hooks.base import CreditApiHook
from airflow_credits_provider.ledger import OffsetPaginator, read_ahead
from airflow_credits_provider.models import TransactionPage
from airflow_credits_provider.vendors.localleads import MAX_PAGE_SIZE, LocalLeadsVendor

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from airflow_credits_provider.models import CreditTransaction
    from airflow_credits_provider.vendors.base import ApiRequest


#: Pages requested ahead of the caller: enough to keep the wire busy while a landing commits a batch
#: (stopping early costs no extra request: ``since`` and ``max_pages`` stop the requests themselves).
READ_AHEAD = 8


class LocalLeadsHook(CreditApiHook):
    """Talk to LocalLeads' API with the key from an Airflow connection of type ``localleads``.

    Besides :meth:`get_balance`, it pages through the credit ledger (:meth:`iter_transaction_pages`,
    :meth:`iter_transactions`), which makes it a :class:`~airflow_credits_provider.ledger.LedgerHook`.

    :param credit_conn_id: the Airflow connection id (default ``localleads_default``)
    """

    vendor_class = LocalLeadsVendor
    max_page_size = MAX_PAGE_SIZE

    def get_transactions_page(self, offset: int = 0, limit: int = MAX_PAGE_SIZE) -> TransactionPage:
        """Fetch one page of the ledger, newest first.

        :param offset: records to skip
        :param limit: page size, 1 to 100
        """
        _check_page(offset, limit)
        vendor = LocalLeadsVendor()
        return self._call_and_parse(  # type: ignore[no-any-return]
            vendor.transactions_request(offset, limit),
            lambda payload: vendor.parse_transactions(payload, offset, limit),
        )

    def iter_transaction_pages(
        self,
        page_size: int = MAX_PAGE_SIZE,
        *,
        offset: int = 0,
        max_pages: int | None = None,
        since: datetime | None = None,
    ) -> Iterator[TransactionPage]:
        """Yield the ledger's pages, newest first, until LocalLeads says it is exhausted.

        The next page is requested as soon as the previous one has arrived, in a background thread
        (:func:`~airflow_credits_provider.ledger.read_ahead`), while the caller reads and uses the
        previous one, at most :data:`READ_AHEAD` pages ahead. The stop rule is
        :class:`~airflow_credits_provider.ledger.OffsetPaginator`'s. HTTP connections are pooled while
        the iterator is open. To stop early, pass ``since`` or ``max_pages``: no request is made past
        them. Closing the iterator (or leaving a loop over it) also stops it, after at most
        :data:`READ_AHEAD` requests more than were used.

        :param page_size: records per request, 1 to 100
        :param offset: records to skip before the first
        :param max_pages: make at most this many requests
        :param since: stop after the first page that reaches back before this time (the ledger is newest
            first, so later pages hold only older transactions)
        """
        _check_page(offset, page_size)
        client = self.client  # resolve the connection here, not in the thread (Airflow's task API)
        vendor = LocalLeadsVendor()
        paginator = OffsetPaginator(
            page_size, offset, vendor=LocalLeadsVendor.key, vendor_name=LocalLeadsVendor.display_name
        )

        def pages() -> Iterator[tuple[ApiRequest, int, list[Any], int | None]]:
            reached_since = False
            with client.session():
                while paginator.has_next and not reached_since:
                    if max_pages is not None and paginator.pages >= max_pages:
                        return
                    at = paginator.offset
                    call = vendor.transactions_request(at, page_size)
                    records, total = client.parse(call, vendor.page_records, client.request_json(call))
                    paginator.advance(len(records), total)
                    if since is not None and records:
                        oldest = client.parse(call, vendor.parse_transaction, records[-1])
                        reached_since = oldest.created_at < since
                    yield call, at, records, total

        for call, at, records, total in read_ahead(pages(), depth=READ_AHEAD):
            transactions = client.parse(call, vendor.parse_records, records)
            yield TransactionPage(transactions=transactions, total=total, offset=at, limit=page_size)

    def iter_transactions(
        self, page_size: int = MAX_PAGE_SIZE, *, offset: int = 0, max_pages: int | None = None
    ) -> Iterator[CreditTransaction]:
        """Yield the ledger's transactions, newest first, one page at a time.

        :param page_size: records per request, 1 to 100
        :param offset: records to skip before the first
        :param max_pages: stop after this many requests
        """
        for page in self.iter_transaction_pages(page_size, offset=offset, max_pages=max_pages):
            yield from page.transactions


def _check_page(offset: int, limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(
            f"page size must be a whole number from 1 to {MAX_PAGE_SIZE} (LocalLeads' maximum), got {limit!r}"
        )
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a whole number >= 0, got {offset!r}")
