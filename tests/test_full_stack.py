"""
The deferrable sensor through Airflow's real scheduler and triggerer processes.

Starts api-server, scheduler, triggerer and dag-processor on 127.0.0.1 with the LocalExecutor, triggers
the deferrable example DAG, tops up the sandbox once the triggerer is polling, and checks the run
succeeds. The processes are stopped by the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import airflow
import pytest
from packaging.version import Version

from tests.conftest import subprocess_env
from tests.processes import free_port, healthy, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_credits_provider.sandbox import SandboxServer

pytestmark = pytest.mark.integration
DAG_ID = "example_leadmagic_enrichment_wait"
AIRFLOW = [sys.executable, "-m", "airflow"]
ROOT = Path(__file__).parent.parent


def _executor() -> dict[str, str]:
    """The LocalExecutor; on Airflow 3.0 with 3.1's fix of its start-up race (airflow30_local_executor)."""
    if Version(airflow.__version__) >= Version("3.1"):
        return {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"AIRFLOW__CORE__EXECUTOR": "tests.airflow30_local_executor.LocalExecutor", "PYTHONPATH": path}


def _components(port: int) -> tuple[tuple[str, list[str]], ...]:
    return (
        ("api-server", ["api-server", "--port", str(port)]),
        ("scheduler", ["scheduler", "--skip-serve-logs"]),
        ("triggerer", ["triggerer", "--skip-serve-logs"]),
        ("dag-processor", ["dag-processor"]),
    )


