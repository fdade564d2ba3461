"""
The reservation guarantees on Airflow's CeleryExecutor: two workers, one shared account, two budgets.

Started here as a deployment runs them: PostgreSQL for the metadata database and for the reservation
database (two databases of their own on the server, made and dropped by the test), Redis as the Celery
broker (a database number of its own), a scheduler, a dag-processor, an api-server and two Celery
workers, ``worker-a`` (concurrency 6) and ``worker-b`` (concurrency 3), each naming itself through
``[core] hostname_callable``.
The DAG (tests/stack_dags/celery_shared_account.py) maps two task groups over 20 shards each; every shard
reserves 10 credits on one account under its team's budget, spends them and releases.

1. Three runs at once on 250 credits, budgets of 150 (team_a) and 120 (team_b): exactly 25 shards run,
   neither budget goes over its cap, the account is spent to 0 and never below, every reservation is
   released and recorded once in ``credit_usage``, both workers ran shards, and each run's Credits page
   (its JSON, through the api-server) lists what it reserved.
2. A run whose shards work for 8 s; ``worker-a`` is SIGKILLed while it runs some of them. The scheduler
   finds them dead (heartbeat timeout), the retries run on ``worker-b`` under the reservation their shard
   already holds: one usage row per shard, none counted twice, the account spent by exactly the recorded
   amount, nothing left active.

CI runs it in `make test` (Airflow 3.3); the older rows leave it out to keep .ci/run under 45 minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import subprocess_env
from tests.processes import free_port, healthy, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_credits_provider.sandbox import SandboxServer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = [sys.executable, "-m", "airflow"]
DAG_ID = "celery_shared_account"
ACCOUNT = "celery_shared"
REDIS = os.environ.get("CREDITS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
WORKERS = {"worker-a": 6, "worker-b": 3}


def _airflow_version() -> tuple[int, int]:
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)


if _airflow_version() < (3, 3):
    pytestmark = [
        pytest.mark.integration,
        pytest.mark.skip(
            reason="runs on the Airflow 3.3 row (make test); left out of older rows for CI time"
        ),
    ]


def _redis_db() -> str:
    """A Redis database number nobody else uses now (CI's lanes share the machine's Redis)."""
    import redis

    try:
        redis.Redis.from_url(f"{REDIS}/0", socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        why = f"no Redis at {REDIS} ({exc}); set CREDITS_TEST_REDIS_URL"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    for number in range(2, 16):
        client = redis.Redis.from_url(f"{REDIS}/{number}")
        if client.set("credits-test-lock", "1", nx=True, ex=3600):
            client.flushdb()
            client.set("credits-test-lock", "1", ex=3600)
            return f"{REDIS}/{number}"
    raise AssertionError(f"no free Redis database at {REDIS}")


@contextlib.contextmanager
def _database(uri: str) -> Iterator[str]:
    """A new PostgreSQL database on the server of ``uri`` (dropped afterwards); yields its URI."""
    import psycopg

    name = f"credits_celery_{secrets.token_hex(4)}"
    with psycopg.connect(uri, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(uri)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(uri, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class CeleryStack:
    """The running components, their logs, and the databases."""

    def __init__(self, tmp: Path, env: dict[str, str], db_uri: str, credits_uri: str, port: int) -> None:
        self.tmp, self.env, self.port = tmp, env, port
        self.db_uri, self.credits_uri = db_uri, credits_uri
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Any] = {}

    def start(self, name: str, args: list[str], **extra: str) -> None:
        log = self.logs.setdefault(name, (self.tmp / f"{name}.log").open("w"))
        self.procs[name] = subprocess.Popen(
            [*AIRFLOW, *args],
            env={**self.env, **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, name: str) -> None:
        """SIGKILL a component and every process it started, as a lost machine ends them.

        The whole tree, not the process group: Airflow's supervisor starts each task in a session of its
        own, which a group kill would leave running (and spending) without its supervisor.
        """
        import psutil

        root = psutil.Process(self.procs[name].pid)
        tree = [root, *root.children(recursive=True)]
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(tree, timeout=30)
        self.procs[name].wait(timeout=30)

    def alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None and name != "worker-a":
                tail = (self.tmp / f"{name}.log").read_text()[-3000:]
                raise AssertionError(f"the {name} exited with {proc.returncode}:\n{tail}")

    def query(self, sql: str, *args: object, db: str = "metadata") -> list[tuple[Any, ...]]:
        """Rows from the metadata database, or (``db="credits"``) the reservation database."""
        import psycopg

        with psycopg.connect(self.db_uri if db == "metadata" else self.credits_uri) as conn:
            return conn.execute(sql, args).fetchall()

    def trigger(self, conf: dict[str, object]) -> str:
        result = subprocess.run(
            [*AIRFLOW, "dags", "trigger", DAG_ID, "-c", json.dumps(conf), "-o", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return str(json.loads(result.stdout[result.stdout.index("[{") :])[0]["dag_run_id"])

    def stop(self) -> None:
        """SIGTERM every component, then SIGKILL what is left of their process trees.

        Trees, not process groups: a task process runs in a session of its own (see :meth:`kill`).
        """
        import psutil

        trees = []
        for proc in self.procs.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(proc.pid)
                trees += [root, *root.children(recursive=True)]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(trees, timeout=30)
        for left in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                left.kill()
        for proc in self.procs.values():
            proc.wait(timeout=30)
        for log in self.logs.values():
            log.close()


@pytest.fixture
def celery_stack(tmp_path: Path, postgres_conn_uri: str, connections: SandboxServer) -> Iterator[CeleryStack]:
    port = free_port()
    home = tmp_path / "airflow-home"
    home.mkdir()
    (tmp_path / "passwords.json").write_text(json.dumps({"admin": "admin-pw"}))
    broker = _redis_db()
    with _database(postgres_conn_uri) as db_uri, _database(postgres_conn_uri) as credits_uri:
        sqlalchemy_uri = db_uri.replace("postgresql://", "postgresql+psycopg://", 1)
        parts = urlsplit(credits_uri)
        reservations = {
            "conn_type": "postgres",
            "host": parts.hostname,
            "port": parts.port or 5432,
            "login": parts.username or "postgres",
            "schema": parts.path.lstrip("/"),
        }
        env = subprocess_env(
            AIRFLOW_HOME=str(home),
            PYTHONPATH=str(ROOT),
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlalchemy_uri,
            AIRFLOW__CELERY__BROKER_URL=broker,
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+{db_uri}",
            AIRFLOW__CORE__HOSTNAME_CALLABLE="tests.stack_dags.worker_hostname.worker_hostname",
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "tests" / "stack_dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__PARALLELISM="64",
            AIRFLOW__CORE__AUTH_MANAGER=(
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(tmp_path / "passwords.json"),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="15",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="2",
            # A shard worker-a had taken off the broker but not started when it was killed stays "queued"
            # (Celery acks late; Redis gives it back only after its visibility timeout): the scheduler
            # queues it again after this long, as a deployment that loses a machine needs it to. Airflow's
            # default (600 s, checked every 120 s) outlasts the test.
            AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT="90",
            AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL="5",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__CREDITS__RESERVATIONS_CONN_ID="credits_reservations",
            AIRFLOW_CONN_CREDITS_RESERVATIONS=json.dumps(reservations),
        )
        subprocess.run([*AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
        stack = CeleryStack(tmp_path, env, db_uri, credits_uri, port)
        try:
            stack.start("api-server", ["api-server", "--port", str(port)])
            stack.start("scheduler", ["scheduler", "--skip-serve-logs"])
            stack.start("dag-processor", ["dag-processor"])
            for name, concurrency in WORKERS.items():
                stack.start(
                    name,
                    [
                        "celery",
                        "worker",
                        "--celery-hostname",
                        f"{name}@%h",
                        "--concurrency",
                        str(concurrency),
                        "--skip-serve-logs",
                    ],
                    CREDITS_WORKER=name,
                )

            def up() -> bool:
                stack.alive()
                return healthy(f"http://127.0.0.1:{port}")

            wait_for(up, 180, "the api-server")
            yield stack
        finally:
            stack.stop()
            import redis

            redis.Redis.from_url(broker).flushdb()  # its queues, and the claim on the database number


def _budgets(stack: CeleryStack, caps: dict[str, int]) -> None:
    """The teams' budgets, through the CLI as a user defines them."""
    lines = [
        f"  - name: {team}\n    account: {ACCOUNT}\n    cap: {cap}\n    period: month\n"
        for team, cap in caps.items()
    ]
    path = stack.tmp / "budgets.yaml"
    path.write_text("budgets:\n" + "".join(lines))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_credits_provider.cli",
            "budgets",
            "import",
            str(path),
            "--conn-id",
            "credits_reservations",
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _finished(stack: CeleryStack, run_ids: list[str]) -> bool:
    stack.alive()
    states = dict(stack.query("SELECT run_id, state FROM dag_run WHERE dag_id = %s", DAG_ID))
    return all(states.get(r) in ("success", "failed") for r in run_ids)


