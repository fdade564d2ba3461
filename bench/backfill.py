"""
Backfill speed and memory of CreditTransactionsToSqlOperator into PostgreSQL.

Lands N sandbox transactions (the sandbox runs in its own process) and prints, in one run:
- end-to-end rows/s of the operator (fetch + upsert, batches of 2,000 through ``insert_rows``),
- the fetch-only rate (HTTP paging and parsing, no writes),
- a naive baseline: the same rows through ``insert_rows`` with default arguments (row by row),
- the operator's peak traced memory at 100k and 1M transactions, each in a fresh process.
Goal: end-to-end at least half the fetch-only rate; peak memory at 1M within 1.2x of 100k.

    CREDITS_TEST_POSTGRES_URI=postgresql://postgres@127.0.0.1:5432/test python bench/backfill.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ and tests/ helpers

from bench.sandbox_process import sandbox_process  # noqa: E402

TABLE = "bench_credit_transactions"


def set_warehouse(uri: str) -> None:
    from tests.warehouse_support import postgres_conn_json

    os.environ["AIRFLOW_CONN_BENCH_WAREHOUSE"] = postgres_conn_json(uri)


def drop_tables() -> None:
    from airflow_credits_provider.transfers.base import sql_hook_for

    hook = sql_hook_for("bench_warehouse")
    for table in (TABLE, f"{TABLE}_cursor", f"{TABLE}_naive"):
        hook.run(f"DROP TABLE IF EXISTS {table}")


def land(batch_size: int = 2000) -> int:
    from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator

    return CreditTransactionsToSqlOperator(
        task_id="bench",
        credit_conn_id="localleads_default",
        sql_conn_id="bench_warehouse",
        table=TABLE,
        batch_size=batch_size,
    ).execute({})


def fetch_only() -> int:
    from airflow_credits_provider.hooks.localleads import LocalLeadsHook

    count = 0
    with LocalLeadsHook() as hook:
        for _ in hook.iter_transactions():
            count += 1
    return count


def naive(rows_wanted: int) -> tuple[int, float]:
    from airflow_credits_provider.hooks.localleads import LocalLeadsHook
    from airflow_credits_provider.transfers.base import LandingTarget, sql_hook_for
    from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
    from airflow_credits_provider.transfers.tables import to_naive_utc

    hook = sql_hook_for("bench_warehouse")
    target = LandingTarget.transactions(hook, f"{TABLE}_naive", None)
    target.create()
    rows = []
    with LocalLeadsHook() as credit:
        for tx in credit.iter_transactions():
            rows.append(
                CreditTransactionsToSqlOperator._row("localleads", "bench", tx, to_naive_utc(tx.created_at))
            )
            if len(rows) >= rows_wanted:
                break
    start = time.perf_counter()
    hook.insert_rows(target.data.qualified, rows, target_fields=target.data.column_names)
    return len(rows), time.perf_counter() - start


def peak_memory(size: int, url: str) -> float:
    """Peak traced memory (MB) of one full landing of ``size`` transactions, in a fresh process."""
    httpx.post(f"{url}/_sandbox/ledger", json={"size": size}, timeout=30).raise_for_status()
    code = (
        f"import sys, tracemalloc; sys.path.insert(0, {str(ROOT)!r})\n"
        "from bench.backfill import drop_tables, land\n"
        "drop_tables(); tracemalloc.start(); n = land(); print(n, tracemalloc.get_traced_memory()[1])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=os.environ.copy(), capture_output=True, text=True, check=True
    )
    landed, peak = out.stdout.strip().splitlines()[-1].split()
    assert int(landed) == size, (landed, size)
    return int(peak) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--memory-sizes", default="100000,1000000")
    args = parser.parse_args()
    uri = os.environ.get("CREDITS_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    set_warehouse(uri)
    with sandbox_process() as url:
        httpx.post(f"{url}/_sandbox/ledger", json={"size": args.rows}, timeout=30).raise_for_status()
        drop_tables()
        start = time.perf_counter()
        fetched = fetch_only()
        fetch_rate = fetched / (time.perf_counter() - start)
        start = time.perf_counter()
        landed = land()
        e2e_rate = landed / (time.perf_counter() - start)
        naive_rows, naive_seconds = naive(args.rows)
        naive_rate = naive_rows / naive_seconds
        host = f"{urlsplit(uri).hostname}:{urlsplit(uri).port or 5432}"
        naive_e2e = 1 / (1 / fetch_rate + 1 / naive_rate)  # fetch, then write, one after the other
        goal = "met" if e2e_rate >= fetch_rate / 2 else "NOT met"
        print(f"PostgreSQL at {host}, {args.rows:,} transactions")
        print(f"fetch only (HTTP + parse):            {fetch_rate:>9,.0f} rows/s")
        print(
            f"operator end-to-end (fetch + upsert): {e2e_rate:>9,.0f} rows/s = "
            f"{e2e_rate / fetch_rate:.2f}x fetch-only (goal >= 0.5x: {goal})"
        )
        print(f"naive insert_rows, default arguments: {naive_rate:>9,.0f} rows/s, write only (plain INSERT)")
        ratio = naive_e2e / fetch_rate
        print(f"naive fetch, then write:              {naive_e2e:>9,.0f} rows/s = {ratio:.2f}x")
        sizes = [int(s) for s in args.memory_sizes.split(",") if s]
        peaks = {size: peak_memory(size, url) for size in sizes}
        for size, peak in peaks.items():
            print(f"peak traced memory at {size:>9,} transactions: {peak:8.1f} MB")
        if len(sizes) == 2:
            ratio = peaks[sizes[1]] / peaks[sizes[0]]
            print(
                f"peak memory ratio {sizes[1]:,} / {sizes[0]:,}: {ratio:.2f}x  (goal <= 1.2x: "
                f"{'met' if ratio <= 1.2 else 'NOT met'})"
            )
        drop_tables()


if __name__ == "__main__":
    main()
