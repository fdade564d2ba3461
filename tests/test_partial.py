"""Partial runs: the sizing arithmetic at its edges, and the decision it leads to."""

from __future__ import annotations

from decimal import Decimal

import pendulum
import pytest

from airflow_credits_provider.budgets import Budget, BudgetState
from airflow_credits_provider.decision import decide_partial, unit_plan
from airflow_credits_provider.errors import InvalidCostEstimateError
from airflow_credits_provider.models import CreditBalance
from airflow_credits_provider.partial import UnitPlan, to_units

NOW = pendulum.datetime(2026, 12, 3, 12, tz="UTC")


def _balance(available: str) -> CreditBalance:
    return CreditBalance(
        vendor="leadmagic", vendor_name="LeadMagic", available=Decimal(available), fetched_at=NOW
    )


def brute_force(plan: UnitPlan, room: Decimal) -> int:
    """The largest k with required(k) <= room, by trying every k (the definition)."""
    return max((k for k in range(plan.units + 1) if plan.required(k) <= room), default=0)


@pytest.mark.parametrize(
    ("unit_cost", "margin", "percent"),
    [
        ("1", "0", "0"),
        ("0.1", "0", "10"),
        ("0.333", "2.5", "7.5"),
        ("3", "1", "0"),
        ("0.000001", "0", "33.3"),
    ],
)
def test_affordable_is_the_largest_k_that_fits_exactly(unit_cost: str, margin: str, percent: str) -> None:
    plan = UnitPlan(60, Decimal(unit_cost), Decimal(margin), Decimal(percent))
    rooms = {Decimal(0), Decimal(margin)}
    for k in range(0, 61, 7):  # a room of exactly k units' need, and one millionth less
        rooms |= {plan.required(k), plan.required(k) - Decimal("0.000001")}
    for room in sorted(rooms):
        assert plan.affordable(room) == brute_force(plan, room), room


def test_a_balance_of_exactly_k_units_covers_k_and_a_hair_less_covers_k_minus_1() -> None:
    plan = UnitPlan(50000, Decimal("0.1"), Decimal(0), Decimal(10))  # 0.11 a unit
    assert plan.required(12000) == Decimal("1320")
    assert plan.affordable(Decimal("1320")) == 12000
    assert plan.affordable(Decimal("1319.99999999999999999999")) == 11999
    assert plan.affordable(Decimal(10) ** 12) == 50000  # never more than the job


def test_zero_balance_free_units_and_margin_alone() -> None:
    assert UnitPlan(10, Decimal(1)).affordable(Decimal(0)) == 0
    assert UnitPlan(10, Decimal(0)).affordable(Decimal(0)) == 10  # free units: all of them
    assert UnitPlan(10, Decimal(0), margin=Decimal(1)).affordable(Decimal("0.5")) == 0  # not even the margin
    assert UnitPlan(10, Decimal(1), margin=Decimal(5)).affordable(Decimal(7)) == 2


def test_min_units_and_the_smallest_run() -> None:
    plan = UnitPlan(100, Decimal(1), min_units=10)
    assert plan.run_size(Decimal(9)) == 0
    assert plan.amount_within(Decimal(9)) == Decimal(10)  # more than the room: nothing is reserved
    assert plan.run_size(Decimal(10)) == 10
    small = UnitPlan(3, Decimal(1), min_units=10)  # the whole job is smaller than min_units
    assert small.smallest_run == 3
    assert small.run_size(Decimal(3)) == 3
    assert small.run_size(Decimal(2)) == 0


def test_units_must_be_whole() -> None:
    assert to_units("50000", "units") == 50000
    assert to_units(50000.0, "units") == 50000
    with pytest.raises(
        InvalidCostEstimateError, match=r"Task 'gate': units must be a whole number.*got 2\.5"
    ):
        to_units("2.5", "units", "gate")
    with pytest.raises(InvalidCostEstimateError, match="must not be negative"):
        to_units(-1, "units", "gate")
    with pytest.raises(InvalidCostEstimateError, match="min_units must be at least 1"):
        unit_plan(
            task_id="gate",
            units=5,
            unit_cost=1,
            validation_type=None,
            margin=0,
            margin_percent=0,
            min_units=0,
            balance=None,
        )


def test_plan_round_trips_through_json_primitives() -> None:
    plan = UnitPlan(7, Decimal("0.125"), Decimal("1.5"), Decimal("12.5"), 3, "TrueMail price for 'smtp'")
    assert UnitPlan.from_dict(plan.to_dict()) == plan


def test_decision_of_a_partial_run() -> None:
    plan = UnitPlan(50000, Decimal(1), Decimal(0), Decimal(0), min_units=1000)
    decision = decide_partial("lm", _balance("12000"), plan)
    assert decision.passed is True
    assert decision.partial is True
    assert (decision.units, decision.affordable_units, decision.deferred_units) == (50000, 12000, 38000)
    assert decision.required == Decimal(12000)
    assert decision.shortfall == 0
    assert decision.message.startswith(
        "Partial run: the credits cover 12,000 of 50,000 units; 38,000 deferred"
    )
    record = decision.to_dict()
    assert (record["affordable_units"], record["deferred_units"]) == (12000, 38000)


def test_whole_job_below_min_units_and_budget_limits() -> None:
    plan = UnitPlan(50, Decimal(2), min_units=10)
    whole = decide_partial("lm", _balance("100"), plan)
    assert (whole.passed, whole.partial, whole.affordable_units, whole.deferred_units) == (True, False, 50, 0)
    short = decide_partial("lm", _balance("19.99"), plan)
    assert short.passed is False
    assert (short.affordable_units, short.deferred_units) == (0, 50)
    assert short.required == Decimal(20)  # judged as the smallest run
    assert short.message.startswith("The credits cover 9 of 50 units, fewer than min_units (10)")
    assert "short by 0.01" in short.message
    # Other runs' reservations and the budget shrink the room: the smaller of the two wins.
    growth = Budget.parse(name="growth", account="lm", cap=100, period="month")
    start, end = growth.period_bounds(NOW)
    budget = BudgetState(growth, start, end, spent=Decimal(70), held=Decimal(0)).to_dict()
    limited = decide_partial("lm", _balance("100"), plan, reserved_by_others=Decimal(60), budget=budget)
    assert limited.affordable_units == 15  # 40 free, 30 left in the budget
    assert limited.passed is True
