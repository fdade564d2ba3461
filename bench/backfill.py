"""
Landing speed and memory of CreditTransactionsToSqlOperator, against what a user would compare it with.

The sandbox serves N LocalLeads transactions from its own process on 127.0.0.1. Every figure is the
median of ``--repeat`` interleaved runs (one warm-up each, not counted; before each run PostgreSQL is
checkpointed and the machine left idle for a second, so that no contender pays for the previous one's
background writes), printed in one table:

- plain httpx paging: a loop a user would write (limit 100, ``.json()``, rows discarded): the baseline;
- the hook's fetch path: ``LocalLeadsHook.iter_transaction_pages`` (pages parsed into transactions);
- the operator end to end with default arguments, a first load into an empty table, into PostgreSQL,
  SQLite and (when ``CREDITS_TEST_MYSQL_URI`` is set and the MySQL provider is installed) MariaDB;
- dlt's ``rest_api`` source with ``write_disposition="merge"`` into PostgreSQL, on the same emulator and
  rows; dlt is installed into a throwaway virtualenv this script makes (the project does not depend on
  it), and only ``pipeline.run`` is timed;
- peak RSS of a process that lands N and 1,000,000 rows against one that only imports Airflow;
- a no-change incremental rerun: the requests it makes and its wall time;
- the networked case: the sandbox made to answer each request after 0, 20, 50 and 150 ms
  (``--latencies``), plain sequential httpx paging, dlt and the operator (default settings: concurrent
  pages) into PostgreSQL, plus the operator one page at a time (``max_concurrent_pages=1``, the path
  before concurrent paging) to show the default is no slower at 0 ms. Rows per latency:
  ``--latency-rows`` (100,000, but 20,000 at 150 ms, where one sequential run takes 30 s).

    CREDITS_TEST_POSTGRES_URI=postgresql://postgres@127.0.0.1:5432/test python bench/backfill.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ and tests/ helpers

from bench.sandbox_process import sandbox_process  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

TABLE = "bench_credit_transactions"
DLT_VERSION = "1.31.0"
DLT_ENV = Path(tempfile.gettempdir()) / f"airflow-credits-bench-dlt-{DLT_VERSION}"

GOALS = {"fetch": 0.9, "postgres": 0.6, "dlt": 3.0, "networked": 5.0}
NETWORKED_AT = 0.05  # the latency the networked goal is set at (seconds per answer)


# -- the contenders --------------------------------------------------------------------------------
def plain_httpx(url: str, key: str) -> int:
    """What a user writes by hand: page through the ledger with httpx, parse the JSON, keep nothing."""
    rows = offset = 0
    with httpx.Client(base_url=f"{url}/localleads", headers={"Authorization": f"Bearer {key}"}) as client:
        while True:
            page = client.get("/api/v1/credits/transactions", params={"limit": 100, "offset": offset}).json()
            rows += len(page["data"])
            offset += len(page["data"])
            if not page["data"] or offset >= page["meta"]["total"]:
                return rows


def fetch_path() -> int:
    """The hook's pages, every record parsed into a ``CreditTransaction``."""
    from airflow_credits_provider.hooks.localleads import LocalLeadsHook

    with LocalLeadsHook() as hook:
        return sum(len(page.transactions) for page in hook.iter_transaction_pages(100))


def operator(sql_conn_id: str, **options: object) -> int:
    """The operator with default arguments (incremental, page 100, batch 2,000), into an empty table."""
    from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator

    drop_tables(sql_conn_id)
    return CreditTransactionsToSqlOperator(  # type: ignore[no-any-return]
        task_id="bench", credit_conn_id="localleads_default", sql_conn_id=sql_conn_id, table=TABLE, **options
    ).execute({})


def drop_tables(sql_conn_id: str) -> None:
    from airflow_credits_provider.sql.connections import sql_hook_for

    hook = sql_hook_for(sql_conn_id)
    for table in (TABLE, f"{TABLE}_cursor"):
        hook.run(f"DROP TABLE IF EXISTS {table}")


