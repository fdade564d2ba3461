"""Alerts delivered by Airflow's own notifiers to real receivers: an SMTP server and a webhook endpoint.

Each claimed alert is sent once: by the reserving task just after its commit, or by a later delivery
pass when the receiver was down (the claim stays failed, visible, and is sent once it is back); two
deliverers at once send one message. The canary key is in no message, claim row or log line.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider.alerts import AlertRule
from airflow_credits_provider.errors import AlertRuleError
from airflow_credits_provider.notifications.checks import check_rule
from airflow_credits_provider.notifications.delivery import deliver, send_sample
from airflow_credits_provider.reservations import Budget, Holder
from tests.conftest import CANARY, set_connection, subprocess_env
from tests.receivers import SLACK_CONN, SMTP_CONN
from tests.reservations.conftest import CREDIT_CONN, RESERVATION_DB, Clock, set_credits
from tests.reservations.test_store import live_balance, store_for

if TYPE_CHECKING:
    from airflow_credits_provider.reservations import ReservationStore
    from airflow_credits_provider.sandbox import SandboxServer
    from tests.receivers import Inbox, Webhook

CLI = shutil.which("airflow-credits", path=str(Path(sys.executable).parent)) or "airflow-credits"
SMTP = {"notifier": "smtp", "notifier_args": {"to": ["growth@example.com"], "smtp_conn_id": SMTP_CONN}}


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch, leadmagic: SandboxServer) -> SandboxServer:
    """``leadmagic_default`` with the canary key."""
    leadmagic.state.set_key("leadmagic", CANARY)
    set_connection(monkeypatch, CREDIT_CONN, leadmagic, "leadmagic", password=CANARY)
    return leadmagic


def _budget_store(tables: dict[str, str], rule: dict[str, Any], **options: Any) -> ReservationStore:
    store = store_for(tables, **options)
    store.budgets.set([Budget.parse(name="growth", account="acct", cap="1000")])
    alert = AlertRule.parse(name="growth-80", kind="budget", subject="growth", thresholds=[80], **rule)
    check_rule(store, alert)
    store.alert_rules.set([alert])
    return store


def _cross(store: ReservationStore, run_id: str = "r1") -> Any:
    return store.reserve(
        account="acct",
        credit_conn_id=CREDIT_CONN,
        holder=Holder("dag", run_id, "reserve"),
        amount_for=lambda _balance: Decimal(850),
        fetch_balance=live_balance,
        ttl=timedelta(hours=1),
        budget="growth",
    )


def _all_text(store: ReservationStore) -> str:
    table = store.alert_claims.table
    return repr(store.hook.get_records(f"SELECT * FROM {table.qualified}"))


def test_a_crossing_arrives_by_smtp_once_with_its_numbers_and_a_link_and_never_the_key(
    reservation_tables: dict[str, str],
    canary: SandboxServer,
    smtp_inbox: Inbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/team")
    set_credits(canary, 5000)
    store = _budget_store(reservation_tables, SMTP)
    caplog.set_level(logging.DEBUG)
    result = _cross(store)
    report = deliver(store, result.alerts)
    assert [c.rule for c in report.sent] == ["growth-80"]
    assert deliver(store).sent == []  # nothing left to send: a rerun sends nothing
    assert deliver(store, result.alerts).sent == []

    (message,) = smtp_inbox.received
    assert smtp_inbox.recipients == [["growth@example.com"]]
    assert message["Subject"] == "Budget 'growth' reached 80% of its cap"
    (body,) = smtp_inbox.bodies()
    assert "has used 850 of 1,000 credits (85%) this month: 0 spent and 850 held" in body
    assert "https://airflow.example.com/team/credits/" in body
    (claim,) = store.alert_claims.history()
    assert (claim.status, claim.attempts) == ("sent", 1)
    for where in (body, _all_text(store), caplog.text, repr(report.to_dict())):
        assert CANARY not in where


def test_a_receiver_that_is_down_gets_the_alert_once_after_it_comes_back(
    reservation_tables: dict[str, str], leadmagic: SandboxServer, smtp_inbox: Inbox
) -> None:
    set_credits(leadmagic, 5000)
    clock = Clock(datetime(2026, 12, 10, 12))
    store = _budget_store(reservation_tables, SMTP, clock=clock)
    smtp_inbox.stop()
    alerts = _cross(store).alerts
    failed = deliver(store, alerts).failed
    assert [error.split(":")[0] for _, error in failed] == ["ConnectionRefusedError"]
    (claim,) = store.alert_claims.history()
    assert (claim.status, claim.attempts, claim.next_attempt_at) == (
        "failed",
        1,
        clock.now + timedelta(minutes=1),
    )
    assert "ConnectionRefusedError" in str(claim.last_error)
    assert deliver(store).failed == []  # not due again before its backoff
    shown = subprocess.run(
        [CLI, "alerts", "history", "--conn-id", RESERVATION_DB, "--table", reservation_tables["table"]],
        capture_output=True, text=True, env=subprocess_env(), timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "failed (1 try, next 2026-12-10 12:01 UTC)" in shown.stdout
    assert "growth-80: last error: ConnectionRefusedError" in shown.stdout

    clock.now += timedelta(minutes=1)
    second = deliver(store).failed  # still down: the next wait doubles
    assert len(second) == 1
    assert store.alert_claims.history()[0].next_attempt_at == clock.now + timedelta(minutes=2)

    smtp_inbox.start()
    clock.now += timedelta(minutes=2)
    assert [c.status for c in deliver(store).sent] == ["failed"]  # what it was before this pass
    assert deliver(store).sent == []
    assert len(smtp_inbox.received) == 1
    (claim,) = store.alert_claims.history()
    assert (claim.status, claim.attempts, claim.last_error) == ("sent", 3, None)


def test_two_deliverers_at_once_send_one_message(
    reservation_tables: dict[str, str], leadmagic: SandboxServer, smtp_inbox: Inbox
) -> None:
    set_credits(leadmagic, 5000)
    store = _budget_store(reservation_tables, SMTP)
    _cross(store)  # claimed, not delivered: two checkers find it together
    barrier = threading.Barrier(4)
    sent: list[int] = []

    def checker() -> None:
        mine = store_for(reservation_tables)
        barrier.wait()
        sent.append(len(deliver(mine).sent))

    threads = [threading.Thread(target=checker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(sent) == [0, 0, 0, 1]
    assert len(smtp_inbox.received) == 1


def test_the_slack_webhook_notifier_posts_the_alert_with_its_link(
    reservation_tables: dict[str, str],
    leadmagic: SandboxServer,
    slack_webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://localhost:8080")
    set_credits(leadmagic, 1000)
    store = store_for(reservation_tables)
    rule = AlertRule.parse(
        name="low",
        kind="balance",
        subject=CREDIT_CONN,
        thresholds=[500],
        notifier="slack_webhook",
        notifier_args={"slack_webhook_conn_id": SLACK_CONN},
    )
    check_rule(store, rule)  # the account is a credit connection, not yet known to the store
    store.alert_rules.set([rule])
    result = store.reserve(
        account=CREDIT_CONN,
        credit_conn_id=CREDIT_CONN,
        holder=Holder("dag", "r1", "reserve"),
        amount_for=lambda _balance: Decimal(600),
        fetch_balance=live_balance,
    )
    assert [c.title for c in deliver(store, result.alerts).sent] == [
        "Account 'leadmagic_default' is below 500 free credits"
    ]
    (posted,) = slack_webhook.posted
    assert slack_webhook.paths == ["/services/T000/B000/webhook-secret"]
    assert "Account 'leadmagic_default' has 400 free credits" in posted["text"]
    assert posted["text"].endswith("http://localhost:8080/credits/accounts/leadmagic_default")


def test_alerts_test_sends_a_sample_and_claims_nothing(
    reservation_tables: dict[str, str], leadmagic: SandboxServer, smtp_inbox: Inbox
) -> None:
    store = _budget_store(reservation_tables, SMTP)
    assert send_sample(store, "growth-80") == "Test of credit alert rule 'growth-80'"
    assert [m["Subject"] for m in smtp_inbox.received] == ["Test of credit alert rule 'growth-80'"]
    assert store.alert_claims.history() == []


@pytest.mark.parametrize(
    ("notifier", "args", "problem"),
    [
        (
            "no_such.module.Notifier",
            {},
            "notifier 'no_such.module.Notifier' cannot be imported (ModuleNotFoundError",
        ),
        ("logging.Logger", {}, "logging.Logger is not an Airflow BaseNotifier subclass"),
        ("logging.NoSuchNotifier", {}, "notifier 'logging.NoSuchNotifier': logging has no 'NoSuchNotifier'"),
        (
            "smtp",
            {"to": "a@example.com", "colour": "red"},
            "SmtpNotifier takes no argument 'colour' (it takes:",
        ),
        ("smtp", {}, "SmtpNotifier needs 'to' in notifier_args"),
        ("slack_webhook", {"channel": "#x"}, "SlackWebhookNotifier takes no argument 'channel'"),
    ],
)
def test_a_notifier_that_cannot_work_is_refused_before_the_rule_is_stored(
    reservation_tables: dict[str, str], notifier: str, args: dict[str, Any], problem: str
) -> None:
    store = store_for(reservation_tables)
    store.budgets.set([Budget.parse(name="growth", account="acct", cap="1000")])
    rule = AlertRule.parse(
        name="r", kind="budget", subject="growth", thresholds=[80], notifier=notifier, notifier_args=args
    )
    with pytest.raises(AlertRuleError) as info:
        check_rule(store, rule)
    assert problem in str(info.value)


def test_an_unknown_budget_or_account_is_refused(reservation_tables: dict[str, str]) -> None:
    store = store_for(reservation_tables)
    budget = AlertRule.parse(name="r", kind="budget", subject="nope", thresholds=[80], **SMTP)
    with pytest.raises(AlertRuleError, match=r"Alert rule 'r': Unknown credit budget 'nope'\. No budget"):
        check_rule(store, budget)
    account = AlertRule.parse(name="r", kind="balance", subject="nobody", thresholds=[5], **SMTP)
    with pytest.raises(AlertRuleError, match=r"Account 'nobody' is unknown to the reservation database"):
        check_rule(store, account)
