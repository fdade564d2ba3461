"""Concurrent ledger pages, end to end: CreditTransactionsToSqlOperator over real HTTP with latency.

The sandbox answers every request after a latency (with jitter), so pages really are in flight side by
side; it records when each request arrived and how many were being answered then. The databases are
real (SQLite, PostgreSQL, MariaDB through the ``warehouse`` fixture).
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider.hooks.localleads import LocalLeadsHook
from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
from tests.transfers.conftest import TX_PATH, WAREHOUSE
from tests.warehouse_support import landed, ledger_rows

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer
    from airflow_credits_provider.sandbox.state import RecordedRequest

pytestmark = pytest.mark.integration


def _land(table: str, **kwargs: Any) -> int:
    return CreditTransactionsToSqlOperator(  # type: ignore[no-any-return]
        task_id="land", credit_conn_id="localleads_default", sql_conn_id=WAREHOUSE, table=table, **kwargs
    ).execute({})


def _requests(sandbox: SandboxServer) -> list[RecordedRequest]:
    return sorted(sandbox.state.requests_for("localleads", TX_PATH), key=lambda r: r.at)


def test_concurrent_pages_land_exactly_what_sequential_paging_lands(
    connections: SandboxServer, warehouse: str
) -> None:
    state = connections.state
    state.ledger.size = 2345
    state.set_latency(0.01, jitter=0.01)
    assert _land(warehouse) == 2345  # the default: 10 pages at a time for LocalLeads
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())
    requests = _requests(connections)
    assert len(requests) == 24  # one per page, nothing fetched twice on a ledger that did not change
    assert sorted(int(r.query["offset"]) for r in requests) == [100 * i for i in range(24)]
    assert 1 < max(r.in_flight for r in requests) <= LocalLeadsHook.default_concurrent_pages == 10
    assert requests[0].query["offset"] == "0"  # the first page alone
    assert requests[0].in_flight == 1
    state.clear_requests()
    state.peak_in_flight = 0
    assert _land(warehouse, mode="full_refresh", max_concurrent_pages=1) == 2345
    assert state.peak_in_flight == 1
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


@pytest.mark.parametrize("seed", range(4))
def test_inserts_between_concurrent_pages_at_random_moments_lose_and_duplicate_nothing(
    connections: SandboxServer, warehouse: str, seed: int
) -> None:
    rng = random.Random(seed)
    state = connections.state
    state.ledger.size = rng.randint(1500, 3000)
    state.set_latency(0.005, jitter=0.02)  # pages overtake each other
    start = {r["id"] for r in state.ledger.newest_first()}
    for _ in range(rng.randint(2, 6)):  # new transactions arrive after random requests
        state.inject(
            "grow_ledger", "localleads", path=TX_PATH, count=rng.randint(1, 150), after=rng.randint(0, 20)
        )
    _land(warehouse, max_concurrent_pages=rng.choice([2, 8, 16]))
    ids = [r[0] for r in landed(WAREHOUSE, warehouse)]
    assert len(ids) == len(set(ids))
    assert start <= set(ids), f"lost {len(start - set(ids))} rows"
    state.clear_faults()
    _land(warehouse)  # the next run picks up what arrived meanwhile
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


def test_a_429_slows_the_whole_landing_down_then_it_comes_back(
    connections: SandboxServer, warehouse: str
) -> None:
    state = connections.state
    state.ledger.size = 4000
    # A round trip well above the time a page takes to write, so that all 10 pages stay in flight
    # (the window is round trip / time per page, capped at max_concurrent_pages).
    state.set_latency(0.1)
    state.inject("rate_limit", "localleads", path=TX_PATH, retry_after="1", after=6)
    assert _land(warehouse) == 4000
    requests = _requests(connections)
    assert len(requests) == 41  # 40 pages and one retry: no storm
    [limited] = [r for r in requests if r.fault == "rate_limit"]  # one of the pages after the 6th
    # Its retry started after the pause (a lower bound: a loaded machine only delays it).
    retried = [r for r in requests if r.query["offset"] == limited.query["offset"] and r.at > limited.at]
    assert retried[0].at >= limited.at + 1.0
    # The whole landing paused: between the refusal and its retry there is a long silence (without the
    # pause, a request would arrive every ~12 ms). Pages already on their way when the 429 came back
    # still arrive, but at its start, not in its middle.
    arrivals = [r.at for r in requests if limited.at <= r.at <= retried[0].at]
    assert max(b - a for a, b in itertools.pairwise(arrivals)) >= 0.7
    later = [r for r in requests if r.at >= limited.at + 1.0]
    assert max(r.in_flight for r in later[:5]) <= 5  # half of 10 in flight at first...
    assert max(r.in_flight for r in later) > 5  # ...then gradually more again
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


def test_repeated_429s_are_waited_out_not_counted_as_failures(
    connections: SandboxServer, warehouse: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen by a new user: three 429s on one page used up max_retries (2 here) and failed the run."""
    state = connections.state
    state.ledger.size = 1200
    state.set_latency(0.01)
    state.inject("rate_limit", "localleads", path=TX_PATH, retry_after="0.2", after=1, times=5)
    with caplog.at_level("WARNING", logger="airflow_credits_provider.client.transport"):
        assert _land(warehouse) == 1200
    assert len(_requests(connections)) == 12 + 5  # each refused request retried, nothing more
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 5
    assert all("(HTTP 429): at most" in w and "then this one is retried" in w for w in warnings)
    assert not [w for w in warnings if "retry 1 of 2" in w]  # no second, contradicting wait
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


def test_server_errors_are_retried_per_page_and_a_rate_cap_spaces_the_starts(
    connections: SandboxServer, warehouse: str
) -> None:
    state = connections.state
    state.ledger.size = 1500
    state.inject("status", "localleads", path=TX_PATH, status=503, after=3, times=2)
    assert _land(warehouse, requests_per_second=40) == 1500
    requests = _requests(connections)
    assert len(requests) == 17  # 15 pages, 2 of them retried once
    starts = [r.at for r in requests]
    # 17 starts at most 40 a second take at least 16/40 s (a lower bound: a slow machine only adds).
    assert starts[-1] - starts[0] >= 16 / 40 - 0.01
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


def test_arguments_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="max_concurrent_pages must be a whole number from 1 to 32"):
        CreditTransactionsToSqlOperator(
            task_id="t", credit_conn_id="c", sql_conn_id="w", max_concurrent_pages=0
        )
    for bad in (0, -1, "2", float("inf")):
        with pytest.raises(ValueError, match="requests_per_second must be a positive number"):
            CreditTransactionsToSqlOperator(
                task_id="t", credit_conn_id="c", sql_conn_id="w", requests_per_second=bad
            )
