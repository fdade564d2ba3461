"""ReservationStore on real databases, with the balance read over real HTTP from the sandbox."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_credits_provider.errors import CreditConnectionConfigError, ReservationLockTimeout
from airflow_credits_provider.reservations import Holder, ReservationStore
from tests.reservations.conftest import CREDIT_CONN, RESERVATION_DB, Clock, set_credits
from tests.reservations.processes import holding, racing
from tests.reservations.threads import race_threads

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.sandbox import SandboxServer

pytestmark = pytest.mark.integration

COST = Decimal(100)
RESERVERS = 20


def store_for(tables: dict[str, str], **options: Any) -> ReservationStore:
    from airflow_credits_provider.sql.connections import sql_hook_for

    return ReservationStore(sql_hook_for(RESERVATION_DB), **tables, **options)


def live_balance() -> CreditBalance:
    from airflow_credits_provider.hooks.resolve import get_credit_hook

    return get_credit_hook(CREDIT_CONN).get_balance()


def reserve(
    store: ReservationStore,
    account: str,
    holder: Holder,
    amount: Decimal = COST,
    max_age: float = 0.0,
    ttl: float = 3600.0,
) -> Any:
    from datetime import timedelta

    return store.reserve(
        account=account,
        credit_conn_id=CREDIT_CONN,
        holder=holder,
        amount_for=lambda _balance: amount,
        fetch_balance=live_balance,
        ttl=timedelta(seconds=ttl),
        max_age=max_age,
    )


def active_rows(store: ReservationStore, account: str) -> list[tuple[Any, ...]]:
    table = store.reservations
    return list(
        store.hook.get_records(
            f"SELECT reservation_id, amount FROM {table.qualified} WHERE account = {table.param()} "
            f"AND status = {table.param()}",
            parameters=(account, "active"),
        )
    )


def credit_requests(sandbox: SandboxServer) -> int:
    return len(sandbox.state.requests_for("leadmagic", "/v1/credits"))


# -- exactly k of 20 ---------------------------------------------------------------------------------
def _race_threads(
    tables: dict[str, str], account: str, run_id: str, max_age: float, jitters: list[float]
) -> int:
    """Start one reserver thread per jitter at a barrier; return how many got a reservation."""
    won = race_threads(
        jitters,
        lambda: store_for(tables),
        lambda i, store: reserve(store, account, Holder("dag", run_id, "reserve", i), max_age=max_age),
    )
    return sum(result.reservation is not None for _, result in won)


def test_exactly_k_of_20_threads_reserve(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    """20 threads race for a balance covering k of them: exactly k win, in every seeded round."""
    for seed in range(8):
        rng = random.Random(seed)
        k = rng.randint(0, RESERVERS)
        set_credits(leadmagic, k * COST + rng.randint(0, int(COST) - 1))  # covers k, never k + 1
        account, max_age = f"acct-threads-{seed}", rng.choice([0.0, 30.0])
        jitters = [rng.uniform(0, 0.02) for _ in range(RESERVERS)]
        won = _race_threads(reservation_tables, account, f"run-{seed}", max_age, jitters)
        assert won == k, (seed, k, max_age, won)
        rows = active_rows(store_for(reservation_tables), account)
        assert len(rows) == k
        assert sum(Decimal(str(amount)) for _, amount in rows) == k * COST


def _process_reserver(
    index: int, rounds: int, tables: dict[str, str], env: dict[str, str], barrier: Any, results: Any
) -> None:
    """A separate process: in each round, wait for the start, reserve once, report."""
    os.environ.update(env)  # the fork server started with an earlier test's connections
    store = store_for(tables)
    rng = random.Random(index)
    for round_ in range(rounds):
        barrier.wait()
        time.sleep(rng.uniform(0, 0.02))
        try:
            result = reserve(
                store, f"acct-processes-{round_}", Holder("dag", f"run-{round_}", "reserve", index)
            )
            results.put((round_, index, result.reservation is not None, None))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            results.put((round_, index, False, repr(exc)))


@pytest.mark.parametrize("reservation_tables", ["sqlite", "postgres"], indirect=True)
def test_exactly_k_of_20_processes_reserve(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    """The same race between 20 separate processes (each its own interpreter and connections)."""
    rounds = 4
    with racing(_process_reserver, RESERVERS, rounds, reservation_tables) as race:
        rng = random.Random(1234)
        for round_ in range(rounds):
            k = rng.randint(0, RESERVERS)
            set_credits(leadmagic, k * COST + rng.randint(0, int(COST) - 1))
            race.barrier.wait(timeout=180)  # every process has started and imported what it needs
            got = [race.results.get(timeout=120) for _ in range(RESERVERS)]
            assert [e for *_, e in got if e] == []
            assert {r for r, *_ in got} == {round_}
            assert sum(won for _, _, won, _ in got) == k, (round_, k)
            assert len(active_rows(store_for(reservation_tables), f"acct-processes-{round_}")) == k


# -- a killed holder ---------------------------------------------------------------------------------
def _hold_then_sleep(tables: dict[str, str], ttl: float, env: dict[str, str], ready: Any) -> None:
    os.environ.update(env)
    store = store_for(tables)
    result = reserve(store, "acct-killed", Holder("dag", "run-killed", "reserve"), ttl=ttl)
    ready.put(result.reservation is not None)
    time.sleep(600)


def test_killed_holder_returns_its_credits_at_ttl_and_not_before(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    from datetime import datetime, timedelta, timezone

    set_credits(leadmagic, 150)  # one reservation of 100 at a time
    with holding(_hold_then_sleep, reservation_tables, 6.0) as holder:  # its store is on the real clock
        assert holder.ready.get(timeout=120) is True
        holder.kill()
    clock = Clock(datetime.now(timezone.utc).replace(tzinfo=None))
    store = store_for(reservation_tables, clock=clock)
    (held,) = store.active("acct-killed")
    other = Holder("dag", "run-other", "reserve")
    assert reserve(store, "acct-killed", other).reservation is None  # still held by the dead run
    clock.now = held.expires_at - timedelta(seconds=0.5)
    early = reserve(store, "acct-killed", other)
    assert early.reservation is None, "credits came back before the TTL"
    assert early.held_by_others == COST
    clock.now = held.expires_at + timedelta(seconds=0.2)
    late = reserve(store, "acct-killed", other)
    assert late.reservation is not None
    assert late.expired == (held.reservation_id,)
    usage = store.hook.get_records(
        f"SELECT outcome, balance_after, spent FROM {store.usage.qualified} WHERE run_id = 'run-killed'"
    )
    assert [tuple(row) for row in usage] == [("expired", None, None)]


# -- semantics ---------------------------------------------------------------------------------------
def test_retry_reuses_and_mapped_instances_each_hold_their_own(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    set_credits(leadmagic, 1000)
    store = store_for(reservation_tables)
    first = reserve(store, "acct", Holder("dag", "run", "reserve"), amount=Decimal(300))
    retry = reserve(store, "acct", Holder("dag", "run", "reserve"), amount=Decimal(400))
    assert first.reservation is not None
    assert not first.reused
    assert retry.reused
    assert retry.held_by_others == 0  # its own reservation is not counted against it
    assert retry.reservation.amount == 400
    assert retry.reservation.reserved_at == first.reservation.reserved_at
    mapped = [
        reserve(store, "acct", Holder("dag", "run", "mapped", i), amount=Decimal(200)) for i in range(3)
    ]
    assert [m.reservation is not None for m in mapped] == [True, True, True]
    assert [m.held_by_others for m in mapped] == [400, 600, 800]
    assert reserve(store, "acct", Holder("dag", "run", "mapped", 3), amount=Decimal(1)).reservation is None
    assert len(active_rows(store, "acct")) == 4

    only_one = store.release(dag_id="dag", run_id="run", task_ids=["mapped"], map_index=1)
    assert [r.reservation.holder.map_index for r in only_one] == [1]
    rest = store.release(dag_id="dag", run_id="run", task_ids=["mapped", "reserve"])
    assert sorted((r.reservation.holder.task_id, r.reservation.holder.map_index) for r in rest) == [
        ("mapped", 0),
        ("mapped", 2),
        ("reserve", -1),
    ]
    assert store.release(dag_id="dag", run_id="run", task_ids=["mapped", "reserve"]) == []  # idempotent
    assert active_rows(store, "acct") == []


def _spend(sandbox: SandboxServer, credits: int) -> None:
    """Spend credits the way a DAG does: LeadMagic's email finder, 1 credit per found email."""
    conn = sandbox.connection("leadmagic")
    with httpx.Client(base_url=conn["host"], headers={"X-API-Key": conn["password"]}) as client:
        for i in range(credits):
            response = client.post(
                "/v1/people/email-finder", json={"first_name": "a", "domain": f"d{i}.example"}
            )
            response.raise_for_status()


