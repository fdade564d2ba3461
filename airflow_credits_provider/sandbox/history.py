"""Synthetic balance history for the sandbox's accounts.

``airflow-credits sandbox --history-days 14`` gives a new deployment's Credits page two weeks of hourly
snapshots per sandbox account, each ending at the balance the sandbox serves at start-up: the chart,
the runway and the spend this month have something to show, and they agree with the live balance.
(:mod:`airflow_credits_provider.sql.snapshot_history` lands them.)
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_credits_provider.models import CreditBalance

#: Days each sandbox vendor's synthetic spending would take to empty its balance, and how many hours
#: before the end its balance rose (a top-up or the monthly reset; ``-1``: never).
STORY: dict[str, tuple[int, int]] = {
    "leadmagic": (45, -1),
    "localleads": (30, 5 * 24),
    "truemail": (60, 9 * 24),
}
#: Every other vendor (the generic connection's preset).
DEFAULT_STORY = (20, -1)


def steady_history(
    *,
    ending_at: datetime,
    before: Decimal,
    per_hour: Decimal,
    hours: int,
    refill_at: int = -1,
    refill: int | Decimal = 0,
) -> list[tuple[datetime, Decimal]]:
    """Hourly balances over ``hours`` hours that spend ``per_hour`` an hour into ``before`` at ``ending_at``.

    The first entry is ``hours`` hours before ``ending_at``, the last one hour before it; between entries
    ``refill_at - 1`` and ``refill_at`` the account also gains ``refill`` credits (a top-up or reset).
    """
    return [
        (
            ending_at - timedelta(hours=hours - j),
            before + per_hour * (hours - j) - (refill if j < refill_at else 0),
        )
        for j in range(hours)
    ]


def story_history(balance: CreditBalance, days: int, now: datetime) -> list[tuple[datetime, Decimal]]:
    """``days`` of hourly snapshots ending at ``balance`` at ``now``, by the vendor's :data:`STORY`.

    The last snapshot is ``now`` itself, at the live balance: the history and the live balance agree.
    """
    runway_days, refill_at = STORY.get(balance.vendor, DEFAULT_STORY)
    hours = days * 24
    available = balance.available
    per_hour = (available / (runway_days * 24)).quantize(Decimal("0.01")) or Decimal("0.01")
    refill_at = refill_at if 0 < refill_at < hours else -1
    # The rise leaves the balance a day's spending before it: the history stays positive.
    refill = available + per_hour * (refill_at + 1 - 24) if refill_at > 0 else Decimal(0)
    history = steady_history(
        ending_at=now,
        before=available,
        per_hour=per_hour,
        hours=hours,
        refill_at=hours - refill_at if refill_at > 0 else -1,
        refill=refill,
    )
    return [*history, (now, available)]
