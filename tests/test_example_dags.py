"""Every example DAG, run for real with dag.test() against the sandbox over HTTP."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import TYPE_CHECKING

import airflow
import pendulum
import pytest
from packaging.version import Version

from tests.conftest import CANARY
from tests.example_dags_support import load_dag, reschedules, states, xcom

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_credits_provider.sandbox import SandboxServer

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITS_EXAMPLE_POKE_INTERVAL", "0.2")


def test_enough_credits_runs_the_enrichment(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal(100)
    run = load_dag("example_leadmagic_enrichment", "example_leadmagic_enrichment").test(run_conf={"leads": 4})
    assert states(run) == {"count_leads": "success", "credit_preflight": "success", "enrich": "success"}
    decision = xcom(run, "credit_preflight", "credit_preflight")
    assert decision["passed"] is True
    assert (decision["cost"], decision["margin"], decision["required"]) == ("4", "0.4", "4.4")
    assert decision["available"] == "100"
    assert decision["balance"]["vendor"] == "leadmagic"
    assert xcom(run, "enrich") == {"enriched": 4, "credits_remaining": "96"}
    finder_calls = connections.state.requests_for("leadmagic", "/v1/people/email-finder")
    assert len(finder_calls) == 4
    assert len(connections.state.requests_for("leadmagic", "/v1/credits")) == 1


def test_too_few_credits_fails_with_the_shortfall(
    connections: SandboxServer, capfd: pytest.CaptureFixture[str]
) -> None:
    connections.state.leadmagic.credits = Decimal(12)
    connections.state.leadmagic.credits_frozen = Decimal(5)
    connections.state.leadmagic.freeze_message = "Invoice overdue"
    run = load_dag("example_leadmagic_enrichment", "example_leadmagic_enrichment").test(
        run_conf={"leads": 20}
    )
    assert states(run) == {
        "count_leads": "success",
        "credit_preflight": "failed",
        "enrich": "upstream_failed",
    }
    out = capfd.readouterr().out
    assert (
        "Not enough LeadMagic credits on connection 'leadmagic_default': "
        "need 22 (estimated cost 20 + margin 2), available 7, short by 15." in out
    )
    assert "5 more credits are locked (Invoice overdue)" in out
    decision = xcom(run, "credit_preflight", "credit_preflight")
    assert decision["passed"] is False
    assert decision["shortfall"] == "15"
    assert connections.state.requests_for("leadmagic", "/v1/people/email-finder") == []  # nothing spent
    assert len(connections.state.requests_for("leadmagic", "/v1/credits")) == 1  # failed at once, no retry


def test_an_unreadable_connection_variable_says_so_without_its_key(
    connections: SandboxServer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Airflow skips a variable it cannot parse, then finds no connection: the error says which and why."""
    conn = {"conn_type": "leadmagic", "password": CANARY, "host": connections.url, "port": "eighty"}
    monkeypatch.setenv("AIRFLOW_CONN_LEADMAGIC_DEFAULT", json.dumps(conn))
    run = load_dag("example_leadmagic_enrichment", "example_leadmagic_enrichment").test(run_conf={"leads": 4})
    assert states(run)["credit_preflight"] == "failed"
    out = capfd.readouterr().out
    words = " ".join(out.split())  # Airflow 3.0's task log wraps the error at 80 columns
    start = words.index(
        "Connection 'leadmagic_default': the environment variable AIRFLOW_CONN_LEADMAGIC_DEFAULT is set, "
        "but Airflow cannot read it as a connection (ValueError: "
    )
    message = words[start : words.index('"password": ...}.', start)]
    assert "'eighty'" in message  # Airflow's own reason (the port), which holds no secret
    assert CANARY not in message
    assert "is not defined" not in words
    if Version(airflow.__version__) >= Version("3.1"):
        # Airflow 3.0's own task log prints the variable's value in the locals of its secrets backend's
        # traceback (docs/install.md); from 3.1 that error is a debug line without them.
        assert CANARY not in out
    assert connections.state.requests_for("leadmagic", "/v1/credits") == []


