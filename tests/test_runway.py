"""Runway arithmetic on histories with resets, top-ups, gaps and flat periods."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider.runway import Snapshot, daily_chart, describe_span, forecast

if TYPE_CHECKING:
    from airflow_credits_provider.runway import HistoryGap

START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def hourly(
    values: list[int | str], start: datetime = START, step: timedelta = timedelta(hours=1)
) -> list[Snapshot]:
    return [Snapshot(start + i * step, Decimal(v)) for i, v in enumerate(values)]


def test_steady_spend() -> None:
    # 24 credits an hour for 10 hours: 576 a day; 1000 left -> 1000/576 days.
    runway = forecast(hourly([1240 - 24 * i for i in range(11)]))
    assert runway.balance == 1000
    assert runway.burn_per_day == 576
    assert runway.spent == 240
    assert runway.days_left == Decimal(1000) / 576
    assert runway.runs_out_at == START + timedelta(hours=10) + timedelta(days=1000 / 576)
    assert (runway.refills, runway.snapshots) == (0, 11)


def test_a_monthly_reset_is_not_negative_spend() -> None:
    # 100 an hour, reset to 5000 in the middle, then 100 an hour again.
    runway = forecast(hourly([600, 500, 400, 5000, 4900, 4800]))
    assert runway.spent == 400  # 100 + 100 + 100 + 100, the reset left out
    assert (runway.refills, runway.refilled) == (1, 4600)
    assert runway.burn_per_day == 400 * 24 / 5
    assert runway.days_left == Decimal(4800) / Decimal(400 * 24 / 5)


def test_top_up_and_flat_periods_count_time_not_spend() -> None:
    flat = forecast(hourly([100, 100, 100, 100, 90]))  # 10 spent in 4 hours
    assert flat.burn_per_day == 60
    topped = forecast(hourly([100, 90, 1090, 1090, 1080]))  # 20 spent, a 1000 top-up
    assert (topped.spent, topped.refilled, topped.burn_per_day) == (20, 1000, 120)


def test_gaps_count_a_drop_across_them_as_spend_in_them() -> None:
    snaps = [Snapshot(START, Decimal(1000)), Snapshot(START + timedelta(days=3), Decimal(700))]
    snaps.append(Snapshot(START + timedelta(days=3, hours=12), Decimal(650)))
    runway = forecast(snaps)
    assert runway.spent == 350
    assert runway.burn_per_day == 100  # 350 over 3.5 days
    assert runway.days_left == Decimal("6.5")


def test_nothing_spent_has_no_end_and_a_reserve_already_reached_is_now() -> None:
    idle = forecast(hourly([500, 500, 500]))
    assert (idle.burn_per_day, idle.days_left, idle.runs_out_at) == (0, None, None)
    assert "no end in sight" in idle.describe()
    under = forecast(hourly([500, 400, 300]), reserve=300)
    assert under.days_left == 0
    assert under.runs_out_at == START + timedelta(hours=2)


def test_only_the_window_is_used() -> None:
    old = hourly([10_000, 1_000], start=START - timedelta(days=30))  # a big old drop, outside the window
    recent = hourly([900, 890, 880])
    runway = forecast(old + recent, window=timedelta(days=7))
    assert runway.snapshots == 3
    assert runway.burn_per_day == 240


def test_reserve_shortens_the_runway_and_describe_says_it() -> None:
    runway = forecast(hourly([1100, 1000]), reserve=200)  # 100 an hour = 2400 a day; 800 headroom
    assert runway.days_left == Decimal(800) / 2400
    assert "to the reserve of 200" in runway.describe()
    assert runway.to_dict()["burn_per_day"] == "2400"


def test_too_little_history_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="No balance snapshots"):
        forecast([])
    with pytest.raises(
        ValueError, match="at least two balance snapshots at different times within the last 14 days"
    ):
        forecast(hourly([5]))


def test_a_rate_from_minutes_of_history_is_no_forecast() -> None:
    seconds_apart = hourly([1000, 990], step=timedelta(seconds=3))
    with pytest.raises(ValueError, match="span only 3 seconds; a forecast needs at least 1 hour of history"):
        forecast(seconds_apart)
    with pytest.raises(ValueError, match=r"or lower the minimum history \(now 1 hour\)\.$"):
        forecast(seconds_apart)
    with pytest.raises(ValueError, match=r"widen --window-days \(now 14 days\)\.$"):
        forecast(hourly([5]), setting_names={"window": "--window-days"})
    assert forecast(seconds_apart, min_history=timedelta(0)).burn_per_day == 10 * 86400 // 3
    half_hour = hourly([1000, 990, 980], step=timedelta(minutes=15))
    with pytest.raises(ValueError, match="The 3 balance snapshots of the last 2 days span only 30 minutes"):
        forecast(half_hour, window=timedelta(days=2))
    assert forecast(hourly([1000, 990])).burn_per_day == 240  # exactly the minimum: one hour


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(days=14), "14 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=36), "1.5 days"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(minutes=150), "2.5 hours"),
        (timedelta(seconds=61), "1 minute"),
        (timedelta(seconds=1), "1 second"),
        (timedelta(milliseconds=2500), "2.5 seconds"),
    ],
)
def test_spans_read_as_a_person_writes_them(span: timedelta, text: str) -> None:
    assert describe_span(span) == text


def test_daily_chart_shows_the_last_balance_of_each_day() -> None:
    snaps = hourly([100, 50], step=timedelta(hours=12)) + hourly(
        [80], start=START + timedelta(days=1, hours=13)
    )
    lines = daily_chart(snaps, width=10)
    assert lines == ["2026-11-01 ######     50", "2026-11-02 ########## 80"]  # 50/80 of 10


# -- the vendor's renewal ------------------------------------------------------------------------------
def spending(renews_at: datetime | None, hours: int = 11) -> list[Snapshot]:
    """1000 left after spending 24 an hour (1000/576 = 1.74 days left), the vendor's renewal on the last."""
    snapshots = hourly([1000 + 24 * (hours - 1 - i) for i in range(hours)])
    last = snapshots[-1]
    return [*snapshots[:-1], Snapshot(last.at, last.available, renews_at)]


