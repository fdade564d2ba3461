"""What the Credits pages read from SQL, on SQLite, PostgreSQL (psycopg 3 and 2) and MariaDB.

The history per day is summed in the database; its runway must be the runway operator's, which reads
every snapshot and sums in Python.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from airflow_credits_provider.operators.runway import read_snapshots
from airflow_credits_provider.runway import forecast
from airflow_credits_provider.sql.connections import sql_hook_for
from airflow_credits_provider.ui.queries import read_history, snapshots_table
from tests.transfers.conftest import WAREHOUSE, warehouse  # noqa: F401 (the parametrized fixture)
from tests.warehouse_support import seed_snapshots

NOW = datetime(2026, 12, 3, 15, 30, tzinfo=timezone.utc)


def _irregular_history(seed: int) -> list[tuple[datetime, Decimal]]:
    """20 days of snapshots at uneven intervals: spending in fractional credits, two refills, a gap."""
    rng = random.Random(seed)
    at, balance, rows = NOW - timedelta(days=20), Decimal("9000.25"), []
    while at < NOW:
        rows.append((at, balance))
        at += timedelta(minutes=rng.choice((17, 45, 60, 60, 90)))
        if rng.random() < 0.01:
            at += timedelta(hours=30)  # the DAG was paused
        if rng.random() < 0.006:
            balance += Decimal(5000)  # a top-up
        else:
            balance = max(Decimal(0), balance - Decimal(rng.randint(0, 4000)) / 100)
    return rows


def _history(table: str, rows: list[tuple[datetime, Decimal]], **kwargs: object) -> object:
    seed_snapshots(WAREHOUSE, table, "leadmagic", "acct", rows)
    target = snapshots_table(sql_hook_for(WAREHOUSE), table, None)
    return read_history(target, "acct", vendor="leadmagic", now=NOW, **kwargs)  # type: ignore[arg-type]


def test_the_page_runway_is_the_runway_operators(warehouse: str) -> None:  # noqa: F811
    rows = _irregular_history(7)
    history = _history(warehouse, rows, days=30, window=timedelta(days=14))
    expected = forecast(read_snapshots(WAREHOUSE, "acct", table=warehouse, window=timedelta(days=14)))
    runway = history.runway  # type: ignore[attr-defined]
    assert runway is not None
    assert runway.snapshots == expected.snapshots
    assert runway.refills == expected.refills
    assert runway.at == expected.at
    assert runway.history == expected.history
    for name in ("spent", "refilled", "burn_per_day", "days_left", "balance"):  # exact on every database
        assert getattr(runway, name) == getattr(expected, name), name


def test_each_day_holds_its_last_low_and_high_balance(warehouse: str) -> None:  # noqa: F811
    rows = _irregular_history(11)
    history = _history(warehouse, rows, days=30, window=timedelta(days=14))
    by_day: dict[str, list[Decimal]] = {}
    for at, available in rows:
        by_day.setdefault(at.date().isoformat(), []).append(available)
    days = history.days  # type: ignore[attr-defined]
    assert [d.day.isoformat() for d in days] == sorted(by_day)
    for day in days:
        values = by_day[day.day.isoformat()]
        assert (day.last, day.low, day.high, day.snapshots) == (
            values[-1],
            min(values),
            max(values),
            len(values),
        )
    assert sum(d.refills for d in days) == sum(1 for a, b in zip(rows, rows[1:], strict=False) if b[1] > a[1])


def test_spend_this_month_sums_drops_since_the_first(warehouse: str) -> None:  # noqa: F811
    rows = _irregular_history(3)
    history = _history(warehouse, rows, days=7, window=timedelta(days=14))
    month = NOW.replace(day=1, hour=0, minute=0)
    inside = [r for r in rows if r[0] >= month]
    drops = sum((a[1] - b[1] for a, b in zip(inside, inside[1:], strict=False) if b[1] < a[1]), Decimal(0))
    assert history.spent_this_month == drops  # type: ignore[attr-defined]  # exact, SQLite included
    assert len(history.days) <= 8  # type: ignore[attr-defined]  # the chart's days, not the month's


def test_no_snapshots_and_too_little_history_say_why(warehouse: str) -> None:  # noqa: F811
    empty = _history(warehouse, [], days=14, window=timedelta(days=14))
    assert empty.runway is None  # type: ignore[attr-defined]
    assert "No balance snapshots" in empty.runway_note  # type: ignore[attr-defined]
    short = _history(
        warehouse,
        [(NOW, Decimal(5)), (NOW + timedelta(minutes=5), Decimal(4))],
        days=14,
        window=timedelta(days=14),
    )
    assert short.runway is None  # type: ignore[attr-defined]
    assert "No forecast yet: 2 snapshot(s) spanning 5 minutes" in short.runway_note  # type: ignore[attr-defined]


def test_the_reserve_moves_the_runway(warehouse: str) -> None:  # noqa: F811
    rows = [(NOW - timedelta(hours=48 - h), Decimal(1000 - 10 * h)) for h in range(48)]
    to_zero = _history(warehouse, rows, days=14, window=timedelta(days=14)).runway  # type: ignore[attr-defined]
    target = snapshots_table(sql_hook_for(WAREHOUSE), warehouse, None)
    to_reserve = read_history(
        target, "acct", vendor=None, days=14, window=timedelta(days=14), now=NOW, reserve=Decimal(240)
    ).runway
    assert to_zero.burn_per_day == to_reserve.burn_per_day == 240
    assert to_zero.days_left - to_reserve.days_left == 1  # 240 credits at 240 a day


def test_sums_are_exact_where_floats_are_not(warehouse: str) -> None:  # noqa: F811
    """Drops of 0.07 and 0.01: SQLite's floating-point SUM made 85.35999999999989 of such amounts."""
    start = NOW.replace(day=1, hour=0, minute=0) + timedelta(minutes=5)
    rows, balance = [], Decimal("15425.5")
    for i in range(700):
        rows.append((start + timedelta(minutes=30 * i), balance))
        balance -= Decimal("0.07") if i % 3 else Decimal("0.01")
    history = _history(warehouse, rows, days=30, window=timedelta(days=14))
    drops = rows[0][1] - rows[-1][1]
    assert float(drops) != sum(float(a[1]) - float(b[1]) for a, b in zip(rows, rows[1:], strict=False))
    assert history.spent_this_month == drops  # type: ignore[attr-defined]
    assert sum(d.spent for d in history.days) == drops  # type: ignore[attr-defined]
    for day in history.days:  # type: ignore[attr-defined]
        assert -day.spent.normalize().as_tuple().exponent <= 2, day  # no binary noise in any figure


