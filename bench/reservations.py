"""
Reservations per second and their latency with 8 concurrent reservers, on PostgreSQL, MariaDB and SQLite.

Each reserver is its own process (as Airflow workers are), reserving 1 credit for a new holder in a loop
(``max_age=30``, the operator's default: the balance fetched from the sandbox's LeadMagic under the
lock is shared for 30 s). Printed per database, medians of interleaved runs:

- ``raw loop``: the least a correct reservation must do, by the same 8 processes on their own kept
  connection with the database's driver: BEGIN; lock the account's row; sum its active holds; insert
  the hold; COMMIT. The baseline: the other rows' rates are printed as a ratio of it.
- ``reserve``: ``ReservationStore.reserve`` on one account;
- ``raw loop, 8 accounts`` and ``reserve, 8 accounts``: each reserver on an account of its own, so no
  reserver waits for another's lock (limited by the CPU, not by a lock);
- ``reserve + budget``: each reservation also checked against a budget on the account (its spend this
  period summed from ``credit_usage``, which holds 2,000 ended reservations of it);
- ``reserve + budget + 10 alert rules``: the same, with ten alert rules watching it (five budget rules on
  the budget, five balance rules on the account, none crossed).

Then where one reservation's time goes (``reserve``, one account): each statement it sends (as ms per
reservation, execution and fetch), the connection set-up (kept between reservations: opened once per
process), and the rest (Python between statements, waiting for the CPU).

Usage: python bench/reservations.py [--seconds 5] [--repeat 3] [--reservers 8] [--databases ...]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sandbox_process import sandbox_process  # noqa: E402

DB_CONN = "bench_reservations"
BUDGET = "bench-budget"
CONTENDERS = (  # (kind, label, accounts)
    ("raw", "raw loop (the baseline)", 1),
    ("reserve", "reserve", 1),
    ("raw", "raw loop, 8 accounts", 8),
    ("reserve", "reserve, 8 accounts", 8),
    ("budget", "reserve + budget", 1),
    ("alerts", "reserve + budget + 10 alert rules", 1),
)


class _Timed:
    """Wraps a DB-API connection: the time each statement (and its fetch) takes, by statement shape."""

    def __init__(self, conn: Any, times: dict[str, float], table: str) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_times", times)
        object.__setattr__(self, "_table", table)

    def cursor(self, *args: Any) -> _TimedCursor:
        return _TimedCursor(self._conn.cursor(*args), self._times, self._table)

    def commit(self) -> None:
        t0 = time.perf_counter()
        self._conn.commit()
        self._times["COMMIT"] += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)


class _TimedCursor:
    def __init__(self, cur: Any, times: dict[str, float], table: str) -> None:
        self._cur, self._times, self._table, self._label = cur, times, table, ""

    def execute(self, sql: str, params: Any = None) -> Any:
        self._label = _shape(sql, self._table)
        t0 = time.perf_counter()
        result = self._cur.execute(sql) if params is None else self._cur.execute(sql, params)
        self._times[self._label] += time.perf_counter() - t0
        return result

    def fetchone(self) -> Any:
        t0 = time.perf_counter()
        row = self._cur.fetchone()
        self._times[self._label] += time.perf_counter() - t0
        return row

    def fetchall(self) -> Any:
        t0 = time.perf_counter()
        rows = self._cur.fetchall()
        self._times[self._label] += time.perf_counter() - t0
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


def _shape(sql: str, table: str) -> str:
    """A statement's verb and table, the bench's table name shortened (``SELECT .. FROM t_accounts``)."""
    text = " ".join(sql.split()).replace(table, "t")
    verb = text.split(" ", 1)[0].upper()
    if verb in ("BEGIN", "COMMIT", "SET", "SAVEPOINT", "RELEASE", "ROLLBACK"):
        return text[:60]
    found = re.search(r"(?:FROM|INTO|UPDATE)\s+[`\"]?(t\w*)", text)
    what = found.group(1) if found else "?"
    tail = " FOR UPDATE" if "FOR UPDATE" in text else (" SUM" if "SUM(" in text else "")
    return f"{verb} {what}{tail}"


def _raw_worker(
    dialect: str, conn_json: str, table: str, account: str, seconds: float, start: Any
) -> list[float]:
    """The baseline: BEGIN; lock the account row; sum active holds; insert; COMMIT."""
    info = json.loads(conn_json)
    res, acc = table, f"{table}_accounts"
    if dialect == "postgresql":
        import psycopg

        conn: Any = psycopg.connect(
            host=info["host"], port=info.get("port", 5432), user=info["login"], dbname=info["schema"]
        )
        p = "%s"
    elif dialect == "mysql":
        import MySQLdb

        conn = MySQLdb.connect(
            host=info["host"], port=info.get("port", 3306), user=info["login"], database=info["schema"]
        )
        conn.cursor().execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        p = "%s"
    else:
        import sqlite3

        conn = sqlite3.connect(info["host"], timeout=60, isolation_level=None)
        p = "?"
    lock = "" if dialect == "sqlite" else " FOR UPDATE"
    insert = (
        f"INSERT INTO {res} (reservation_id, account, credit_conn_id, status, amount, dag_id, run_id, "
        f"task_id, map_index, balance_before, reserved_at, expires_at) "
        f"VALUES ({', '.join([p] * 12)})"
    )
    latencies = []
    start.wait()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        cur = conn.cursor()
        if dialect != "mysql":
            cur.execute("BEGIN IMMEDIATE" if dialect == "sqlite" else "BEGIN")
        cur.execute(f"SELECT release_seq FROM {acc} WHERE account = {p}{lock}", (account,))
        cur.fetchone()
        cur.execute(
            f"SELECT SUM(amount) FROM {res} WHERE account = {p} AND status = {p}", (account, "active")
        )
        cur.fetchone()
        now = "2026-01-01 00:00:00.000000"
        cur.execute(
            insert,
            (
                uuid.uuid4().hex,
                account,
                "c",
                "active",
                "1",
                "d",
                "r",
                "t",
                -1,
                "1000",
                now,
                "2099-01-01 00:00:00",
            ),
        )
        if dialect == "mysql":
            conn.commit()
        else:
            cur.execute("COMMIT")
        latencies.append(time.perf_counter() - t0)
    conn.close()
    return latencies


def _worker(
    kind: str,
    index: int,
    accounts: int,
    seconds: float,
    env: dict[str, str],
    start: Any,
    out: Any,
) -> None:
    os.environ.update(env)
    from datetime import timedelta

    from airflow_credits_provider.sql.connections import sql_hook_for

    table = env["BENCH_TABLE"]
    account = f"bench-{index % accounts}"
    hook = sql_hook_for(DB_CONN)
    if kind == "raw":
        out.put(
            (
                _raw_worker(
                    hook.dialect_name, env[f"AIRFLOW_CONN_{DB_CONN.upper()}"], table, account, seconds, start
                ),
                {},
                0.0,
            )
        )
        return
    from airflow_credits_provider.hooks.resolve import get_credit_hook
    from airflow_credits_provider.reservations import Holder, ReservationStore

    credit = get_credit_hook("leadmagic_default")
    times: dict[str, float] = defaultdict(float)
    opened = [0.0]
    open_conn = hook.get_conn

    def timed_conn() -> Any:
        t0 = time.perf_counter()
        conn = open_conn()
        opened[0] += time.perf_counter() - t0
        return _Timed(conn, times, table)

    hook.get_conn = timed_conn
    store = ReservationStore(hook, table=table, usage_table=env["BENCH_USAGE"])
    store.create()
    budget = BUDGET if kind in ("budget", "alerts") else None  # defined by seed()
    latencies: list[float] = []
    start.wait()
    times.clear()
    opened[0] = 0.0
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        result = store.reserve(
            account=account,
            credit_conn_id="leadmagic_default",
            holder=Holder("bench", f"run-{table}-{index}", "reserve", n),
            amount_for=lambda _b: Decimal(1),
            fetch_balance=credit.get_balance,
            ttl=timedelta(hours=1),
            max_age=30.0,
            budget=budget,
        )
        assert result.reservation is not None
        latencies.append(time.perf_counter() - t0)
        n += 1
    store.close()
    out.put((latencies, dict(times), opened[0]))


def run_once(
    kind: str, accounts: int, reservers: int, seconds: float, table: str
) -> tuple[tuple[float, float, float], dict[str, float], float]:
    """((operations per second, p50 ms, p99 ms), seconds per statement shape, seconds opening connections)."""
    ctx = multiprocessing.get_context("forkserver")
    env = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW")}
    env |= {"BENCH_TABLE": table, "BENCH_USAGE": f"{table}_usage"}
    start, out = ctx.Barrier(reservers + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(kind, i, accounts, seconds, env, start, out))
        for i in range(reservers)
    ]
    for p in procs:
        p.start()
    start.wait(timeout=300)
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for r in results for x in r[0])
    times: dict[str, float] = defaultdict(float)
    for r in results:
        for shape, spent in r[1].items():
            times[shape] += spent
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    stats = (len(latencies) / seconds, statistics.median(latencies) * 1000, p99 * 1000)
    return (
        stats,
        {k: v / len(latencies) for k, v in times.items()},
        sum(r[2] for r in results) / len(latencies),
    )


def seed(table: str, kind: str, rows: int = 2000) -> None:
    """The tables, the accounts' rows, and for a budget: the budget and its 2,000 ended reservations."""
    from datetime import datetime, timezone

    from airflow_credits_provider.alerts import AlertRule
    from airflow_credits_provider.reservations import Budget, ReservationStore
    from airflow_credits_provider.sql.connections import sql_hook_for

    store = ReservationStore(sql_hook_for(DB_CONN), table=table, usage_table=f"{table}_usage")
    store.create()
    for i in range(8):
        store._ensure_account(f"bench-{i}")
    store.close()
    if kind not in ("budget", "alerts"):
        return
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    one, big = Decimal(1), Decimal(10**12)
    usage = [
        (f"seed-{i}", now, "bench", f"seed-{i}", "reserve", -1, "leadmagic_default", "bench-0", "released")
        + (one, big, big - one, one, 1, 0, now, BUDGET)
        for i in range(rows)
    ]
    store.usage.upsert(usage)
    store.budgets.set([Budget.parse(name=BUDGET, account="bench-0", cap=10**15)])
    if kind == "alerts":
        notify = {"notifier": "smtp", "notifier_args": {"to": ["bench@example.com"]}}
        rules = [
            AlertRule.parse(name=f"b{i}", kind="budget", subject=BUDGET, thresholds=[50, 80, 100], **notify)
            for i in range(5)
        ] + [
            AlertRule.parse(name=f"l{i}", kind="balance", subject="bench-0", thresholds=[i + 1], **notify)
            for i in range(5)
        ]
        store.alert_rules.set(rules)


