"""Credit budgets: a cap on what a team may spend from an account per day, week or calendar month.

A :class:`Budget` names the account it draws on, a cap in credits, a period and the time zone whose
midnights bound the periods. A reservation that names a budget passes only when the account's free
credits cover it *and* the budget's remaining credits do (:class:`BudgetState`): the cap, minus what
reservations made this period spent (``credit_usage``), minus what the budget's other active
reservations hold. Pure values here: the store enforces them under the account's lock.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import InvalidBudgetError, InvalidCostEstimateError
from airflow_credits_provider.parsing import decimal_text, exact_arithmetic, grouped_amount, to_amount

if TYPE_CHECKING:
    from datetime import date

#: The periods a budget renews on; weeks start on Monday (ISO 8601).
PERIODS = ("day", "week", "month")
_PERIOD_WORDS = {"day": "today", "week": "this week", "month": "this month"}
#: Longest budget name or account (the key columns' width).
MAX_NAME = 255


@dataclass(frozen=True)
class Budget:
    """A spend cap on one account, renewing every period.

    :param name: the name tasks use (``budget="growth"``)
    :param account: the reservation account it draws on (a credit connection id, or the ``account``
        several connections share)
    :param cap: credits it may spend per period
    :param period: ``"day"``, ``"week"`` (from Monday) or ``"month"`` (calendar month)
    :param timezone: the IANA time zone whose midnights start the periods (``"Europe/Berlin"``)
    :param description: free text (who owns it, why)
    """

    name: str
    account: str
    cap: Decimal
    period: str
    timezone: str = "UTC"
    description: str = ""

    @classmethod
    def parse(
        cls,
        *,
        name: Any,
        account: Any,
        cap: Any,
        period: Any = "month",
        timezone: Any = "UTC",
        description: Any = "",
    ) -> Budget:
        """A budget from user input (CLI, file, DB row); every problem raises :class:`InvalidBudgetError`."""
        name = _name(name, "name", None)
        where = f"Budget {name!r}: "
        return cls(
            name=name,
            account=_name(account, "account", where),
            cap=_cap(cap, where),
            period=_period(period, where),
            timezone=_zone(timezone, where),
            description="" if description is None else str(description),
        )

    def period_bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The period holding ``now`` (aware, or naive UTC) as aware datetimes in the budget's zone."""
        return period_bounds(self.period, self.timezone, now)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (CLI ``--json``, the Credits pages, files that ``budgets import`` reads)."""
        return {
            "name": self.name,
            "account": self.account,
            "cap": decimal_text(self.cap),
            "period": self.period,
            "timezone": self.timezone,
            "description": self.description,
        }


@dataclass(frozen=True)
class BudgetState:
    """A budget in one period: what was spent and is held, and what is left.

    :param budget: the budget
    :param period_start: the period's first moment, in the budget's zone
    :param period_end: the next period's first moment (when the budget renews), in the budget's zone
    :param spent: credits spent by reservations made this period and already ended
    :param held: credits held by the budget's active reservations (other than the asking run's)
    :param holders: how many active reservations hold them
    """

    budget: Budget
    period_start: datetime
    period_end: datetime
    spent: Decimal
    held: Decimal
    holders: int = 0

    @property
    def remaining(self) -> Decimal:
        """``cap - spent - held`` (may be negative when the cap was lowered)."""
        with exact_arithmetic():
            return self.budget.cap - self.spent - self.held

    def covers(self, amount: Decimal) -> bool:
        """Whether a reservation of ``amount`` fits the budget now."""
        return self.remaining >= amount

    def only_renewal_helps(self, amount: Decimal) -> bool:
        """Even if every active reservation of the budget ended spending nothing, ``amount`` would not fit."""
        with exact_arithmetic():
            return self.budget.cap - self.spent < amount

    def message(self, amount: Decimal) -> str:
        """``budget 'growth' has 1,200 of 50,000 credits left (renews ...); this run needs 2,200``."""
        b = self.budget
        held = ""
        if self.held:
            holds = "reservation" if self.holders == 1 else "reservations"
            held = f", {grouped_amount(self.held)} of them held by {self.holders} other {holds}"
        left = max(self.remaining, Decimal(0))
        return (
            f"budget {b.name!r} has {grouped_amount(left)} of {grouped_amount(b.cap)} credits left "
            f"{_PERIOD_WORDS[b.period]} (renews {renewal_text(self.period_end)}{held}); "
            f"this run needs {grouped_amount(amount)}"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BudgetState:
        """The inverse of :meth:`to_dict` (a trigger event's, an XCom's)."""
        budget = Budget(
            data["name"],
            data["account"],
            Decimal(data["cap"]),
            data["period"],
            data["timezone"],
            data.get("description") or "",
        )
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(budget.timezone)
        return cls(
            budget,
            datetime.fromisoformat(data["period_start"]).astimezone(zone),
            datetime.fromisoformat(data["period_end"]).astimezone(zone),
            Decimal(data["spent"]),
            Decimal(data["held"]),
            int(data.get("holders") or 0),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (XCom, trigger events, the Credits pages)."""
        return {
            **self.budget.to_dict(),
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "spent": decimal_text(self.spent),
            "held": decimal_text(self.held),
            "holders": self.holders,
            "remaining": decimal_text(self.remaining),
        }