LAST = START + timedelta(hours=10)


def test_a_renewal_before_the_dry_date_is_not_short() -> None:
    runway = forecast(spending(LAST + timedelta(days=1)))
    assert runway.days_left == Decimal(1000) / 576
    assert runway.renews_at == LAST + timedelta(days=1)
    assert runway.dry_before_renewal is False
    assert runway.days_dry_before_renewal is None
    assert runway.days_to_renewal == 1
    assert runway.is_short(7) is False  # short of 7 days, but refilled first
    assert runway.describe().endswith("Renews 2026-11-02 10:00 UTC (in 1.0 days), before it runs dry.")
    record = runway.to_dict()
    assert (record["renews_at"], record["dry_before_renewal"], record["renewal_stale"]) == (
        "2026-11-02T10:00:00+00:00",
        False,
        False,
    )


def test_running_dry_before_the_renewal_says_by_how_many_days() -> None:
    runway = forecast(spending(LAST + timedelta(days=10)))
    assert runway.dry_before_renewal is True
    assert float(runway.days_dry_before_renewal or 0) == pytest.approx(10 - 1000 / 576)
    assert runway.is_short(7) is True
    assert runway.is_short(1) is False  # 1.74 days left: not short of one day
    assert "Renews 2026-11-11 10:00 UTC (in 10.0 days): runs dry 8.3 days before it." in runway.describe()
    assert runway.to_dict()["days_dry_before_renewal"].startswith("8.263888")


def test_a_renewal_date_already_past_is_stale_and_ignored() -> None:
    runway = forecast(spending(LAST - timedelta(days=2)))
    assert runway.renewal_stale is True
    assert runway.renewal is None
    assert runway.dry_before_renewal is None
    assert runway.is_short(7) is True  # judged as if the vendor reported no renewal
    assert "2026-10-30 10:00 UTC is already past (stale vendor data): ignored." in runway.describe()
    at_the_snapshot = forecast(spending(LAST))
    assert at_the_snapshot.renewal_stale is True


