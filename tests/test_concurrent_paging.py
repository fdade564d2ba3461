"""Concurrent offset paging and pacing, on an in-memory ledger that changes between fetches."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from airflow_credits_provider.client.concurrent_paging import (
    RawPage,
    TailCoverage,
    concurrent_offset_pages,
    fetch_in_order,
)
from airflow_credits_provider.client.pacing import Throttle
from airflow_credits_provider.errors import InconsistentLedgerError

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


class Ledger:
    """Newest first; row ``i`` (tail index) was created at ``T0 + i`` minutes.

    ``changes[k]`` rows arrive (negative: vanish) just before fetch ``k`` answers.
    """

    def __init__(self, size: int, changes: dict[int, int] | None = None) -> None:
        self.size = size
        self.changes = changes or {}  # fetch number -> rows added (negative: removed from the head)
        self.fetches = 0
        self.lock = threading.Lock()

    def fetch(self, offset: int, limit: int = 100) -> RawPage:
        with self.lock:
            self.fetches += 1
            self.size += self.changes.get(self.fetches, 0)
            total = self.size
        tails = range(total - 1 - offset, max(total - 1 - offset - limit, -1), -1)
        return RawPage(None, offset, [{"tail": t} for t in tails], total)


def created(page: RawPage, index: int) -> datetime:
    return T0 + timedelta(minutes=page.records[index]["tail"])


def run(ledger: Ledger, workers: int = 8, **kwargs: object) -> list[int]:
    first = ledger.fetch(0)
    pages = [
        first,
        *concurrent_offset_pages(
            ledger.fetch,
            first,
            limit=100,
            workers=workers,
            created_at=created,
            vendor="x",
            vendor_name="X",
            **kwargs,  # type: ignore[arg-type]
        ),
    ]
    return [r["tail"] for p in pages for r in p.records]


def test_tail_coverage_merges_spans_and_names_gaps_newest_first() -> None:
    coverage = TailCoverage()
    assert coverage.add(0, 100, 1000) == (900, 999)
    assert coverage.add(200, 100, 1000) == (700, 799)
    assert coverage.add(0, 0, 1000) is None
    assert coverage.gaps(0, 999) == [(800, 899), (0, 699)]
    coverage.add(100, 100, 1005)  # 5 rows arrived: this page starts 5 rows older
    assert coverage.gaps(600, 999) == [(800, 804), (600, 699)]


def test_a_stable_ledger_is_read_once_in_order() -> None:
    ledger = Ledger(2345)
    tails = run(ledger)
    assert tails == list(range(2344, -1, -1))
    assert ledger.fetches == 24


@pytest.mark.parametrize("changes", [{3: 7}, {2: 150, 5: 1, 9: 99}, {k: 13 for k in range(2, 12)}])
def test_rows_added_while_pages_are_in_flight_are_never_lost(changes: dict[int, int]) -> None:
    ledger = Ledger(2000, changes)
    tails = run(ledger)
    assert set(range(2000)) <= set(tails)  # every row that was there when paging began
    assert len(tails) - len(set(tails)) < ledger.fetches * 100  # re-reads only, bounded


def test_a_ledger_that_shrinks_or_never_settles_stops_the_pass() -> None:
    with pytest.raises(InconsistentLedgerError, match="shrank from 2000 to 1990 transactions"):
        run(Ledger(2000, {4: -10}))
    restless = Ledger(3000, {k: 250 for k in range(2, 500)})  # more than a page between any two fetches
    with pytest.raises(InconsistentLedgerError, match="kept changing while it was read"):
        run(restless, workers=4)


class HollowLedger(Ledger):
    """Answers the page at ``hollow`` with no rows while still reporting the whole ledger."""

    hollow = 500

    def fetch(self, offset: int, limit: int = 100) -> RawPage:
        page = super().fetch(offset, limit)
        return page._replace(records=[]) if offset == self.hollow else page


def test_an_empty_page_before_the_total_stops_the_pass_as_one_page_at_a_time_does() -> None:
    from airflow_credits_provider.client.ledger import OffsetPaginator

    with pytest.raises(InconsistentLedgerError) as concurrent:
        run(HollowLedger(2000))
    one_at_a_time = OffsetPaginator(100, 500, vendor="x", vendor_name="X")
    with pytest.raises(InconsistentLedgerError) as paginator:
        one_at_a_time.advance(0, 2000)
    assert str(concurrent.value) == str(paginator.value)
    assert str(concurrent.value) == (
        "X returned an empty ledger page at offset 500 while reporting 2000 transactions in all. "
        "Stopping here so that nothing is skipped; run again later."
    )
    assert concurrent.value.vendor == paginator.value.vendor == "x"


def test_since_fetches_ahead_only_as_far_as_the_rate_suggests() -> None:
    ledger = Ledger(5000)
    since = T0 + timedelta(minutes=4750)  # 250 new rows: pages at offsets 0, 100 and 200
    tails = run(ledger, since=since)
    assert min(tails) < 4750 <= max(tails)
    assert ledger.fetches == 3  # no speculative request past the page that reaches `since`


@pytest.mark.parametrize("max_pages", [1, 2, 5])
def test_max_pages_bounds_the_pass(max_pages: int) -> None:
    ledger = Ledger(5000)
    first = ledger.fetch(0)
    rest = list(
        concurrent_offset_pages(
            ledger.fetch,
            first,
            limit=100,
            workers=8,
            created_at=created,
            vendor="x",
            vendor_name="X",
            pages_done=1,
            max_pages=max_pages,
        )
    )
    assert sum(len(p.records) for p in [first, *rest]) == 100 * max_pages
    assert ledger.fetches == max_pages  # no refetch of rows the pass was never asked to reach


def test_fetch_in_order_keeps_order_and_raises_in_turn() -> None:
    def fetch(offset: int) -> int:
        if offset == 30:
            raise RuntimeError("page 30 failed")
        return offset * 2

    got: list[tuple[int, int]] = []

    def consume() -> None:
        got.extend(fetch_in_order(fetch, iter(range(0, 100, 10)), workers=4))

    with pytest.raises(RuntimeError, match="page 30 failed"):
        consume()
    assert got == [(0, 0), (10, 20), (20, 40)]


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_429_halves_the_limit_pauses_everyone_and_the_limit_climbs_back() -> None:
    time = VirtualTime()
    throttle = Throttle(8, clock=lambda: time.now, sleep=time.sleep)
    with throttle.slot() as before:
        pass
    assert throttle.rate_limited(retry_after=2.0, epoch=before) == 2.0
    assert (throttle.limit, throttle.lowest_limit) == (4, 4)
    throttle.rate_limited(retry_after=1.0, epoch=before)  # in flight with the first: no second halving
    assert throttle.limit == 4
    throttle.succeeded(before)  # started before the 429: does not count
    with throttle.slot() as epoch:  # waits out the pause
        pass
    assert time.now == pytest.approx(2.0)
    for _ in range(4):
        throttle.succeeded(epoch)
    assert throttle.limit == 5
    assert throttle.rate_limited(retry_after=None) == 1.0  # no Retry-After: 1 s, doubling
    assert throttle.rate_limited(retry_after=None) == 2.0
    assert throttle.limit == 1


def test_a_rate_cap_spaces_the_starts() -> None:
    time = VirtualTime()
    throttle = Throttle(4, requests_per_second=10, clock=lambda: time.now, sleep=time.sleep)
    for _ in range(5):
        with throttle.slot():
            pass
    assert time.now == pytest.approx(0.4)  # 5 starts, 0.1 s apart
    with pytest.raises(ValueError, match="requests_per_second must be a positive number"):
        Throttle(4, requests_per_second=0)
    with pytest.raises(ValueError, match="max_in_flight must be a whole number"):
        Throttle(0)
