"""Alerts claimed by reservations and releases on real databases (SQLite, PostgreSQL, MariaDB).

A crossing is claimed in the transaction that causes it, exactly once however many reservers cross
together (20 threads, 20 processes, each delivering what it claimed to a real SMTP server: one message
arrives), and armed again by a new budget period or the end of a dip.
"""

from __future__ import annotations

import os
import random
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.alerts import AlertRule
from airflow_credits_provider.reservations import Budget, Holder
from tests.receivers import SMTP_CONN
from tests.reservations.conftest import CREDIT_CONN, Clock, set_credits
from tests.reservations.processes import racing
from tests.reservations.test_store import COST, live_balance, store_for
from tests.reservations.threads import race_threads

if TYPE_CHECKING:
    import pytest

    from airflow_credits_provider.reservations import ReservationStore
    from airflow_credits_provider.sandbox import SandboxServer
    from tests.receivers import Inbox

RESERVERS = 20
NOTIFY = {"notifier": "smtp", "notifier_args": {"to": ["team@example.com"], "smtp_conn_id": SMTP_CONN}}


def _reserve(store: ReservationStore, run_id: str, budget: str | None = None, amount: Decimal = COST) -> Any:
    return store.reserve(
        account="acct",
        credit_conn_id=CREDIT_CONN,
        holder=Holder("dag", run_id, "reserve"),
        amount_for=lambda _balance: amount,
        fetch_balance=live_balance,
        ttl=timedelta(hours=1),
        budget=budget,
    )


def _release(store: ReservationStore, run_id: str, after: bool = True) -> Any:
    return store.release(
        dag_id="dag",
        run_id=run_id,
        task_ids=["reserve"],
        balance_after=(lambda _conn: live_balance()) if after else None,
    )


def _claims(store: ReservationStore) -> list[tuple[str, str, str, str]]:
    return sorted((c.rule, c.threshold, c.period, c.event) for c in store.alert_claims.history())


