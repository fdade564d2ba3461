"""
Crash safety for real: the landing task runs in its own process, is SIGKILLed mid-run, then rerun.

After every kill point the rerun must leave the table exactly equal to the vendor's ledger.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
from tests.conftest import subprocess_env
from tests.transfers.conftest import TX_PATH, WAREHOUSE
from tests.warehouse_support import landed, ledger_rows

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_credits_provider.sandbox import SandboxServer
    from airflow_credits_provider.sandbox.state import RecordedRequest

RUN_LANDING = """
import sys
from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
CreditTransactionsToSqlOperator(
    task_id="land", credit_conn_id="localleads_default", sql_conn_id=sys.argv[1], table=sys.argv[2],
    batch_size=200,
).execute({})
print("COMPLETED")
"""


def _kill_after_pages(
    sandbox: SandboxServer, table: str, pages: int, *, before_kill: Callable[[], None] | None = None
) -> None:
    """Start the landing in a child process and SIGKILL it while it waits for page ``pages``.

    :param before_kill: called at the kill point, before the signal (to check what the child is doing)
    """
    state = sandbox.state
    target = len(state.requests_for("localleads", TX_PATH)) + pages
    reached = threading.Event()
    record = state.record

    def record_and_signal(request: RecordedRequest) -> None:
        record(request)
        if len(state.requests_for("localleads", TX_PATH)) >= target:
            reached.set()

    state.record = record_and_signal  # type: ignore[method-assign]
    state.inject("slow", "localleads", path=TX_PATH, delay=0.3, times=-1)  # the child waits on this page
    with subprocess.Popen(
        [sys.executable, "-c", RUN_LANDING, WAREHOUSE, table],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        # Wait for the kill point, but stop waiting at once if the child dies first (e.g. at import).
        while not reached.wait(timeout=0.1):
            if child.poll() is not None:
                raise AssertionError(f"the landing died before the kill point: {child.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        assert child.poll() is None, "the landing finished before it could be killed"
        if before_kill is not None:
            before_kill()
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
    state.record = record  # type: ignore[method-assign]
    assert child.returncode == -signal.SIGKILL
    assert "COMPLETED" not in out
    state.clear_faults()


@pytest.mark.parametrize("kill_at_page", [1, 4, 9])
def test_killed_first_load_then_rerun_equals_the_ledger(
    connections: SandboxServer,
    warehouse: str,
    kill_at_page: int,
) -> None:
    connections.state.ledger.size = 1000  # 10 pages; rows are committed every 2 pages
    _kill_after_pages(connections, warehouse, kill_at_page)
    partial = landed(WAREHOUSE, warehouse) if kill_at_page > 1 else []
    assert len(partial) < 1000
    CreditTransactionsToSqlOperator(
        task_id="land", credit_conn_id="localleads_default", sql_conn_id=WAREHOUSE, table=warehouse
    ).execute({})
    assert landed(WAREHOUSE, warehouse) == ledger_rows(connections.state.ledger.newest_first())


@pytest.mark.parametrize("kill_at_page", [2, 5])
def test_killed_incremental_run_keeps_its_cursor_and_recovers(
    connections: SandboxServer,
    warehouse: str,
    kill_at_page: int,
) -> None:
    state = connections.state
    state.ledger.size = 400
    land = CreditTransactionsToSqlOperator(
        task_id="land", credit_conn_id="localleads_default", sql_conn_id=WAREHOUSE, table=warehouse
    )
    land.execute({})
    state.ledger.grow(700)  # 7 pages of new transactions
    _kill_after_pages(connections, warehouse, kill_at_page)
    # The newest rows may already be landed, but the cursor did not move: the rerun fetches the gap.
    land.execute({})
    assert landed(WAREHOUSE, warehouse) == ledger_rows(state.ledger.newest_first())


@pytest.mark.postgres
def test_killed_mid_copy_then_rerun_equals_the_ledger(
    connections: SandboxServer, postgres_conn_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL lands through COPY: a kill while a COPY is open loses only that uncommitted batch."""
    import time

    import psycopg

    from tests.warehouse_support import drop, postgres_connection, unique_table

    postgres_connection(monkeypatch, WAREHOUSE, postgres_conn_uri)
    table = unique_table()
    connections.state.ledger.size = 2000

    def copy_is_open() -> None:
        # A batch's COPY is open: its first page arrived, the child waits for its second (pages come in
        # bursts of concurrent requests, each answered 0.3 s late).
        deadline = time.monotonic() + 10
        with psycopg.connect(postgres_conn_uri, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'",
                    (f"COPY %_credits_stage_{table}%",),
                ).fetchone()
                if row and row[0] == 1:
                    return
                assert time.monotonic() < deadline, "no COPY was open at the kill point"
                time.sleep(0.02)

    try:
        _kill_after_pages(connections, table, 4, before_kill=copy_is_open)
        committed = len(landed(WAREHOUSE, table))
        assert committed % 200 == 0  # whole batches only: the open COPY's rows are gone
        assert committed < 2000
        CreditTransactionsToSqlOperator(
            task_id="land", credit_conn_id="localleads_default", sql_conn_id=WAREHOUSE, table=table
        ).execute({})
        assert landed(WAREHOUSE, table) == ledger_rows(connections.state.ledger.newest_first())
    finally:
        drop(WAREHOUSE, table, f"{table}_cursor")
