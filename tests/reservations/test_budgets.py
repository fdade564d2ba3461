"""Credit budgets on real databases (SQLite, PostgreSQL, MariaDB), with balances over real HTTP.

Periods, validation and files are checked without a database; enforcement, rollover, killed holders
and the 20-reserver races run against each database.
"""

from __future__ import annotations

import os
import random
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from airflow_credits_provider.budgets import period_bounds
from airflow_credits_provider.errors import (
    BudgetError,
    BudgetFileError,
    InvalidBudgetError,
    UnknownBudgetError,
)
from airflow_credits_provider.reservations import Budget, BudgetState, Holder
from airflow_credits_provider.reservations.budget_files import load_budgets
from tests.reservations.conftest import CREDIT_CONN, Clock, set_credits
from tests.reservations.processes import holding, racing
from tests.reservations.test_store import (
    COST,
    _spend,
    live_balance,
    store_for,
)
from tests.reservations.threads import race_threads

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_credits_provider.reservations import ReservationStore
    from airflow_credits_provider.sandbox import SandboxServer

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)  # type: ignore[misc]


# -- periods --------------------------------------------------------------------------------------
def test_periods_start_at_local_midnights_and_follow_dst() -> None:
    # 23:30 UTC on Dec 31 is already January in Berlin.
    start, end = period_bounds("month", "Europe/Berlin", utc(2026, 12, 31, 23, 30))
    assert (start, end) == (datetime(2027, 1, 1, tzinfo=BERLIN), datetime(2027, 2, 1, tzinfo=BERLIN))
    assert start.astimezone(timezone.utc) == utc(2026, 12, 31, 23)
    # The spring-forward day lasts 23 hours, the fall-back day 25.
    start, end = period_bounds("day", "Europe/Berlin", utc(2026, 3, 29, 12))
    assert end.astimezone(timezone.utc) - start.astimezone(timezone.utc) == timedelta(hours=23)
    start, end = period_bounds("day", "Europe/Berlin", utc(2026, 10, 25, 12))
    assert end.astimezone(timezone.utc) - start.astimezone(timezone.utc) == timedelta(hours=25)
    # Weeks start on Monday; a naive time is UTC.
    start, end = period_bounds("week", "UTC", datetime(2026, 12, 3, 12))
    assert (start.date().isoformat(), end.date().isoformat()) == ("2026-11-30", "2026-12-07")
    # Santiago skips midnight on its spring-forward day: the day starts at 01:00.
    start, _ = period_bounds("day", "America/Santiago", utc(2026, 9, 6, 12))
    assert (start.hour, start.day) == (1, 6)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"cap": "-5"}, "cap must not be negative, got '-5'"),
        ({"cap": "lots"}, "cap must be a number of credits, got 'lots'"),
        ({"cap": "NaN"}, "cap is"),
        ({"period": "year"}, "unknown period 'year': use one of day, week, month"),
        ({"timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"name": " growth"}, "leading or trailing spaces"),
        ({"account": ""}, "account must be a non-empty text"),
    ],
)
def test_bad_budgets_say_what_is_wrong(fields: dict[str, Any], problem: str) -> None:
    base = {"name": "growth", "account": "lm", "cap": "100", "period": "month", "timezone": "UTC"}
    with pytest.raises(InvalidBudgetError) as info:
        Budget.parse(**{**base, **fields})
    assert problem in str(info.value)


def test_the_refusal_message_says_what_is_left_when_it_renews_and_what_the_run_needs() -> None:
    budget = Budget.parse(name="growth", account="lm", cap="50000", timezone="Europe/Berlin")
    start, end = budget.period_bounds(utc(2026, 12, 10))
    state = BudgetState(budget, start, end, spent=Decimal(48800), held=Decimal(0))
    assert state.message(Decimal(2200)) == (
        "budget 'growth' has 1,200 of 50,000 credits left this month "
        "(renews 2027-01-01 00:00 Europe/Berlin); this run needs 2,200"
    )
    assert BudgetState.from_dict(state.to_dict()) == state
    assert state.only_renewal_helps(Decimal(2200))
    held = BudgetState(budget, start, end, spent=Decimal(40000), held=Decimal(8800), holders=2)
    assert not held.covers(Decimal(2200))
    assert not held.only_renewal_helps(Decimal(2200))  # the other runs may spend less than they hold


