"""A landing's set-up, overlapped with its first page: tables checked without DDL, failures stop the pager."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider.sql.connections import sql_hook_for
from airflow_credits_provider.sql.landing import LandingTarget
from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
from tests.transfers.conftest import TX_PATH, WAREHOUSE
from tests.warehouse_support import landed, ledger_rows

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


def _operator(table: str, **kwargs: object) -> CreditTransactionsToSqlOperator:
    return CreditTransactionsToSqlOperator(
        task_id="land", credit_conn_id="localleads_default", sql_conn_id=WAREHOUSE, table=table, **kwargs
    )


def _pager_threads() -> list[str]:
    names = [t.name for t in threading.enumerate()]
    return [n for n in names if n.startswith(("credits-read-ahead", "credits-page"))]


def test_a_failed_set_up_stops_the_pager_after_its_first_page(
    connections: SandboxServer, warehouse: str
) -> None:
    """The first page goes out before the database is set up; a set-up that fails asks for nothing more."""
    connections.state.ledger.size = 1000
    with pytest.raises(Exception, match=warehouse):  # the table does not exist and may not be created
        _operator(warehouse, create_table=False).execute({})
    assert [r.query["offset"] for r in connections.state.requests_for("localleads", TX_PATH)] == ["0"]
    assert _pager_threads() == []


def test_a_table_from_an_earlier_release_gets_its_missing_columns(
    connections: SandboxServer, warehouse: str
) -> None:
    """Tables that exist skip DDL; one lacking a nullable column still takes the path that adds it."""
    connections.state.ledger.size = 250
    hook = sql_hook_for(WAREHOUSE)
    LandingTarget.transactions(hook, warehouse, None).create()
    hook.run(f"ALTER TABLE {warehouse} DROP COLUMN raw")  # as an earlier release made it
    assert _operator(warehouse).execute({}) == 250
    assert landed(WAREHOUSE, warehouse) == ledger_rows(connections.state.ledger.newest_first())
    assert "raw" in LandingTarget.transactions(hook, warehouse, None).data.existing_columns()
    connections.state.ledger.grow(30)
    assert _operator(warehouse).execute({}) >= 30  # tables complete now: the check, no DDL
    assert landed(WAREHOUSE, warehouse) == ledger_rows(connections.state.ledger.newest_first())
