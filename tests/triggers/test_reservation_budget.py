"""CreditReservationTrigger with a budget: it sleeps until the budget renews when only that can help.

Trigger time is virtual (tests/virtual_clock.py); the reservation database (SQLite) and the sandbox's
HTTP are real. The store's own clock is the wall clock, so the budget never renews during a test: what
is asserted is when the trigger tries again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider.reservations import Budget, Holder, ReservationStore
from airflow_credits_provider.triggers.balance import CreditBalanceTrigger
from airflow_credits_provider.triggers.reservation import CreditReservationTrigger
from tests.virtual_clock import install_virtual_clock
from tests.warehouse_support import sqlite_connection

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_credits_provider.sandbox import SandboxServer
    from tests.virtual_clock import VirtualClock

pytestmark = pytest.mark.integration


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    return install_virtual_clock(monkeypatch, CreditBalanceTrigger)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, connections: SandboxServer) -> ReservationStore:
    """A daily budget of 100 on ``leadmagic_default`` that has spent 95 today."""
    from airflow_credits_provider.hooks.resolve import get_credit_hook
    from airflow_credits_provider.sql.connections import sql_hook_for

    sqlite_connection(monkeypatch, "credits_reservations", tmp_path / "reservations.db")
    connections.state.leadmagic.credits = Decimal(1000)
    store = ReservationStore(sql_hook_for("credits_reservations"))
    store.budgets.set([Budget.parse(name="daily", account="leadmagic_default", cap=100, period="day")])
    fetch = get_credit_hook("leadmagic_default").get_balance
    assert (
        store.reserve(
            account="leadmagic_default",
            credit_conn_id="leadmagic_default",
            holder=Holder("dag", "earlier", "reserve"),
            amount_for=lambda _b: Decimal(95),
            fetch_balance=fetch,
            budget="daily",
        ).reservation
        is not None
    )
    connections.state.leadmagic.credits = Decimal(905)  # the earlier run spent 95
    store.release(dag_id="dag", run_id="earlier", task_ids=["reserve"], balance_after=lambda _c: fetch())
    assert store.budget_state("daily").spent == 95
    return store


def _trigger(clock: VirtualClock, deadline_after: timedelta) -> CreditReservationTrigger:
    return CreditReservationTrigger(
        credit_conn_id="leadmagic_default",
        required="10",
        poll_interval=60,
        deadline=(clock.now() + deadline_after).isoformat(),
        reservation={
            "reservation_conn_id": "credits_reservations",
            "account": "leadmagic_default",
            "holder": {"dag_id": "dag", "run_id": "waiting", "task_id": "reserve", "map_index": -1},
            "ttl": 3600,
            "max_age": 0,
            "store": {},
            "budget": "daily",
        },
        estimate={"cost": "10", "margin": "0", "basis": "estimated cost 10"},
    )


def _run(clock: VirtualClock, trigger: CreditReservationTrigger) -> tuple[dict[str, Any], list[float]]:
    """The trigger's terminal event, and the virtual times of its reservation attempts."""
    attempts: list[float] = []
    try_reserve = trigger._try_reserve

    def counted(required: Decimal) -> Any:
        attempts.append(clock.elapsed)
        return try_reserve(required)

    trigger._try_reserve = counted  # type: ignore[method-assign]

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload  # type: ignore[no-any-return]
        raise AssertionError("no event")

    (event,) = asyncio.run(asyncio.wait_for(clock.run(first()), 60))
    return event, attempts


def test_only_the_renewal_can_help_so_the_trigger_sleeps_until_it(
    store: ReservationStore, clock: VirtualClock
) -> None:
    budget = store.budgets.get("daily")
    renews = budget.period_bounds(clock.now())[1]
    until_renewal = (renews - clock.now()).total_seconds()
    trigger = _trigger(clock, timedelta(seconds=until_renewal + 150))
    event, attempts = _run(clock, trigger)
    assert event["status"] == "timeout"
    # One try now, the next at the renewal (not every minute before it), then every minute to the deadline.
    assert attempts[0] == 0
    assert attempts[1] == pytest.approx(until_renewal, abs=1)
    assert len(attempts) <= 5


def test_a_renewal_after_the_deadline_ends_the_wait_at_once(
    store: ReservationStore, clock: VirtualClock
) -> None:
    budget = store.budgets.get("daily")
    until_renewal = (budget.period_bounds(clock.now())[1] - clock.now()).total_seconds()
    event, attempts = _run(clock, _trigger(clock, timedelta(seconds=max(1.0, until_renewal - 60))))
    assert event["status"] == "error"
    assert "Waiting cannot succeed (it renews after the deadline)" in event["message"]
    assert "budget 'daily' has 5 of 100 credits left today" in event["message"]
    assert attempts == [0]
