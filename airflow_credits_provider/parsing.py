"""Strict readers for vendor JSON.

Vendor payloads are untrusted: a number may arrive as a JSON number or a numeric string, but a boolean,
NaN, infinity, a missing field or an object where a number belongs is an error, never a silent zero.
These helpers raise :class:`ResponseFormatError` naming the offending field; the transport turns it into
a :class:`~airflow_credits_provider.errors.BadResponseError` with the vendor and request attached.

Amounts of credits are exact ``Decimal`` values within :data:`MAX_MAGNITUDE` and :data:`MAX_SCALE`
(:func:`amount_problem`); arithmetic on them runs in :func:`exact_arithmetic`, which can neither round
nor overflow for such operands, and :func:`format_amount` prints them compactly for messages.
"""

from __future__ import annotations

import decimal
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import InvalidCostEstimateError, ResponseFormatError, truncate

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextlib import AbstractContextManager

    from pendulum import DateTime

_MISSING = object()

#: Largest power of ten an amount of credits may reach: amounts are below ``10**(MAX_MAGNITUDE + 1)``.
#: Beyond it a number is not a balance or a cost but a mistake (an exponent, a unit mix-up).
MAX_MAGNITUDE = 40
#: Finest step of an amount: ``10**-MAX_SCALE`` credits.
MAX_SCALE = 40
#: Precision of :func:`exact_arithmetic`: sums and products of two bounded amounts (at most 81
#: significant digits each) need at most 162 digits; the trap on ``Inexact`` proves nothing rounds.
_EXACT = decimal.Context(
    prec=400,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)
#: Only to test whether trailing digits past MAX_SCALE are zeros (``1.50000...0`` with 50 zeros is fine).
_EXACT_ROUND = decimal.Context(prec=400, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[])


def exact_arithmetic() -> AbstractContextManager[decimal.Context]:
    """A decimal context for arithmetic on bounded amounts: exact, or ``decimal.Inexact`` is raised.

    Python's default context rounds to 28 significant digits, so ``82 + 1e-30`` silently becomes 82.
    """
    return decimal.localcontext(_EXACT)


def amount_problem(value: Decimal) -> str | None:
    """Why ``value`` cannot be an amount of credits (NaN, infinite, too large, too fine), or ``None``."""
    if not value.is_finite():
        return "not a finite number"
    if value.is_zero():
        return None
    if value.adjusted() > MAX_MAGNITUDE:
        return f"larger than any plausible number of credits (limit 1e{MAX_MAGNITUDE + 1})"
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -MAX_SCALE and value != value.quantize(Decimal(1).scaleb(-MAX_SCALE), context=_EXACT_ROUND):
        return f"finer than 1e-{MAX_SCALE} credits"
    return None


def to_amount(value: Any, what: str, task_id: str | None = None) -> Decimal:
    """Parse a non-negative amount of credits given as a number or numeric string.

    :param what: the argument's name, for the message (``"estimated_cost"``)
    :raises InvalidCostEstimateError: naming the task, the argument and the value (shortened)
    """
    where = f"Task {task_id!r}: " if task_id else ""
    shown = truncate(repr(value), 60)
    if value is None or isinstance(value, bool):
        raise InvalidCostEstimateError(f"{where}{what} must be a number of credits, got {shown}.")
    # repr() for floats: Decimal(0.1) would carry the float's binary error.
    text = repr(value) if isinstance(value, float) else value
    try:
        amount = Decimal(text.strip() if isinstance(text, str) else text)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidCostEstimateError(f"{where}{what} must be a number of credits, got {shown}.") from None
    problem = amount_problem(amount)
    if problem is not None:
        raise InvalidCostEstimateError(f"{where}{what} is {problem}, got {shown}.")
    if amount < 0:
        raise InvalidCostEstimateError(f"{where}{what} must not be negative, got {shown}.")
    return amount


def decimal_text(value: Decimal | None) -> str | None:
    """An exact decimal as plain text without trailing zeros (``"15432.5"``), for XCom and JSON."""
    if value is None:
        return None
    with exact_arithmetic():
        return f"{value.normalize():f}"


def format_amount(value: Decimal) -> str:
    """An amount for a message: plain digits when short, scientific notation (all digits kept) when long.

    Bounded whatever the input: at most about 100 characters.
    """
    if not value.is_finite():
        return str(value)
    normal = value.normalize(_EXACT_ROUND)
    plain = f"{normal:f}"
    if len(plain) <= 48:
        return plain
    digits = len(normal.as_tuple().digits)
    text = f"{normal:.{min(digits, 40) - 1}e}" if digits > 1 else f"{normal:e}"
    return text if digits <= 40 else text.replace("e", "…e", 1)


def grouped_amount(value: Decimal) -> str:
    """:func:`format_amount` with thousands separators when plain (``"50,000"``), for budget messages."""
    text = format_amount(value)
    if "e" in text or not value.is_finite():
        return text
    with exact_arithmetic():
        return f"{value.normalize(_EXACT_ROUND):,f}"