def drop(table: str) -> None:
    from airflow_credits_provider.sql.connections import sql_hook_for

    hook = sql_hook_for(DB_CONN)
    for suffix in ("", "_accounts", "_budgets", "_usage", "_alert_rules", "_alert_claims"):
        hook.run(f"DROP TABLE IF EXISTS {table}{suffix}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reservers", type=int, default=8)
    parser.add_argument("--databases", nargs="*", default=["postgresql", "mysql", "sqlite"])
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    os.environ.setdefault("AIRFLOW_HOME", tmp)
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    from tests.mariadb import conn_json as mysql_conn_json
    from tests.warehouse_support import postgres_conn_json

    pg = os.environ.get("CREDITS_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
    my = os.environ.get("CREDITS_TEST_MYSQL_URI", "mysql://root@127.0.0.1:3306/test")
    known = {
        "postgresql": postgres_conn_json(pg),
        "mysql": mysql_conn_json(my),
        "sqlite": json.dumps({"conn_type": "sqlite", "host": f"{tmp}/reservations.db"}),
    }
    databases = {db: known[db] for db in args.databases}
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    breakdowns: dict[str, list[tuple[dict[str, float], float]]] = {}
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["airflow_credits_provider.sql.connections", "airflow_credits_provider.hooks.leadmagic"]
    )
    with sandbox_process():
        import httpx

        url = json.loads(os.environ["AIRFLOW_CONN_LEADMAGIC_DEFAULT"])["host"].rsplit("/", 1)[0]
        httpx.post(f"{url}/_sandbox/state/leadmagic", json={"credits": 10**12}, timeout=10).raise_for_status()
        for rep in range(args.repeat):
            for db, conn in databases.items():
                os.environ[f"AIRFLOW_CONN_{DB_CONN.upper()}"] = conn
                for n, (kind, name, accounts) in enumerate(CONTENDERS):
                    table = f"bench_res_{db[:2]}_{rep}_{n}"
                    drop(table)
                    seed(table, kind)
                    stats, times, opened = run_once(kind, accounts, args.reservers, args.seconds, table)
                    results.setdefault((db, name), []).append(stats)
                    if name == "reserve":
                        breakdowns.setdefault(db, []).append((times, opened))
                    drop(table)

    print(
        f"\n{args.reservers} concurrent reservers (processes), {args.seconds:g} s runs, "
        f"medians of {args.repeat}"
    )
    print(f"{'':11} {'':34} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x raw':>7}")
    for db in databases:
        raw = {a: statistics.median(r[0] for r in results[(db, n)]) for k, n, a in CONTENDERS if k == "raw"}
        for _, name, accounts in CONTENDERS:
            ops, p50, p99 = (statistics.median(r[i] for r in results[(db, name)]) for i in range(3))
            print(f"{db:11} {name:34} {ops:8,.0f} {p50:8.2f} {p99:8.2f} {ops / raw[accounts]:6.2f}x")
        rates = {n: statistics.median(r[0] for r in results[(db, n)]) for _, n, _ in CONTENDERS}
        budget, alerts = rates["reserve + budget"], rates["reserve + budget + 10 alert rules"]
        print(
            f"{db:11} a budget costs {1 - budget / rates['reserve']:.1%} of the rate; "
            f"10 alert rules {1 - alerts / budget:.1%} more"
        )
    for db, runs in breakdowns.items():
        p50 = statistics.median(r[1] for r in results[(db, "reserve")])
        shapes = sorted({s for times, _ in runs for s in times})
        print(f"\nwhere one reservation's time goes ({db}, one account; ms per reservation, median of runs)")
        spent = 0.0
        for shape in sorted(shapes, key=lambda s: -statistics.median(t.get(s, 0.0) for t, _ in runs)):
            ms = statistics.median(t.get(shape, 0.0) for t, _ in runs) * 1000
            spent += ms
            print(f"  {ms:8.3f}  {shape}")
        opened = statistics.median(o for _, o in runs) * 1000
        mean = statistics.median(sum(t.values()) for t, _ in runs) * 1000
        print(f"  {opened:8.3f}  connection set-up (kept: opened once per process)")
        print(f"  statements {mean:.2f} ms a reservation (mean; p50 latency {p50:.2f} ms)")


if __name__ == "__main__":
    main()
