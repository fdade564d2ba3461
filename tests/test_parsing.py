from __future__ import annotations

from decimal import Decimal

import pendulum
import pytest

from airflow_credits_provider.parsing import (
    ResponseFormatError,
    decimal_at,
    get_path,
    to_datetime,
    to_decimal,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (15432, Decimal(15432)),
        (15432.5, Decimal("15432.5")),
        (0.1, Decimal("0.1")),  # exact, not 0.1000000000000000055511151231257827
        ("25000.00", Decimal("25000.00")),
        (" 82 ", Decimal(82)),
        ("1,250", Decimal(1250)),
        (-12, Decimal(-12)),
        ("-12.5", Decimal("-12.5")),
    ],
)
def test_to_decimal_accepts_numbers_and_numeric_strings(value: object, expected: Decimal) -> None:
    assert to_decimal(value, "credits") == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (True, "a boolean"),
        (False, "a boolean"),
        (None, "null"),
        ("lots", "the string 'lots'"),
        ("", "the string ''"),
        ({"value": 1}, "an object"),
        ([1], "an array"),
        (float("nan"), "finite"),
        ("NaN", "finite"),
        (float("inf"), "finite"),
        ("-Infinity", "finite"),
    ],
)
def test_to_decimal_rejects_non_numbers_naming_the_field(value: object, fragment: str) -> None:
    with pytest.raises(ResponseFormatError, match="'credits'") as info:
        to_decimal(value, "credits")
    assert fragment in str(info.value)


def test_get_path_reports_missing_and_non_object() -> None:
    payload = {"credits": {"total": 5}, "plan": "x"}
    assert get_path(payload, "credits.total") == 5
    with pytest.raises(ResponseFormatError, match="'credits.locked' is missing"):
        get_path(payload, "credits.locked")
    with pytest.raises(ResponseFormatError, match="expected an object at plan"):
        get_path(payload, "plan.name")
    assert get_path(payload, "credits.locked", None) is None


def test_optional_decimal_is_none_when_absent_or_null() -> None:
    assert decimal_at({"a": None}, "a", required=False) is None
    assert decimal_at({}, "a", required=False) is None
    with pytest.raises(ResponseFormatError):
        decimal_at({"a": None}, "a")


def test_to_datetime_is_timezone_aware_and_strict() -> None:
    parsed = to_datetime("2026-05-01T00:00:00.000Z", "lastResetAt")
    assert parsed == pendulum.datetime(2026, 5, 1, tz="UTC")
    assert parsed.tzinfo is not None
    naive = to_datetime("2026-05-01T10:00:00", "x")
    assert naive.utcoffset() is not None
    assert naive.hour == 10
    offset = to_datetime("2026-05-01T10:00:00+02:00", "x")
    assert offset.in_timezone("UTC").hour == 8
    for bad in ("yesterday", 1714521600, None, ""):
        with pytest.raises(ResponseFormatError, match="'x'"):
            to_datetime(bad, "x")