DLT_RUN = r"""
import os, sys, tempfile, time
import dlt, psycopg2
from dlt.sources.rest_api import rest_api_source

url, key, uri = sys.argv[1:4]
with psycopg2.connect(uri) as conn, conn.cursor() as cur:
    cur.execute("DROP SCHEMA IF EXISTS dlt_bench CASCADE; DROP SCHEMA IF EXISTS dlt_bench_staging CASCADE")
source = rest_api_source({
    "client": {
        "base_url": f"{url}/localleads/",
        "auth": {"type": "bearer", "token": key},
        "paginator": {"type": "offset", "limit": 100, "offset_param": "offset", "limit_param": "limit",
                      "total_path": "meta.total"},
    },
    "resources": [{
        "name": "credit_transactions",
        "endpoint": {"path": "api/v1/credits/transactions", "data_selector": "data"},
        "primary_key": "id",
        "write_disposition": "merge",
    }],
})
pipeline = dlt.pipeline(
    pipeline_name="bench", destination=dlt.destinations.postgres(uri), dataset_name="dlt_bench",
    pipelines_dir=tempfile.mkdtemp(),
)
start = time.perf_counter()
pipeline.run(source)
seconds = time.perf_counter() - start
with psycopg2.connect(uri) as conn, conn.cursor() as cur:
    cur.execute("SELECT count(*) FROM dlt_bench.credit_transactions")
    rows = cur.fetchone()[0]
print(rows, seconds)
"""


def dlt_python() -> Path:
    """A throwaway virtualenv with dlt[postgres] (made once, kept in the temp directory)."""
    python = DLT_ENV / "bin" / "python"
    if not python.exists():
        uv = ROOT / ".venv" / "bin" / "uv"
        print(f"(installing dlt {DLT_VERSION} into {DLT_ENV} ...)", flush=True)
        subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(DLT_ENV)], check=True)
        subprocess.run(
            [str(uv), "pip", "install", "--quiet", "--python", str(python), f"dlt[postgres]=={DLT_VERSION}"],
            check=True,
        )
    return python


def dlt_rest_api(url: str, key: str, uri: str, python: Path) -> tuple[int, float]:
    parts = urlsplit(uri)
    if parts.password is None:  # dlt insists on one; a trust-auth server ignores it
        uri = parts._replace(
            netloc=f"{parts.username or 'postgres'}:unused@{parts.hostname}:{parts.port or 5432}"
        ).geturl()
    out = subprocess.run(
        [str(python), "-c", DLT_RUN, url, key, uri],
        capture_output=True,
        text=True,
        env={**os.environ, "RUNTIME__LOG_LEVEL": "WARNING"},
    )
    if out.returncode:
        raise RuntimeError(f"the dlt run failed:\n{out.stderr[-3000:]}")
    rows, seconds = out.stdout.split()[-2:]
    return int(rows), float(seconds)


# -- memory and the no-change rerun ------------------------------------------------------------
MEMORY_RUN = r"""
import resource, sys
sys.path.insert(0, sys.argv[1])
import airflow.sdk  # what every task process has loaded
if sys.argv[2] == "land":
    from bench.backfill import operator
    assert operator(sys.argv[3]) == int(sys.argv[4])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mb(*args: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_RUN, str(ROOT), *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.split()[-1]) / 1024


def no_change_rerun(url: str, sql_conn_id: str) -> tuple[int, float]:
    """Requests and seconds of an incremental run right after a complete one."""
    from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator

    task = CreditTransactionsToSqlOperator(
        task_id="bench", credit_conn_id="localleads_default", sql_conn_id=sql_conn_id, table=TABLE
    )
    httpx.delete(f"{url}/_sandbox/requests").raise_for_status()
    start = time.perf_counter()
    task.execute({})
    seconds = time.perf_counter() - start
    requests = httpx.get(f"{url}/_sandbox/requests").json()
    return sum(r["path"] == "/api/v1/credits/transactions" for r in requests), seconds


# -- the run ---------------------------------------------------------------------------------------
def set_warehouses(uri: str, tmp: str) -> list[str]:
    from tests.warehouse_support import postgres_conn_json

    os.environ["AIRFLOW_CONN_BENCH_POSTGRES"] = postgres_conn_json(uri)
    os.environ["AIRFLOW_CONN_BENCH_SQLITE"] = json.dumps({"conn_type": "sqlite", "host": f"{tmp}/bench.db"})
    warehouses = ["bench_postgres", "bench_sqlite"]
    mysql = os.environ.get("CREDITS_TEST_MYSQL_URI")
    try:
        import airflow.providers.mysql  # noqa: F401
    except ImportError:
        mysql = None
    if mysql:
        from tests.mariadb import conn_json

        os.environ["AIRFLOW_CONN_BENCH_MARIADB"] = conn_json(mysql)
        warehouses.append("bench_mariadb")
    return warehouses


def settle(uri: str) -> None:
    """Let the databases finish the previous contender's background work (2 cores are shared)."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    time.sleep(1.0)


