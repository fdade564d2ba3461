from __future__ import annotations

from decimal import Decimal

import pendulum
import pytest

from airflow_credits_provider.errors import (
    ResponseFormatError,
    UnknownValidationTypeError,
    ValidationTypeUnavailableError,
)
from airflow_credits_provider.vendors.truemail import TrueMailVendor

NOW = pendulum.datetime(2026, 11, 21, tz="UTC")
VENDOR = TrueMailVendor()
DOC = {
    "plan": "premium",
    "period": {"start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"},
    "credits": {"total": 45230, "locked": 1500},
    "rate_limit": {"limit": 300},
    "validation_types": {"mx": {"credits": 1, "available": True}, "smtp": {"credits": 10, "available": True}},
}
STARTER = {
    **DOC,
    "plan": "starter",
    "validation_types": {
        "mx": {"credits": 1, "available": True},
        "smtp": {"credits": 10, "available": False, "upgrade_required": "Premium subscription required"},
    },
}


def test_documented_usage() -> None:
    balance = VENDOR.parse_balance(DOC, NOW)
    assert balance.available == Decimal(45230)  # locked is already deducted
    assert balance.locked == Decimal(1500)
    assert balance.total == Decimal(46730)
    assert balance.plan == "premium"
    assert balance.period_end == balance.next_reset_at == pendulum.datetime(2024, 2, 1, tz="UTC")
    assert balance.unit_price("smtp").credits == Decimal(10)
    assert balance.unit_price("mx").credits == Decimal(1)


def test_unavailable_type_carries_the_upgrade_text() -> None:
    balance = VENDOR.parse_balance(STARTER, NOW)
    assert balance.unit_prices["smtp"].available is False
    with pytest.raises(ValidationTypeUnavailableError, match="Premium subscription required") as info:
        balance.unit_price("smtp")
    assert "starter" in str(info.value)
    assert info.value.error_code == "upgrade_required"


def test_unknown_type_lists_known_ones() -> None:
    balance = VENDOR.parse_balance(DOC, NOW)
    with pytest.raises(UnknownValidationTypeError, match=r"'catchall'.*mx, smtp"):
        balance.unit_price("catchall")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**DOC, "credits": {"total": None}}, "credits.total"),
        ({**DOC, "credits": {"total": "x"}}, "credits.total"),
        ({**DOC, "credits": 5}, "credits"),
        ({**DOC, "validation_types": {"smtp": {"credits": -1}}}, "smtp.credits"),
        ({**DOC, "validation_types": {"smtp": {"credits": 10, "available": "yes"}}}, "available"),
        ({**DOC, "period": {"end": "soon"}}, "period.end"),
    ],
)
def test_bad_bodies(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ResponseFormatError, match=field):
        VENDOR.parse_balance(payload, NOW)


def test_error_with_context() -> None:
    detail = VENDOR.parse_error({"error": "Insufficient account credits", "current_plan": "starter"})
    assert detail.message == "Insufficient account credits (current plan: starter)"