def test_a_reservation_claims_the_threshold_it_crosses_once_and_a_new_period_arms_it_again(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    set_credits(leadmagic, 100_000)
    clock = Clock(datetime(2026, 12, 10, 12))
    store = store_for(reservation_tables, clock=clock)
    store.budgets.set([Budget.parse(name="growth", account="acct", cap="1000")])
    store.alert_rules.set(
        [AlertRule.parse(name="g", kind="budget", subject="growth", thresholds=[50, 80], **NOTIFY)]
    )

    assert _reserve(store, "r1", "growth", Decimal(400)).alerts == ()  # 40%
    crossed = _reserve(store, "r2", "growth", Decimal(400)).alerts  # 80%: both thresholds at once
    assert [c.threshold for c in crossed] == ["50", "80"]
    assert _reserve(store, "r3", "growth", Decimal(100)).alerts == ()  # 90%: nothing new
    assert _reserve(store, "r2", "growth", Decimal(400)).alerts == ()  # a retry keeps its reservation
    december = "2026-12-01T00:00:00+00:00"
    assert _claims(store) == [("g", "50", december, "crossed"), ("g", "80", december, "crossed")]
    (due,) = [c for c in store.alert_claims.due() if c.threshold == "80"]
    assert due.status == "pending"
    assert due.facts["spent"] == "0"
    assert due.facts["held"] == "800"  # r1 and r2: what the reservation's transaction left

    clock.now = datetime(2027, 1, 3, 9)  # the next period: the budget has spent nothing yet
    for run in ("r1", "r2", "r3"):
        _release(store, run, after=False)
    assert _reserve(store, "r4", "growth", Decimal(900)).alerts[-1].period == "2027-01-01T00:00:00+00:00"
    assert len(_claims(store)) == 4


def test_a_release_that_measures_more_spend_claims_the_budget_threshold(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    """A run that held 100 but the vendor shows it spent 850: the release's transaction sees 85%."""
    set_credits(leadmagic, 10_000)
    store = store_for(reservation_tables)
    store.budgets.set([Budget.parse(name="growth", account="acct", cap="1000")])
    store.alert_rules.set(
        [AlertRule.parse(name="g", kind="budget", subject="growth", thresholds=[80], **NOTIFY)]
    )
    assert _reserve(store, "r1", "growth").alerts == ()
    set_credits(leadmagic, 10_000 - 850)
    released = _release(store, "r1")
    assert [(c.threshold, c.facts["spent"]) for c in released.alerts] == [("80", "850")]
    assert len(released) == 1  # still the list of usage records


def test_a_balance_dip_is_claimed_once_and_its_recovery_once_then_it_is_armed_again(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    set_credits(leadmagic, 1000)
    store = store_for(reservation_tables)
    rules = [
        AlertRule.parse(name="low", kind="balance", subject="acct", thresholds=[500], **NOTIFY),
        AlertRule.parse(
            name="quiet", kind="balance", subject="acct", thresholds=[300], recovered=False, **NOTIFY
        ),
    ]
    store.alert_rules.set(rules)
    assert _reserve(store, "r1", amount=Decimal(400)).alerts == ()  # 600 free
    dip = _reserve(store, "r2", amount=Decimal(400)).alerts  # 200 free: below both
    assert sorted((c.rule, c.period, c.event) for c in dip) == [
        ("low", "dip-1", "crossed"),
        ("quiet", "dip-1", "crossed"),
    ]
    assert _reserve(store, "r3", amount=Decimal(100)).alerts == ()  # still in the dip
    back = _release(store, "r2")  # nothing was spent: 600 free again
    assert [(c.rule, c.event) for c in back.alerts] == [("low", "recovered")]  # "quiet" closes silently
    _release(store, "r3")
    again = _reserve(store, "r5", amount=Decimal(550)).alerts  # 50 free (r1 still holds 400)
    assert sorted((c.rule, c.period) for c in again) == [("low", "dip-2"), ("quiet", "dip-2")]
    assert [c.event for c in store.alert_claims.history(rule="quiet")] == ["crossed", "crossed"]


def test_a_failing_alert_check_never_fails_the_reservation_and_the_crossing_stays_due(
    reservation_tables: dict[str, str],
    leadmagic: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_credits_provider.reservations import alert_checks

    set_credits(leadmagic, 10_000)
    store = store_for(reservation_tables)
    store.budgets.set([Budget.parse(name="growth", account="acct", cap="1000")])
    store.alert_rules.set(
        [AlertRule.parse(name="g", kind="budget", subject="growth", thresholds=[10], **NOTIFY)]
    )

    def broken(claims: object, cur: Any, crossings: object) -> list[object]:
        cur.execute("SELECT no_such_column FROM no_such_table")  # on PostgreSQL: the transaction aborts
        return []

    with monkeypatch.context() as patched:
        patched.setattr(alert_checks, "_unclaimed", broken)
        result = _reserve(store, "r1", "growth", Decimal(500))
    assert result.reservation is not None  # reserved and committed, the alert check rolled back alone
    assert result.alerts == ()
    assert "Credit alerts on 'acct' were not checked in this transaction (" in caplog.text
    assert [r.holder.run_id for r in store.active("acct")] == ["r1"]
    later = _reserve(store, "r2", "growth", Decimal(1))
    assert [c.threshold for c in later.alerts] == ["10"]


def _thread_reserve(i: int, store: ReservationStore) -> int:
    from airflow_credits_provider.notifications.delivery import deliver

    alerts = _reserve(store, f"t{i}", "growth").alerts
    deliver(store, alerts)  # as the reserving task does, right after its commit
    return len(alerts)


def test_20_threads_crossing_one_threshold_deliver_exactly_one_message(
    reservation_tables: dict[str, str], leadmagic: SandboxServer, smtp_inbox: Inbox
) -> None:
    set_credits(leadmagic, 100_000)
    store = store_for(reservation_tables)
    store.budgets.set([Budget.parse(name="growth", account="acct", cap=str(RESERVERS * int(COST)))])
    store.alert_rules.set(
        [AlertRule.parse(name="g", kind="budget", subject="growth", thresholds=[80], **NOTIFY)]
    )
    store.create()
    rng = random.Random(7)
    results = race_threads(
        [rng.uniform(0, 0.02) for _ in range(RESERVERS)],
        lambda: store_for(reservation_tables),
        _thread_reserve,
    )
    assert sum(claimed for _, claimed in results) == 1
    assert [c.status for c in store.alert_claims.history()] == ["sent"]
    assert [m["Subject"] for m in smtp_inbox.received] == ["Budget 'growth' reached 80% of its cap"]
    assert len(store.active("acct")) == RESERVERS


def _process_reserver(
    index: int, rounds: int, tables: dict[str, str], env: dict[str, str], barrier: Any, results: Any
) -> None:
    from airflow_credits_provider.notifications.delivery import deliver

    os.environ.update(env)
    store = store_for(tables)
    for round_ in range(rounds):
        barrier.wait()
        time.sleep(random.Random(index * 100 + round_).uniform(0, 0.02))
        try:
            alerts = _reserve(store, f"p{round_}-{index}", f"team-{round_}").alerts
            deliver(store, alerts)
            results.put((round_, len(alerts), None))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            results.put((round_, 0, repr(exc)))


def test_20_processes_crossing_one_threshold_deliver_exactly_one_message_per_budget(
    reservation_tables: dict[str, str], leadmagic: SandboxServer, smtp_inbox: Inbox
) -> None:
    set_credits(leadmagic, 1_000_000)
    rounds = 2
    store = store_for(reservation_tables)
    cap = str(RESERVERS * int(COST))
    for round_ in range(rounds):
        store.budgets.set([Budget.parse(name=f"team-{round_}", account="acct", cap=cap)])
        store.alert_rules.set(
            [
                AlertRule.parse(
                    name=f"r{round_}", kind="budget", subject=f"team-{round_}", thresholds=[80], **NOTIFY
                )
            ]
        )
    with racing(_process_reserver, RESERVERS, rounds, reservation_tables) as race:
        for round_ in range(rounds):
            race.barrier.wait(timeout=180)
            got = [race.results.get(timeout=120) for _ in range(RESERVERS)]
            assert [e for *_, e in got if e] == []
            assert sum(n for _, n, _ in got) == 1, round_
            assert [c.status for c in store.alert_claims.history(rule=f"r{round_}")] == ["sent"]
            subjects = [m["Subject"] for m in smtp_inbox.received]
            assert subjects.count(f"Budget 'team-{round_}' reached 80% of its cap") == 1
    assert len(smtp_inbox.received) == rounds
