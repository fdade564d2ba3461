"""LocalLeads hook: balance and the paginated credit ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_credits_provider.hooks.base import CreditApiHook
from airflow_credits_provider.ledger import OffsetPaginator
from airflow_credits_provider.vendors.localleads import MAX_PAGE_SIZE, LocalLeadsVendor

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_credits_provider.models import CreditTransaction, TransactionPage


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
        self, page_size: int = MAX_PAGE_SIZE, *, offset: int = 0
    ) -> Iterator[TransactionPage]:
        """Yield the ledger's pages, newest first, until LocalLeads says it is exhausted.

        The stop rule is :class:`~airflow_credits_provider.ledger.OffsetPaginator`'s. HTTP connections
        are pooled while the iterator is open; stop consuming it (or close it) to stop early.

        :param page_size: records per request, 1 to 100
        :param offset: records to skip before the first
        """
        _check_page(offset, page_size)
        paginator = OffsetPaginator(
            page_size, offset, vendor=LocalLeadsVendor.key, vendor_name=LocalLeadsVendor.display_name
        )
        with self.client.session():
            while paginator.has_next:
                page = self.get_transactions_page(paginator.offset, page_size)
                paginator.update(page)
                yield page

    def iter_transactions(
        self, page_size: int = MAX_PAGE_SIZE, *, offset: int = 0, max_pages: int | None = None
    ) -> Iterator[CreditTransaction]:
        """Yield the ledger's transactions, newest first, one page at a time.

        :param page_size: records per request, 1 to 100
        :param offset: records to skip before the first
        :param max_pages: stop after this many requests
        """
        for number, page in enumerate(self.iter_transaction_pages(page_size, offset=offset), start=1):
            yield from page.transactions
            if max_pages is not None and number >= max_pages:
                return


def _check_page(offset: int, limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(
            f"page size must be a whole number from 1 to {MAX_PAGE_SIZE} (LocalLeads' maximum), got {limit!r}"
        )
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a whole number >= 0, got {offset!r}")
