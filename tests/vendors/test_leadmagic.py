from __future__ import annotations

from decimal import Decimal

import pendulum
import pytest

from airflow_credits_provider.errors import ResponseFormatError
from airflow_credits_provider.vendors.leadmagic import LeadMagicVendor

NOW = pendulum.datetime(2026, 11, 21, tz="UTC")
VENDOR = LeadMagicVendor()


def test_documented_minimal_body() -> None:
    balance = VENDOR.parse_balance({"credits": 15432.50}, NOW)
    assert balance.available == Decimal("15432.5")
    assert balance.total == Decimal("15432.5")
    assert balance.locked is None
    assert balance.vendor == "leadmagic"
    assert balance.fetched_at == NOW


def test_liquid_credits_are_spendable_when_part_is_frozen() -> None:
    balance = VENDOR.parse_balance(
        {
            "credits": 15432.5,
            "is_frozen": True,
            "credits_frozen": 5000,
            "credits_liquid": 10432.5,
            "credit_freeze_message": "Credits frozen until the invoice is paid",
            "credit_freeze_plan_hint": None,
        },
        NOW,
    )
    assert balance.available == Decimal("10432.5")
    assert balance.total == Decimal("15432.5")
    assert balance.locked == Decimal(5000)
    assert balance.locked_reason == "Credits frozen until the invoice is paid"


def test_null_liquid_falls_back_to_credits() -> None:
    balance = VENDOR.parse_balance({"credits": "120", "credits_liquid": None}, NOW)
    assert balance.available == Decimal(120)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "credits"),
        ({"credits": True}, "credits"),
        ({"credits": "NaN"}, "credits"),
        ({"credits": 10, "credits_liquid": "lots"}, "credits_liquid"),
        ({"credits": 10, "is_frozen": "no"}, "is_frozen"),
    ],
)
def test_bad_bodies_name_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ResponseFormatError, match=field):
        VENDOR.parse_balance(payload, NOW)


def test_non_object_body() -> None:
    with pytest.raises(ResponseFormatError, match="JSON object"):
        VENDOR.parse_balance([1, 2], NOW)


def test_envelope_error() -> None:
    detail = VENDOR.parse_error(
        {
            "success": False,
            "errors": [
                {
                    "type": "https://api.leadmagic.io/errors/invalid_api_key",
                    "title": "Invalid API key. The key does not exist or is incorrect.",
                    "status": 401,
                    "code": "invalid_api_key",
                    "docs": "https://docs.leadmagic.io/api-reference/authentication",
                }
            ],
            "meta": {
                "request_id": "ea6e3248-f4d2-437d-bca3-20881b529129",
                "timestamp": "2024-02-01T12:00:00.000Z",
            },
        }
    )
    assert detail.message == "Invalid API key. The key does not exist or is incorrect."
    assert detail.code == "invalid_api_key"
    assert detail.request_id == "ea6e3248-f4d2-437d-bca3-20881b529129"


def test_rfc9457_problem() -> None:
    detail = VENDOR.parse_error(
        {
            "type": "https://api.leadmagic.io/errors/insufficient_credits",
            "title": "Insufficient credits",
            "status": 402,
            "detail": "This request needs 1 credit.",
            "instance": "req-42",
        }
    )
    assert detail.message == "Insufficient credits: This request needs 1 credit."
    assert detail.code == "insufficient_credits"
    assert detail.request_id == "req-42"


def test_unknown_error_shapes_give_empty_detail() -> None:
    assert VENDOR.parse_error("oops").message is None
    assert VENDOR.parse_error({"errors": "x"}).message is None
