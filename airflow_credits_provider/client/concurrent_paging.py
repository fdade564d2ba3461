"""Fetching the pages of a newest-first, offset-paged ledger several at a time, exactly.

After the first page (fetched alone: it tells the ledger's total and, for an incremental run, whether
anything is new at all), :func:`concurrent_offset_pages` lays out the remaining offsets from that total
and fetches up to ``workers`` of them at once, yielding them in offset order with at most ``workers``
fetched ahead of the caller (memory stays flat). Pacing (how many are really in flight, 429s) is the
:class:`~airflow_credits_provider.client.pacing.Throttle`'s, inside ``fetch``.

Exactness: transactions that arrive while pages are in flight push older rows to later offsets, so a
page fetched after such an arrival may miss rows a page fetched before it would have held. Every page
is placed by *tail index* (:class:`TailCoverage`, stable under arrivals at the head), and when the pass
ends, the rows no page held are fetched again from the ledger's current total until none is missing.
A ledger that shrinks while it is read, or a page that contradicts its total, raises
:class:`~airflow_credits_provider.errors.InconsistentLedgerError` (a landing then keeps its cursor).

Incremental runs (``since``) fetch ahead only as far as the time left to ``since`` suggests at the
rate the pages so far show, so a run with few new rows makes about as many requests as pages it needs.

Airflow-free.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from airflow_credits_provider.client.ledger import empty_page_message, inconsistent_ledger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from concurrent.futures import Future
    from datetime import datetime

    from airflow_credits_provider.errors import InconsistentLedgerError

T = TypeVar("T")

#: How many rounds of refetching shifted rows before giving up (each round refetches every gap).
MAX_REFETCH_ROUNDS = 5
#: The time the caller is taken to spend on a page before it has handled one (a landing writes a page
#: of 100 rows into PostgreSQL in about 3 ms): with the first page's round trip, how many to ask at once.
ASSUMED_PER_PAGE = 0.003


class RawPage(NamedTuple):
    """One answer: the request made (opaque here), its offset, its raw records and the total it reported."""

    call: Any
    offset: int
    records: list[Any]
    total: int | None


class TailCoverage:
    """Which rows of a newest-first ledger a set of pages holds, by *tail index* (0 = the oldest row).

    New transactions arrive at the head and push every older row to a later offset, so a row's offset
    changes while a landing pages, but its tail index (``total - 1 - offset``, with the total reported
    in the same answer) does not. A gap is a range of rows no page held: a shift between two pages'
    fetches, or a short page.
    """

    def __init__(self) -> None:
        self._spans: list[tuple[int, int]] = []  # disjoint, sorted, inclusive

    def add(self, offset: int, received: int, total: int) -> tuple[int, int] | None:
        """Record a page of ``received`` rows at ``offset`` of a ledger of ``total``; return its span."""
        if received <= 0:
            return None
        span = (total - offset - received, total - offset - 1)
        lo, hi = span
        kept = []
        for a, b in self._spans:
            if b < lo - 1 or a > hi + 1:
                kept.append((a, b))
            else:
                lo, hi = min(lo, a), max(hi, b)
        self._spans = sorted([*kept, (lo, hi)])
        return span

    def gaps(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The ranges of tail indexes in ``[lo, hi]`` that no page held, newest first."""
        missing, at = [], lo
        for a, b in self._spans:
            if b < at:
                continue
            if a > hi:
                break
            if a > at:
                missing.append((at, a - 1))
            at = b + 1
        if at <= hi:
            missing.append((at, hi))
        return sorted(missing, reverse=True)