def test_skip_variant_skips_downstream(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal(3)
    run = load_dag("example_leadmagic_enrichment", "example_leadmagic_enrichment_skip").test(
        run_conf={"leads": 5}
    )
    assert states(run) == {"count_leads": "success", "credit_preflight": "skipped", "enrich": "skipped"}
    assert xcom(run, "credit_preflight", "credit_preflight")["shortfall"] == "2.5"


def test_exact_balance_passes(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal("5.5")
    run = load_dag("example_leadmagic_enrichment", "example_leadmagic_enrichment").test(run_conf={"leads": 5})
    assert states(run)["credit_preflight"] == "success"


def test_deferrable_sensor_waits_for_a_top_up(connections: SandboxServer) -> None:
    state = connections.state
    state.leadmagic.credits = Decimal(1)

    def top_up() -> None:
        with state.lock:
            state.leadmagic.credits = Decimal(50)

    seen_short = threading.Event()
    original = state.record

    def record_and_top_up(request: object) -> None:
        original(request)  # type: ignore[arg-type]
        if len(state.requests_for("leadmagic", "/v1/credits")) >= 3 and not seen_short.is_set():
            seen_short.set()
            top_up()

    state.record = record_and_top_up  # type: ignore[method-assign]
    run = load_dag("example_leadmagic_enrichment", "example_leadmagic_enrichment_wait").test(
        run_conf={"leads": 3}
    )
    assert states(run) == {"count_leads": "success", "credit_preflight": "success", "enrich": "success"}
    balance_calls = state.requests_for("leadmagic", "/v1/credits")
    # One check before deferring, one short poll by the trigger, then the poll that sees the top-up.
    assert len(balance_calls) == 3
    decision = xcom(run, "credit_preflight")
    assert decision["passed"] is True
    assert decision["available"] == "50"


def test_reschedule_mode_waits_for_a_top_up(connections: SandboxServer) -> None:
    state = connections.state
    state.leadmagic.credits = Decimal(1)
    original = state.record

    def record_and_top_up(request: object) -> None:
        original(request)  # type: ignore[arg-type]
        if len(state.requests_for("leadmagic", "/v1/credits")) == 2:
            state.leadmagic.credits = Decimal(50)

    state.record = record_and_top_up  # type: ignore[method-assign]
    run = load_dag("example_leadmagic_enrichment", "example_leadmagic_enrichment_reschedule").test(
        run_conf={"leads": 2}
    )
    assert states(run) == {"count_leads": "success", "credit_preflight": "success", "enrich": "success"}
    assert len(state.requests_for("leadmagic", "/v1/credits")) == 2
    assert reschedules(run, "credit_preflight") == 1  # the worker slot was given back while waiting


def test_truemail_units_times_vendor_price(connections: SandboxServer) -> None:
    connections.state.truemail.total = Decimal(10_100)
    dag = load_dag("example_truemail_validation", "example_truemail_validation")
    run = dag.test(run_conf={"emails": 1000})
    assert states(run)["validate"] == "success"
    decision = xcom(run, "credit_preflight")
    assert (decision["cost"], decision["required"]) == ("10000", "10100")
    assert decision["basis"] == "1000 units x 10 credits (TrueMail price for 'smtp')"
    run = dag.test(run_conf={"emails": 1001})
    assert states(run)["credit_preflight"] == "failed"


def test_truemail_plan_without_smtp_fails_whatever_the_balance(
    connections: SandboxServer, capfd: pytest.CaptureFixture[str]
) -> None:
    connections.state.truemail.plan = "starter"
    connections.state.truemail.total = Decimal(10**9)
    connections.state.truemail.validation_types["smtp"] = {
        "credits": 10,
        "available": False,
        "upgrade_required": "Premium subscription required",
    }
    run = load_dag("example_truemail_validation", "example_truemail_validation").test(run_conf={"emails": 1})
    assert states(run)["credit_preflight"] == "failed"
    assert "Premium subscription required" in capfd.readouterr().out


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_reset_aware_wait_sleeps_until_the_renewal(
    connections: SandboxServer, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    from airflow_credits_provider.sandbox.emulators.localleads import LocalLeadsEmulator

    state = connections.state
    state.localleads.used = Decimal(120)  # 5 available now; 125 after the renewal
    # The renewal comes 3 s after the sensor's first check, whenever that is (a process's first task can
    # take many seconds to start on a loaded machine; a fixed time would race it).
    handle = LocalLeadsEmulator.handle

    def renew_soon_after_the_first_check(self: object, request: object, state: object) -> object:
        account = connections.state.localleads
        with connections.state.lock:
            if not connections.state.requests_for("localleads", "/api/v1/credits/balance")[1:]:
                renewal = pendulum.now("UTC").add(seconds=3).replace(microsecond=0)
                account.reset_day = renewal.day
                account.last_reset_at = renewal.subtract(months=1).to_iso8601_string()
        return handle(self, request, state)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalLeadsEmulator, "handle", renew_soon_after_the_first_check)
    dag = load_dag("example_localleads_reset_wait", "example_localleads_reset_wait")
    sensor = dag.get_task("wait_for_credits")
    monkeypatch.setattr(sensor, "deferrable", mode == "deferrable")
    monkeypatch.setattr(sensor, "mode", "reschedule" if mode == "reschedule" else "poke")
    run = dag.test(run_conf={"searches": 100})
    assert states(run) == {"wait_for_credits": "success", "search_leads": "success"}
    # One check before the renewal, then silence until it, then one check after: no polling in between.
    assert len(state.requests_for("localleads", "/api/v1/credits/balance")) == 2
    assert xcom(run, "wait_for_credits")["available"] == "125"
    if mode == "reschedule":
        assert reschedules(run, "wait_for_credits") == 1


def test_reset_after_the_deadline_fails_at_once(
    connections: SandboxServer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    dag = load_dag("example_localleads_reset_wait", "example_localleads_reset_wait")
    monkeypatch.setattr(dag.get_task("wait_for_credits"), "timeout", 60)
    connections.state.localleads.used = Decimal(120)
    run = dag.test(run_conf={"searches": 100})
    assert states(run)["wait_for_credits"] == "failed"
    assert "after this sensor's deadline" in capfd.readouterr().out
    assert len(connections.state.requests_for("localleads", "/api/v1/credits/balance")) == 1


def test_no_task_log_or_xcom_holds_the_key(
    canary_connections: SandboxServer, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import CANARY

    canary_connections.state.leadmagic.credits = Decimal(3)
    dag = load_dag("example_leadmagic_enrichment", "example_leadmagic_enrichment")
    failed = dag.test(run_conf={"leads": 20})
    canary_connections.state.leadmagic.credits = Decimal(100)
    passed = dag.test(run_conf={"leads": 2})
    assert states(failed)["credit_preflight"] == "failed"
    assert states(passed)["enrich"] == "success"
    out, err = capfd.readouterr()
    records = [
        xcom(run, task, key)
        for run in (failed, passed)
        for task, key in (
            ("credit_preflight", "credit_preflight"),
            ("credit_preflight", "return_value"),
            ("enrich", "return_value"),
        )
    ]
    assert any(records)
    for text in (out, err, caplog.text, repr(records)):
        # Airflow 3.0's dag.test debug-logs the value of each mask request a task sends, including its
        # own for every connection password it reads (this provider sends none); not ours to hide.
        text = "\n".join(line for line in text.splitlines() if "msg=MaskSecret(" not in line)
        assert CANARY not in text


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def history_warehouse(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    from tests.warehouse_support import postgres_schema_connection, sqlite_connection

    if request.param == "sqlite":
        sqlite_connection(monkeypatch, "credits_warehouse", tmp_path / "warehouse.db")
        yield request.param
    else:  # the examples' default table names, in a schema of this test's own
        uri = request.getfixturevalue("postgres_conn_uri")
        with postgres_schema_connection(monkeypatch, "credits_warehouse", uri):
            yield request.param


def test_credit_history_lands_transactions_and_snapshots(
    connections: SandboxServer, history_warehouse: str
) -> None:
    from airflow_credits_provider.sql.connections import sql_hook_for
    from tests.warehouse_support import landed, ledger_rows

    state = connections.state
    state.ledger.size = 640
    dag = load_dag("example_credit_history", "example_credit_history")
    run = dag.test()
    assert set(states(run).values()) == {"success"}
    assert xcom(run, "land_localleads_transactions") == 640
    state.ledger.grow(25)
    state.clear_requests()
    run = dag.test()
    assert xcom(run, "land_localleads_transactions") >= 25
    assert len(state.requests_for("localleads", "/api/v1/credits/transactions")) == 1
    assert landed("credits_warehouse", "credit_transactions") == ledger_rows(state.ledger.newest_first())
    snapshots = sql_hook_for("credits_warehouse").get_records(
        "SELECT vendor, COUNT(*) FROM credit_balance_snapshots GROUP BY vendor ORDER BY vendor"
    )
    assert [(p, int(n)) for p, n in snapshots] == [("leadmagic", 2), ("localleads", 2), ("truemail", 2)]


def test_generic_connection_gates_a_dag_in_deferrable_mode(
    connections: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from tests.conftest import FAST_EXTRA

    state = connections.state
    conn = connections.connection("zerobounce", **FAST_EXTRA)
    monkeypatch.setenv("AIRFLOW_CONN_CREDIT_API_DEFAULT", json.dumps(conn))
    state.account("zerobounce").credits = Decimal(10)
    original = state.record

    def record_and_top_up(request: object) -> None:
        original(request)  # type: ignore[arg-type]
        if len(state.requests_for("zerobounce")) == 3:
            state.account("zerobounce").credits = Decimal(5000)

    state.record = record_and_top_up  # type: ignore[method-assign]
    run = load_dag("example_generic_credit_gate", "example_generic_credit_gate").test(
        run_conf={"emails": 2000}
    )
    assert states(run) == {"credit_preflight": "success", "verify_emails": "success"}
    decision = xcom(run, "credit_preflight")
    assert (decision["vendor"], decision["available"], decision["required"]) == ("zerobounce", "5000", "2000")
    assert len(state.requests_for("zerobounce")) == 3


def test_runway_example_snapshots_every_vendor_and_alerts_on_the_short_one(
    connections: SandboxServer, history_warehouse: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from datetime import datetime, timezone
    from decimal import Decimal

    from tests.warehouse_support import seed_snapshots, steady_history

    table = "credit_balance_snapshots"
    now = datetime.now(timezone.utc)
    # A week of hourly history ending at each sandbox balance: LocalLeads (82 left) spends 1 an hour.
    for vendor, before, per_hour in (
        ("leadmagic", "15432.5", 5),
        ("localleads", "82", 1),
        ("truemail", "45230", 9),
    ):
        history = steady_history(
            ending_at=now, before=Decimal(before), per_hour=Decimal(per_hour), hours=7 * 24
        )
        seed_snapshots("credits_warehouse", table, vendor, f"{vendor}_default", history)
    run = load_dag("example_credit_runway", "example_credit_runway").test()
    assert set(states(run).values()) == {"success"}
    localleads = xcom(run, "runway_localleads")
    assert (localleads["short"], localleads["balance"], localleads["snapshots"]) == (True, "82", 7 * 24 + 1)
    assert Decimal(localleads["days_left"]) == pytest.approx(Decimal(82) / 24, rel=Decimal("0.001"))
    for vendor, days in (("leadmagic", Decimal("15432.5") / 120), ("truemail", Decimal(45230) / 216)):
        result = xcom(run, f"runway_{vendor}")
        assert result["short"] is False
        assert Decimal(result["days_left"]) == pytest.approx(days, rel=Decimal("0.001"))
    out = capfd.readouterr().out
    assert "ALERT runway_localleads: 82 credits, burning 24.00 a day: 3.4 days to empty" in out
    assert "ALERT runway_leadmagic" not in out
    assert "ALERT runway_truemail" not in out


def test_start_when_credits_arrive_runs_by_hand_too(
    connections: SandboxServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """The arrival itself is proven with the real triggerer in tests/test_full_stack.py."""
    run = load_dag("example_start_when_credits_arrive", "example_start_when_credits_arrive").test()
    assert states(run) == {"credits_arrived": "success", "credit_preflight": "success"}
    assert xcom(run, "credits_arrived") == {}
    assert "Started by hand, not by an arrival" in capfd.readouterr().out
    decision = xcom(run, "credit_preflight", "credit_preflight")
    assert (decision["passed"], decision["required"]) == (True, "1000")
