"""Runway: how fast an account burns credits and when it will run dry. Pure arithmetic, no I/O.

Input: balance snapshots (``credit_balance_snapshots``, landed by ``CreditBalanceToSqlOperator``), each a
time and the credits available then. The rule, documented in docs/runway.md:

- Only the last ``window`` of history is used (default 14 days), from its first snapshot to its last,
  and it must span at least ``min_history`` (default 1 hour): a rate measured over seconds (two runs
  of a new DAG in a row) is noise, not a forecast.
- **Spend** is the sum of every *drop* in the available balance between consecutive snapshots. A rise
  (a monthly reset, a top-up, released locks) is not negative spend: it is counted as a refill and
  left out. So a reset in the middle of the window does not hide the spending on either side of it.
- **Burn per day** = spend / the time the window covers (28 significant digits). Flat periods count
  (they are part of the rate); gaps between snapshots count too, and a drop across a gap is spend
  within it. A reset inside a gap hides the spending in that gap before it (the drop and the rise net
  out): land snapshots often enough (hourly) that gaps are short.
- **Days left** = (balance - reserve) / burn per day, and the forecast date is the last snapshot's time
  plus that. No spending in the window: no forecast (the runway is not finite on this history). Already
  at or under the reserve: zero days, the forecast date is now.
- **Renewal**: when the vendor reports its next renewal (LocalLeads ``nextResetAt``, TrueMail
  ``period.end``, a generic preset's ``reset_path``; the newest snapshot's ``next_reset_at``), the
  forecast says whether the account runs dry before it and by how many days. A runway is *short* only
  when it ends within ``min_days`` and before the renewal: an account refilled before it runs dry is
  not short. A renewal at or before the last snapshot's time is stale vendor data: reported, and ignored.

Sums are exact ``Decimal`` arithmetic; times are aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.parsing import decimal_text, exact_arithmetic, format_amount

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

DEFAULT_WINDOW = timedelta(days=14)
DEFAULT_MIN_HISTORY = timedelta(hours=1)
_DAY = Decimal(86400)


@dataclass(frozen=True)
class Snapshot:
    """The credits available on an account at one time."""

    at: datetime
    available: Decimal
    next_reset_at: datetime | None = None


@dataclass(frozen=True)
class Runway:
    """A runway forecast and the history it rests on.

    :param balance: available credits at the last snapshot
    :param at: the last snapshot's time
    :param reserve: credits the forecast stops at (0: empty)
    :param burn_per_day: credits spent per day over the window (``0``: nothing spent)
    :param days_left: days until the balance reaches the reserve (``None``: no spending, no end in sight)
    :param runs_out_at: when it does (``None`` likewise)
    :param spent: credits spent in the window (the sum of drops)
    :param refilled: credits added in the window (the sum of rises: resets, top-ups)
    :param refills: how many rises there were
    :param snapshots: snapshots used
    :param history: the time the window covers
    :param renews_at: the vendor's next renewal as the newest snapshot reported it (``None``: unknown)
    :param renewal_stale: ``renews_at`` is at or before ``at``: stale vendor data, ignored
    :param starts_from: what ``balance`` and ``at`` are: ``"last snapshot"``, or ``"live balance"``
        (:meth:`from_balance`)
    """

    balance: Decimal
    at: datetime
    reserve: Decimal
    burn_per_day: Decimal
    days_left: Decimal | None
    runs_out_at: datetime | None
    spent: Decimal
    refilled: Decimal
    refills: int
    snapshots: int
    history: timedelta
    renews_at: datetime | None = None
    renewal_stale: bool = False
    starts_from: str = "last snapshot"

    @property
    def renewal(self) -> datetime | None:
        """The next renewal when it is usable (reported, and after the last snapshot)."""
        return None if self.renewal_stale else self.renews_at

    @property
    def days_to_renewal(self) -> Decimal | None:
        """Days from the last snapshot to the usable renewal."""
        return None if self.renewal is None else _days(self.renewal - self.at)

    @property
    def dry_before_renewal(self) -> bool | None:
        """Whether the balance reaches the reserve before the renewal (``None``: no usable renewal)."""
        if self.renewal is None:
            return None
        return self.runs_out_at is not None and self.runs_out_at < self.renewal

    @property
    def days_dry_before_renewal(self) -> Decimal | None:
        """How many days before the renewal the balance reaches the reserve (when it does)."""
        if not self.dry_before_renewal:
            return None
        assert self.renewal is not None
        assert self.runs_out_at is not None
        return _days(self.renewal - self.runs_out_at)

    def with_renewal(self, renews_at: datetime | None) -> Runway:
        """The forecast knowing the vendor's next renewal (stale when at or before the last snapshot)."""
        import dataclasses

        stale = renews_at is not None and renews_at <= self.at
        return dataclasses.replace(self, renews_at=renews_at, renewal_stale=stale)

    def from_balance(self, balance: Decimal, at: datetime) -> Runway:
        """The same burn rate, run down from ``balance`` at ``at`` (a live balance newer than the history).

        ``starts_from`` then says ``"live balance"``; the history's figures (spent, refills, snapshots)
        stay those of the window.
        """
        import dataclasses

        days_left, runs_out = _ends(balance, self.reserve, self.burn_per_day, at)
        moved = dataclasses.replace(
            self,
            balance=balance,
            at=at,
            days_left=days_left,
            runs_out_at=runs_out,
            starts_from="live balance",
        )
        return moved.with_renewal(self.renews_at)

    def is_short(self, min_days: Decimal | float) -> bool:
        """The balance reaches the reserve within ``min_days`` and before any usable renewal."""
        if self.days_left is None or self.days_left >= Decimal(str(min_days)):
            return False
        return self.dry_before_renewal is not False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly, exact decimal strings (XCom)."""
        return {
            "balance": _text(self.balance),
            "at": self.at.isoformat(),
            "reserve": _text(self.reserve),
            "burn_per_day": _text(self.burn_per_day),
            "days_left": None if self.days_left is None else _text(self.days_left),
            "runs_out_at": None if self.runs_out_at is None else self.runs_out_at.isoformat(),
            "spent": _text(self.spent),
            "refilled": _text(self.refilled),
            "refills": self.refills,
            "snapshots": self.snapshots,
            "history_days": round(self.history.total_seconds() / 86400, 3),
            "renews_at": None if self.renews_at is None else self.renews_at.isoformat(),
            "renewal_stale": self.renewal_stale,
            "days_to_renewal": _optional(self.days_to_renewal),
            "dry_before_renewal": self.dry_before_renewal,
            "days_dry_before_renewal": _optional(self.days_dry_before_renewal),
            "starts_from": self.starts_from,
        }

    def describe(self) -> str:
        """The forecast in one sentence."""
        days = self.history.total_seconds() / 86400
        basis = f"{self.snapshots} snapshots over {days:.1f} days"
        if self.refills:
            basis += f", {self.refills} refill(s) of {format_amount(self.refilled)} left out"
        target = "empty" if not self.reserve else f"the reserve of {format_amount(self.reserve)}"
        if self.days_left is None:
            text = f"{format_amount(self.balance)} credits; nothing spent in {basis}: no end in sight."
        else:
            text = (
                f"{format_amount(self.balance)} credits, burning {_round(self.burn_per_day, '0.01')} a "
                f"day: {_round(self.days_left)} days to {target}, on {self.runs_out_at:%Y-%m-%d %H:%M} UTC "
                f"({basis})."
            )
        renewal = self.describe_renewal()
        return f"{text} {renewal}" if renewal else text

    def describe_renewal(self) -> str:
        """The renewal in one sentence (empty when the vendor reports none)."""
        if self.renews_at is None:
            return ""
        when = f"{self.renews_at:%Y-%m-%d %H:%M} UTC"
        if self.renewal_stale:
            return f"The vendor's renewal date {when} is already past (stale vendor data): ignored."
        days = _round(self.days_to_renewal or Decimal(0))
        if self.dry_before_renewal:
            early = _round(self.days_dry_before_renewal or Decimal(0))
            return f"Renews {when} (in {days} days): runs dry {early} days before it."
        if self.days_left is None:
            return f"Renews {when} (in {days} days)."
        return f"Renews {when} (in {days} days), before it runs dry."


#: One missed landing is not staleness: the history is behind when its newest snapshot is older than
#: this many times the window's mean spacing (and at least :data:`MIN_STALE_AGE`).
STALE_SPACINGS = 2
MIN_STALE_AGE = timedelta(minutes=10)


@dataclass(frozen=True)
class HistoryGap:
    """How an account's landed history stands against its live balance.

    The history is **stale** when its newest snapshot is older than :data:`STALE_SPACINGS` times the
    forecast window's mean spacing between snapshots (one day when there is only one snapshot), and it
    **differs** when the live balance is not what the history's burn explains: the move since, less what
    the burn rate spends in that time, is larger than both that spend and 1% of the snapshot's balance
    (credits arrived, or far more went than usual).

    :param newest_at: the newest snapshot's time; ``newest_balance`` its available credits
    :param live_at: when the live balance was read; ``live_balance`` its available credits
    :param expected_spend: what the history's burn rate spends between the two
    """

    newest_at: datetime
    newest_balance: Decimal
    live_at: datetime
    live_balance: Decimal
    spacing: timedelta | None
    expected_spend: Decimal

    @property
    def age(self) -> timedelta:
        """How much older the newest snapshot is than the live balance."""
        return max(self.live_at - self.newest_at, timedelta(0))

    @property
    def moved(self) -> Decimal:
        """Live minus newest snapshot (negative: credits went since)."""
        with exact_arithmetic():
            return self.live_balance - self.newest_balance

    @property
    def stale(self) -> bool:
        """The newest snapshot is older than the landing's own rhythm allows."""
        rhythm = STALE_SPACINGS * self.spacing if self.spacing is not None else timedelta(days=1)
        return self.age > max(rhythm, MIN_STALE_AGE)

    @property
    def unexplained(self) -> Decimal:
        """What the burn rate does not explain of the move (positive: more than expected arrived)."""
        with localcontext(Context(prec=28)):
            return self.moved + self.expected_spend

    @property
    def differs(self) -> bool:
        """The live balance is not what the history's burn rate explains.

        By more than that burn itself and more than 1% of the newest snapshot's balance: a few credits
        spent since are not news.
        """
        with localcontext(Context(prec=28)):
            return abs(self.unexplained) > max(self.expected_spend, abs(self.newest_balance) / 100)

    @property
    def behind(self) -> bool:
        """Stale or differing: the live balance, not the last snapshot, is where the runway starts."""
        return self.stale or self.differs

    def describe(self) -> str:
        """The gap in one sentence (empty when the history is current)."""
        if not self.behind:
            return ""
        sign = "+" if self.moved > 0 else ""
        return (
            f"The newest landed snapshot is {describe_span(self.age)} older than the live balance "
            f"({self.newest_at:%Y-%m-%d %H:%M} UTC): {format_amount(self.newest_balance)} then, "
            f"{format_amount(self.live_balance)} live ({sign}{format_amount(self.moved)})"
            + (
                "; credits arrived since."
                if self.unexplained > 0
                else "; more went than the history's burn explains."
                if self.differs
                else "."
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly, exact decimal strings."""
        return {
            "newest_snapshot_at": self.newest_at.isoformat(),
            "newest_snapshot_available": _text(self.newest_balance),
            "live_at": self.live_at.isoformat(),
            "live_available": _text(self.live_balance),
            "age_seconds": self.age.total_seconds(),
            "moved": _text(self.moved),
            "expected_spend": _text(self.expected_spend.quantize(Decimal("0.01"))),
            "stale": self.stale,
            "differs": self.differs,
            "behind": self.behind,
            "message": self.describe(),
        }


def history_gap(
    *,
    newest_at: datetime,
    newest_balance: Decimal,
    spacing: timedelta | None,
    live_balance: Decimal,
    live_at: datetime,
    burn_per_day: Decimal,
) -> HistoryGap:
    """Compare the newest landed snapshot with the live balance (see :class:`HistoryGap`)."""
    age = max(live_at - newest_at, timedelta(0))
    with localcontext(Context(prec=28)):
        expected = burn_per_day * _days(age)
    return HistoryGap(newest_at, newest_balance, live_at, live_balance, spacing, expected)


def describe_span(span: timedelta) -> str:
    """``"14 days"``, ``"1 hour"``, ``"2.5 hours"``, ``"3 seconds"``: a duration for a message."""
    seconds = span.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = f"{seconds / size:.1f}".removesuffix(".0")
            return f"{count} {unit}" + ("" if count == "1" else "s")
    return f"{seconds:g} second" + ("" if seconds == 1 else "s")


def forecast(
    snapshots: Iterable[Snapshot],
    *,
    reserve: Decimal | int = 0,
    window: timedelta = DEFAULT_WINDOW,
    min_history: timedelta = DEFAULT_MIN_HISTORY,
    setting_names: Mapping[str, str] | None = None,
) -> Runway:
    """Forecast when the balance reaches ``reserve`` from the last ``window`` of ``snapshots``.

    :param setting_names: how the caller's user sets ``window`` and ``min_history`` (an option or a
        parameter name), for the error messages

    :raises NotEnoughHistoryError: with fewer than two snapshots at different times in the window, or
        snapshots spanning less than ``min_history`` (no rate worth forecasting from)
    """
    from airflow_credits_provider.errors import NotEnoughHistoryError

    names = {"window": "the window", "min_history": "the minimum history", **(setting_names or {})}
    ordered = sorted(snapshots, key=lambda s: s.at)
    if not ordered:
        raise NotEnoughHistoryError("No balance snapshots: land some with CreditBalanceToSqlOperator first.")
    last = ordered[-1]
    used = [s for s in ordered if s.at >= last.at - window]
    if len(used) < 2 or used[0].at == last.at:
        raise NotEnoughHistoryError(
            f"Need at least two balance snapshots at different times within the last "
            f"{describe_span(window)}; found {len(used)}. Snapshot more often or widen "
            f"{names['window']} (now {describe_span(window)}).",
            snapshots=len(used),
        )
    if last.at - used[0].at < min_history:
        raise NotEnoughHistoryError(
            f"The {len(used)} balance snapshots of the last {describe_span(window)} span only "
            f"{describe_span(last.at - used[0].at)}; a forecast needs at least {describe_span(min_history)} "
            f"of history. Wait for more snapshots, or lower {names['min_history']} "
            f"(now {describe_span(min_history)}).",
            snapshots=len(used),
        )
    renews_at = last.next_reset_at
    with exact_arithmetic():
        spent = refilled = Decimal(0)
        refills = 0
        for before, after in zip(used, used[1:], strict=False):
            change = after.available - before.available
            if change < 0:
                spent -= change
            elif change > 0:
                refilled += change
                refills += 1
    return forecast_from_totals(
        balance=last.available,
        at=last.at,
        first_at=used[0].at,
        spent=spent,
        refilled=refilled,
        refills=refills,
        snapshots=len(used),
        reserve=reserve,
    ).with_renewal(renews_at)


def forecast_from_totals(
    *,
    balance: Decimal,
    at: datetime,
    first_at: datetime,
    spent: Decimal,
    refilled: Decimal,
    refills: int,
    snapshots: int,
    reserve: Decimal | int = 0,
) -> Runway:
    """The forecast from a window's totals, for callers that summed the drops elsewhere (in SQL).

    :param balance: available credits at the window's last snapshot, taken at ``at``
    :param first_at: the window's first snapshot's time
    :param spent: the sum of drops between consecutive snapshots in the window
    :param refilled: the sum of rises; ``refills`` how many there were
    :param snapshots: how many snapshots the window holds
    """
    reserve = Decimal(reserve)
    history = at - first_at
    micros = Decimal((history.days * 86400 + history.seconds) * 10**6 + history.microseconds)
    with localcontext(Context(prec=28)):  # rates and quotients are not exact: 28 digits, as Decimal's default
        burn = spent * _DAY * 10**6 / micros if micros else Decimal(0)
    days_left, runs_out = _ends(balance, reserve, burn, at)
    return Runway(
        balance=balance,
        at=at,
        reserve=reserve,
        burn_per_day=burn,
        days_left=days_left,
        runs_out_at=runs_out,
        spent=spent,
        refilled=refilled,
        refills=refills,
        snapshots=snapshots,
        history=history,
    )


def daily_chart(
    snapshots: Sequence[Snapshot], days: int = 14, width: int = 40, runway: Runway | None = None
) -> list[str]:
    """A small text chart of the last balance of each of the last ``days`` days, one line per day.

    With ``runway``: a last line for the forecast's dry date and the vendor's renewal, in date order.
    """
    if not snapshots:
        return []
    last_of_day: dict[str, Snapshot] = {}
    for s in sorted(snapshots, key=lambda s: s.at):
        last_of_day[s.at.astimezone(timezone.utc).strftime("%Y-%m-%d")] = s
    shown = list(last_of_day.items())[-days:]
    top = max(s.available for _, s in shown) or Decimal(1)
    lines = []
    for day, s in shown:
        with localcontext(Context(prec=28)):
            bar = (
                int((s.available / top * width).to_integral_value(ROUND_HALF_EVEN)) if s.available > 0 else 0
            )
        lines.append(f"{day} {'#' * bar:<{width}} {format_amount(s.available)}")
    if runway is not None:
        marks = []
        if runway.runs_out_at is not None:
            marks.append((runway.runs_out_at, "runs dry" if not runway.reserve else "reaches the reserve"))
        if runway.renews_at is not None:
            marks.append(
                (runway.renews_at, "renews" + (" (stale vendor data)" if runway.renewal_stale else ""))
            )
        for at, what in sorted(marks):
            lines.append(f"{at:%Y-%m-%d} {'-' * 3} {what}")
    return lines


def _ends(
    balance: Decimal, reserve: Decimal, burn: Decimal, at: datetime
) -> tuple[Decimal | None, datetime | None]:
    """Days until ``balance`` burns down to ``reserve`` from ``at``, and when (``None``: no burn, no end)."""
    with exact_arithmetic():
        headroom = balance - reserve
    with localcontext(Context(prec=28)):
        if headroom <= 0:
            days_left: Decimal | None = Decimal(0)
        elif burn == 0:
            days_left = None
        else:
            days_left = headroom / burn
    if days_left is None:
        return None, None
    last_day = (datetime.max.replace(tzinfo=at.tzinfo) - at).days - 1  # a runway past 9999 ends there
    return days_left, at + timedelta(seconds=float(min(days_left, Decimal(last_day)) * _DAY))


def _days(span: timedelta) -> Decimal:
    """A duration in days (28 significant digits)."""
    micros = Decimal((span.days * 86400 + span.seconds) * 10**6 + span.microseconds)
    with localcontext(Context(prec=28)):
        return micros / (_DAY * 10**6)


def _optional(value: Decimal | None) -> str | None:
    return None if value is None else _text(value)


def _round(value: Decimal, step: str = "0.1") -> str:
    """``value`` to ``step`` for reading (huge values as they are)."""
    return f"{value.quantize(Decimal(step), ROUND_HALF_EVEN):f}" if value < 10**9 else format_amount(value)


_text = decimal_text
