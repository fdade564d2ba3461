"""A real api-server for the Credits UI tests, set up the way a user sets Airflow up.

- metadata database made with ``airflow db migrate``; connections stored in it with
  ``airflow connections import`` (the CLI's own path), pointing at the sandbox;
- Airflow's simple auth manager (subclassed only to make ``private_*`` DAGs admin-only: tests/ui/auth.py)
  with the users ``admin``, ``op`` and ``viewer`` (each the role of its name);
- ``[credits]`` naming a SQLite warehouse (two weeks of landed snapshots) and reservation tables;
- served at the root: Airflow 3.3.2's own UI, behind no proxy, ignores a ``base_url`` sub-path in its links
  and deep links (docs/ui.md); that the Credits pages' links are all relative, and so work under one,
  is checked by tests/ui/test_api_server.py::test_every_link_is_relative;
- DAG runs made with ``airflow dags test`` against the same metadata database.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import CANARY, subprocess_env
from tests.processes import free_port, healthy, wait_for

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = [sys.executable, "-m", "airflow"]
USERS = ("admin", "op", "viewer")
#: The connection whose key the sandbox rejects: its row shows the vendor's error (never the key).
REJECTED = "truemail_rejected"
#: Balance history landed for these connections (account label = connection id), hourly for two weeks.
HISTORY = {"leadmagic_default": "leadmagic", "localleads_default": "localleads"}
#: What each spends an hour: LocalLeads' fractions are what binary floating point sums with noise.
PER_HOUR = {"leadmagic_default": Decimal(40), "localleads_default": Decimal("1.37")}
#: The balance each account's landed history spends into, an hour after its last snapshot.
HISTORY_END = Decimal(5000)
#: A history that stopped: the generic connection's snapshots end BEHIND_DAYS ago at BEHIND_AT, far
#: from its live balance (the sandbox's 5,000): the page must say so and run the runway from live.
BEHIND = ("credit_api_default", "zerobounce")
BEHIND_DAYS = 3
BEHIND_AT = Decimal(955)


@dataclass
class UiStack:
    """A running api-server and what it was set up with."""

    base: str
    home: Path
    env: dict[str, str]
    sandbox: SandboxServer
    proc: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        """A JWT for ``user`` from the simple auth manager's token endpoint."""
        if user not in self.tokens:
            response = httpx.post(
                f"{self.base}/auth/token", json={"username": user, "password": f"{user}-pw"}, timeout=30
            )
            assert response.status_code == 201, response.text
            self.tokens[user] = response.json()["access_token"]
        return self.tokens[user]

    def get(
        self, path: str, user: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """GET ``path`` (under the Credits prefix) as ``user`` (``None``: anonymous)."""
        sent = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return httpx.get(f"{self.base}/credits/{path}", headers={**sent, **(headers or {})}, timeout=60)

    def request(self, method: str, path: str, user: str) -> httpx.Response:
        """Any method on ``path`` as ``user``."""
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        return httpx.request(method, f"{self.base}/credits/{path}", headers=headers, timeout=60)

    def dags_test(self, dag_id: str) -> str:
        """Run ``dag_id`` with ``airflow dags test`` against this stack's database; return its run id."""
        result = subprocess.run(
            [*AIRFLOW, "dags", "test", dag_id], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        rows = self.metadata(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", dag_id
        )
        assert rows, result.stdout[-2000:]
        assert rows[0][1] == "success", (rows, result.stdout[-2000:])
        return str(rows[0][0])

    def metadata(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Rows from the metadata database."""
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.home / "airflow.db", timeout=30)) as db:
            return db.execute(sql, args).fetchall()


def _connections(sandbox: SandboxServer, home: Path) -> dict[str, dict[str, Any]]:
    conns = {f"{v}_default": sandbox.connection(v) for v in ("leadmagic", "localleads", "truemail")}
    conns["credit_api_default"] = sandbox.connection("zerobounce")
    # The canary is the key of a working connection (the sandbox accepts it) and of a rejected one.
    conns["localleads_default"]["password"] = CANARY
    conns[REJECTED] = sandbox.connection("truemail", key=CANARY + "-rejected")
    for conn in conns.values():
        conn["extra"] = json.dumps(conn["extra"])
    conns["credits_warehouse"] = {"conn_type": "sqlite", "host": str(home / "warehouse.db")}
    conns["credits_reservations"] = {"conn_type": "sqlite", "host": str(home / "reservations.db")}
    return conns


def _seed_history(home: Path) -> None:
    """Two weeks of hourly snapshots per account in HISTORY, with a top-up, landed as the operator does."""
    from tests.warehouse_support import seed_snapshots, steady_history

    now = datetime.now(timezone.utc)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(
            "AIRFLOW_CONN_CREDITS_WAREHOUSE",
            json.dumps({"conn_type": "sqlite", "host": str(home / "warehouse.db")}),
        )
        for conn_id, vendor in HISTORY.items():
            history = steady_history(
                ending_at=now,
                before=HISTORY_END,
                per_hour=PER_HOUR[conn_id],
                hours=24 * 14,
                refill_at=24 * 7,
                refill=2000,
            )
            seed_snapshots("credits_warehouse", "credit_balance_snapshots", vendor, conn_id, history)
        stopped = steady_history(
            ending_at=now - timedelta(days=BEHIND_DAYS), before=BEHIND_AT, per_hour=Decimal(2), hours=24 * 10
        )
        seed_snapshots("credits_warehouse", "credit_balance_snapshots", BEHIND[1], BEHIND[0], stopped)


def start_ui_stack(tmp: Path, sandbox: SandboxServer) -> UiStack:
    """Set up and start the api-server (see the module docstring); stop it with :func:`stop_ui_stack`."""
    with sandbox.state.lock:
        sandbox.state.keys["localleads"].add(CANARY)
        # The live balances are where the landed history ends (HISTORY_END), as for a real account.
        sandbox.state.leadmagic.credits = HISTORY_END
        account = sandbox.state.localleads
        account.monthly = HISTORY_END + account.used - account.bonus
    port = free_port()
    home = tmp / "airflow-home"
    home.mkdir()
    (tmp / "passwords.json").write_text(json.dumps({u: f"{u}-pw" for u in USERS}))
    env = subprocess_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__DAGS_FOLDER=str(Path(__file__).parent / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__AUTH_MANAGER="tests.ui.auth.PrivateDagsAuthManager",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{u}:{u}" for u in USERS),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(tmp / "passwords.json"),
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        # One worker (3.0 starts four): the balance cache is per worker, and the tests count requests.
        AIRFLOW__API__WORKERS="1",
        # Airflow 3.0.6 passes an unset issuer to today's PyJWT, which refuses it: name one.
        AIRFLOW__API_AUTH__JWT_ISSUER="credits-ui-tests",
        AIRFLOW__CREDITS__WAREHOUSE_CONN_ID="credits_warehouse",
        AIRFLOW__CREDITS__RESERVATIONS_CONN_ID="credits_reservations",
        AIRFLOW__CREDITS__BALANCE_CACHE_SECONDS="2",
        AIRFLOW__CREDITS__BALANCE_TIMEOUT="5",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    for name in [k for k in env if k.startswith("AIRFLOW_CONN_")]:
        del env[name]  # only what the metadata database holds
    subprocess.run([*AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    conns_file = tmp / "connections.json"
    conns_file.write_text(json.dumps(_connections(sandbox, home)))
    subprocess.run(
        [*AIRFLOW, "connections", "import", str(conns_file)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    conns_file.unlink()
    _seed_history(home)
    # The budget the test DAGs draw on, made as a user makes it: the reservation database is
    # [credits] reservations_conn_id, a connection only the metadata database holds.
    subprocess.run(
        [
            str(Path(sys.executable).parent / "airflow-credits"),
            "budgets",
            "set",
            "ui-team",
            "--account",
            "ui_shared",
            "--cap",
            "500",
            "--timezone",
            "Europe/Berlin",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    # An alert rule on that budget whose notifier's SMTP connection does not exist: the test runs' first
    # reservation crosses it, and the page shows the alert failed, with its error.
    subprocess.run(
        [
            str(Path(sys.executable).parent / "airflow-credits"),
            "alerts",
            "set",
            "ui-team-used",
            "--kind",
            "budget",
            "--subject",
            "ui-team",
            "--threshold",
            "1",
            "--notifier",
            "smtp",
            "--notifier-args",
            json.dumps({"to": ["ui-team@example.com"], "smtp_conn_id": "credits_smtp_missing"}),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    log = tmp / "api-server.log"
    base = f"http://127.0.0.1:{port}"
    proc = serve_until_healthy([*AIRFLOW, "api-server", "--port", str(port)], env, log, base, 120)
    return UiStack(base, home, env, sandbox, proc, log)


def serve_until_healthy(
    command: list[str], env: dict[str, str], log: Path, base: str, timeout: float, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session (output in ``log``) and wait until ``base`` answers healthy.

    Stop it with :func:`stop_ui_stack`. An exit before that fails with the log's end.
    """
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{command[-1]!r} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        return healthy(base)

    try:
        wait_for(up, timeout, base)
    except BaseException:
        stop_ui_stack(proc)
        raise
    return proc


def stop_ui_stack(proc: subprocess.Popen[bytes]) -> None:
    """Stop the api-server as an operator does (SIGTERM, then SIGKILL if it hangs)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
