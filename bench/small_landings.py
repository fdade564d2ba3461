"""
The fixed cost of a landing: CreditTransactionsToSqlOperator.execute on small ledgers, as a task runs it.

Each run is a fresh Python process that has imported ``airflow.sdk``, its supervisor and the operator's
module (what a task process forked by Airflow's supervisor has done after parsing its DAG) and times
``execute`` alone, landing into PostgreSQL. The sandbox serves LocalLeads from its own process and
answers each ledger request after a latency. Against it, in the same run and interleaved, the baseline
a user would write: plain sequential httpx paging (limit 100, ``.json()``, rows discarded), in a fresh
process too, with ``httpx`` already imported.

For 1, 10, 200 and 1,000 pages (``--pages``) at 0 and 50 ms (``--latencies``) it prints the medians of
``--repeat`` runs and their ratio; each landing run lands every row into tables that exist (their rows
and cursor deleted first), the steady state of a scheduled landing. Then it times an incremental run
with nothing new (the requests it makes and its wall time, in a fresh process and as the second run of
one process, which has its imports and TLS context already), and prints the breakdown of one small run
and of one run with nothing new: when each phase started and ended, in milliseconds from the start of
``execute`` (phases may overlap; "(thread)" marks those outside the task's own thread).
The processes are byte-compiled as a deployment is (``PYTHONDONTWRITEBYTECODE`` is unset for them).

    CREDITS_TEST_POSTGRES_URI=postgresql://postgres@127.0.0.1:5432/test python bench/small_landings.py
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
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ and tests/ helpers

from bench.sandbox_process import sandbox_process  # noqa: E402

TABLE = "bench_small_landings"
SQL_CONN = "bench_postgres"
TX_PATH = "/api/v1/credits/transactions"
#: The goals of issue 33, as ratios against plain sequential paging at 50 ms a page (0 ms for "0").
GOALS = {(0.05, 10): 2.5, (0.05, 200): 6.0}
GOAL_LOCAL = 0.6

# A task process: Airflow's SDK, its supervisor (the task process is forked from it) and the DAG's modules
# are imported before the task's execute runs.
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
mode = sys.argv[2]
import airflow.sdk  # noqa: F401
# On Linux, Airflow's supervisor forks the task process: the supervisor's module is loaded already.
import airflow.sdk.execution_time.supervisor  # noqa: F401
import httpx
from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
if mode == "plain":
    from bench.backfill import plain_httpx  # the same hand-written loop as the big landings' baseline
    url, key = sys.argv[3:5]
    start = time.perf_counter()
    rows = plain_httpx(url, key)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - start}))
else:
    task = CreditTransactionsToSqlOperator(
        task_id="bench", credit_conn_id="localleads_default", sql_conn_id=sys.argv[3], table=sys.argv[4]
    )
    events = None
    if mode == "breakdown":
        from bench.small_landings import instrument
        events = instrument()
    start = time.perf_counter()
    if mode == "profile":
        import cProfile, pstats
        profile = cProfile.Profile()
        rows = profile.runcall(task.execute, {})
        seconds = time.perf_counter() - start
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
    elif mode == "again":  # a second run in the same process: what a process keeps is kept
        task.execute({})
        start = time.perf_counter()
        rows = task.execute({})
        seconds = time.perf_counter() - start
    else:
        rows = task.execute({})
        seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "seconds": seconds, "start": start, "events": events}))
"""