def fetch_in_order(
    fetch: Callable[[int], T],
    offsets: Iterator[int],
    workers: int,
    *,
    window: Callable[[], int] | None = None,
    name: str = "credits-page",
) -> Iterator[tuple[int, T]]:
    """Yield ``(offset, fetch(offset))`` for each offset, in order, fetching up to ``workers`` at once.

    At most ``window()`` (default ``workers``, never more) fetches are submitted ahead of the one
    being yielded, so memory stays flat whatever the number of offsets. An exception from ``fetch`` is
    raised when its offset's turn comes (the pages before it are yielded first). Closing the iterator
    cancels what has not started and waits for what has.
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    pending: deque[tuple[int, Future[T]]] = deque()
    source = iter(offsets)
    exhausted = False
    try:
        while True:
            allowed = max(1, min(workers, window() if window else workers))
            while not exhausted and len(pending) < allowed:
                offset = next(source, None)
                if offset is None:
                    exhausted = True
                    break
                pending.append((offset, pool.submit(fetch, offset)))
            if not pending:
                return
            at, future = pending.popleft()
            yield at, future.result()
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def concurrent_offset_pages(
    fetch: Callable[[int], RawPage],
    first: RawPage,
    *,
    limit: int,
    workers: int,
    pages_done: int = 1,
    max_pages: int | None = None,
    since: datetime | None = None,
    created_at: Callable[[RawPage, int], datetime],
    vendor: str,
    vendor_name: str,
    first_seconds: float | None = None,
) -> Iterator[RawPage]:
    """The pages after ``first`` (whose total must be known), ``workers`` at a time, in order, exactly.

    :param fetch: one page at an offset (runs in worker threads)
    :param first: the first page, already fetched and yielded by the caller
    :param limit: rows asked for per page
    :param pages_done: pages already made (for ``max_pages``)
    :param max_pages: the most pages in the pass (refetches of shifted rows not counted)
    :param since: stop after the page whose oldest row is older than this
    :param created_at: the time of record ``i`` of a page
    :param first_seconds: how long the first page took to arrive: the round trip, known before any
        other page is asked for, so that a slow network gets every worker at once instead of ramping up
    """
    assert first.total is not None
    first_total = first.total

    def fail(message: str) -> InconsistentLedgerError:
        return inconsistent_ledger(message, vendor=vendor, vendor_name=vendor_name)

    def check(page: RawPage) -> int:
        if page.total is None:
            raise fail(
                f"{vendor_name} stopped reporting the ledger's total (page at offset {page.offset}): cannot "
                "check that concurrent pages hold every row."
            )
        if page.total < first_total:
            raise fail(
                f"{vendor_name}'s ledger shrank from {first_total} to {page.total} transactions while it was "
                "read: rows may have moved to earlier offsets."
            )
        if not page.records and page.offset < page.total:
            raise fail(empty_page_message(vendor_name, page.offset, page.total))
        return page.total

    coverage = TailCoverage()
    first_span = coverage.add(first.offset, len(first.records), first_total)
    newest = first_total - first.offset - 1  # the tail index of the newest row the pass must hold
    lowest = first_span[0] if first_span else newest + 1  # the oldest row the pass has held so far
    start = first.offset + len(first.records)
    seen = _Seen(len(first.records))
    if since is not None and first.records:
        seen.newest, seen.oldest = created_at(first, 0), created_at(first, -1)

    pace = _Pace()
    if first_seconds is not None:
        pace.fetched(first_seconds)

    def timed_fetch(offset: int) -> RawPage:
        started = time.monotonic()
        page = fetch(offset)
        pace.fetched(time.monotonic() - started)
        return page

    def window() -> int:
        """As many pages ahead as keep the caller busy, and no further than ``since`` seems to be."""
        ahead = pace.pages_needed(workers)
        if since is None or seen.newest is None or seen.oldest is None or seen.rows < 2:
            return ahead
        span = (seen.newest - seen.oldest).total_seconds()
        if span <= 0:
            return ahead
        rows_left = (seen.oldest - since).total_seconds() * (seen.rows - 1) / span
        return max(1, min(ahead, math.ceil(max(rows_left, 1) / limit)))

    def offsets() -> Iterator[int]:
        at, planned = start, pages_done
        while at < first_total and (max_pages is None or planned < max_pages):
            yield at
            at, planned = at + limit, planned + 1

    last_total = first_total
    made = pages_done
    reached_since = False
    for _, page in fetch_in_order(timed_fetch, offsets(), workers, window=window):
        last_total = check(page)
        span = coverage.add(page.offset, len(page.records), last_total)
        made += 1
        handed = time.monotonic()
        yield page
        pace.consumed(time.monotonic() - handed)
        if span is not None:
            lowest = min(lowest, span[0])
            if since is not None:
                seen.rows += len(page.records)
                seen.oldest = created_at(page, -1)
                if seen.oldest < since:
                    reached_since = True
                    break
    # A pass cut short (by since or max_pages) must hold every row down to the oldest it reached; a
    # whole pass, every row down to the ledger's oldest (rows pushed past the planned offsets included).
    cut_short = reached_since or (max_pages is not None and made >= max_pages)
    yield from _refetch_gaps(fetch, coverage, lowest if cut_short else 0, newest, last_total, check, fail)


class _Pace:
    """How many pages to keep in flight: the round trip over the time the caller takes per page.

    Little's law: to hand the caller a page every ``c`` seconds when a page takes ``r`` seconds to
    arrive, about ``r / c`` must be in flight. ``r`` is the *shortest* recent fetch (the network's round
    trip; longer ones include waiting behind the others, which more in flight would only lengthen);
    ``c`` a moving average of how long the caller kept each page. On a fast network (a vendor on
    localhost) the caller is the bottleneck and one or two pages ahead keep it busy; at 50 ms a page,
    every worker is used.
    """

    def __init__(self) -> None:
        self._fetches: deque[float] = deque(maxlen=16)
        self._per_page: float | None = None
        self._lock = threading.Lock()

    def fetched(self, seconds: float) -> None:
        with self._lock:
            self._fetches.append(seconds)

    def consumed(self, seconds: float) -> None:
        self._per_page = seconds if self._per_page is None else 0.8 * self._per_page + 0.2 * seconds

    def pages_needed(self, workers: int) -> int:
        with self._lock:
            round_trip = min(self._fetches) if self._fetches else None
        if round_trip is None:
            return min(2, workers)  # the start: ramp up as the first pages tell how fast each side is
        per_page = ASSUMED_PER_PAGE if self._per_page is None else self._per_page
        if per_page <= 1e-4:  # the caller never waits for a page: as many as allowed
            return workers
        return max(1, min(workers, math.ceil(round_trip / per_page) + 1))


@dataclass
class _Seen:
    """The rows an incremental pass has seen, and the times of its newest and oldest."""

    rows: int
    newest: datetime | None = None
    oldest: datetime | None = None


def _refetch_gaps(
    fetch: Callable[[int], RawPage],
    coverage: TailCoverage,
    oldest: int,
    newest: int,
    total: int,
    check: Callable[[RawPage], int],
    fail: Callable[[str], InconsistentLedgerError],
) -> Iterator[RawPage]:
    """Fetch the rows no page held (tail indexes ``oldest``..``newest``), one page at a time, until none."""
    misses = 0  # refetches that found the rows shifted past them again
    for _round in range(MAX_REFETCH_ROUNDS):
        gaps = coverage.gaps(oldest, newest)
        if not gaps:
            return
        for lo, hi in gaps:  # newest first; rows keep shifting, so each offset uses the latest total
            while hi >= lo and misses <= MAX_REFETCH_ROUNDS:
                page = fetch(total - 1 - hi)
                total = check(page)
                missing = coverage.gaps(oldest, newest)
                span = coverage.add(page.offset, len(page.records), total)
                yield _only(page, total, missing)  # rows already held are not written twice
                if span is None or span[0] > hi:  # shifted past it again: recompute the offset
                    misses += 1
                    continue
                hi = span[0] - 1
    if coverage.gaps(oldest, newest):
        raise fail(
            f"The ledger kept changing while it was read ({MAX_REFETCH_ROUNDS} rounds of refetching rows "
            "that shifted); land with max_concurrent_pages=1 if it never settles."
        )


def _only(page: RawPage, total: int, gaps: list[tuple[int, int]]) -> RawPage:
    """``page`` with only its rows whose tail index is in ``gaps`` (a contiguous run: both are ranges)."""
    kept = [
        i
        for i in range(len(page.records))
        if any(lo <= total - 1 - (page.offset + i) <= hi for lo, hi in gaps)
    ]
    if not kept:
        return page._replace(records=[])
    return page._replace(offset=page.offset + kept[0], records=page.records[kept[0] : kept[-1] + 1])
