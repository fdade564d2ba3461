"""The team-budgets example as a user runs it: budgets loaded by the real CLI, DAGs run by dag.test()."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import airflow
import pytest
from packaging.version import Version

from airflow_credits_provider.budgets import period_bounds
from airflow_credits_provider.reservations import ReservationStore
from tests.conftest import subprocess_env
from tests.example_dags_support import load_dag, states, xcom
from tests.warehouse_support import sqlite_connection

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.integration]

MODULE = "example_team_budgets"
BUDGETS_FILE = Path(__file__).parent.parent / "example_dags" / "team_budgets.yaml"
CLI = shutil.which("airflow-credits", path=str(Path(sys.executable).parent)) or "airflow-credits"
AIRFLOW_VERSION = Version(airflow.__version__)
AIRFLOW = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"


def budgets_cli(*args: str, airflow: bool = False) -> subprocess.CompletedProcess[str]:
    command = [AIRFLOW, "credits", "budgets"] if airflow else [CLI, "budgets"]
    return subprocess.run(
        [*command, *args, "--conn-id", "credits_reservations"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=180,
    )


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ReservationStore:
    monkeypatch.setenv("CREDITS_EXAMPLE_POKE_INTERVAL", "0.2")
    sqlite_connection(monkeypatch, "credits_reservations", tmp_path / "reservations.db")
    from airflow_credits_provider.sql.connections import sql_hook_for

    return ReservationStore(sql_hook_for("credits_reservations"))


def test_budgets_import_is_idempotent_and_a_bad_file_changes_nothing(
    store: ReservationStore, tmp_path: Path
) -> None:
    first = budgets_cli("import", str(BUDGETS_FILE))
    assert first.returncode == 0, first.stderr
    assert "2 created, 0 changed, 0 unchanged" in first.stdout
    again = budgets_cli("import", str(BUDGETS_FILE))
    assert "0 created, 0 changed, 2 unchanged" in again.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(BUDGETS_FILE.read_text().replace("cap: 50", "cap: 500").replace("cap: 30", "cap: thirty"))
    refused = budgets_cli("import", str(bad))
    assert refused.returncode == 2
    assert "bad.yaml line 14: Budget 'sales': cap must be a number of credits, got 'thirty'" in refused.stderr
    assert {b.name: b.cap for b in store.budgets.all()} == {"growth": 50, "sales": 30}  # growth unchanged too
    listed = json.loads(budgets_cli("list", "--json").stdout)
    assert [(b["name"], b["cap"], b["remaining"], b["timezone"]) for b in listed] == [
        ("growth", "50", "50", "Europe/Berlin"),
        ("sales", "30", "30", "America/New_York"),
    ]
    unknown = budgets_cli("show", "ops")
    assert unknown.returncode == 2
    assert "Unknown credit budget 'ops'. Defined budgets: 'growth', 'sales'" in unknown.stderr
    changed = budgets_cli("set", "growth", "--cap", "60")
    assert changed.returncode == 0, changed.stderr
    assert "cap:         60 credits per month" in changed.stdout
    negative = budgets_cli("set", "growth", "--cap", "-1")
    assert negative.returncode == 2
    assert "cap must not be negative" in negative.stderr
    assert store.budgets.get("growth").cap == 60
    moved = budgets_cli("set", "growth", "--account", "leadmagic_default")
    assert "note: it now draws on account 'leadmagic_default', not 'leadmagic_shared'" in moved.stdout


def test_bad_input_touches_no_database_and_a_broken_one_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = tmp_path / "reservations.db"
    sqlite_connection(monkeypatch, "credits_reservations", db)
    refused = budgets_cli("set", "growth", "--account", "a", "--cap", "abc")
    assert refused.returncode == 2
    assert "cap must be a number of credits, got 'abc'" in refused.stderr
    assert not db.exists()  # checked before anything was opened or created
    sqlite_connection(monkeypatch, "credits_reservations", tmp_path / "no" / "such" / "dir" / "x.db")
    broken = budgets_cli("list")
    assert broken.returncode == 1
    # Its one line comes last (Airflow 3.0 logs a providers-manager line on stderr before it).
    assert (
        broken.stderr.strip()
        .splitlines()[-1]
        .startswith("error: the reservation database failed (OperationalError: ")
    )
    assert "Traceback" not in broken.stderr


def test_a_run_its_budget_cannot_cover_is_skipped_while_the_account_has_credits(
    connections: SandboxServer, store: ReservationStore
) -> None:
    assert budgets_cli("import", str(BUDGETS_FILE)).returncode == 0
    connections.state.leadmagic.credits = Decimal(1000)
    first = load_dag(MODULE, "example_budget_growth").test(run_conf={"leads": 40})
    assert states(first)["enrich"] == "success"
    decision = xcom(first, "reserve_credits", "credit_preflight")
    assert decision["reservation"]["budget"] == "growth"
    assert decision["budget"]["remaining"] == "50"
    assert store.budget_state("growth").spent == 40  # what the release measured

    second = load_dag(MODULE, "example_budget_growth").test(run_conf={"leads": 10})
    assert states(second)["reserve_credits"] == "skipped"
    assert states(second)["enrich"] == "skipped"
    refused = xcom(second, "reserve_credits", "credit_preflight")
    assert refused["passed"] is False
    assert refused["message"].startswith(
        "Credit budget too small for this run: budget 'growth' has 10 of 50 credits left this month (renews "
    )
    assert "Europe/Berlin); this run needs 11." in refused["message"]
    assert "The account itself has 960 credits free" in refused["message"]

    # The other team's budget on the same account is untouched.
    sales = load_dag(MODULE, "example_budget_sales").test(run_conf={"leads": 5})
    assert states(sales)["enrich"] == "success"
    usage = json.loads(budgets_cli("usage", "growth", "--json").stdout)
    assert (usage["periods"][0]["spent"], usage["periods"][0]["runs"]) == ("40", 1)
    assert usage["dags"] == [{"dag_id": "example_budget_growth", "spent": "40", "runs": 1}]


def test_a_waiting_sensor_fails_at_once_when_only_a_renewal_after_its_deadline_helps(
    connections: SandboxServer, store: ReservationStore
) -> None:
    assert budgets_cli("import", str(BUDGETS_FILE)).returncode == 0
    connections.state.leadmagic.credits = Decimal(1000)
    whole_cap = load_dag(MODULE, "example_budget_sales").test(run_conf={"leads": 30})  # 33 > 30
    assert states(whole_cap)["reserve_credits"] == "failed"
    # A period that renews more than the sensor's 6 hours from now (the first of month, week, day).
    now = datetime.now(timezone.utc)
    period = next(
        p
        for p in ("month", "week", "day")
        if period_bounds(p, "America/New_York", now)[1] > now + timedelta(hours=7)
    )
    assert budgets_cli("set", "sales", "--period", period).returncode == 0
    spent = load_dag(MODULE, "example_budget_sales").test(run_conf={"leads": 20})  # 22 of 30
    assert states(spent)["enrich"] == "success"
    late = load_dag(MODULE, "example_budget_sales").test(run_conf={"leads": 10})  # 11 > 30 - 20
    assert states(late)["reserve_credits"] == "failed"
    assert store.active("leadmagic_shared") == []


def test_the_deferrable_sensor_takes_budget_credits_another_run_gives_back(
    connections: SandboxServer, store: ReservationStore
) -> None:
    """Another sales run holds 25 of the 30 (and is killed): the trigger waits, then reserves at its TTL."""
    from airflow_credits_provider.hooks.resolve import get_credit_hook
    from airflow_credits_provider.reservations import Holder

    assert budgets_cli("import", str(BUDGETS_FILE)).returncode == 0
    connections.state.leadmagic.credits = Decimal(1000)
    other = store.reserve(
        account="leadmagic_shared",
        credit_conn_id="leadmagic_default",
        holder=Holder("example_budget_sales", "killed_run", "reserve_credits"),
        amount_for=lambda _b: Decimal(25),
        fetch_balance=get_credit_hook("leadmagic_default").get_balance,
        ttl=timedelta(seconds=3),
        budget="sales",
    )
    assert other.reservation is not None
    run = load_dag(MODULE, "example_budget_sales").test(run_conf={"leads": 10})  # 11 > 30 - 25 held
    assert states(run)["release_credits"] == "success"
    decision = xcom(run, "reserve_credits", "credit_preflight")
    assert decision["passed"] is True
    assert decision["budget"]["held"] == "0"  # the killed run's hold expired; nothing charged for it
    assert decision["budget"]["spent"] == "0"
    assert store.budget_state("sales").spent == 10


@pytest.mark.skipif(
    AIRFLOW_VERSION < Version("3.2"),
    reason="Airflow's CLI takes provider commands from 3.2 on (airflow-credits works everywhere)",
)
def test_airflow_credits_budgets_is_airflows_own_cli_too(store: ReservationStore) -> None:
    assert budgets_cli("import", str(BUDGETS_FILE), airflow=True).returncode == 0
    shown = budgets_cli("show", "sales", "--json", airflow=True)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["period"] == "week"
    assert budgets_cli("delete", "sales", airflow=True).returncode == 0
    assert [b.name for b in store.budgets.all()] == ["growth"]
