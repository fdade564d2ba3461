"""
Reservations per second and their latency with 8 concurrent reservers, on PostgreSQL and SQLite.

Each reserver is its own process (as Airflow workers are), reserving credits for a new holder in a
loop against one account of the sandbox's LeadMagic (its own process on 127.0.0.1). Printed per
database, medians of interleaved runs: reservations per second (all reservers together), p50 and p99
latency of one reservation, for two balance policies:

- ``max_age=0``: every reservation fetches the balance from the vendor under the account's lock;
- ``max_age=30`` (the operator's default): the balance fetched under the lock is shared for 30 s;
- ``budget, max_age=30``: the same, each reservation also checked against a budget on the account
  (its spend this period summed from ``credit_usage``, which holds 2,000 ended reservations of it);
- ``budget + 10 alert rules``: the same, with ten alert rules watching it (five budget rules on the
  budget, five balance rules on the account, none crossed): the crossing check inside each
  reservation's transaction. Its cost is printed against the budget row of the same run.

The baseline is what a gate without reservations does: the same 8 processes each calling
``get_balance()`` (one HTTP request) in a loop; latency ratios are against its p50.

Usage: python bench/reservations.py [--seconds 5] [--repeat 3] [--reservers 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sandbox_process import sandbox_process  # noqa: E402

DB_CONN = "bench_reservations"


def _worker(
    kind: str, index: int, seconds: float, max_age: float, env: dict[str, str], start: Any, out: Any
) -> None:
    os.environ.update(env)
    from datetime import timedelta

    from airflow_credits_provider.hooks.resolve import get_credit_hook
    from airflow_credits_provider.reservations import Holder, ReservationStore
    from airflow_credits_provider.sql.connections import sql_hook_for

    hook = get_credit_hook("leadmagic_default")
    store = ReservationStore(sql_hook_for(DB_CONN), table=env["BENCH_TABLE"], usage_table=env["BENCH_USAGE"])
    store.create()
    budget = "bench-budget" if kind in ("budget", "alerts") else None  # defined by seed_usage()
    latencies: list[float] = []
    start.wait()
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        if kind == "balance":
            hook.get_balance()
        else:
            result = store.reserve(
                account="bench",
                credit_conn_id="leadmagic_default",
                holder=Holder("bench", f"run-{env['BENCH_TABLE']}-{index}", "reserve", n),
                amount_for=lambda _b: Decimal(1),
                fetch_balance=hook.get_balance,
                ttl=timedelta(hours=1),
                max_age=max_age,
                budget=budget,
            )
            assert result.reservation is not None
        latencies.append(time.perf_counter() - t0)
        n += 1
    out.put(latencies)


def run_once(
    kind: str, reservers: int, seconds: float, max_age: float, table: str
) -> tuple[float, float, float]:
    """(operations per second, p50 ms, p99 ms) with ``reservers`` processes."""
    ctx = multiprocessing.get_context("forkserver")
    env = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW")}
    env |= {"BENCH_TABLE": table, "BENCH_USAGE": f"{table}_usage"}
    start, out = ctx.Barrier(reservers + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(kind, i, seconds, max_age, env, start, out))
        for i in range(reservers)
    ]
    for p in procs:
        p.start()
    start.wait(timeout=300)
    latencies = [x for _ in procs for x in out.get(timeout=300)]
    for p in procs:
        p.join()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / seconds, statistics.median(latencies) * 1000, p99 * 1000


def seed_usage(table: str, rows: int = 2000) -> None:
    """The bench budget, and ended reservations of it this month for its spend query to sum."""
    from datetime import datetime, timezone

    from airflow_credits_provider.reservations import Budget, ReservationStore
    from airflow_credits_provider.sql.connections import sql_hook_for

    store = ReservationStore(sql_hook_for(DB_CONN), table=table, usage_table=f"{table}_usage")
    store.create()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    usage = [
        (
            f"seed-{i}",
            now,
            "bench",
            f"seed-{i}",
            "reserve",
            -1,
            "leadmagic_default",
            "bench",
            "released",
            Decimal(1),
            Decimal(10**12),
            Decimal(10**12 - 1),
            Decimal(1),
            1,
            0,
            now,
            "bench-budget",
        )
        for i in range(rows)
    ]
    store.usage.upsert(usage)
    store.budgets.set([Budget.parse(name="bench-budget", account="bench", cap=10**15)])


def seed_rules(table: str) -> None:
    """Ten alert rules that each reservation checks and none crosses."""
    from airflow_credits_provider.alerts import AlertRule
    from airflow_credits_provider.reservations import ReservationStore
    from airflow_credits_provider.sql.connections import sql_hook_for

    store = ReservationStore(sql_hook_for(DB_CONN), table=table, usage_table=f"{table}_usage")
    notify = {"notifier": "smtp", "notifier_args": {"to": ["bench@example.com"]}}
    rules = [
        AlertRule.parse(
            name=f"b{i}", kind="budget", subject="bench-budget", thresholds=[50, 80, 100], **notify
        )
        for i in range(5)
    ] + [
        AlertRule.parse(name=f"l{i}", kind="balance", subject="bench", thresholds=[i + 1], **notify)
        for i in range(5)
    ]
    store.alert_rules.set(rules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reservers", type=int, default=8)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    os.environ.setdefault("AIRFLOW_HOME", tmp)
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    uri = os.environ.get("CREDITS_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
    from tests.warehouse_support import postgres_conn_json

    databases = {
        "postgresql": postgres_conn_json(uri),
        "sqlite": json.dumps({"conn_type": "sqlite", "host": f"{tmp}/reservations.db"}),
    }
    contenders = [("balance", "plain get_balance() (no reservation)", 0.0)] + [
        ("reserve", f"reserve, max_age={age:g}", age) for age in (0.0, 30.0)
    ]
    contenders.append(("budget", "reserve with a budget, max_age=30", 30.0))
    contenders.append(("alerts", "the same + 10 alert rules", 30.0))
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
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
                for kind, name, age in contenders:
                    table = f"bench_res_{db[:2]}_{rep}_{int(age)}_{kind}"
                    if kind in ("budget", "alerts"):
                        seed_usage(table)
                    if kind == "alerts":
                        seed_rules(table)
                    results.setdefault((db, name), []).append(
                        run_once(kind, args.reservers, args.seconds, age, table)
                    )
        for db, conn in databases.items():  # clean up
            os.environ[f"AIRFLOW_CONN_{DB_CONN.upper()}"] = conn
            from airflow_credits_provider.sql.connections import sql_hook_for

            hook = sql_hook_for(DB_CONN)
            for rep in range(args.repeat):
                for kind, _, age in contenders:
                    table = f"bench_res_{db[:2]}_{rep}_{int(age)}_{kind}"
                    for suffix in ("", "_accounts", "_budgets", "_usage", "_alert_rules", "_alert_claims"):
                        t = f"{table}{suffix}"
                        hook.run(f"DROP TABLE IF EXISTS {t}")

    runs = f"{args.seconds:g} s runs, medians of {args.repeat}"
    print(f"\n{args.reservers} concurrent reservers (processes), {runs}")
    print(f"{'':12} {'':38} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p50 x plain':>12}")
    for db in databases:
        plain_p50 = statistics.median(r[1] for r in results[(db, contenders[0][1])])
        for _, name, _ in contenders:
            runs = results[(db, name)]
            ops, p50, p99 = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"{db:12} {name:38} {ops:8,.0f} {p50:8.2f} {p99:8.2f} {p50 / plain_p50:11.1f}x")
        budget = [results[(db, contenders[-2][1])], results[(db, contenders[-1][1])]]
        rates = [statistics.median(r[0] for r in runs) for runs in budget]
        p50s = [statistics.median(r[1] for r in runs) for runs in budget]
        print(
            f"{db:12} 10 alert rules cost {rates[0] / rates[1] - 1:+.1%} in reservations per second, "
            f"{p50s[1] / p50s[0] - 1:+.1%} in p50 latency, against the budget row"
        )


if __name__ == "__main__":
    main()