def instrument() -> list[tuple[str, float, float]]:
    """Wrap the phases of a landing with timers; return the list their ``(name, start, end)`` go into.

    Nothing is imported here: each module is wrapped once it has been imported (by the run itself), so
    the imports made inside ``execute`` are timed as they happen (``import ...`` lines).
    """
    import builtins
    import functools
    import threading

    events: list[tuple[str, float, float]] = []
    local = threading.local()

    def timed(name: str | None, fn: Any, label: Any = None) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                what = str(name if label is None else label(*args, **kwargs))
                if threading.current_thread() is not threading.main_thread():
                    what += " (thread)"
                events.append((what, start, time.perf_counter()))

        return wrapper

    def page_label(self: Any, call: Any, *args: Any, **kwargs: Any) -> str:
        return f"page at offset {dict(call.params or {}).get('offset', '?')}"

    # module -> (attribute path, phase name, label)
    wanted: dict[str, list[tuple[str, str | None, Any]]] = {
        "airflow_credits_provider.hooks.connections": [
            ("get_connection", "connection look-up", None),
            ("checked_hook", "hook from connection", None),
        ],
        "airflow_credits_provider.hooks.resolve": [
            ("get_connection", "connection look-up", None),
            ("checked_hook", "hook from connection", None),
        ],
        "airflow.providers.postgres.hooks.postgres": [("PostgresHook.get_conn", "database connect", None)],
        "airflow_credits_provider.sql.landing": [
            ("LandingTarget.prepare", "database connect, table check and cursor read", None),
            ("LandingTarget.create", "table and cursor DDL", None),
            ("LandingTarget.read_cursor", "cursor read", None),
            ("LandingTarget.write_cursor", "cursor write", None),
        ],
        "airflow_credits_provider.sql.copy_upsert": [
            ("PostgresCopyUpsert.upsert", "write and commit (open while pages arrive)", None)
        ],
        "airflow_credits_provider.client.transport": [
            ("CreditApiClient.request_json", None, page_label),
            ("_ssl_context", "TLS context (CA bundle)", None),
        ],
        "httpx": [("Client.__init__", "httpx client", None)],
        "airflow_credits_provider.transfers.credit_transactions_to_sql": [
            ("sql_hook_for", "SQL hook (imports, connection)", None),
        ],
    }

    def patch_loaded() -> None:
        for module_name in [m for m in wanted if m in sys.modules]:
            module = sys.modules[module_name]
            if not all(hasattr(module, path.split(".")[0]) for path, _, _ in wanted[module_name]):
                continue  # still being imported (importlib.import_module does not pass through here)
            for path, name, label in wanted.pop(module_name):
                owner_name, _, attr = path.rpartition(".")
                owner = getattr(module, owner_name) if owner_name else module
                setattr(owner, attr, timed(name, getattr(owner, attr), label))

    original_import = builtins.__import__

    def counting_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if getattr(local, "depth", 0) or name in sys.modules:
            return original_import(name, *args, **kwargs)
        local.depth = 1
        start = time.perf_counter()
        try:
            return original_import(name, *args, **kwargs)
        finally:
            local.depth = 0
            events.append((f"import {name}", start, time.perf_counter()))
            patch_loaded()

    patch_loaded()
    builtins.__import__ = counting_import
    return events


def child(*args: str) -> dict[str, Any]:
    # Byte-compiled as a deployment is (the machine may set PYTHONDONTWRITEBYTECODE: every fresh process
    # would then compile psycopg and common-sql again, about 0.4 s no task process pays).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    command = [sys.executable, "-c", CHILD, str(ROOT), *args]
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"the run {args[0]} failed:\n{out.stderr[-4000:]}")
    if args[0] == "profile":
        print(out.stderr)
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


