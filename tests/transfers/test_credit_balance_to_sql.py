"""CreditBalanceToSqlOperator: one normalised snapshot per run, for every vendor, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider.sql.connections import sql_hook_for
from airflow_credits_provider.transfers.credit_balance_to_sql import CreditBalanceToSqlOperator
from tests.conftest import CANARY
from tests.transfers.conftest import WAREHOUSE

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer

COLUMNS = "vendor, account, available, total, monthly, used, bonus, locked, plan, next_reset_at, raw"


def _snapshots(table: str) -> dict[str, tuple[object, ...]]:
    rows = sql_hook_for(WAREHOUSE).get_records(f"SELECT {COLUMNS} FROM {table} ORDER BY vendor")
    return {r[0]: r for r in rows}


def _dec(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value)).normalize()


def test_snapshots_of_every_vendor(canary_connections: SandboxServer, warehouse: str) -> None:
    for conn_id in ("leadmagic_default", "localleads_default", "truemail_default"):
        result = CreditBalanceToSqlOperator(
            task_id=f"snap_{conn_id}", credit_conn_id=conn_id, sql_conn_id=WAREHOUSE, table=warehouse
        ).execute({})
        assert result["account"] == conn_id
        assert "raw" not in result
    rows = _snapshots(warehouse)
    assert set(rows) == {"leadmagic", "localleads", "truemail"}
    lm, ll, tm = rows["leadmagic"], rows["localleads"], rows["truemail"]
    assert _dec(lm[2]) == Decimal("15432.5")
    assert (_dec(ll[2]), _dec(ll[4]), _dec(ll[5]), _dec(ll[6])) == (
        Decimal(82),
        Decimal(100),
        Decimal(43),
        Decimal(25),
    )
    assert ll[9] is not None  # next reset
    assert (_dec(tm[2]), _dec(tm[7]), tm[8]) == (Decimal(45230), Decimal(1500), "premium")
    assert all(CANARY not in str(r) for r in rows.values())


def test_each_run_adds_a_row_for_burn_rate(connections: SandboxServer, warehouse: str) -> None:
    snap = CreditBalanceToSqlOperator(
        task_id="snap", credit_conn_id="leadmagic_default", sql_conn_id=WAREHOUSE, table=warehouse
    )
    snap.execute({})
    connections.state.leadmagic.credits = Decimal(15000)
    snap.execute({})
    rows = sql_hook_for(WAREHOUSE).get_records(f"SELECT available FROM {warehouse} ORDER BY fetched_at")
    assert [_dec(r[0]) for r in rows] == [Decimal("15432.5"), Decimal(15000)]


def test_bad_schema_name_is_refused(connections: SandboxServer) -> None:
    from airflow_credits_provider.errors import CreditConnectionConfigError

    with pytest.raises(CreditConnectionConfigError, match="Schema name"):
        CreditBalanceToSqlOperator(
            task_id="snap", credit_conn_id="leadmagic_default", sql_conn_id=WAREHOUSE, schema="x y"
        ).land({})
    assert connections.state.requests_for("leadmagic") == []


def test_snapshot_of_a_generic_connection(
    connections: SandboxServer, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv("AIRFLOW_CONN_ZB", json.dumps(connections.connection("zerobounce")))
    CreditBalanceToSqlOperator(
        task_id="snap", credit_conn_id="zb", sql_conn_id=WAREHOUSE, table=warehouse
    ).execute({})
    rows = _snapshots(warehouse)
    assert list(rows) == ["zerobounce"]
    assert _dec(rows["zerobounce"][2]) == Decimal(5000)
