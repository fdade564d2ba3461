"""Paging through a vendor's credit ledger: one small state machine, and the protocol of ledger hooks.

:class:`OffsetPaginator` holds the only copy of the rule that decides when a ledger is exhausted; the
hooks' iterators and the landing operator both page through it. Hooks whose vendor has a ledger satisfy
:class:`LedgerHook`, which is what the landing operator checks for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from airflow_credits_provider.errors import InconsistentLedgerError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_credits_provider.models import TransactionPage


class OffsetPaginator:
    """Offset/limit paging over a newest-first ledger: a state machine (``offset``, ``update``, ``has_next``).

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

    def update(self, page: TransactionPage) -> None:
        """Advance past ``page`` and decide whether another page follows."""
        received = len(page.transactions)
        self.pages += 1
        self.offset += received
        if page.total is not None:
            if received == 0 and self.offset < page.total:
                raise InconsistentLedgerError(
                    f"{self._vendor_name} returned an empty ledger page at offset {self.offset} while "
                    f"reporting {page.total} transactions in all. Stopping here so that nothing is "
                    "skipped; run again later.",
                    vendor=self._vendor or None,
                    vendor_name=self._vendor_name,
                )
            self.has_next = received > 0 and self.offset < page.total
        else:
            self.has_next = received >= self.limit


@runtime_checkable
class LedgerHook(Protocol):
    """A credit hook whose vendor exposes its transaction ledger (LocalLeads today)."""

    #: The largest page the vendor serves.
    max_page_size: int

    def iter_transaction_pages(self, page_size: int) -> Iterator[TransactionPage]:
        """Yield the ledger's pages, newest first, until the vendor says it is exhausted."""
        ...