# -- files ----------------------------------------------------------------------------------------
GOOD_YAML = """\
budgets:
  - name: growth
    account: leadmagic_shared
    cap: 50000.10
    period: month
    timezone: Europe/Berlin
  - name: sales
    account: leadmagic_shared
    cap: 20000
"""


def test_a_budget_file_is_read_exactly_and_a_bad_one_names_its_line(tmp_path: Path) -> None:
    good = tmp_path / "budgets.yaml"
    good.write_text(GOOD_YAML)
    growth, sales = load_budgets(good)
    assert (growth.cap, growth.timezone, sales.period, sales.timezone) == (
        Decimal("50000.10"),
        "Europe/Berlin",
        "month",
        "UTC",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_YAML.replace("cap: 20000", "cap: -20000"))
    with pytest.raises(BudgetFileError, match=r"bad.yaml line 9: Budget 'sales': cap must not be negative"):
        load_budgets(bad)
    twice = tmp_path / "twice.yaml"
    twice.write_text(GOOD_YAML.replace("name: sales", "name: growth"))
    with pytest.raises(
        BudgetFileError, match=r"line 7: budget 'growth' is defined twice \(first on line 2\)"
    ):
        load_budgets(twice)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(GOOD_YAML.replace("    period: month", "    perod: month"))
    with pytest.raises(BudgetFileError, match=r"line 5: unknown field 'perod'"):
        load_budgets(unknown)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"name": "growth",\n   "account": "a" "cap": 5}\n]')
    with pytest.raises(BudgetFileError, match=r"broken.json line 3: not valid JSON"):
        load_budgets(broken)
    as_json = tmp_path / "budgets.json"
    as_json.write_text('[{"name": "g", "account": "a", "cap": 0.1, "period": "day"}]')
    (only,) = load_budgets(as_json)
    assert (only.cap, only.period) == (Decimal("0.1"), "day")


# -- on real databases ----------------------------------------------------------------------------
def define(store: ReservationStore, name: str, cap: int | str, **fields: Any) -> Budget:
    budget = Budget.parse(name=name, account=fields.pop("account", "acct"), cap=cap, **fields)
    store.budgets.set([budget])
    return budget


