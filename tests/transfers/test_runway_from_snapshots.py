"""CreditRunwayOperator on snapshots landed in SQLite, PostgreSQL and MariaDB, the last one over real HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider.compat import AirflowFailException, AirflowSkipException
from airflow_credits_provider.errors import (
    InvalidCostEstimateError,
    MissingDatabaseFileError,
    NotEnoughHistoryError,
    SnapshotHistoryError,
)
from airflow_credits_provider.operators.runway import CreditRunwayOperator, read_snapshots
from airflow_credits_provider.sql.connections import sql_hook_for
from airflow_credits_provider.transfers.credit_balance_to_sql import CreditBalanceToSqlOperator
from tests.transfers.conftest import WAREHOUSE
from tests.warehouse_support import seed_snapshots, steady_history

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_credits_provider.sandbox import SandboxServer

ACCOUNT = "leadmagic_default"
LEADMAGIC_NOW = Decimal("15432.5")  # the sandbox's LeadMagic balance


def _land_history(table: str, *, hours: int = 13 * 24, per_hour: int = 10, refill: int = 5000) -> None:
    """13 days of hourly snapshots spending 10 an hour with one top-up, ending where the sandbox is now."""
    history = steady_history(
        ending_at=datetime.now(timezone.utc),
        before=LEADMAGIC_NOW,
        per_hour=Decimal(per_hour),
        hours=hours,
        refill_at=hours // 2,
        refill=refill,
    )
    seed_snapshots(WAREHOUSE, table, "leadmagic", ACCOUNT, history)
    # Another account in the same table must not leak into this one's runway.
    seed_snapshots(WAREHOUSE, table, "leadmagic", "other", [(at, Decimal(1)) for at, _ in history[-3:]])


def _runway(table: str, **kwargs: Any) -> CreditRunwayOperator:
    return CreditRunwayOperator(
        task_id="runway", sql_conn_id=WAREHOUSE, account=ACCOUNT, table=table, **kwargs
    )


def test_runway_from_landed_history_and_a_live_snapshot(connections: SandboxServer, warehouse: str) -> None:
    _land_history(warehouse)
    CreditBalanceToSqlOperator(
        task_id="snap", credit_conn_id=ACCOUNT, sql_conn_id=WAREHOUSE, table=warehouse
    ).execute({})
    result = _runway(warehouse, min_days=7).execute({})
    assert result["forecast"] is True
    assert result["short"] is False
    assert Decimal(result["balance"]) == LEADMAGIC_NOW
    assert result["snapshots"] == 13 * 24 + 1
    # Every hour's 10, the top-up left out; in the top-up's hour the 10 and the 5000 net out (+4990).
    spent = 10 * (13 * 24 - 1)
    assert Decimal(result["spent"]) == spent
    assert (Decimal(result["refilled"]), result["refills"]) == (4990, 1)
    # Over 13 days (the live snapshot lands a few milliseconds after the hour the history assumes).
    burn = Decimal(spent) / 13
    assert abs(Decimal(result["burn_per_day"]) - burn) < Decimal("0.01")
    assert abs(Decimal(result["days_left"]) - LEADMAGIC_NOW / burn) < Decimal("0.01")
    runs_out = datetime.fromisoformat(result["runs_out_at"])
    expected = datetime.now(timezone.utc) + timedelta(days=float(LEADMAGIC_NOW / burn))
    assert abs(runs_out - expected) < timedelta(minutes=30)


def test_the_window_limits_the_history_used(connections: SandboxServer, warehouse: str) -> None:
    _land_history(warehouse)
    result = _runway(warehouse, window_days=2).execute({})
    assert result["snapshots"] == 2 * 24 + 1  # both ends of the 48 hours before the newest snapshot
    assert result["refills"] == 0  # the top-up was 6 days ago
    assert Decimal(result["history_days"]) == 2


def test_reserve_shortens_the_runway(connections: SandboxServer, warehouse: str) -> None:
    _land_history(warehouse)
    plain = _runway(warehouse).execute({})
    reserved = _runway(warehouse, reserve="2400").execute({})
    burn = Decimal(plain["burn_per_day"])
    assert burn == Decimal(reserved["burn_per_day"])
    assert Decimal(plain["days_left"]) - Decimal(reserved["days_left"]) == pytest.approx(2400 / burn)
    assert reserved["reserve"] == "2400"


@pytest.mark.parametrize("on_short", ["warn", "fail", "skip"])
def test_a_short_runway_warns_fails_or_skips_and_calls_back(
    connections: SandboxServer, warehouse: str, on_short: str, capfd: pytest.CaptureFixture[str]
) -> None:
    _land_history(warehouse, per_hour=200)  # 4800 a day: 15432.5 lasts 3.2 days
    called: list[Any] = []
    task = _runway(
        warehouse,
        min_days=7,
        on_short=on_short,
        on_short_callback=lambda runway, context: called.append((runway, context)),
    )
    context: Any = {"marker": object()}
    if on_short == "warn":
        result = task.execute(context)
        assert result["short"] is True
        assert Decimal(result["days_left"]) < 7
        assert "runs out in less than 7 days" in capfd.readouterr().out  # the task log
    else:
        expected = AirflowFailException if on_short == "fail" else AirflowSkipException
        with pytest.raises(
            expected,
            match=r"'leadmagic_default' runs out in less than 7 days: 15632\.5 credits, burning 4784\.57",
        ):
            task.execute(context)
    [(runway, seen_context)] = called
    assert seen_context is context
    assert runway.days_left < 7
    assert runway.burn_per_day == pytest.approx(Decimal(200 * 310 * 24) / 311)  # the top-up hour nets out


def test_a_long_enough_runway_calls_nobody(connections: SandboxServer, warehouse: str) -> None:
    _land_history(warehouse)
    called: list[Any] = []
    result = _runway(
        warehouse, min_days=30, on_short="fail", on_short_callback=lambda **kw: called.append(kw)
    ).execute({})
    assert (result["short"], called) == (False, [])


def test_one_snapshot_is_no_forecast_yet(
    connections: SandboxServer, warehouse: str, capfd: pytest.CaptureFixture[str]
) -> None:
    CreditBalanceToSqlOperator(
        task_id="snap", credit_conn_id=ACCOUNT, sql_conn_id=WAREHOUSE, table=warehouse
    ).execute({})
    result = _runway(warehouse, min_days=7, on_short="fail").execute({})
    assert result == {"account": ACCOUNT, "forecast": False, "snapshots": 1, "short": False}
    # A second run moments later: two snapshots, seconds apart, are no rate to forecast from.
    CreditBalanceToSqlOperator(
        task_id="snap", credit_conn_id=ACCOUNT, sql_conn_id=WAREHOUSE, table=warehouse
    ).execute({})
    result = _runway(warehouse, min_days=7, on_short="fail").execute({})
    assert result == {"account": ACCOUNT, "forecast": False, "snapshots": 2, "short": False}
    assert "or lower min_history_hours (now 1 hour)." in capfd.readouterr().out  # the task log
    with pytest.raises(
        NotEnoughHistoryError, match=r"span only [\d.]+ seconds?; a forecast needs at least 1 hour"
    ):
        read_and_forecast(warehouse, ACCOUNT)
    # Without a minimum the same two snapshots forecast (nothing was spent between them).
    assert _runway(warehouse, min_history_hours=0).execute({})["forecast"] is True


def read_and_forecast(table: str, account: str) -> object:
    from airflow_credits_provider.runway import forecast

    return forecast(read_snapshots(WAREHOUSE, account, table=table))


def test_an_unknown_account_names_the_accounts_the_table_holds(
    connections: SandboxServer, warehouse: str
) -> None:
    from airflow_credits_provider.sql.connections import sql_hook_for

    CreditBalanceToSqlOperator(
        task_id="snap", credit_conn_id=ACCOUNT, sql_conn_id=WAREHOUSE, table=warehouse
    ).execute({})  # creates the table
    sql_hook_for(WAREHOUSE).run(f"DELETE FROM {warehouse}")
    with pytest.raises(NotEnoughHistoryError, match=r"account 'leadmagic_default' in .* \(it is empty\)"):
        read_snapshots(WAREHOUSE, ACCOUNT, table=warehouse)
    _land_history(warehouse, hours=5)
    with pytest.raises(
        NotEnoughHistoryError,
        match=r"No balance snapshots of account 'leadmagic-default' in .*"
        r"\(it holds accounts 'leadmagic_default', 'other'\)",
    ):
        read_snapshots(WAREHOUSE, "leadmagic-default", table=warehouse)
    # The operator: no forecast, and the task says why (a typo is not "nothing landed yet").
    result = CreditRunwayOperator(
        task_id="runway", sql_conn_id=WAREHOUSE, account="leadmagic-default", table=warehouse, min_days=7
    ).execute({})
    assert result == {"account": "leadmagic-default", "forecast": False, "snapshots": 0, "short": False}


def test_a_missing_table_names_the_table_and_the_fix(connections: SandboxServer, warehouse: str) -> None:
    sql_hook_for(WAREHOUSE).get_first("SELECT 1")  # the database exists (a SQLite file too), the table not
    with pytest.raises(
        SnapshotHistoryError,
        match=rf"Cannot read balance snapshots from .*{warehouse}.*"
        "CreditBalanceToSqlOperator",
    ):
        _runway(warehouse).execute({})


def test_bad_arguments_fail_when_the_dag_is_parsed() -> None:
    with pytest.raises(InvalidCostEstimateError, match="reserve"):
        _runway("t", reserve="-5")
    with pytest.raises(ValueError, match="on_short"):
        _runway("t", on_short="explode")
    with pytest.raises(ValueError, match="window_days"):
        _runway("t", window_days=0)
    with pytest.raises(ValueError, match="min_days"):
        _runway("t", min_days=-1)
    for hours in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="min_history_hours"):
            _runway("t", min_history_hours=hours)
    with pytest.raises(ValueError, match="window_days"):
        _runway("t", window_days=float("inf"))


def test_a_sqlite_warehouse_file_that_does_not_exist_is_reported_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.warehouse_support import sqlite_connection

    missing = tmp_path / "typo" / "warehouse.db"
    sqlite_connection(monkeypatch, "nowhere_warehouse", missing)
    runway = CreditRunwayOperator(task_id="runway", sql_conn_id="nowhere_warehouse", account=ACCOUNT)
    with pytest.raises(MissingDatabaseFileError, match=f"names the SQLite file {missing}, which does not"):
        runway.execute({})
    assert not missing.exists()
    assert not missing.parent.exists()


@pytest.mark.parametrize("dry_first", [True, False])
def test_the_renewal_truemail_reports_decides_whether_the_runway_is_short(
    connections: SandboxServer, warehouse: str, dry_first: bool
) -> None:
    """History landed for TrueMail, then a live snapshot whose period end (the renewal) is next month.

    The spend rate is set from the days left to that renewal, so the account runs dry at half of them
    (short) or after 1.5 times them (renewed first: not short), whatever the date the test runs on.
    """
    from airflow_credits_provider.hooks.resolve import get_credit_hook

    live = get_credit_hook("truemail_default").get_balance()
    assert live.next_reset_at is not None
    assert live.next_reset_at > live.fetched_at  # the sandbox's renewal is relative to now
    to_renewal = (live.next_reset_at - live.fetched_at).total_seconds() / 86400
    days_left = to_renewal * (0.5 if dry_first else 1.5)
    per_hour = live.available / Decimal(str(days_left * 24))
    history = steady_history(
        ending_at=datetime.now(timezone.utc), before=live.available, per_hour=per_hour, hours=48
    )
    seed_snapshots(WAREHOUSE, warehouse, "truemail", "truemail_default", history)
    CreditBalanceToSqlOperator(
        task_id="snap", credit_conn_id="truemail_default", sql_conn_id=WAREHOUSE, table=warehouse
    ).execute({})
    result = CreditRunwayOperator(
        task_id="runway",
        sql_conn_id=WAREHOUSE,
        account="truemail_default",
        table=warehouse,
        min_days=to_renewal * 2,  # without the renewal, both would be short
        on_short="warn",
    ).execute({})
    assert result["renews_at"] == live.next_reset_at.isoformat()
    assert result["renewal_stale"] is False
    assert result["dry_before_renewal"] is dry_first
    assert result["short"] is dry_first
    if dry_first:
        assert float(result["days_dry_before_renewal"]) == pytest.approx(to_renewal / 2, rel=0.05)
    else:
        assert result["days_dry_before_renewal"] is None
