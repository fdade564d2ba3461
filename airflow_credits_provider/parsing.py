"""Strict readers for vendor JSON.

Vendor payloads are untrusted: a number may arrive as a JSON number or a numeric string, but a boolean,
NaN, infinity, a missing field or an object where a number belongs is an error, never a silent zero.
These helpers raise :class:`ResponseFormatError` naming the offending field; the transport turns it into
a :class:`~airflow_credits_provider.errors.BadResponseError` with the vendor and request attached.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pendulum import DateTime

_MISSING = object()


class ResponseFormatError(ValueError):
    """A vendor payload does not have the documented shape; the message names the field."""


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
    """Parse a finite number given as a JSON number or numeric string into an exact ``Decimal``."""
    if isinstance(value, bool) or value is None:
        raise ResponseFormatError(f"field {field!r} should be a number but is {describe(value)}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
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
    if not result.is_finite():
        raise ResponseFormatError(f"field {field!r} should be a finite number but is {value!r}")
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
    """Parse an ISO 8601 timestamp into a pendulum ``DateTime`` in UTC (UTC assumed when no offset is given).

    The common shapes go through ``datetime.fromisoformat`` (ten times faster than ``pendulum.parse``,
    which matters when paging through a million transactions); anything else through pendulum.
    """
    import datetime as dt

    import pendulum

    if not isinstance(value, str) or not value.strip():
        raise ResponseFormatError(f"field {field!r} should be an ISO 8601 time but is {describe(value)}")
    text = value.strip()
    try:
        parsed: dt.datetime = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        try:
            parsed = pendulum.parse(text, tz="UTC")  # type: ignore[assignment]
        except (ValueError, pendulum.parsing.exceptions.ParserError):
            raise ResponseFormatError(
                f"field {field!r} should be an ISO 8601 time but is {describe(value)}"
            ) from None
        if not isinstance(parsed, dt.datetime):
            raise ResponseFormatError(
                f"field {field!r} should be a date and time but is {describe(value)}"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    elif parsed.utcoffset():
        parsed = parsed.astimezone(dt.timezone.utc)
    return pendulum.DateTime(
        parsed.year,
        parsed.month,
        parsed.day,
        parsed.hour,
        parsed.minute,
        parsed.second,
        parsed.microsecond,
        tzinfo=pendulum.UTC,
    )


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