def describe(value: Any) -> str:
    """Name the JSON type of ``value`` for an error message, without echoing long content."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"[:60]


def get_path(payload: Any, path: str, default: Any = _MISSING) -> Any:
    """Return ``payload[a][b]...`` for the dotted ``path``.

    :param default: returned when a key is absent; without it an absent key is an error
    """
    node = payload
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if not isinstance(node, dict):
            raise ResponseFormatError(f"expected an object at {'.'.join(walked[:-1]) or 'top level'}")
        if part not in node:
            if default is not _MISSING:
                return default
            raise ResponseFormatError(f"field {'.'.join(walked)!r} is missing")
        node = node[part]
    return node


def to_decimal(value: Any, field: str) -> Decimal:
    """Parse an amount given as a JSON number or numeric string into an exact ``Decimal``.

    NaN, infinities and numbers outside the bounds of :func:`amount_problem` are format errors.
    """
    if isinstance(value, bool) or value is None:
        raise ResponseFormatError(f"field {field!r} should be a number but is {describe(value)}")
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, Decimal):  # how the transport decodes JSON numbers with a fraction
        result = value
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            raise ResponseFormatError(
                f"field {field!r} should be a number but is {describe(value)}"
            ) from None
    else:
        raise ResponseFormatError(f"field {field!r} should be a number but is {describe(value)}")
    problem = amount_problem(result)
    if problem is not None:
        shown = format_amount(result) if result.is_finite() else repr(value)[:40]
        raise ResponseFormatError(f"field {field!r} should be an amount of credits but is {shown}: {problem}")
    return result


def decimal_at(payload: Any, path: str, *, required: bool = True) -> Decimal | None:
    """Read the number at ``path``; ``None`` when optional and absent or null."""
    value = get_path(payload, path) if required else get_path(payload, path, None)
    if value is None and not required:
        return None
    return to_decimal(value, path)


def text_at(payload: Any, path: str, *, required: bool = False) -> str | None:
    """Read the string at ``path``; ``None`` when optional and absent or null."""
    value = get_path(payload, path) if required else get_path(payload, path, None)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ResponseFormatError(f"field {path!r} should be a string but is {describe(value)}")
    return value


def bool_at(payload: Any, path: str, *, default: bool) -> bool:
    """Read the boolean at ``path``, with ``default`` when absent or null."""
    value = get_path(payload, path, None)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ResponseFormatError(f"field {path!r} should be a boolean but is {describe(value)}")
    return value


def to_datetime(value: Any, field: str) -> DateTime:
    """Parse an ISO 8601 timestamp into a pendulum ``DateTime`` in UTC (UTC when no offset is given)."""
    import pendulum

    moment = to_utc_datetime(value, field)
    return pendulum.DateTime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=pendulum.UTC,
    )


def to_utc_datetime(value: Any, field: str) -> datetime:
    """Parse an ISO 8601 timestamp into an aware ``datetime`` in UTC (UTC assumed when no offset is given).

    A UTC timestamp in the common shape (``2026-01-07T22:30:00.000Z``) takes a fast path through
    ``datetime.fromisoformat`` (a backfill reads a million of them, and building a pendulum ``DateTime``
    costs ten times more); anything else goes through pendulum, which reads every ISO 8601 form.
    """
    if type(value) is str:
        try:
            parsed = _fromisoformat(value[:-1] + "+00:00" if value[-1:] == "Z" else value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is timezone.utc:
                return parsed
            if parsed.tzinfo is not None and parsed.utcoffset() == _ZERO:
                return parsed.replace(tzinfo=timezone.utc)
    return _any_iso_datetime(value, field)


_fromisoformat = datetime.fromisoformat
_ZERO = timedelta(0)


def _any_iso_datetime(value: Any, field: str) -> datetime:
    import pendulum

    if not isinstance(value, str) or not value.strip():
        raise ResponseFormatError(f"field {field!r} should be an ISO 8601 time but is {describe(value)}")
    text = value.strip()
    try:
        parsed: datetime = _fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        try:
            parsed = pendulum.parse(text, tz="UTC")  # type: ignore[assignment]
        except (ValueError, pendulum.parsing.exceptions.ParserError):
            raise ResponseFormatError(
                f"field {field!r} should be an ISO 8601 time but is {describe(value)}"
            ) from None
        if not isinstance(parsed, datetime):
            raise ResponseFormatError(
                f"field {field!r} should be a date and time but is {describe(value)}"
            ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def datetime_at(payload: Any, path: str, *, required: bool = False) -> DateTime | None:
    """Read the timestamp at ``path``; ``None`` when optional and absent or null."""
    value = get_path(payload, path) if required else get_path(payload, path, None)
    if value is None and not required:
        return None
    return to_datetime(value, path)


def object_at(payload: Any, path: str) -> Mapping[str, Any]:
    """Read the JSON object at ``path`` (required)."""
    value = get_path(payload, path)
    if not isinstance(value, dict):
        raise ResponseFormatError(f"field {path!r} should be an object but is {describe(value)}")
    return value
