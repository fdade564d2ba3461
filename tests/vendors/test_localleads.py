from __future__ import annotations

from decimal import Decimal

import pendulum
import pytest

from airflow_credits_provider.errors import ResponseFormatError
from airflow_credits_provider.vendors.localleads import LocalLeadsVendor, next_reset

NOW = pendulum.datetime(2026, 11, 21, tz="UTC")
VENDOR = LocalLeadsVendor()
DOC_BALANCE = {
    "success": True,
    "data": {
        "monthlyCredits": 100,
        "bonusCredits": 25,
        "usedCredits": 43,
        "availableCredits": 82,
        "resetDay": 1,
        "lastResetAt": "2026-05-01T00:00:00.000Z",
    },
}


def test_documented_balance() -> None:
    balance = VENDOR.parse_balance(DOC_BALANCE, NOW)
    # available = monthly + bonus - used (the vendor page lost the minus sign)
    assert balance.available == Decimal(82) == balance.monthly + balance.bonus - balance.used  # type: ignore[operator]
    assert (balance.monthly, balance.bonus, balance.used) == (Decimal(100), Decimal(25), Decimal(43))
    assert balance.period_start == pendulum.datetime(2026, 5, 1, tz="UTC")
    assert balance.next_reset_at == pendulum.datetime(2026, 6, 1, tz="UTC")


@pytest.mark.parametrize(
    ("last", "day", "expected"),
    [
        ("2026-01-31T00:00:00Z", 31, "2026-02-28T00:00:00Z"),  # short month
        ("2028-01-31T00:00:00Z", 31, "2028-02-29T00:00:00Z"),  # leap year
        ("2026-02-28T00:00:00Z", 31, "2026-03-31T00:00:00Z"),  # back to the anniversary
        ("2026-12-15T08:30:00Z", 15, "2027-01-15T08:30:00Z"),  # year end, keeps the time
        ("2026-04-30T00:00:00Z", 30, "2026-05-30T00:00:00Z"),
    ],
)
def test_next_reset_handles_month_ends(last: str, day: int, expected: str) -> None:
    assert next_reset(pendulum.parse(last), day) == pendulum.parse(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"availableCredits": None}, "availableCredits"),
        ({"availableCredits": "eighty"}, "availableCredits"),
        ({"usedCredits": False}, "usedCredits"),
        ({"resetDay": 40}, "resetDay"),
        ({"lastResetAt": "last tuesday"}, "lastResetAt"),
    ],
)
def test_bad_balance_fields(change: dict[str, object], field: str) -> None:
    payload = {"success": True, "data": {**DOC_BALANCE["data"], **change}}  # type: ignore[dict-item]
    with pytest.raises(ResponseFormatError, match=field):
        VENDOR.parse_balance(payload, NOW)


def test_missing_data_object() -> None:
    with pytest.raises(ResponseFormatError, match="'data' is missing"):
        VENDOR.parse_balance({"success": True}, NOW)


@pytest.mark.parametrize(
    "meta", [{"total": 28, "limit": 50, "offset": 0}, {"total": 28, "page": 1, "limit": 50}]
)
def test_both_meta_shapes(meta: dict[str, int]) -> None:
    payload = {
        "success": True,
        "data": [
            {
                "id": "txn_abc123",
                "type": "DEDUCTION",
                "amount": -12,
                "description": "Lead search",
                "createdAt": "2026-05-05T10:01:00.000Z",
            },
            {
                "id": "txn_def456",
                "type": "MONTHLY_RESET",
                "amount": 100,
                "description": "Monthly credit reset",
                "createdAt": "2026-05-01T00:00:00.000Z",
            },
            {
                "id": "txn_x",
                "type": "COUPON_REDEEMED",
                "amount": "25",
                "description": None,
                "createdAt": "2026-04-01T00:00:00Z",
            },
        ],
        "meta": meta,
    }
    page = VENDOR.parse_transactions(payload, 0, 50)
    assert page.total == 28
    assert [t.id for t in page.transactions] == ["txn_abc123", "txn_def456", "txn_x"]
    assert [t.amount for t in page.transactions] == [Decimal(-12), Decimal(100), Decimal(25)]
    assert page.transactions[2].type == "COUPON_REDEEMED"  # unknown types are kept, not rejected
    assert page.transactions[2].description is None
    assert page.transactions[0].created_at == pendulum.datetime(2026, 5, 5, 10, 1, tz="UTC")


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"type": "DEDUCTION", "amount": -1, "createdAt": "2026-01-01T00:00:00Z"}, "id"),
        ({"id": "t", "type": "DEDUCTION", "amount": "NaN", "createdAt": "2026-01-01T00:00:00Z"}, "amount"),
        ({"id": "t", "type": "DEDUCTION", "amount": True, "createdAt": "2026-01-01T00:00:00Z"}, "amount"),
        ({"id": "t", "type": 7, "amount": 1, "createdAt": "2026-01-01T00:00:00Z"}, "type"),
        ({"id": "t", "type": "X", "amount": 1, "createdAt": None}, "createdAt"),
    ],
)
def test_bad_transactions(record: dict[str, object], field: str) -> None:
    with pytest.raises(ResponseFormatError, match=field):
        VENDOR.parse_transactions({"data": [record], "meta": {"total": 1}}, 0, 10)


def test_error_shapes() -> None:
    simple = VENDOR.parse_error({"success": False, "error": "Human-readable message"})
    assert (simple.message, simple.code) == ("Human-readable message", None)
    nest = VENDOR.parse_error(
        {"statusCode": 401, "error": "Unauthorized", "message": "Invalid or expired token"}
    )
    assert (nest.message, nest.code) == ("Invalid or expired token", "Unauthorized")
    assert VENDOR.error_in_success({"success": False, "error": "quota"}) is not None
    assert VENDOR.error_in_success(DOC_BALANCE) is None