def median_rate(runs: list[tuple[int, float]]) -> float:
    return statistics.median(rows / seconds for rows, seconds in runs)


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    rows = fn()
    return rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-rows", default="100000,1000000")
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt baseline")
    parser.add_argument("--latencies", default="0,0.02,0.05,0.15", help="seconds per answer ('' to skip)")
    parser.add_argument(
        "--latency-rows", default="0.15=20000", help="rows at some latencies (default: --rows)"
    )
    parser.add_argument(
        "--local", action=argparse.BooleanOptionalAction, default=True, help="the 0 ms tables"
    )
    args = parser.parse_args()
    uri = os.environ.get("CREDITS_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
    tmp = tempfile.mkdtemp()
    os.environ.setdefault("AIRFLOW_HOME", tmp)
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    warehouses = set_warehouses(uri, tmp)
    python = None if args.no_dlt else dlt_python()
    latencies = [float(x) for x in args.latencies.split(",") if x]
    latency_rows = {float(k): int(v) for k, v in (p.split("=") for p in args.latency_rows.split(",") if p)}
    with sandbox_process() as url:
        if latencies:
            networked(url, uri, python, latencies, latency_rows, args.rows, args.repeat)
        if args.local:
            local(url, uri, python, warehouses, args)


def local(url: str, uri: str, python: Path | None, warehouses: list[str], args: argparse.Namespace) -> None:
    """The 0 ms tables: every contender and warehouse, memory, the no-change rerun."""
    httpx.post(f"{url}/_sandbox/ledger", json={"size": args.rows}, timeout=30).raise_for_status()
    key = json.loads(os.environ["AIRFLOW_CONN_LOCALLEADS_DEFAULT"])["password"]
    contenders: dict[str, Callable[[], tuple[int, float]]] = {
        "plain httpx paging": lambda: timed(lambda: plain_httpx(url, key)),
        "hook fetch path": lambda: timed(fetch_path),
        **{
            f"operator -> {w.removeprefix('bench_')}": (lambda w=w: timed(lambda: operator(w)))
            for w in warehouses
        },
    }
    if python is not None:
        contenders["dlt rest_api merge -> postgres"] = lambda: dlt_rest_api(url, key, uri, python)
    runs: dict[str, list[tuple[int, float]]] = {name: [] for name in contenders}
    for run in contenders.values():  # warm-up: imports, connections, first-run caches
        run()
    for _ in range(args.repeat):
        for name, run in contenders.items():
            settle(uri)
            rows, seconds = run()
            assert rows == args.rows, (name, rows)
            runs[name].append((rows, seconds))
    rates = {name: median_rate(r) for name, r in runs.items()}
    rerun_requests, rerun_seconds = no_change_rerun(url, "bench_postgres")
    memory_sizes = [int(s) for s in args.memory_rows.split(",") if s]
    baseline_rss = peak_rss_mb("import")
    peaks = {}
    for size in memory_sizes:
        httpx.post(f"{url}/_sandbox/ledger", json={"size": size}, timeout=60).raise_for_status()
        peaks[size] = peak_rss_mb("land", "bench_postgres", str(size))
    for w in warehouses:
        drop_tables(w)

    plain = rates["plain httpx paging"]
    print(f"\n{args.rows:,} LocalLeads transactions, medians of {args.repeat} interleaved runs")
    print(f"{'':34} {'rows/s':>9}  {'x plain':>7}")
    for name, rate in rates.items():
        print(f"{name:34} {rate:9,.0f}  {rate / plain:6.2f}x")
    pg = rates["operator -> postgres"]
    fetch = rates["hook fetch path"]
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(
        f"\nfetch path / plain paging:        {fetch / plain:.2f}x (goal >= {GOALS['fetch']}x: "
        f"{verdict(fetch / plain >= GOALS['fetch'])})"
    )
    print(
        f"operator -> postgres / plain:     {pg / plain:.2f}x (goal >= {GOALS['postgres']}x: "
        f"{verdict(pg / plain >= GOALS['postgres'])})"
    )
    if "dlt rest_api merge -> postgres" in rates:
        dlt = rates["dlt rest_api merge -> postgres"]
        print(
            f"operator -> postgres / dlt {DLT_VERSION}: {pg / dlt:.2f}x (goal >= {GOALS['dlt']}x: "
            f"{verdict(pg / dlt >= GOALS['dlt'])})"
        )
    print(
        f"\nno-change incremental rerun: {rerun_requests} request(s), {rerun_seconds:.3f} s "
        f"(goal 1-2 requests, < 0.5 s: {verdict(rerun_requests <= 2 and rerun_seconds < 0.5)})"
    )
    print(f"peak RSS, a process that imports airflow.sdk: {baseline_rss:6.1f} MB")
    for size, peak in peaks.items():
        extra = peak - baseline_rss
        print(
            f"peak RSS landing {size:>9,} rows into PostgreSQL: {peak:6.1f} MB (+{extra:.1f} MB; goal "
            f"<= +15 MB: {verdict(extra <= 15)})"
        )
    if len(peaks) == 2:
        small, large = (peaks[s] for s in memory_sizes)
        print(
            f"peak RSS {memory_sizes[1]:,} / {memory_sizes[0]:,} rows: {large / small:.2f}x "
            f"(goal within 10%: {verdict(large / small <= 1.10)})"
        )


def networked(
    url: str,
    uri: str,
    python: Path | None,
    latencies: list[float],
    latency_rows: dict[float, int],
    rows: int,
    repeat: int,
) -> None:
    """Plain paging, dlt and the operator with the sandbox answering each request ``latency`` s late."""
    key = json.loads(os.environ["AIRFLOW_CONN_LOCALLEADS_DEFAULT"])["password"]
    table: list[str] = []
    for latency in latencies:
        size = latency_rows.get(latency, rows)
        httpx.post(f"{url}/_sandbox/ledger", json={"size": size}, timeout=60).raise_for_status()
        httpx.post(f"{url}/_sandbox/latency", json={"seconds": latency}, timeout=10).raise_for_status()
        contenders: dict[str, Callable[[], tuple[int, float]]] = {
            "plain httpx paging": lambda: timed(lambda: plain_httpx(url, key)),
            "operator -> postgres (default)": lambda: timed(lambda: operator("bench_postgres")),
            "operator -> postgres (1 page at a time)": lambda: timed(
                lambda: operator("bench_postgres", max_concurrent_pages=1)
            ),
        }
        if python is not None:
            contenders["dlt rest_api merge -> postgres"] = lambda: dlt_rest_api(url, key, uri, python)
        runs: dict[str, list[tuple[int, float]]] = {name: [] for name in contenders}
        for run in contenders.values():  # warm-up
            run()
        for _ in range(repeat):
            for name, run in contenders.items():
                settle(uri)
                got, seconds = run()
                assert got == size, (name, got)
                runs[name].append((got, seconds))
        rates = {name: median_rate(r) for name, r in runs.items()}
        plain = rates["plain httpx paging"]
        first_line = len(table)
        table.append(
            f"\n{latency * 1000:.0f} ms per answer, {size:,} rows, medians of {repeat} interleaved runs"
        )
        table.append(f"{'':42} {'rows/s':>9}  {'x plain':>7}  {'x dlt':>6}  runs (rows/s)")
        dlt = rates.get("dlt rest_api merge -> postgres")
        for name, rate in rates.items():
            vs_dlt = f"{rate / dlt:5.2f}x" if dlt else "    -"
            spread = ", ".join(f"{got / seconds:,.0f}" for got, seconds in runs[name])
            table.append(f"{name:42} {rate:9,.0f}  {rate / plain:6.2f}x  {vs_dlt}  {spread}")
        if latency == NETWORKED_AT:
            mine = rates["operator -> postgres (default)"]
            ok = mine / plain >= GOALS["networked"] and (dlt is None or mine / dlt >= GOALS["networked"])
            table.append(
                f"goal at {latency * 1000:.0f} ms: >= {GOALS['networked']}x plain paging and dlt: "
                f"{'met' if ok else 'NOT met'}"
            )
        if latency == 0:
            one = rates["operator -> postgres (1 page at a time)"]
            table.append(
                "at 0 ms, default / one page at a time: "
                f"{rates['operator -> postgres (default)'] / one:.2f}x "
                "(goal >= 1: no slower than before)"
            )
        print("\n".join(table[first_line:]), flush=True)
    httpx.post(f"{url}/_sandbox/latency", json={"seconds": 0}, timeout=10).raise_for_status()
    print("\n".join(["", "== networked summary =="] + table))


if __name__ == "__main__":
    main()
