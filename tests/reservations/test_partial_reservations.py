"""Partial reservations racing on one account: never more than the balance, each what was free at its turn.

Each reserver has a job of a few units at a fractional unit price plus a percentage margin
(:class:`UnitPlan`) and reserves the whole job if it fits, else the most units the room covers
(``amount_within``), else nothing. Real databases, the balance over real HTTP from the sandbox.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider.partial import UnitPlan
from airflow_credits_provider.reservations import Holder
from tests.reservations.conftest import CREDIT_CONN, set_credits
from tests.reservations.processes import racing
from tests.reservations.test_store import active_rows, live_balance, store_for
from tests.reservations.threads import race_threads

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer

pytestmark = pytest.mark.integration

RESERVERS = 20


def plan_of(index: int) -> UnitPlan:
    """Reserver ``index``'s job: 1-12 units at 2.5 credits plus 10 %, at least 2 units per run."""
    units = random.Random(index).randint(1, 12)
    return UnitPlan(units, Decimal("2.5"), Decimal(0), Decimal(10), min_units=2)


@dataclass(frozen=True)
class Outcome:
    """What one reserver found and took."""

    index: int
    balance: Decimal
    held_by_others: Decimal
    amount: Decimal | None  # reserved, or None


def reserve_partially(store: Any, account: str, run_id: str, index: int) -> Outcome:
    plan = plan_of(index)
    result = store.reserve(
        account=account,
        credit_conn_id=CREDIT_CONN,
        holder=Holder("dag", run_id, "reserve", index),
        amount_for=lambda _balance: plan.required(plan.units),
        fetch_balance=live_balance,
        ttl=timedelta(hours=1),
        amount_within=plan.amount_within,
    )
    amount = result.reservation.amount if result.reservation is not None else None
    return Outcome(index, result.balance.available, result.held_by_others, amount)


def check_turns(outcomes: list[Outcome], balance: Decimal) -> None:
    """Never more than the balance; each reserver got exactly what was free at its turn."""
    assert len(outcomes) == RESERVERS
    assert {o.balance for o in outcomes} == {balance}
    reserved = sum((o.amount for o in outcomes if o.amount is not None), Decimal(0))
    assert reserved <= balance
    # Replay the turns: what others held grows by each reservation, one reserver per state.
    held = Decimal(0)
    for o in sorted(outcomes, key=lambda o: (o.held_by_others, o.amount is not None)):
        assert o.held_by_others == held, (o, held)
        plan = plan_of(o.index)
        free = balance - held
        if plan.required(plan.units) <= free:
            assert o.amount == plan.required(plan.units)  # the whole job
        elif plan.run_size(free):
            assert o.amount == plan.required(plan.affordable(free))  # the most units that fit
            assert plan.required(plan.affordable(free) + 1) > free
        else:
            assert o.amount is None  # not even min_units fit
        if o.amount is not None:
            held += o.amount
    # With enough reservers, the account ends with less free than the smallest run of anyone left.
    assert held == reserved


@pytest.mark.parametrize("seed", [1, 2])
def test_20_partial_threads_never_exceed_the_balance(
    reservation_tables: dict[str, str], leadmagic: SandboxServer, seed: int
) -> None:
    rng = random.Random(seed)
    balance = Decimal(rng.randint(40, 160)) + Decimal("0.75")
    set_credits(leadmagic, balance)
    account = f"acct-partial-threads-{seed}"
    jitters = [rng.uniform(0, 0.02) for _ in range(RESERVERS)]
    outcomes = [
        outcome
        for _, outcome in race_threads(
            jitters,
            lambda: store_for(reservation_tables),
            lambda i, store: reserve_partially(store, account, f"run-{seed}", i),
        )
    ]
    check_turns(outcomes, balance)
    rows = active_rows(store_for(reservation_tables), account)
    assert sum(Decimal(str(amount)) for _, amount in rows) <= balance
    assert len(rows) == sum(o.amount is not None for o in outcomes)


def _process_reserver(
    index: int, tables: dict[str, str], env: dict[str, str], barrier: Any, results: Any
) -> None:
    """A separate process: wait for the start, reserve partially once, report."""
    os.environ.update(env)  # the fork server started with an earlier test's connections
    store = store_for(tables)
    barrier.wait()
    time.sleep(random.Random(index).uniform(0, 0.02))
    try:
        results.put((reserve_partially(store, "acct-partial-processes", "run-p", index), None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put((None, repr(exc)))


def test_20_partial_processes_never_exceed_the_balance(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    """The same between 20 separate processes (each its own interpreter and database connections)."""
    balance = Decimal("97.5")
    set_credits(leadmagic, balance)
    with racing(_process_reserver, RESERVERS, reservation_tables) as race:
        race.barrier.wait(timeout=180)  # every process has started and imported what it needs
        got = [race.results.get(timeout=120) for _ in range(RESERVERS)]
    assert [e for _, e in got if e] == []
    check_turns([o for o, _ in got], balance)
    rows = active_rows(store_for(reservation_tables), "acct-partial-processes")
    assert sum(Decimal(str(amount)) for _, amount in rows) <= balance
