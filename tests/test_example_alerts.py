"""The credit-alerts example as a user runs it: rules loaded by the real CLI, DAGs run by dag.test(), the
alerts received by a real SMTP server through Airflow's SMTP notifier."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import airflow
import pytest
from packaging.version import Version

from airflow_credits_provider.reservations import ReservationStore
from tests.conftest import CANARY, subprocess_env
from tests.example_dags_support import load_dag, states, xcom
from tests.receivers import Inbox
from tests.warehouse_support import seed_snapshots, sqlite_connection, steady_history

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_credits_provider.sandbox import SandboxServer

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.integration]

EXAMPLES = Path(__file__).parent.parent / "example_dags"
RULES_FILE = EXAMPLES / "team_alerts.yaml"
BUDGETS_FILE = EXAMPLES / "team_budgets.yaml"
CLI = shutil.which("airflow-credits", path=str(Path(sys.executable).parent)) or "airflow-credits"
AIRFLOW = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
AIRFLOW_VERSION = Version(airflow.__version__)


def cli(*args: str, airflow: bool = False) -> subprocess.CompletedProcess[str]:
    command = [AIRFLOW, "credits"] if airflow else [CLI]
    return subprocess.run(
        [*command, *args, "--conn-id", "credits_reservations"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=180,
    )


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """The SMTP server behind ``credits_smtp``, the connection the example rules name."""
    server = Inbox()
    server.start()
    extra = {"disable_ssl": True, "disable_tls": True, "from_email": "credits@example.com", "retry_limit": 1}
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": server.port, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CREDITS_SMTP", json.dumps(conn))
    yield server
    server.stop()


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, connections: SandboxServer) -> ReservationStore:
    """The example's reservation database and warehouse (SQLite files), its budgets and rules loaded."""
    from airflow_credits_provider.sql.connections import sql_hook_for

    monkeypatch.setenv("CREDITS_EXAMPLE_POKE_INTERVAL", "0.2")  # read when example_team_budgets is imported
    sqlite_connection(monkeypatch, "credits_reservations", tmp_path / "reservations.db")
    sqlite_connection(monkeypatch, "credits_warehouse", tmp_path / "warehouse.db")
    assert cli("budgets", "import", str(BUDGETS_FILE)).returncode == 0
    loaded = cli("alerts", "import", str(RULES_FILE))
    assert loaded.returncode == 0, loaded.stderr
    assert "Imported 5 rules from" in loaded.stdout
    assert "5 created, 0 changed, 0 unchanged" in loaded.stdout
    return ReservationStore(sql_hook_for("credits_reservations"))


def test_rules_import_all_or_nothing_and_bad_input_names_its_line(
    store: ReservationStore, tmp_path: Path
) -> None:
    again = cli("alerts", "import", str(RULES_FILE))
    assert "0 created, 0 changed, 5 unchanged" in again.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        RULES_FILE.read_text().replace("thresholds: [500]", "thresholds: [500, -5]").replace("[7]", "[14]")
    )
    refused = cli("alerts", "import", str(bad))
    assert refused.returncode == 2
    assert (
        "bad.yaml line 28: Alert rule 'shared-low': threshold -5 is not a positive number." in refused.stderr
    )
    assert store.alert_rules.get("shared-runway").thresholds == ("7",)  # nothing written, not even this
    unknown_budget = cli("alerts", "set", "x", "--kind", "budget", "--subject", "ops", "--threshold", "80",
                         "--notifier", "smtp", "--notifier-args", '{"to": ["a@example.com"]}')  # fmt: skip
    assert unknown_budget.returncode == 2
    assert (
        "Alert rule 'x': Unknown credit budget 'ops'. Defined budgets: 'growth', 'sales'"
        in unknown_budget.stderr
    )
    no_class = cli("alerts", "set", "x", "--kind", "depleted", "--subject", "leadmagic_default",
                   "--notifier", "acme.notify.Pager")  # fmt: skip
    assert no_class.returncode == 2
    assert "notifier 'acme.notify.Pager' cannot be imported" in no_class.stderr
    args = '{"to": "a@example.com", "cc_me": true}'
    bad_args = cli("alerts", "set", "x", "--kind", "depleted", "--subject", "leadmagic_default",
                   "--notifier", "smtp", "--notifier-args", args)  # fmt: skip
    assert bad_args.returncode == 2
    assert "SmtpNotifier takes no argument 'cc_me'" in bad_args.stderr
    listed = json.loads(cli("alerts", "list", "--json").stdout)
    assert [r["name"] for r in listed] == [
        "growth-budget",
        "growth-pace",
        "localleads-unused",
        "shared-low",
        "shared-runway",
    ]
    assert "Traceback" not in refused.stderr + unknown_budget.stderr + no_class.stderr


