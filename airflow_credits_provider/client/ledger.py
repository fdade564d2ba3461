"""Paging through a vendor's credit ledger: one small state machine, and the protocol of ledger hooks.

:class:`OffsetPaginator` holds the only copy of the rule that decides when a ledger is exhausted; the
hooks' iterators and the landing operator both page through it. Hooks whose vendor has a ledger satisfy
:class:`LedgerHook`, which is what the landing operator checks for.
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from airflow_credits_provider.errors import InconsistentLedgerError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from airflow_credits_provider.models import TransactionPage

T = TypeVar("T")


def inconsistent_ledger(message: str, *, vendor: str, vendor_name: str) -> InconsistentLedgerError:
    """The error for a ledger the vendor contradicted while it was read: ``message`` says how."""
    return InconsistentLedgerError(
        f"{message} Stopping here so that nothing is skipped; run again later.",
        vendor=vendor or None,
        vendor_name=vendor_name,
    )


def empty_page_message(vendor_name: str, offset: int, total: int) -> str:
    """What an empty ledger page before the vendor's own total contradicts."""
    return (
        f"{vendor_name} returned an empty ledger page at offset {offset} while reporting {total} "
        "transactions in all."
    )


class OffsetPaginator:
    """Offset/limit paging over a newest-first ledger: state machine (``offset``, ``advance``, ``has_next``).

    The ledger is exhausted only when the vendor says so: an empty page, or the offset reaching the
    total the vendor reported with the page. When the vendor reports no total, a page shorter than asked
    for is the only end signal there is. A short page while the vendor's own total says more rows remain
    is not the end: paging goes on from the rows actually received, so no row is skipped. An empty page
    before that total contradicts the vendor and raises :class:`InconsistentLedgerError` rather than end
    a run early (a landing run then keeps its cursor where it was).

    :param limit: rows asked for per page
    :param offset: rows to skip before the first page
    :param vendor: the vendor's key, for errors
    :param vendor_name: the vendor's display name, for messages
    """

    def __init__(
        self, limit: int, offset: int = 0, *, vendor: str = "", vendor_name: str = "The vendor"
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"page size must be a whole number >= 1, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a whole number >= 0, got {offset!r}")
        self.limit = limit
        self.offset = offset
        self.pages = 0
        self.has_next = True
        self._vendor = vendor
        self._vendor_name = vendor_name

    def advance(self, received: int, total: int | None) -> None:
        """Advance past a page of ``received`` rows and decide whether another page follows.

        :param received: rows the page held
        :param total: the ledger's size the vendor reported with the page, or ``None``
        """
        self.pages += 1
        self.offset += received
        if total is not None:
            if received == 0 and self.offset < total:
                raise inconsistent_ledger(
                    empty_page_message(self._vendor_name, self.offset, total),
                    vendor=self._vendor,
                    vendor_name=self._vendor_name,
                )
            self.has_next = received > 0 and self.offset < total
        else:
            self.has_next = received >= self.limit


@runtime_checkable
class LedgerHook(Protocol):
    """A credit hook whose vendor exposes its transaction ledger (LocalLeads today)."""

    #: The largest page the vendor serves.
    max_page_size: int
    #: Ledger pages requested at once by default (1: the vendor's API does not allow more).
    default_concurrent_pages: int

    def iter_transaction_pages(
        self,
        page_size: int,
        *,
        since: datetime | None = None,
        max_concurrent_pages: int = 1,
        requests_per_second: float | None = None,
    ) -> Iterator[TransactionPage]:
        """Yield the ledger's pages, newest first, until the vendor says it is exhausted.

        :param since: stop after the first page that reaches back before this time
        :param max_concurrent_pages: the most page requests in flight at once
        :param requests_per_second: the most page requests started per second (``None``: no cap)
        """
        ...

    def open_transaction_pages(
        self,
        page_size: int,
        *,
        since: datetime | Callable[[], datetime | None] | None = None,
        max_concurrent_pages: int = 1,
        requests_per_second: float | None = None,
    ) -> ReadAhead[TransactionPage]:
        """:meth:`iter_transaction_pages`, its first request sent at once, before anything is iterated.

        A landing sets its database up while the first page is on the wire. ``since`` may be a function,
        called once the first page has arrived (in a background thread; it may wait, e.g. for a cursor
        being read, and raise to stop the paging). Close the result (a context manager) in any case.
        """
        ...


def read_ahead(source: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield ``source``'s items while a background thread produces the next ``depth`` of them.

    Paging spends most of its time waiting for the vendor; reading ahead lets the caller work on one
    page (parse it, write it) while the next one is on the wire. ``source`` runs entirely in the thread,
    which starts producing item ``n`` only once the caller has taken item ``n - depth``: stopping early
    costs at most ``depth`` items more than were used. ``source``'s exception is raised here, after the
    items it produced before it. Closing this generator (or leaving a ``for`` loop over it) stops the
    thread and closes ``source``. The thread starts at the first item asked for; :class:`ReadAhead`
    starts it at once.
    """
    ahead: ReadAhead[T] = ReadAhead(source, depth)
    try:
        yield from ahead
    finally:
        ahead.close()


class ReadAhead(Generic[T]):
    """:func:`read_ahead` started at once: ``source`` is being produced before anything asks for an item.

    Iterate it (once) for the items; :meth:`close` it (or use it as a context manager) whether or not it
    was iterated, which stops the thread and closes ``source``.

    :param source: the items, produced in a background thread
    :param depth: the most items produced ahead of the caller
    :param then: applied to each item in the caller's thread, as it is taken (parsing a page there keeps
        the background thread free to wait for the next)
    """

    def __init__(self, source: Iterator[Any], depth: int = 1, then: Callable[[Any], T] | None = None) -> None:
        self._then = then
        self._items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._permits = threading.Semaphore(depth)
        self._stop = threading.Event()
        self._source = source
        self._thread = threading.Thread(target=self._produce, name="credits-read-ahead", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        source = self._source
        try:
            while True:
                self._permits.acquire()
                if self._stop.is_set():
                    return
                try:
                    item = next(source)
                except StopIteration:
                    self._items.put(("end", None))
                    return
                self._items.put(("item", item))
        except BaseException as exc:  # noqa: BLE001 - handed over to the consumer, which re-raises it
            self._items.put(("error", exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._items.get()
            if kind == "error":
                raise value
            if kind == "end":
                return
            self._permits.release()
            yield value if self._then is None else self._then(value)

    def close(self) -> None:
        """Stop the thread (after the item it is producing, if any) and close ``source``."""
        self._stop.set()
        self._permits.release()
        self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