def reset_tables(uri: str) -> None:
    """Empty the landing table and its cursor (they stay: a scheduled landing finds them there)."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        for table in (TABLE, f"{TABLE}_cursor"):
            conn.execute(f"DELETE FROM {table}")


def drop_tables(uri: str) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        for table in (TABLE, f"{TABLE}_cursor"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def print_breakdown(run: dict[str, Any], title: str) -> None:
    start = float(run["start"])
    events = sorted(run["events"], key=lambda e: e[1])
    print(f"\n{title}: execute {float(run['seconds']) * 1000:.0f} ms, {run['rows']} rows")
    print(f"{'phase':48} {'from ms':>8} {'to ms':>8} {'ms':>7}")
    imports = [e for e in events if e[0].startswith("import ")]
    for name, a, b in events:
        if name.startswith("import ") and (b - a) < 0.002:
            continue
        print(f"{name:48} {(a - start) * 1000:8.1f} {(b - start) * 1000:8.1f} {(b - a) * 1000:7.1f}")
    total = sum(b - a for _, a, b in imports)
    print(f"{'(imports inside execute, all: ' + str(len(imports)) + ')':48} {'':17} {total * 1000:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", default="1,10,200,1000")
    parser.add_argument("--latencies", default="0,0.05", help="seconds per answer")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--breakdown-pages", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="also print cProfile of one small run")
    args = parser.parse_args()
    uri = os.environ.get("CREDITS_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
    from tests.warehouse_support import postgres_conn_json

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"  # execute outside the task runner, quietly
    os.environ[f"AIRFLOW_CONN_{SQL_CONN.upper()}"] = postgres_conn_json(uri)
    latencies = [float(x) for x in args.latencies.split(",") if x]
    page_counts = [int(x) for x in args.pages.split(",") if x]
    drop_tables(uri)
    lines: list[str] = []
    with sandbox_process() as url:
        key = json.loads(os.environ["AIRFLOW_CONN_LOCALLEADS_DEFAULT"])["password"]

        def configure(rows: int, latency: float) -> None:
            httpx.post(f"{url}/_sandbox/ledger", json={"size": rows}, timeout=60).raise_for_status()
            httpx.post(f"{url}/_sandbox/latency", json={"seconds": latency}, timeout=10).raise_for_status()

        configure(100, 0)
        child("land", SQL_CONN, TABLE)  # creates the tables: every measured run finds them
        head = f"{'latency':>7} {'pages':>6} {'rows':>7} {'landing s':>10} {'plain s':>8} {'x plain':>8}"
        lines.append(f"{head}  runs")
        results: dict[tuple[float, int], float] = {}
        for latency in latencies:
            for pages in page_counts:
                rows = pages * 100
                configure(rows, latency)
                land_s, plain_s = [], []
                for i in range(args.repeat):
                    order = ("land", "plain") if i % 2 == 0 else ("plain", "land")
                    for which in order:
                        if which == "land":
                            reset_tables(uri)
                            time.sleep(0.2)
                            run = child("land", SQL_CONN, TABLE)
                            assert run["rows"] == rows, run
                            land_s.append(float(run["seconds"]))
                        else:
                            time.sleep(0.2)
                            run = child("plain", url, key)
                            assert run["rows"] == rows, run
                            plain_s.append(float(run["seconds"]))
                land, plain = statistics.median(land_s), statistics.median(plain_s)
                results[(latency, pages)] = plain / land
                spread = "land " + "/".join(f"{s:.3f}" for s in land_s) + ", plain "
                spread += "/".join(f"{s:.3f}" for s in plain_s)
                line = (
                    f"{latency * 1000:5.0f}ms {pages:6,} {rows:7,} {land:10.3f} {plain:8.3f} "
                    f"{plain / land:7.2f}x  {spread}"
                )
                lines.append(line)
                print(line, flush=True)
            # an incremental run with nothing new, right after a complete one
            configure(args.breakdown_pages * 100, latency)
            reset_tables(uri)
            child("land", SQL_CONN, TABLE)
            quiet = []
            for _ in range(args.repeat):
                httpx.delete(f"{url}/_sandbox/requests").raise_for_status()
                run = child("land", SQL_CONN, TABLE)
                requests = httpx.get(f"{url}/_sandbox/requests").json()
                quiet.append((float(run["seconds"]), sum(r["path"] == TX_PATH for r in requests)))
            seconds = statistics.median(s for s, _ in quiet)
            made = max(n for _, n in quiet)
            again = statistics.median(
                float(child("again", SQL_CONN, TABLE)["seconds"]) for _ in range(args.repeat)
            )
            line = (
                f"{latency * 1000:5.0f}ms nothing new (incremental rerun): {made} request(s), "
                f"{seconds * 1000:.0f} ms in a fresh process, {again * 1000:.0f} ms as a process's second "
                f"run (medians; goal <= 1 round trip + 50 ms = {latency * 1000 + 50:.0f} ms)"
            )
            lines.append(line)
            print(line, flush=True)
        print(f"\n{'=' * 20} summary, medians of {args.repeat}, fresh process per run, into PostgreSQL")
        print("\n".join(lines))
        for (latency, pages), goal in GOALS.items():
            if (latency, pages) in results:
                ratio = results[(latency, pages)]
                verdict = "met" if ratio >= goal else "NOT met"
                print(
                    f"goal {pages} pages at {latency * 1000:.0f} ms >= {goal}x plain: {ratio:.2f}x "
                    f"({verdict})"
                )
        local = [r for (lat, _), r in results.items() if lat == 0]
        if local:
            verdict = "met" if min(local) >= GOAL_LOCAL else "NOT met"
            print(f"goal at 0 ms >= {GOAL_LOCAL}x plain (every size): lowest {min(local):.2f}x ({verdict})")

        for latency in latencies:
            configure(args.breakdown_pages * 100, latency)
            reset_tables(uri)
            run = child("breakdown", SQL_CONN, TABLE)
            print_breakdown(run, f"breakdown, {args.breakdown_pages} pages at {latency * 1000:.0f} ms")
            run = child("breakdown", SQL_CONN, TABLE)  # the same ledger again: nothing new
            print_breakdown(run, f"breakdown, nothing new at {latency * 1000:.0f} ms")
        if args.profile:
            configure(args.breakdown_pages * 100, 0.05)
            reset_tables(uri)
            child("profile", SQL_CONN, TABLE)
    drop_tables(uri)


if __name__ == "__main__":
    main()
