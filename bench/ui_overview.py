"""The Credits overview's server time with 20 credit connections and 1,000,000 snapshot rows.

Set-up: a PostgreSQL warehouse (``CREDITS_TEST_POSTGRES_URI``, default the local server) holding
1,000,000 balance snapshots (20 accounts x 50,000 hourly snapshots, almost six years each); 20 LeadMagic
connections on the sandbox in the metadata database; two real api-servers with the Credits plugin, one
caching balances for an hour (warm: what users get within ``balance_cache_seconds``) and one with
``balance_cache_seconds=0`` (cold: every load asks all 20 vendors). The baseline, in the same run, is
Airflow's own ``GET /api/v2/connections?limit=100`` on the same server: what the Connections page loads.

Each round asks the three in turn (interleaved); prints p50/p95 of the app's own ``Server-Timing`` and of
the time the client waited, and the ratios of the medians to the baseline's. Usage:
``python bench/ui_overview.py [ROUNDS]`` (default 30).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_credits_provider.sandbox import SandboxServer  # noqa: E402
from tests.processes import free_port, healthy, wait_for  # noqa: E402

ACCOUNTS, PER_ACCOUNT = 20, 50_000
TABLE = "bench_ui_snapshots"
AIRFLOW = [sys.executable, "-m", "airflow"]


def _seed(uri: str) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {TABLE}")
        db.execute(
            f"CREATE TABLE {TABLE} (vendor VARCHAR(255) NOT NULL, account VARCHAR(255) NOT NULL, "
            "fetched_at TIMESTAMP NOT NULL, available NUMERIC NOT NULL, total NUMERIC, monthly NUMERIC, "
            "used NUMERIC, bonus NUMERIC, locked NUMERIC, plan VARCHAR(255), period_end TIMESTAMP, "
            "next_reset_at TIMESTAMP, loaded_at TIMESTAMP NOT NULL, raw TEXT, "
            "PRIMARY KEY (vendor, account, fetched_at))"
        )
        # Hourly snapshots ending now, spending 3 credits an hour with a top-up every 1,000 hours.
        db.execute(
            f"INSERT INTO {TABLE} (vendor, account, fetched_at, available, loaded_at) "
            "SELECT 'leadmagic', 'bench_' || lpad(a::text, 2, '0'), "
            "date_trunc('hour', now() AT TIME ZONE 'UTC') - make_interval(hours => h), "
            "10000 + 3 * (h % 1000) + a, now() AT TIME ZONE 'UTC' "
            f"FROM generate_series(1, {ACCOUNTS}) a, generate_series(0, {PER_ACCOUNT - 1}) h"
        )
        db.execute(f"ANALYZE {TABLE}")
        count = db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()
        print(f"warehouse: {count[0]:,} snapshot rows in {TABLE}")


def _conn_json(uri: str) -> dict[str, object]:
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    return {
        "conn_type": "postgres",
        "host": parts.hostname,
        "port": parts.port or 5432,
        "login": parts.username or "postgres",
        "password": parts.password,
        "schema": parts.path.lstrip("/") or "postgres",
    }


def _start(
    home: Path, uri: str, sandbox: SandboxServer, cache_seconds: int
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CREDITS__WAREHOUSE_CONN_ID": "bench_warehouse",
        "AIRFLOW__CREDITS__SNAPSHOTS_TABLE": TABLE,
        "AIRFLOW__CREDITS__BALANCE_CACHE_SECONDS": str(cache_seconds),
    }
    if not (home / "airflow.db").exists():
        subprocess.run([*AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
        conns = {f"bench_{a:02d}": sandbox.connection("leadmagic") for a in range(1, ACCOUNTS + 1)}
        for conn in conns.values():
            conn["extra"] = json.dumps(conn["extra"])
        conns["bench_warehouse"] = _conn_json(uri)
        (home / "conns.json").write_text(json.dumps(conns))
        subprocess.run(
            [*AIRFLOW, "connections", "import", str(home / "conns.json")],
            env=env,
            check=True,
            capture_output=True,
        )
    proc = subprocess.Popen(
        [*AIRFLOW, "api-server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: healthy(base), 120, "the api-server")
    return base, proc


def _timed(client: httpx.Client, url: str, token: str) -> tuple[float, float | None]:
    started = time.perf_counter()
    response = client.get(url, headers={"Authorization": f"Bearer {token}"})
    waited = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    timing = response.headers.get("server-timing", "")
    server = float(timing.split("dur=")[1]) if "dur=" in timing else None
    return waited, server


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    uri = os.environ.get("CREDITS_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
    _seed(uri)
    home = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    procs = []
    with SandboxServer() as sandbox:
        try:
            warm_base, warm = _start(home, uri, sandbox, 3600)
            cold_base, cold = _start(home, uri, sandbox, 0)
            procs = [warm, cold]
            with httpx.Client(timeout=60) as client:
                token = client.get(f"{warm_base}/auth/token").json()["access_token"]
                contenders = {
                    "overview, balances cached (warm)": f"{warm_base}/credits/api/accounts",
                    "overview page HTML (warm)": f"{warm_base}/credits/",
                    "overview, 20 vendors asked (cold)": f"{cold_base}/credits/api/accounts",
                    "baseline: GET /api/v2/connections": f"{warm_base}/api/v2/connections?limit=100",
                }
                body = client.get(
                    contenders["overview, balances cached (warm)"],
                    headers={"Authorization": f"Bearer {token}"},
                ).json()
                rows = body["connections"]
                if len(rows) != ACCOUNTS or not all(r["runway"] for r in rows):
                    raise SystemExit(f"the overview is not what the bench set up: {body.get('notices')}")
                for url in contenders.values():  # first loads: imports, caches, connections
                    _timed(client, url, token)
                waited: dict[str, list[float]] = {name: [] for name in contenders}
                server: dict[str, list[float]] = {name: [] for name in contenders}
                for _ in range(rounds):
                    for name, url in contenders.items():
                        w, s = _timed(client, url, token)
                        waited[name].append(w)
                        if s is not None:
                            server[name].append(s)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)
    baseline = statistics.median(waited["baseline: GET /api/v2/connections"])
    print(f"{rounds} interleaved rounds; {ACCOUNTS} connections; {ACCOUNTS * PER_ACCOUNT:,} snapshot rows\n")
    print("| load | server p50 | server p95 | client p50 | client p95 | client p50 / baseline |")
    print("|---|---|---|---|---|---|")
    for name in contenders:
        s = server[name]
        cells = [f"{_pct(s, 0.5):.0f} ms", f"{_pct(s, 0.95):.0f} ms"] if s else ["-", "-"]
        w = waited[name]
        print(
            f"| {name} | {cells[0]} | {cells[1]} | {_pct(w, 0.5):.0f} ms | {_pct(w, 0.95):.0f} ms | "
            f"{statistics.median(w) / baseline:.2f}x |"
        )
    import psycopg

    with psycopg.connect(uri, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
