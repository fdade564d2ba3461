"""LocalLeads hook: balance and the paginated credit ledger."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from airflow_credits_provider.client.concurrent_paging import RawPage, concurrent_offset_pages
from airflow_credits_provider.client.ledger import OffsetPaginator, ReadAhead
from airflow_credits_provider.hooks.base import CreditApiHook
from airflow_credits_provider.models import TransactionPage
from airflow_credits_provider.vendors.localleads import MAX_PAGE_SIZE, LocalLeadsVendor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from airflow_credits_provider.models import CreditTransaction


#: Pages requested ahead of the caller: enough to keep the wire busy while a landing commits a batch
#: (stopping early costs no extra request: ``since`` and ``max_pages`` stop the requests themselves).
READ_AHEAD = 8
#: The most page requests in flight that ``max_concurrent_pages`` may ask for.
MAX_CONCURRENT_PAGES = 32


class LocalLeadsHook(CreditApiHook):
    """Talk to LocalLeads' API with the key from an Airflow connection of type ``localleads``.

    Besides :meth:`get_balance`, it pages through the credit ledger (:meth:`iter_transaction_pages`,
    :meth:`iter_transactions`), which makes it a :class:`~airflow_credits_provider.client.ledger.LedgerHook`.

    :param credit_conn_id: the Airflow connection id (default ``localleads_default``)
    """

    vendor_class = LocalLeadsVendor
    max_page_size = MAX_PAGE_SIZE
    #: Ledger pages a landing requests at once by default: offset paging with a total allows it. Ten let an
    #: incremental run of up to 1,100 rows land in two round trips (the first page, then the rest at once).
    #: LocalLeads documents 100 requests a minute per IP; past that its 429s slow the landing down
    #: (docs/landing.md).
    default_concurrent_pages = 10

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
        since: datetime | Callable[[], datetime | None] | None = None,
        max_concurrent_pages: int = 1,
        requests_per_second: float | None = None,
    ) -> Iterator[TransactionPage]:
        """Yield the ledger's pages, newest first, until LocalLeads says it is exhausted.

        The first page is fetched alone. With ``max_concurrent_pages`` above 1, and the total LocalLeads
        reports with it, the remaining pages are fetched up to that many at a time (a
        :class:`~airflow_credits_provider.client.pacing.Throttle` shared by them: a 429 halves the number in
        flight and pauses them all for its ``Retry-After``; ``requests_per_second`` caps their rate), and
        yielded in offset order. Transactions that arrive while pages are in flight push older ones to
        later offsets: every page is placed by its *tail index* (:class:`~airflow_credits_provider.
        concurrent_paging.TailCoverage`), and the rows no page held are fetched again before the last page
        is yielded; an iterator that ends normally has yielded every row that was in the ledger when it
        started (down to ``since`` or ``max_pages``).

        One at a time (the default), the next page is requested as soon as the previous one has arrived,
        in a background thread (:func:`~airflow_credits_provider.client.ledger.read_ahead`), while the caller
        reads and uses the previous one, at most :data:`READ_AHEAD` pages ahead; the stop rule is
        :class:`~airflow_credits_provider.client.ledger.OffsetPaginator`'s.

        HTTP connections are pooled while the iterator is open. To stop early, pass ``since`` or
        ``max_pages``: no request is made past them (concurrently: at most ``max_concurrent_pages - 1``
        more). Closing the iterator (or leaving a loop over it) also stops it, after at most
        :data:`READ_AHEAD` (plus ``max_concurrent_pages``) requests more than were used.

        :param page_size: records per request, 1 to 100
        :param offset: records to skip before the first
        :param max_pages: make at most this many requests (besides refetching rows that shifted)
        :param since: stop after the first page that reaches back before this time (the ledger is newest
            first, so later pages hold only older transactions)
        :param max_concurrent_pages: the most page requests in flight at once (1: one after another)
        :param requests_per_second: the most page requests started per second (``None``: no cap)
        """
        with self.open_transaction_pages(
            page_size,
            offset=offset,
            max_pages=max_pages,
            since=since,
            max_concurrent_pages=max_concurrent_pages,
            requests_per_second=requests_per_second,
        ) as pages:
            yield from pages

    def open_transaction_pages(
        self,
        page_size: int = MAX_PAGE_SIZE,
        *,
        offset: int = 0,
        max_pages: int | None = None,
        since: datetime | Callable[[], datetime | None] | None = None,
        max_concurrent_pages: int = 1,
        requests_per_second: float | None = None,
    ) -> ReadAhead[TransactionPage]:
        """:meth:`iter_transaction_pages`, its first request sent at once, before anything is iterated.

        A landing sets its database up while the first page is on the wire. ``since`` may be a function:
        it is called once the first page has arrived, in the paging thread (it may wait, for a cursor
        being read from a database, and raise to stop the paging). Close the result (it is a context
        manager) whether or not it was iterated. The arguments are :meth:`iter_transaction_pages`'.
        """
        _check_page(offset, page_size)
        if (
            isinstance(max_concurrent_pages, bool)
            or not isinstance(max_concurrent_pages, int)
            or not (1 <= max_concurrent_pages <= MAX_CONCURRENT_PAGES)
        ):
            raise ValueError(
                f"max_concurrent_pages must be a whole number from 1 to {MAX_CONCURRENT_PAGES}, got "
                f"{max_concurrent_pages!r}"
            )
        client = self.client  # resolve the connection here, not in the thread (Airflow's task API)
        vendor = LocalLeadsVendor()
        paginator = OffsetPaginator(
            page_size, offset, vendor=LocalLeadsVendor.key, vendor_name=LocalLeadsVendor.display_name
        )
        throttle = None
        if max_concurrent_pages > 1 or requests_per_second is not None:
            from airflow_credits_provider.client.pacing import Throttle

            throttle = Throttle(max_concurrent_pages, requests_per_second)

        def fetch(at: int) -> RawPage:
            call = vendor.transactions_request(at, page_size)
            records, total = client.parse(call, vendor.page_records, client.request_json(call, throttle))
            return RawPage(call, at, records, total)

        def created_at(page: RawPage, index: int) -> datetime:
            return client.parse(page.call, vendor.parse_transaction, page.records[index]).created_at  # type: ignore[no-any-return]

        def pages() -> Iterator[RawPage]:
            reached_since = False
            until = since if not callable(since) else None
            with client.session():
                while paginator.has_next and not reached_since:
                    if max_pages is not None and paginator.pages >= max_pages:
                        return
                    started = time.monotonic()
                    page = fetch(paginator.offset)
                    first_seconds = time.monotonic() - started
                    if callable(since) and paginator.pages == 0:
                        until = since()  # known by now, or being read while this page was on the wire
                    paginator.advance(len(page.records), page.total)
                    reached_since = until is not None and bool(page.records) and created_at(page, -1) < until
                    yield page
                    if max_concurrent_pages > 1 and page.total is not None:
                        if paginator.has_next and not reached_since:
                            yield from concurrent_offset_pages(
                                fetch,
                                page,
                                limit=page_size,
                                workers=max_concurrent_pages,
                                pages_done=paginator.pages,
                                max_pages=max_pages,
                                since=until,
                                first_seconds=first_seconds,
                                created_at=created_at,
                                vendor=LocalLeadsVendor.key,
                                vendor_name=LocalLeadsVendor.display_name,
                            )
                        return

        def parsed(page: RawPage) -> TransactionPage:
            transactions = client.parse(page.call, vendor.parse_records, page.records)
            return TransactionPage(
                transactions=transactions, total=page.total, offset=page.offset, limit=page_size
            )

        return ReadAhead(pages(), depth=READ_AHEAD, then=parsed)

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