def test_budgets_are_defined_listed_changed_and_deleted(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    store = store_for(reservation_tables)
    define(store, "growth", 500, timezone="Europe/Berlin")
    define(store, "sales", "250.5", period="week")
    assert [(b.name, b.cap, b.period) for b in store.budgets.all()] == [
        ("growth", 500, "month"),
        ("sales", Decimal("250.5"), "week"),
    ]
    define(store, "growth", 600, timezone="Europe/Berlin")
    assert store.budgets.get("growth").cap == 600
    assert store.budgets.delete("sales") is True
    assert store.budgets.delete("sales") is False
    with pytest.raises(UnknownBudgetError, match=r"Unknown credit budget 'sales'. Defined budgets: 'growth'"):
        store.budgets.get("sales")


def test_a_budget_refuses_a_run_the_account_could_pay_and_errors_write_nothing(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    set_credits(leadmagic, 10_000)
    store = store_for(reservation_tables)
    define(store, "growth", 250)
    first = store.reserve(**_args("r1"), budget="growth")
    second = store.reserve(**_args("r2"), budget="growth")
    assert first.reservation is not None
    assert second.reservation is not None
    assert second.budget is not None
    assert second.budget.held == COST
    third = store.reserve(**_args("r3"), budget="growth")
    assert third.reservation is None
    assert third.free >= COST  # the account could pay
    assert third.budget is not None
    assert (third.budget.held, third.budget.remaining) == (2 * COST, 50)
    assert "budget 'growth' has 50 of 250 credits left this month" in third.budget.message(COST)
    # Another budget on the same account is not affected; no budget at all neither.
    define(store, "sales", 100)
    assert store.reserve(**_args("r4"), budget="sales").reservation is not None
    assert store.reserve(**_args("r5")).reservation is not None
    # Errors before anything is written: an unknown budget, one on another account.
    with pytest.raises(UnknownBudgetError, match=r"Defined budgets: 'growth', 'sales'"):
        store.reserve(**_args("r6"), budget="ops")
    define(store, "other", 1000, account="someone-else")
    with pytest.raises(
        BudgetError, match=r"draws on account 'someone-else', but this task reserves on account 'acct'"
    ):
        store.reserve(**_args("r7"), budget="other")
    assert sorted(r.holder.run_id for r in store.active("acct")) == ["r1", "r2", "r4", "r5"]


def test_a_partial_run_is_sized_to_the_budget_when_it_is_tighter_than_the_account(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    from airflow_credits_provider.partial import UnitPlan

    set_credits(leadmagic, 10_000)
    store = store_for(reservation_tables)
    define(store, "growth", 250)
    assert store.reserve(**_args("r1", amount=Decimal(200)), budget="growth").reservation is not None
    plan = UnitPlan(100, Decimal(1), margin_percent=Decimal(10), min_units=10)
    partial = store.reserve(
        **{**_args("r2"), "amount_for": lambda _b: plan.required(plan.units)},
        budget="growth",
        amount_within=plan.amount_within,
    )
    assert partial.reservation is not None
    assert partial.reservation.amount == Decimal("49.5")  # 45 units x 1.1 within the budget's 50
    assert partial.budget is not None
    assert partial.budget.remaining == 50
    too_little = store.reserve(
        **{**_args("r3"), "amount_for": lambda _b: plan.required(plan.units)},
        budget="growth",
        amount_within=plan.amount_within,
    )
    assert too_little.reservation is None  # 0.5 left: fewer than min_units
    assert too_little.amount == Decimal(11)  # what the smallest run would need


def _args(run_id: str, amount: Decimal = COST, ttl: float = 3600.0, account: str = "acct") -> dict[str, Any]:
    return {
        "account": account,
        "credit_conn_id": CREDIT_CONN,
        "holder": Holder("dag", run_id, "reserve"),
        "amount_for": lambda _balance: amount,
        "fetch_balance": live_balance,
        "ttl": timedelta(seconds=ttl),
    }


def test_spend_stops_counting_at_the_period_boundary_in_the_budgets_time_zone(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    """A daily Berlin budget across the night the clocks go forward (a 23-hour day)."""
    set_credits(leadmagic, 10_000)
    # 2026-03-28 23:30 in Berlin (CET, UTC+1) is 22:30 UTC; its day ends at 23:00 UTC.
    clock = Clock(datetime(2026, 3, 28, 22, 30))
    store = store_for(reservation_tables, clock=clock)
    define(store, "daily", 150, period="day", timezone="Europe/Berlin")
    assert store.reserve(**_args("old"), budget="daily").reservation is not None
    _spend(leadmagic, 90)
    (record,) = store.release(
        dag_id="dag", run_id="old", task_ids=["reserve"], balance_after=lambda _c: live_balance()
    )
    assert record.spent == 90
    clock.now = datetime(2026, 3, 28, 22, 59, 59)  # 23:59:59 in Berlin: the same day
    late = store.reserve(**_args("late"), budget="daily")
    assert late.reservation is None
    assert late.budget is not None
    assert late.budget.spent == 90
    clock.now = datetime(2026, 3, 28, 23, 0, 0)  # midnight in Berlin: a new day
    fresh = store.reserve(**_args("late"), budget="daily")
    assert fresh.reservation is not None
    assert fresh.budget is not None
    assert (fresh.budget.spent, fresh.budget.remaining) == (0, 150)
    # The new day is 23 hours long: it renews at 22:00 UTC on the 29th (midnight CEST).
    assert fresh.budget.period_end.astimezone(timezone.utc) == utc(2026, 3, 29, 22)
    store.release(dag_id="dag", run_id="late", task_ids=["reserve"], balance_after=lambda _c: live_balance())
    clock.now = datetime(2026, 3, 29, 21, 59)
    assert store.budget_state("daily").spent == 0  # released without spending: charged what it spent
    # A top-up during a run hides its spend: it is charged all it reserved.
    assert store.reserve(**_args("topped"), budget="daily").reservation is not None
    set_credits(leadmagic, 20_000)
    store.release(
        dag_id="dag", run_id="topped", task_ids=["reserve"], balance_after=lambda _c: live_balance()
    )
    assert store.budget_state("daily").spent == COST


def _hold_with_budget(tables: dict[str, str], env: dict[str, str], ready: Any) -> None:
    os.environ.update(env)
    store = store_for(tables)
    result = store.reserve(**_args("killed", ttl=6.0), budget="team")
    ready.put(result.reservation is not None)
    time.sleep(600)


def test_a_killed_holders_credits_count_against_its_budget_until_its_ttl(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    set_credits(leadmagic, 10_000)
    clock = Clock(datetime.now(timezone.utc).replace(tzinfo=None))
    store = store_for(reservation_tables, clock=clock)
    define(store, "team", 150)
    with holding(_hold_with_budget, reservation_tables) as holder:  # its own store, on the real clock
        assert holder.ready.get(timeout=120) is True
        holder.kill()
    (held,) = store.active("acct")
    clock.now = held.expires_at - timedelta(seconds=0.5)
    refused = store.reserve(**_args("other"), budget="team")
    assert refused.reservation is None
    assert refused.budget is not None
    assert refused.budget.held == COST
    clock.now = held.expires_at + timedelta(seconds=0.2)  # past the dead holder's TTL, without waiting
    taken = store.reserve(**_args("other"), budget="team")
    assert taken.reservation is not None
    assert taken.expired == (held.reservation_id,)
    assert taken.budget is not None
    assert (taken.budget.spent, taken.budget.held) == (0, 0)


# -- 20 reservers over 2 budgets on one account -----------------------------------------------------
RESERVERS = 20


def _round(rng: random.Random) -> tuple[int, int, int]:
    """Credits on the account, and the two caps, in reservations of COST (each may bind or not)."""
    return rng.randint(0, RESERVERS), rng.randint(0, 12), rng.randint(0, 12)


def _expected(k: int, cap_a: int, cap_b: int) -> tuple[int, int, int]:
    """``(total, a, b)`` winners when every reserver that fits gets in (``-1``: depends on the order)."""
    fits_a, fits_b = min(cap_a, RESERVERS // 2), min(cap_b, RESERVERS // 2)
    if k >= fits_a + fits_b:
        return fits_a + fits_b, fits_a, fits_b
    return k, -1, -1


def _set_round(
    store: ReservationStore, sandbox: SandboxServer, account: str, k: int, cap_a: int, cap_b: int
) -> None:
    set_credits(sandbox, k * int(COST) + 37)  # covers k, never k + 1
    define(store, "team-a", cap_a * int(COST) + 11, account=account)
    define(store, "team-b", cap_b * int(COST) + 11, account=account)


def assert_round(
    store: ReservationStore, account: str, won: list[tuple[int, bool]], expected: tuple[int, int, int]
) -> None:
    total, want_a, want_b = expected
    got_a = sum(ok for i, ok in won if i % 2 == 0)
    got_b = sum(ok for i, ok in won if i % 2 == 1)
    assert got_a + got_b == total
    if want_a >= 0:
        assert (got_a, got_b) == (want_a, want_b)
    active = store.active(account)
    assert len(active) == total
    for name in ("team-a", "team-b"):
        held = sum(r.amount for r in active if r.budget == name)
        assert held <= store.budgets.get(name).cap, name


def test_20_threads_over_two_budgets_never_exceed_a_cap_or_the_balance(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    store = store_for(reservation_tables)
    for seed in range(6):
        rng = random.Random(seed)
        k, cap_a, cap_b = _round(rng)
        account = f"acct-budget-{seed}"
        _set_round(store, leadmagic, account, k, cap_a, cap_b)
        results = race_threads(
            [random.uniform(0, 0.02) for _ in range(RESERVERS)],
            lambda: store_for(reservation_tables),
            lambda i, mine, account=account: mine.reserve(
                **_args(f"run-{i}", account=account), budget="team-a" if i % 2 == 0 else "team-b"
            ),
        )
        won = [(i, result.reservation is not None) for i, result in results]
        assert_round(store, account, won, _expected(k, cap_a, cap_b))


def _process_budget_reserver(
    index: int, rounds: int, tables: dict[str, str], env: dict[str, str], barrier: Any, results: Any
) -> None:
    os.environ.update(env)
    store = store_for(tables)
    for round_ in range(rounds):
        barrier.wait()
        time.sleep(random.Random(index * 100 + round_).uniform(0, 0.02))
        budget = "team-a" if index % 2 == 0 else "team-b"
        try:
            result = store.reserve(**_args(f"run-{index}", account=f"acct-budget-p{round_}"), budget=budget)
            results.put((round_, index, result.reservation is not None, None))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            results.put((round_, index, False, repr(exc)))


def test_20_processes_over_two_budgets_never_exceed_a_cap_or_the_balance(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    rounds = 3
    store = store_for(reservation_tables)
    with racing(_process_budget_reserver, RESERVERS, rounds, reservation_tables) as race:
        rng = random.Random(99)
        for round_ in range(rounds):
            k, cap_a, cap_b = _round(rng)
            _set_round(store, leadmagic, f"acct-budget-p{round_}", k, cap_a, cap_b)
            race.barrier.wait(timeout=180)
            got = [race.results.get(timeout=120) for _ in range(RESERVERS)]
            assert [e for *_, e in got if e] == []
            assert_round(
                store, f"acct-budget-p{round_}", [(i, ok) for _, i, ok, _ in got], _expected(k, cap_a, cap_b)
            )


def test_a_budgets_period_spend_is_summed_once_per_release_and_stays_exact(
    reservation_tables: dict[str, str], leadmagic: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spend kept on the account's row saves the sum until a release changes it, never longer."""
    import airflow_credits_provider.reservations.store as store_module

    sums: list[str] = []
    real = store_module.budget_spend

    def counted(cur: Any, usage: Any, budget: str, start: datetime, end: datetime) -> Decimal:
        sums.append(budget)
        return real(cur, usage, budget, start, end)

    monkeypatch.setattr(store_module, "budget_spend", counted)
    set_credits(leadmagic, 10_000)
    store = store_for(reservation_tables)
    define(store, "growth", 1000)
    for run in ("r1", "r2", "r3"):
        assert store.reserve(**_args(run), budget="growth").reservation is not None
    assert sums == ["growth"]  # summed by the first reservation, kept for the next two
    other = store_for(reservation_tables)  # another process: the kept sum is on the account's row
    assert other.reserve(**_args("r4"), budget="growth").budget.spent == 0  # type: ignore[union-attr]
    assert sums == ["growth"]
    _spend(leadmagic, 60)
    released = store.release(
        dag_id="dag", run_id="r1", task_ids=["reserve"], balance_after=lambda _c: live_balance()
    )
    assert [r.spent for r in released] == [60]  # r2-r4 overlapped: the drop, an upper bound
    assert sums == ["growth", "growth"]  # the release summed the new period spend once, and kept it
    for run in ("r5", "r6"):
        after = other.reserve(**_args(run), budget="growth")
        assert after.budget is not None
        assert after.budget.spent == 60  # the release's usage row counted: the kept sum is current
    assert sums == ["growth", "growth"]
    store.close()
    other.close()
