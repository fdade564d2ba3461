"""The preflight decision: cost estimation, margins, the >= rule and the shortfall message."""

from __future__ import annotations

import logging
from decimal import Decimal

import pendulum
import pytest

from airflow_credits_provider.decision import (
    InvalidCostEstimateError,
    balance_after_reset,
    check_thresholds,
    decide,
    estimate_cost,
    margin_for,
    shortfall_message,
    to_amount,
)
from airflow_credits_provider.errors import ValidationTypeUnavailableError
from airflow_credits_provider.models import CreditBalance, UnitPrice

NOW = pendulum.datetime(2026, 11, 21, tz="UTC")


def _balance(available: str = "100", **kwargs: object) -> CreditBalance:
    return CreditBalance(
        vendor="leadmagic", vendor_name="LeadMagic", available=Decimal(available), fetched_at=NOW, **kwargs
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (-1, "must not be negative, got -1"),
        ("-5", "must not be negative, got '-5'"),
        (float("nan"), "is not a finite number, got nan"),
        ("NaN", "is not a finite number"),
        (float("inf"), "is not a finite number"),
        ("lots", "must be a number of credits, got 'lots'"),
        ("", "must be a number of credits"),
        (None, "must be a number of credits, got None"),
        (True, "must be a number of credits, got True"),
        ([5], "must be a number of credits"),
    ],
)
def test_bad_estimates_name_the_task_and_the_value(value: object, fragment: str) -> None:
    with pytest.raises(InvalidCostEstimateError, match="Task 'gate': estimated_cost") as info:
        to_amount(value, "estimated_cost", "gate")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"), [(5, "5"), ("50000", "50000"), (" 7.5 ", "7.5"), (0.1, "0.1"), (0, "0")]
)
def test_amounts(value: object, expected: str) -> None:
    assert to_amount(value, "x") == Decimal(expected)


def test_estimate_from_number_string_callable_and_units() -> None:
    balance = _balance()
    assert estimate_cost(task_id="t", estimated_cost="120", balance=balance)[0] == Decimal(120)
    cost, basis = estimate_cost(
        task_id="t", estimated_cost=lambda ctx: ctx["n"] * 2, balance=balance, context={"n": 21}
    )
    assert (cost, basis) == (Decimal(42), "estimated cost 42")
    cost, basis = estimate_cost(task_id="t", units="300", unit_cost="0.5", balance=balance)
    assert (cost, basis) == (Decimal(150), "300 units x 0.5 credits (given)")


def test_estimate_from_the_vendors_price() -> None:
    balance = _balance(
        unit_prices={
            "smtp": UnitPrice("smtp", Decimal(10)),
            "catchall": UnitPrice(
                "catchall", Decimal(3), available=False, upgrade_required="Business plan only"
            ),
        }
    )
    cost, basis = estimate_cost(task_id="t", units=40, validation_type="smtp", balance=balance)
    assert cost == Decimal(400)
    assert "LeadMagic price for 'smtp'" in basis
    with pytest.raises(ValidationTypeUnavailableError, match="Business plan only"):
        estimate_cost(task_id="t", units=1, validation_type="catchall", balance=balance)
    with pytest.raises(InvalidCostEstimateError, match="pass unit_cost or a validation_type"):
        estimate_cost(task_id="t", units=1, balance=None)


def test_margin_absolute_plus_percent() -> None:
    assert margin_for(Decimal(1000), 50, 10, "t") == Decimal(150)
    assert margin_for(Decimal(1000), None, None, "t") == Decimal(0)
    with pytest.raises(InvalidCostEstimateError, match="margin_percent must not be negative"):
        margin_for(Decimal(1), 0, -5, "t")


@pytest.mark.parametrize(
    ("available", "passed", "shortfall"), [("110", True, "0"), ("109.99", False, "0.01"), ("500", True, "0")]
)
def test_decide_uses_greater_or_equal(available: str, passed: bool, shortfall: str) -> None:
    decision = decide("lm", _balance(available), Decimal(100), Decimal(10), "estimated cost 100")
    assert decision.passed is passed
    assert decision.required == Decimal(110)
    assert decision.shortfall == Decimal(shortfall)
    record = decision.to_dict()
    assert record["required"] == "110"
    assert "raw" not in record["balance"]


def test_shortfall_message_explains_locks_and_renewal() -> None:
    balance = CreditBalance(
        vendor="localleads",
        vendor_name="LocalLeads",
        available=Decimal(12),
        fetched_at=NOW,
        monthly=Decimal(100),
        bonus=Decimal(25),
        used=Decimal(113),
        locked=Decimal(30),
        locked_reason="held for bulk jobs",
        next_reset_at=pendulum.datetime(2026, 12, 1, tz="UTC"),
    )
    decision = decide("ll", balance, Decimal(100), Decimal(0), "estimated cost 100")
    message = shortfall_message(decision, balance)
    assert "need 100 (estimated cost 100), available 12, short by 88." in message
    assert "30 more credits are locked (held for bulk jobs)" in message
    assert "Credits renew at 2026-12-01T00:00:00+00:00 to 125 credits, enough for this job." in message
    assert balance_after_reset(balance) == Decimal(125)


def test_thresholds_warn_and_call_back(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    log = logging.getLogger("test.thresholds")
    caplog.set_level(logging.WARNING, logger="test.thresholds")

    def callback(*, level: str, balance: CreditBalance, context: object) -> None:
        calls.append(f"{level}:{balance.available}")

    assert (
        check_thresholds(
            _balance("50"), warn_below=1000, critical_below=100, task_id="t", log=log, callback=callback
        )
        == "critical"
    )
    assert (
        check_thresholds(
            _balance("500"), warn_below=1000, critical_below=100, task_id="t", log=log, callback=callback
        )
        == "warning"
    )
    assert (
        check_thresholds(
            _balance("5000"), warn_below=1000, critical_below=100, task_id="t", log=log, callback=callback
        )
        is None
    )
    assert calls == ["critical:50", "warning:500"]
    assert "LeadMagic credits are critically low: 50 available" in caplog.text