def period_bounds(period: str, zone_name: str, now: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` of the ``period`` holding ``now``, bounded by midnights in ``zone_name``.

    Across a DST change the period is as long as the wall clock says (a day may last 23 or 25 hours).
    A midnight that the zone skips starts the period at the first moment after the gap.
    """
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(zone_name)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    today = now.astimezone(zone).date()
    if period == "day":
        start, end = today, today + timedelta(days=1)
    elif period == "week":
        start = today - timedelta(days=today.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = today.replace(day=1)
        end = start + timedelta(days=calendar.monthrange(start.year, start.month)[1])
    else:
        raise InvalidBudgetError(f"Unknown budget period {period!r}: use one of {', '.join(PERIODS)}.")
    return _midnight(start, zone), _midnight(end, zone)


def _midnight(day: date, zone: Any) -> datetime:
    """The first moment of ``day`` in ``zone``: midnight, or the end of a DST gap that skips it."""
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    # A skipped midnight does not survive the round trip through UTC: take where it lands (after the gap).
    return local.astimezone(timezone.utc).astimezone(zone)


def renewal_text(moment: datetime) -> str:
    """``2027-01-01 00:00 Europe/Berlin``: the zone's name, not only its offset."""
    return f"{moment:%Y-%m-%d %H:%M} {getattr(moment.tzinfo, 'key', None) or moment.tzname()}"


def to_utc_naive(moment: datetime) -> datetime:
    """An aware datetime as the naive UTC the reservation tables store."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _name(value: Any, what: str, where: str | None) -> str:
    prefix = where or "Budget "
    if not isinstance(value, str) or not value.strip():
        raise InvalidBudgetError(f"{prefix}{what} must be a non-empty text, got {_shown(value)}.")
    if value != value.strip() or any(ord(ch) < 32 for ch in value):
        raise InvalidBudgetError(
            f"{prefix}{what} {_shown(value)} has leading or trailing spaces or control characters."
        )
    if len(value) > MAX_NAME:
        raise InvalidBudgetError(f"{prefix}{what} is longer than {MAX_NAME} characters.")
    return value


def _cap(value: Any, where: str) -> Decimal:
    try:
        return to_amount(value, "cap")
    except InvalidCostEstimateError as exc:
        raise InvalidBudgetError(f"{where}{exc}") from None


def _period(value: Any, where: str) -> str:
    if value not in PERIODS:
        raise InvalidBudgetError(
            f"{where}unknown period {_shown(value)}: use one of {', '.join(PERIODS)} "
            "(weeks start on Monday; months are calendar months)."
        )
    return str(value)


def _zone(value: Any, where: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(value, str) or not value:
        raise InvalidBudgetError(
            f"{where}timezone must be an IANA name like 'Europe/Berlin', got {_shown(value)}."
        )
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidBudgetError(
            f"{where}unknown time zone {_shown(value)}: use an IANA name like 'Europe/Berlin' or 'UTC'."
        ) from None
    return value


def _shown(value: Any) -> str:
    from airflow_credits_provider.errors import truncate

    return truncate(repr(value), 60)