def _ran(stack: CeleryStack, run_id: str | None = None) -> list[tuple[str, int, str, int]]:
    """(team, map index, hostname, try number) of every enrich instance that succeeded."""
    sql = (
        "SELECT task_id, map_index, hostname, try_number FROM task_instance WHERE dag_id = %s "
        "AND task_id LIKE '%%.enrich' AND state = 'success'"
    )
    args: tuple[object, ...] = (DAG_ID,)
    if run_id:
        sql += " AND run_id = %s"
        args += (run_id,)
    return [(str(t).split(".")[0], int(m), str(h), int(n)) for t, m, h, n in stack.query(sql, *args)]


def _usage(stack: CeleryStack) -> list[tuple[str, str, int, str, Decimal, Decimal | None, str]]:
    return [
        (str(run), str(task), int(index), str(outcome), Decimal(reserved), spent, str(budget))
        for run, task, index, outcome, reserved, spent, budget in stack.query(
            "SELECT run_id, task_id, map_index, outcome, reserved, spent, budget FROM credit_usage "
            "WHERE account = %s",
            ACCOUNT,
            db="credits",
        )
    ]


@pytest.mark.timeout(900)
def test_reservations_hold_across_celery_workers_and_a_killed_worker(
    celery_stack: CeleryStack, connections: SandboxServer
) -> None:
    stack = celery_stack
    state = connections.state
    with state.lock:
        state.leadmagic.credits = Decimal(250)
    _budgets(stack, {"team_a": 150, "team_b": 120})
    wait_for(lambda: stack.query("SELECT 1 FROM dag WHERE dag_id = %s", DAG_ID), 180, "the DAG to be parsed")

    # 1. Three runs at once: 120 shards ask for 1,200 credits; 250 are there, the budgets allow 270.
    runs = [stack.trigger({"seconds": 0.5}) for _ in range(3)]
    wait_for(lambda: _finished(stack, runs), 600, "the three runs to finish")
    ran = _ran(stack)
    per_team = {team: sum(1 for r in ran if r[0] == team) for team in ("team_a", "team_b")}
    assert sum(per_team.values()) == 25, per_team  # exactly what the balance affords
    assert per_team["team_a"] <= 15, per_team  # neither budget over its cap
    assert per_team["team_b"] <= 12, per_team
    assert {r[2] for r in ran} == set(WORKERS), ran  # both workers reserved and spent
    assert state.leadmagic.credits == 0  # spent to the last credit, never below
    assert len(state.requests_for("leadmagic", "/v1/people/email-finder")) == 250
    usage = _usage(stack)
    assert len(usage) == 25
    assert {u[3] for u in usage} == {"released"}
    assert len({(u[0], u[1], u[2]) for u in usage}) == 25  # one row per shard that ran
    assert sum(u[4] for u in usage) == 250
    assert {(u[6], sum(1 for v in usage if v[6] == u[6])) for u in usage} == {
        (team, n) for team, n in per_team.items() if n
    }
    active = stack.query("SELECT COUNT(*) FROM credit_reservations WHERE status = 'active'", db="credits")
    assert active == [(0,)]
    skipped = stack.query(
        "SELECT COUNT(*) FROM task_instance WHERE dag_id = %s AND task_id LIKE '%%.reserve' "
        "AND state = 'skipped'",
        DAG_ID,
    )
    assert skipped == [(120 - 25,)]
    # Each run's Credits page, through the api-server, lists what that run reserved.
    token = httpx.post(
        f"http://127.0.0.1:{stack.port}/auth/token",
        json={"username": "admin", "password": "admin-pw"},
        timeout=30,
    ).json()["access_token"]
    for run_id in runs:
        page = httpx.get(
            f"http://127.0.0.1:{stack.port}/credits/api/runs/{DAG_ID}/{run_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert page.status_code == 200, page.text
        body = page.json()
        shown = {(u["task_id"], u["map_index"]) for u in body["usage"]}
        assert shown == {(u[1], u[2]) for u in usage if u[0] == run_id}, body

    # 2. Worker A is killed while it works on shards of a new run; the retries run on worker B.
    with state.lock:
        state.leadmagic.credits = Decimal(100)
    _budgets(stack, {"team_a": 10_000, "team_b": 10_000})  # the budgets out of the way: the balance decides
    slow = stack.trigger({"seconds": 8})

    def a_is_working() -> bool:
        stack.alive()
        rows = stack.query(
            "SELECT COUNT(*) FROM task_instance WHERE run_id = %s AND task_id LIKE '%%.enrich' "
            "AND state = 'running' AND hostname = 'worker-a'",
            slow,
        )
        return rows[0][0] >= 2

    wait_for(a_is_working, 240, "worker-a to run shards")
    on_a = {
        (str(t), int(m))
        for t, m in stack.query(
            "SELECT task_id, map_index FROM task_instance WHERE run_id = %s AND task_id LIKE '%%.enrich' "
            "AND state = 'running' AND hostname = 'worker-a'",
            slow,
        )
    }
    stack.kill("worker-a")
    wait_for(lambda: _finished(stack, [slow]), 600, "the run to finish on worker-b")
    ran = _ran(stack, slow)
    states = stack.query(
        "SELECT task_id, map_index, state, hostname, try_number FROM task_instance WHERE run_id = %s "
        "AND state <> 'skipped' ORDER BY map_index, task_id",
        slow,
    )
    assert len(ran) == 10, states  # 100 credits: exactly ten shards
    retried = {(f"{team}.enrich", m) for team, m, host, tries in ran if tries > 1}
    assert on_a <= retried, (on_a, ran)  # what worker-a was running was retried...
    assert all(host == "worker-b" for team, m, host, tries in ran if tries > 1)  # ...on worker-b
    slow_usage = [u for u in _usage(stack) if u[0] == slow]
    assert len(slow_usage) == 10
    assert {u[3] for u in slow_usage} == {"released"}
    assert len({(u[1], u[2]) for u in slow_usage}) == 10  # one reservation per shard, retried or not
    assert state.leadmagic.credits == 0
    assert sum(u[4] for u in slow_usage) == 100
    assert stack.query("SELECT COUNT(*) FROM credit_reservations WHERE status = 'active'", db="credits") == [
        (0,)
    ]