def test_no_renewal_reported_judges_the_runway_alone() -> None:
    runway = forecast(spending(None))
    assert (runway.renews_at, runway.dry_before_renewal, runway.days_to_renewal) == (None, None, None)
    assert runway.is_short(7) is True
    assert "Renews" not in runway.describe()
    nothing_spent = forecast(hourly([5, 5, 5])).with_renewal(START + timedelta(days=3))
    assert nothing_spent.dry_before_renewal is False
    assert nothing_spent.is_short(7) is False


def test_the_text_chart_marks_the_dry_date_and_the_renewal_in_order() -> None:
    dry_first = spending(LAST + timedelta(days=10))
    lines = daily_chart(dry_first, width=10, runway=forecast(dry_first))
    assert lines[-2:] == ["2026-11-03 --- runs dry", "2026-11-11 --- renews"]
    stale = spending(LAST - timedelta(days=2))
    assert daily_chart(stale, width=10, runway=forecast(stale))[-2:] == [
        "2026-10-30 --- renews (stale vendor data)",
        "2026-11-03 --- runs dry",
    ]


def test_a_history_behind_the_live_balance_is_stale_or_differs() -> None:
    from datetime import datetime, timedelta, timezone

    from airflow_credits_provider.runway import history_gap

    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    hourly = timedelta(hours=1)

    def gap(newest: str, live: str, age: timedelta, burn: str = "24") -> HistoryGap:
        return history_gap(
            newest_at=at,
            newest_balance=Decimal(newest),
            spacing=hourly,
            live_balance=Decimal(live),
            live_at=at + age,
            burn_per_day=Decimal(burn),
        )

    seen = gap("955", "15425.5", timedelta(days=3))  # what a new user saw: history from another sandbox
    assert (seen.stale, seen.differs, seen.behind) == (True, True, True)
    assert seen.describe() == (
        "The newest landed snapshot is 3 days older than the live balance (2026-12-01 00:00 UTC): "
        "955 then, 15425.5 live (+14470.5); credits arrived since."
    )
    current = gap("1000", "999", hourly)  # an hour of the usual burn
    assert (current.stale, current.differs, current.behind) == (False, False, False)
    assert current.describe() == ""
    assert not gap("15432.5", "15428.5", timedelta(minutes=5)).behind  # four credits since: not news
    dropped = gap("1000", "800", hourly)  # 200 gone in an hour at 24 a day
    assert (dropped.stale, dropped.differs) == (False, True)
    assert dropped.describe().endswith("more went than the history's burn explains.")
    late = gap("1000", "997", timedelta(hours=3))  # missed landings, the usual burn
    assert (late.stale, late.differs) == (True, False)


def test_a_runway_from_the_live_balance_keeps_the_historys_burn() -> None:
    from datetime import datetime, timedelta, timezone

    from airflow_credits_provider.runway import forecast_from_totals

    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    runway = forecast_from_totals(
        balance=Decimal(955),
        at=at,
        first_at=at - timedelta(days=10),
        spent=Decimal(480),
        refilled=Decimal(0),
        refills=0,
        snapshots=241,
    )
    assert runway.burn_per_day == 48
    assert runway.starts_from == "last snapshot"
    live_at = at + timedelta(days=3)
    moved = runway.from_balance(Decimal("4800"), live_at)
    assert (moved.balance, moved.at, moved.burn_per_day, moved.days_left) == (
        Decimal(4800),
        live_at,
        Decimal(48),
        Decimal(100),
    )
    assert moved.runs_out_at == live_at + timedelta(days=100)
    assert moved.starts_from == "live balance"
    assert moved.to_dict()["starts_from"] == "live balance"
    assert (moved.spent, moved.snapshots, moved.history) == (runway.spent, runway.snapshots, runway.history)
    huge = runway.from_balance(Decimal("1e15"), live_at)  # past year 9999: ends there, no overflow
    assert huge.runs_out_at is not None
    assert huge.runs_out_at.year == 9999