def test_a_reserving_task_sends_the_budget_alert_it_crosses_itself_once(
    store: ReservationStore,
    connections: SandboxServer,
    inbox: Inbox,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    connections.state.leadmagic.credits = Decimal(1000)
    caplog.set_level(logging.INFO)
    capsys.readouterr()
    run = load_dag("example_team_budgets", "example_budget_growth").test(run_conf={"leads": 40})
    assert states(run)["enrich"] == "success"
    logs = capsys.readouterr().out + caplog.text
    assert "Sent credit alert \"Budget 'growth' reached 80% of its cap\"" in logs
    # The provider's own statements leave no common-sql lines in the task logs.
    assert "Rows affected" not in logs
    assert "rows into" not in logs
    assert xcom(run, "reserve_credits", "credit_preflight")["alerts"] == [
        "Budget 'growth' reached 50% of its cap",
        "Budget 'growth' reached 80% of its cap",
    ]
    # Sent by the reserving task right after its transaction, not at the checker's next run.
    assert [m["Subject"] for m in inbox.received] == [
        "Budget 'growth' reached 50% of its cap",
        "Budget 'growth' reached 80% of its cap",
    ]
    assert inbox.recipients[0] == ["growth-team@example.com"]
    assert "has used 44 of 50 credits (88%) this month" in inbox.bodies()[1]
    # (Its pace rule would warn too, depending on the day of the month: not this test's business.)
    deleted = cli("alerts", "delete", "growth-pace")
    assert "Deleted alert rule 'growth-pace' (its alerts' history stays)." in deleted.stdout
    checker = load_dag("example_credit_alerts", "example_credit_alerts").test()
    assert xcom(checker, "check_credit_alerts")["sent"] == []  # nothing left for the checker
    assert len(inbox.received) == 2
    history = cli("alerts", "history", "--json")
    assert [(c["rule"], c["threshold"], c["status"]) for c in json.loads(history.stdout)] == [
        ("growth-budget", "50", "sent"),
        ("growth-budget", "80", "sent"),
    ]


def test_a_deferred_sensor_sends_the_alert_its_reservation_crosses_from_the_triggerer(
    store: ReservationStore, connections: SandboxServer, inbox: Inbox
) -> None:
    """The account has 5 credits: the sales sensor (11) defers; credits arrive; the trigger reserves."""
    import threading
    import time

    notify = json.dumps({"to": ["sales@example.com"], "smtp_conn_id": "credits_smtp"})
    added = cli("alerts", "set", "sales-third", "--kind", "budget", "--subject", "sales", "--threshold", "30",
                "--notifier", "smtp", "--notifier-args", notify)  # fmt: skip
    assert added.returncode == 0, added.stderr
    connections.state.leadmagic.credits = Decimal(5)

    def top_up() -> None:
        time.sleep(1.5)
        with connections.state.lock:
            connections.state.leadmagic.credits = Decimal(1000)

    threading.Thread(target=top_up, daemon=True).start()
    run = load_dag("example_team_budgets", "example_budget_sales").test(run_conf={"leads": 10})
    assert states(run)["enrich"] == "success"
    decision = xcom(run, "reserve_credits", "credit_preflight")
    assert decision["passed"] is True
    assert [m["Subject"] for m in inbox.received] == ["Budget 'sales' reached 30% of its cap"]
    assert inbox.recipients == [["sales@example.com"]]
    (claim,) = store.alert_claims.history(rule="sales-third")
    assert claim.status == "sent"


def test_the_checker_finds_a_short_runway_and_unused_plan_credits_and_sends_each_once(
    store: ReservationStore, canary_connections: SandboxServer, inbox: Inbox
) -> None:
    now = datetime.now(timezone.utc)
    canary_connections.state.leadmagic.credits = Decimal(1000)
    # leadmagic_shared burns 100 an hour: 1,000 free credits last under half a day.
    history = steady_history(ending_at=now, before=Decimal(1000), per_hour=Decimal(100), hours=24)
    seed_snapshots("credits_warehouse", "credit_balance_snapshots", "leadmagic", "leadmagic_shared", history)
    # LocalLeads barely spends: most of its 82 credits (25 of them bonus, carried over) reset unused.
    slow = steady_history(ending_at=now, before=Decimal(82), per_hour=Decimal("0.01"), hours=48)
    seed_snapshots("credits_warehouse", "credit_balance_snapshots", "localleads", "localleads_default", slow)

    first = load_dag("example_credit_alerts", "example_credit_alerts").test()
    assert states(first)["check_credit_alerts"] == "success"
    result = xcom(first, "check_credit_alerts")
    assert result["skipped"] == {}
    assert len(result["claimed"]) == 2
    assert [c["status"] for c in result["sent"]] == ["pending", "pending"]
    titles = sorted(m["Subject"] for m in inbox.received)
    assert len(titles) == 2
    assert titles[0].startswith("About ")
    assert titles[0].endswith(" credits on 'localleads_default' will expire unused")
    assert titles[1] == "Account 'leadmagic_shared' runs dry within 7 days"
    expiring, runway = sorted(inbox.bodies())
    assert "runs dry in 0.4 days" in runway
    assert "plan credits left when its plan renews (it renews " in expiring

    second = load_dag("example_credit_alerts", "example_credit_alerts").test()
    assert xcom(second, "check_credit_alerts")["claimed"] == []
    assert len(inbox.received) == 2  # a rerun sends nothing twice
    for text in (*inbox.bodies(), json.dumps(result)):
        assert CANARY not in text


def test_alerts_test_finds_a_notifier_connection_kept_in_the_metadata_database(
    store: ReservationStore, inbox: Inbox
) -> None:
    """As the docs make it: `airflow connections add`, not an environment variable (a new user's trial)."""
    conn = json.loads(os.environ["AIRFLOW_CONN_CREDITS_SMTP"])
    added = subprocess.run(
        [AIRFLOW, "connections", "add", "credits_smtp_db", "--conn-json", json.dumps(conn)],
        capture_output=True, text=True, env=subprocess_env(), timeout=180,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    for name, smtp in (("db-smtp", "credits_smtp_db"), ("nowhere-smtp", "no_such_smtp")):
        notify = json.dumps({"to": ["ops@example.com"], "smtp_conn_id": smtp})
        made = cli("alerts", "set", name, "--kind", "depleted", "--subject", "leadmagic_default",
                   "--notifier", "smtp", "--notifier-args", notify)  # fmt: skip
        assert made.returncode == 0, made.stderr
    sent = cli("alerts", "test", "db-smtp")
    assert sent.returncode == 0, sent.stderr
    assert [m["Subject"] for m in inbox.received] == ["Test of credit alert rule 'db-smtp'"]
    missing = cli("alerts", "test", "nowhere-smtp")
    assert missing.returncode == 1
    assert (
        "Connection 'no_such_smtp' is not defined (looked in the environment, the secrets" in missing.stderr
    )
    assert len(inbox.received) == 1


@pytest.mark.skipif(
    AIRFLOW_VERSION < Version("3.2"),
    reason="Airflow's CLI takes provider commands from 3.2 on (airflow-credits works everywhere)",
)
def test_airflow_credits_alerts_is_airflows_own_cli_too(store: ReservationStore, inbox: Inbox) -> None:
    shown = cli("alerts", "show", "growth-budget", "--json", airflow=True)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout[shown.stdout.index("{") :])["thresholds"] == ["50", "80", "100"]
    sent = cli("alerts", "test", "shared-low", airflow=True)
    assert sent.returncode == 0, sent.stderr
    assert [m["Subject"] for m in inbox.received] == ["Test of credit alert rule 'shared-low'"]