def test_amounts_too_long_for_integer_units_keep_15_digits(warehouse: str) -> None:  # noqa: F811
    rows = [(NOW - timedelta(hours=3 - h), Decimal("123456789012.123456") - h) for h in range(3)]
    history = _history(warehouse, rows, days=14, window=timedelta(days=14))
    last = rows[-1][1]
    if sql_hook_for(WAREHOUSE).dialect_name == "sqlite":  # 18 digits: summed as floats, 15 kept
        last = Decimal(format(float(last), ".15g"))
    assert history.days[-1].last == last  # type: ignore[attr-defined]
    assert history.days[-1].spent == 2  # type: ignore[attr-defined]


def test_spend_this_month_needs_two_snapshots_this_month(warehouse: str) -> None:  # noqa: F811
    month = NOW.replace(day=1, hour=0, minute=0)
    one = _history(
        warehouse, [(month + timedelta(hours=2), Decimal(100))], days=14, window=timedelta(days=14)
    )
    assert one.spent_this_month is None  # type: ignore[attr-defined]  # not measurable yet, not 0
    two = _history(
        warehouse,
        [(month + timedelta(hours=2), Decimal(100)), (month + timedelta(hours=3), Decimal(100))],
        days=14,
        window=timedelta(days=14),
    )
    assert two.spent_this_month == 0  # type: ignore[attr-defined]  # measured: nothing spent