def test_usage_is_exact_alone_and_an_upper_bound_when_runs_overlap(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    set_credits(leadmagic, 1000)
    store = store_for(reservation_tables)
    alone = Holder("dag", "run-alone", "reserve")
    assert reserve(store, "acct", alone, amount=Decimal(50)).reservation is not None
    _spend(leadmagic, 7)
    (record,) = store.release(
        dag_id="dag", run_id="run-alone", task_ids=["reserve"], balance_after=lambda _c: live_balance()
    )
    assert (record.balance_after, record.spent, record.exact, record.overlapping) == (993, 7, True, 0)

    a, b = Holder("dag", "run-a", "reserve"), Holder("dag", "run-b", "reserve")
    assert reserve(store, "acct", a, amount=Decimal(5)).reservation is not None
    assert reserve(store, "acct", b, amount=Decimal(50)).reservation is not None
    _spend(leadmagic, 10)  # together: a and b overlap, the drop is theirs together
    (rec_a,) = store.release(
        dag_id="dag", run_id="run-a", task_ids=["reserve"], balance_after=lambda _c: live_balance()
    )
    assert (rec_a.spent, rec_a.exact, rec_a.overlapping) == (5, False, 1)  # capped at its reservation
    usage = store.hook.get_records(
        f"SELECT run_id, reserved, balance_before, balance_after, spent, exact, overlapping "
        f"FROM {store.usage.qualified} ORDER BY released_at"
    )
    assert [(r[0], Decimal(str(r[4])), int(r[5])) for r in usage] == [("run-alone", 7, 1), ("run-a", 5, 0)]


def test_a_balance_from_before_a_release_is_never_reused(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    """Shared balances save requests, but one fetched before a run released may miss its spending."""
    set_credits(leadmagic, 1000)
    store = store_for(reservation_tables)
    before = credit_requests(leadmagic)
    first = reserve(store, "acct", Holder("dag", "r1", "reserve"), amount=Decimal(800), max_age=300)
    second = reserve(store, "acct", Holder("dag", "r2", "reserve"), amount=Decimal(100), max_age=300)
    assert (first.fetched, second.fetched) == (True, False)  # the second used the shared balance
    assert credit_requests(leadmagic) == before + 1
    _spend(leadmagic, 600)  # r1 spends, then releases without telling the balance after
    store.release(dag_id="dag", run_id="r1", task_ids=["reserve"])
    third = reserve(store, "acct", Holder("dag", "r3", "reserve"), amount=Decimal(350), max_age=300)
    assert third.fetched  # the shared 1000 predates the release: fetched again
    assert third.balance.available == 400
    assert third.reservation is None  # 400 - 100 held by r2 < 350


def test_a_released_balance_after_is_shared_with_waiters(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    set_credits(leadmagic, 1000)
    store = store_for(reservation_tables)
    reserve(store, "acct", Holder("dag", "r1", "reserve"), amount=Decimal(800), max_age=300)
    _spend(leadmagic, 3)
    store.release(dag_id="dag", run_id="r1", task_ids=["reserve"], balance_after=lambda _c: live_balance())
    before = credit_requests(leadmagic)
    waiter = reserve(store, "acct", Holder("dag", "r2", "reserve"), amount=Decimal(900), max_age=300)
    assert not waiter.fetched
    assert credit_requests(leadmagic) == before
    assert waiter.balance.available == 997
    assert waiter.reservation is not None


def test_a_held_lock_times_out_with_a_clear_error(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    set_credits(leadmagic, 1000)
    store = store_for(reservation_tables, lock_timeout=1.0)
    reserve(store, "acct", Holder("dag", "r0", "reserve"))  # creates the account's row
    release = threading.Event()
    holding = threading.Event()

    def hold() -> None:
        with store._locked("acct"):
            holding.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holding.wait(30)
        start = time.monotonic()
        with pytest.raises(ReservationLockTimeout, match=r"lock on credit account 'acct' for more than 1s"):
            reserve(store, "acct", Holder("dag", "r1", "reserve"))
        assert time.monotonic() - start < 20
    finally:
        release.set()
        t.join()
    assert reserve(store, "acct", Holder("dag", "r1", "reserve")).reservation is not None


class SQLiteWriter:
    """Another program's connection holding a SQLite file's write lock (``BEGIN IMMEDIATE``).

    It lets go after ``seconds``, or with ``seconds=None`` when the ``with`` block ends.
    """

    def __init__(self, path: Path, seconds: float | None = None) -> None:
        self.holding = threading.Event()
        self._release = threading.Event()
        self.released_at = 0.0
        self._thread = threading.Thread(target=self._hold, args=(path, seconds))

    def _hold(self, path: Path, seconds: float | None) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.holding.set()
            self._release.wait(seconds if seconds is not None else 60)
            self.released_at = time.monotonic()
            conn.execute("COMMIT")
        finally:
            conn.close()

    def __enter__(self) -> SQLiteWriter:
        self._thread.start()
        assert self.holding.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._thread.join()


@pytest.fixture
def sqlite_reservations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    from tests.warehouse_support import sqlite_connection

    path = tmp_path / "reservations.db"
    sqlite_connection(monkeypatch, RESERVATION_DB, path)
    return path


def test_a_sqlite_reserver_waits_out_a_writer_longer_than_sqlites_own_five_seconds(
    sqlite_reservations: Path, leadmagic: SandboxServer
) -> None:
    # Python's sqlite3 gives up after 5 s: CI's 20-process race on a busy machine saw a bare
    # "database is locked" from the statements before the reservation's transaction (the tables, the
    # account's row). Every statement of the store waits up to lock_timeout.
    set_credits(leadmagic, 1000)
    store = store_for({}, lock_timeout=30)
    store.create()
    with SQLiteWriter(sqlite_reservations, seconds=6) as writer:  # longer than sqlite3's 5 s: the point
        result = reserve(store, "acct-new", Holder("dag", "r1", "reserve"))
        reserved_at = time.monotonic()
    assert result.reservation is not None
    assert reserved_at > writer.released_at > 0


def test_a_sqlite_writer_longer_than_lock_timeout_is_a_lock_timeout_before_the_transaction_too(
    sqlite_reservations: Path, leadmagic: SandboxServer
) -> None:
    set_credits(leadmagic, 1000)
    store = store_for({}, lock_timeout=1)
    store.create()
    with SQLiteWriter(sqlite_reservations):  # held until the reserver has given up
        # a new account: its row is created before the locking transaction, and that waits too
        with pytest.raises(
            ReservationLockTimeout, match=r"lock on credit account 'acct-new' for more than 1s"
        ):
            reserve(store, "acct-new", Holder("dag", "r1", "reserve"))
    assert reserve(store, "acct-new", Holder("dag", "r1", "reserve")).reservation is not None


def test_a_lock_wait_while_creating_the_tables_is_a_lock_timeout_once(
    sqlite_reservations: Path, leadmagic: SandboxServer
) -> None:
    # A new user's first reservations met another writer before the tables existed: a bare
    # "database is locked" after the DDL's five retries, each as long as lock_timeout.
    set_credits(leadmagic, 1000)
    store = store_for({}, lock_timeout=1)
    # Released between one lock_timeout and five: the old retries got through, one wait does not.
    with SQLiteWriter(sqlite_reservations, seconds=3):
        with pytest.raises(ReservationLockTimeout) as raised:
            reserve(store, "acct-new", Holder("dag", "r1", "reserve"))
    assert str(raised.value) == (
        "Another reserver held the lock on the reservation database (creating its tables) for more than "
        "1s; nothing was changed. Try again later (the task's retries do, when it has any), or raise "
        "lock_timeout."
    )
    assert raised.value.__suppress_context__  # one clear error, not the driver's traceback before it
    assert reserve(store, "acct-new", Holder("dag", "r1", "reserve")).reservation is not None


def test_unsupported_databases_and_bad_names_fail_before_any_io() -> None:
    class _Hook:
        dialect_name = "mssql"

    with pytest.raises(CreditConnectionConfigError, match="PostgreSQL, MySQL/MariaDB or SQLite"):
        ReservationStore(_Hook())
    with pytest.raises(CreditConnectionConfigError, match="not a plain SQL identifier"):
        ReservationStore(type("H", (), {"dialect_name": "sqlite"})(), table="x; DROP TABLE y")


def test_waiters_share_one_vendor_request(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    """Ten reservers that do not fit, retrying within max_age, make one balance request between them."""
    set_credits(leadmagic, 50)
    before = credit_requests(leadmagic)
    stores = [store_for(reservation_tables) for _ in range(10)]  # as ten worker processes would have
    for _attempt in range(3):
        for i, store in enumerate(stores):
            result = reserve(store, "acct", Holder("dag", f"waiter-{i}", "reserve"), max_age=300)
            assert result.reservation is None
            assert result.balance.available == 50
    assert credit_requests(leadmagic) == before + 1


def test_a_shared_balance_grants_but_never_refuses_a_one_shot_reservation(
    reservation_tables: dict[str, str], leadmagic: SandboxServer
) -> None:
    """A top-up since the shared balance: a waiter may keep the old one; the operator's decision may not."""
    from datetime import timedelta

    store = store_for(reservation_tables)
    set_credits(leadmagic, 50)
    refused = reserve(store, "acct-topup", Holder("dag", "run-1", "reserve"), max_age=30)
    assert refused.reservation is None
    assert refused.fetched  # the first: fetched, and shared under the lock
    requests = len(leadmagic.state.requests_for("leadmagic", "/v1/credits"))
    set_credits(leadmagic, 500)  # the top-up; no release since, so the shared 50 is still current

    def again(confirm: bool) -> Any:
        return store.reserve(
            account="acct-topup",
            credit_conn_id=CREDIT_CONN,
            holder=Holder("dag", "run-2", "reserve"),
            amount_for=lambda _b: COST,
            fetch_balance=live_balance,
            ttl=timedelta(hours=1),
            max_age=30,
            confirm_refusal=confirm,
        )

    waiter = again(False)  # a sensor's poke: the shared balance says no; it tries again later
    assert waiter.reservation is None
    assert not waiter.fetched
    assert len(leadmagic.state.requests_for("leadmagic", "/v1/credits")) == requests
    decided = again(True)  # the operator: no refusal without asking the vendor
    assert decided.reservation is not None
    assert decided.fetched
    assert decided.balance.available == 500
    assert len(leadmagic.state.requests_for("leadmagic", "/v1/credits")) == requests + 1
    granted = again(True)  # now shared at 500, and enough: no vendor request for a yes
    assert granted.reservation is not None
    assert not granted.fetched
    store.close()