@pytest.fixture
def stack(tmp_path: Path, connections: SandboxServer) -> Iterator[dict[str, object]]:
    port = free_port()
    home = tmp_path / "airflow-home"
    env = subprocess_env(
        AIRFLOW_HOME=str(home),
        **_executor(),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "example_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="1",
        CREDITS_EXAMPLE_POKE_INTERVAL="1",
    )
    home.mkdir()
    subprocess.run([*AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    logs = {}
    procs = []
    components = _components(port)

    def start(name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = logs.get(name) or (tmp_path / f"{name}.log").open("w")
        logs[name] = log
        return subprocess.Popen(
            [*AIRFLOW, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    for name, args in components:
        procs.append(start(name, args))

    def stop(name: str) -> None:
        """Stop one component as an operator does (SIGTERM, then wait)."""
        proc = procs[[n for n, _ in components].index(name)]
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)

    def restart(name: str) -> None:
        index = [n for n, _ in components].index(name)
        if procs[index].poll() is None:
            stop(name)
        procs[index] = start(name, components[index][1])

    try:

        def api_server_up() -> bool:
            for (name, _), proc in zip(components, procs, strict=True):
                if proc.poll() is not None:  # died at start-up: say why, do not wait out the timeout
                    tail = (tmp_path / f"{name}.log").read_text()[-3000:]
                    raise AssertionError(f"the {name} exited with {proc.returncode}:\n{tail}")
            return healthy(f"http://127.0.0.1:{port}")

        wait_for(api_server_up, 120, "the api-server")
        yield {"env": env, "home": home, "tmp": tmp_path, "stop": stop, "restart": restart}
    finally:
        for proc in procs:
            with __import__("contextlib").suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs.values():
            log.close()


def _query(home: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(home / "airflow.db", timeout=30)) as db:
        return db.execute(sql, args).fetchall()


def test_deferrable_sensor_through_scheduler_and_triggerer(
    stack: dict[str, object], connections: SandboxServer
) -> None:
    home = stack["home"]
    assert isinstance(home, Path)
    state = connections.state
    state.leadmagic.credits = Decimal(1)
    wait_for(lambda: _query(home, "SELECT 1 FROM dag WHERE dag_id = ?", DAG_ID), 120, "the DAG to be parsed")
    subprocess.run(
        [*AIRFLOW, "dags", "trigger", DAG_ID, "-c", json.dumps({"leads": 2})],
        env=stack["env"],
        check=True,
        capture_output=True,
        timeout=120,  # type: ignore[arg-type]
    )

    def deferred() -> bool:
        rows = _query(
            home, "SELECT state FROM task_instance WHERE dag_id = ? AND task_id = 'credit_preflight'", DAG_ID
        )
        return bool(rows) and rows[0][0] == "deferred"

    wait_for(deferred, 180, "the sensor to defer")
    # The scheduler handles the worker's "deferred" executor event on its own schedule; changing the
    # balance before it has would let the trigger fire first and the late event fail the task. Wait for
    # the state the test needs: the scheduler has recorded the task instance as finished into deferral.
    scheduler_log = Path(str(stack["tmp"])) / "scheduler.log"
    wait_for(
        lambda: any(
            "TaskInstance Finished" in line
            and "task_id=credit_preflight" in line
            and "state=deferred" in line
            for line in scheduler_log.read_text().splitlines()
        ),
        120,
        "the scheduler to process the deferral",
    )
    polls_before = len(state.requests_for("leadmagic", "/v1/credits"))
    # The triggerer keeps polling the sandbox while the task holds no worker slot.
    wait_for(
        lambda: len(state.requests_for("leadmagic", "/v1/credits")) >= polls_before + 2,
        60,
        "the triggerer to poll",
    )
    with state.lock:
        state.leadmagic.credits = Decimal(100)

    def finished() -> str | None:
        rows = _query(home, "SELECT state FROM dag_run WHERE dag_id = ?", DAG_ID)
        return str(rows[0][0]) if rows and rows[0][0] in ("success", "failed") else None

    assert wait_for(finished, 180, "the run to finish") == "success", _why(stack, DAG_ID)
    states = dict(_query(home, "SELECT task_id, state FROM task_instance WHERE dag_id = ?", DAG_ID))
    assert states == {"count_leads": "success", "credit_preflight": "success", "enrich": "success"}
    assert len(state.requests_for("leadmagic", "/v1/people/email-finder")) == 2
    # The trigger's own lines land in the task's log, written by the triggerer while the task was deferred.
    task_logs = "".join(
        p.read_text() for p in home.glob(f"logs/dag_id={DAG_ID}/**/task_id=credit_preflight/*")
    )
    assert "1 credits available, 2.2 required; checking again in 1.0s" in task_logs


@pytest.fixture
def reservation_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The examples' reservation connection: a SQLite file every worker process opens.

    The examples' warehouse too (``warehouse.db`` next to it), for the partial-run example.
    """
    path = tmp_path / "reservations.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_CREDITS_RESERVATIONS", json.dumps({"conn_type": "sqlite", "host": str(path)})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CREDITS_WAREHOUSE",
        json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}),
    )
    return path


def _trigger(stack: dict[str, object], dag_id: str, conf: dict[str, object]) -> None:
    subprocess.run(
        [*AIRFLOW, "dags", "trigger", dag_id, "-c", json.dumps(conf)],
        env=stack["env"],
        check=True,
        capture_output=True,
        timeout=120,  # type: ignore[arg-type]
    )


def _run_states(home: Path, dag_id: str) -> list[str]:
    return [str(r[0]) for r in _query(home, "SELECT state FROM dag_run WHERE dag_id = ?", dag_id)]


def _why(stack: dict[str, object], dag_id: str) -> str:
    """For a failed assertion: the DAG's task instances and the scheduler's errors about them."""
    home = stack["home"]
    assert isinstance(home, Path)
    tis = _query(
        home, "SELECT task_id, map_index, state, try_number FROM task_instance WHERE dag_id = ?", dag_id
    )
    log = (Path(str(stack["tmp"])) / "scheduler.log").read_text()
    errors = [line for line in log.splitlines() if dag_id in line and "ERROR" in line]
    refused = log.count('/run "HTTP/1.1 409')  # tasks the execution API refused to start
    return f"task instances of {dag_id}: {tis}; starts refused: {refused}; scheduler errors: {errors[-10:]}"


def test_concurrent_runs_on_one_account_never_spend_the_same_credits(
    reservation_db: Path, stack: dict[str, object], connections: SandboxServer
) -> None:
    """Three runs of 44 credits each on a 100-credit account, at once: two reserve and spend, one fails.

    Then a deferrable run that does not fit waits in the triggerer and reserves when the account is topped up.
    """
    home = stack["home"]
    assert isinstance(home, Path)
    state = connections.state
    state.leadmagic.credits = Decimal(100)
    contacts, companies = "example_shared_account_contacts", "example_shared_account_companies"
    wait_for(
        lambda: len(_query(home, "SELECT 1 FROM dag WHERE dag_id IN (?, ?)", contacts, companies)) == 2,
        120,
        "the DAGs to be parsed",
    )
    for _ in range(3):
        _trigger(stack, contacts, {"leads": 40, "seconds_per_lead": 0.05})

    def all_finished() -> bool:
        runs = _run_states(home, contacts)
        return len(runs) == 3 and all(s in ("success", "failed") for s in runs)

    wait_for(all_finished, 240, "the three runs to finish")
    assert sorted(_run_states(home, contacts)) == ["failed", "success", "success"], _why(stack, contacts)
    preflights = sorted(
        str(r[0])
        for r in _query(
            home, "SELECT state FROM task_instance WHERE dag_id = ? AND task_id = 'reserve_credits'", contacts
        )
    )
    assert preflights == ["failed", "success", "success"]
    assert len(state.requests_for("leadmagic", "/v1/people/email-finder")) == 80
    assert state.leadmagic.credits == 20  # nobody ran out half-way
    with contextlib.closing(sqlite3.connect(reservation_db)) as db:
        usage = db.execute("SELECT outcome, reserved, spent FROM credit_usage").fetchall()
        active = db.execute("SELECT COUNT(*) FROM credit_reservations WHERE status = 'active'").fetchone()
    assert sorted(u[:2] for u in usage) == [("released", "44"), ("released", "44")]
    assert active == (0,)

    _trigger(stack, companies, {"leads": 30})  # needs 33, 20 there: waits in the triggerer

    def deferred() -> bool:
        rows = _query(
            home,
            "SELECT state FROM task_instance WHERE dag_id = ? AND task_id = 'reserve_credits'",
            companies,
        )
        return bool(rows) and rows[0][0] == "deferred"

    wait_for(deferred, 180, "the reserving sensor to defer")
    scheduler_log = Path(str(stack["tmp"])) / "scheduler.log"
    wait_for(
        lambda: (
            "task_id=reserve_credits" in scheduler_log.read_text()
            and any(
                "TaskInstance Finished" in line
                and "task_id=reserve_credits" in line
                and "state=deferred" in line
                for line in scheduler_log.read_text().splitlines()
            )
        ),
        120,
        "the scheduler to process the deferral",
    )
    with state.lock:
        state.leadmagic.credits += 50

    def finished() -> str | None:
        runs = _run_states(home, companies)
        return runs[0] if runs and runs[0] in ("success", "failed") else None

    assert wait_for(finished, 180, "the waiting run to finish") == "success", _why(stack, companies)
    assert state.leadmagic.credits == 40

    # A partial run on what is left: 36 leads x 1.1 = 39.6 fit in 40, the other 14 stay pending.
    partial = "example_partial_enrichment"
    wait_for(lambda: _query(home, "SELECT 1 FROM dag WHERE dag_id = ?", partial), 120, "the DAG to be parsed")
    _trigger(stack, partial, {"new_leads": 50})

    def partial_finished() -> str | None:
        runs = _run_states(home, partial)
        return runs[0] if runs and runs[0] in ("success", "failed") else None

    assert wait_for(partial_finished, 240, "the partial run to finish") == "success", _why(stack, partial)
    enrich_tis = _query(
        home, "SELECT map_index, state FROM task_instance WHERE dag_id = ? AND task_id = 'enrich'", partial
    )
    assert sorted(enrich_tis) == [(i, "success") for i in range(4)]  # batches of 10, 10, 10 and 6
    with contextlib.closing(sqlite3.connect(reservation_db.parent / "warehouse.db")) as db:
        statuses = dict(db.execute("SELECT status, COUNT(*) FROM pending_leads GROUP BY status").fetchall())
    assert statuses == {"enriched": 36, "pending": 14}
    assert state.leadmagic.credits == 4
    with contextlib.closing(sqlite3.connect(reservation_db)) as db:
        reserved = db.execute(
            "SELECT reserved, spent FROM credit_usage WHERE dag_id = ?", (partial,)
        ).fetchall()
    assert reserved == [("39.6", "36")]


ARRIVAL_DAG = "example_start_when_credits_arrive"


def test_a_dag_runs_once_per_arrival_of_credits_through_the_triggerer(
    stack: dict[str, object], connections: SandboxServer
) -> None:
    """The watcher in the real triggerer: one run per crossing, none while above, none more on restart.

    On Airflow 3.3+ it remembers across triggerer restarts (the asset state store): a crossing that
    happens while the triggerer is down starts a run when it is back. Older versions have no store: the
    first balance after a restart is only a new starting point.
    """
    from airflow.triggers.base import BaseEventTrigger

    has_state_store = hasattr(BaseEventTrigger, "open_shared_stream")  # both arrived in Airflow 3.3
    home = stack["home"]
    assert isinstance(home, Path)
    state = connections.state

    def set_credits(amount: int) -> None:
        with state.lock:
            state.leadmagic.credits = Decimal(amount)

    def polls() -> int:
        return len(state.requests_for("leadmagic", "/v1/credits"))

    def wait_polls(count: int, what: str) -> None:
        start = polls()
        wait_for(lambda: polls() >= start + count, 120, what)

    def runs() -> list[str]:
        return _run_states(home, ARRIVAL_DAG)

    def wait_runs(count: int) -> None:
        wait_for(lambda: len(runs()) == count and all(r == "success" for r in runs()), 180, f"{count} run(s)")

    set_credits(100)
    wait_for(
        lambda: _query(home, "SELECT 1 FROM dag WHERE dag_id = ?", ARRIVAL_DAG), 120, "the DAG to be parsed"
    )
    wait_polls(3, "the triggerer to watch the balance")
    assert runs() == []
    set_credits(5000)  # a top-up: crosses 1000
    wait_runs(1)
    wait_polls(5, "more polls above the threshold")
    assert runs() == ["success"]  # still above: nothing more

    stack["restart"]("triggerer")  # type: ignore[operator]
    wait_polls(5, "the restarted triggerer to watch")
    assert runs() == ["success"]  # it already fired for this crossing

    set_credits(10)  # spent: below the threshold again
    wait_polls(3, "the watcher to see the drop")
    stack["stop"]("triggerer")  # type: ignore[operator]
    set_credits(3000)  # credits arrive while the triggerer is down
    stack["restart"]("triggerer")  # type: ignore[operator]
    if has_state_store:
        wait_runs(2)
        triggerer_log = (Path(str(stack["tmp"])) / "triggerer.log").read_text()
        # Each restart read what the watcher had seen from the store: 5000 the first time, 10 the second.
        assert "to reach 1000 credits (every 1.0s); last seen 5000" in triggerer_log
        assert "to reach 1000 credits (every 1.0s); last seen 10" in triggerer_log
    else:
        wait_polls(5, "the restarted triggerer to watch")
        assert runs() == ["success"]
        set_credits(10)
        wait_polls(3, "the watcher to see the drop")
        set_credits(3000)
        wait_runs(2)
    wait_polls(5, "more polls above the threshold")
    assert runs() == ["success", "success"]
    task_logs = "".join(
        p.read_text() for p in home.glob(f"logs/dag_id={ARRIVAL_DAG}/**/task_id=credits_arrived/*")
    )
    assert "Credits arrived on leadmagic_default: 5000 (was 100)" in task_logs
    assert "Credits arrived on leadmagic_default: 3000 (was 10)" in task_logs
