"""
Shared test set-up: an isolated AIRFLOW_HOME, a real sandbox server per test, the canary key, PostgreSQL.

Airflow reads its configuration once, at first import, so the environment is set here at module import
time, before any test module imports airflow.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

_HOME = Path(tempfile.mkdtemp(prefix="credits-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).parent.parent / "example_dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME}/airflow.db"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

import pytest  # noqa: E402

from airflow_credits_provider.sandbox import SandboxServer, SandboxState  # noqa: E402
from airflow_credits_provider.sandbox.state import NAMED_VENDORS  # noqa: E402
from tests.postgres import postgres_uri  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

#: A key that must never show up anywhere: logs, messages, reprs, XCom, CLI output.
CANARY = "canary-7f3a9c1e5b2d4a6f-DO-NOT-LEAK"

#: Fast retries for tests: real backoff, milliseconds long.
FAST_EXTRA = {"timeout": 2, "max_retries": 2, "retry_initial_wait": 0.01, "max_retry_wait": 0.05}


#: A test still running after this long is hung where pytest-timeout's alarm (300 s) cannot reach it (a
#: thread blocked in C, a dag.test() loop that swallowed the alarm's exception): the process then prints
#: every thread's stack and exits, so CI fails at once and says where, instead of running out its time.
HANG_SECONDS = int(os.environ.get("CREDITS_TEST_HANG_SECONDS", "600"))


_watchdog_out: list[int] = []


def pytest_configure(config: pytest.Config) -> None:
    """Keep a copy of the real stderr for the watchdog: during a test, pytest captures descriptor 2."""
    _watchdog_out.append(os.dup(sys.__stderr__.fileno()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Arm the hang watchdog (:data:`HANG_SECONDS`) around each test's set-up, call and teardown."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=_watchdog_out[0])
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Arm the watchdog once more for the process's exit (atexit handlers join child processes)."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=_watchdog_out[0])


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a real child process, as a user has it (no unit-test mode chatter)."""
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__UNIT_TEST_MODE"}
    env.update(extra)
    return env


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A fresh sandbox server on 127.0.0.1 with default state."""
    with SandboxServer(SandboxState()) as server:
        yield server


def set_connection(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, sandbox: SandboxServer, vendor: str, **overrides: object
) -> None:
    """Point ``conn_id`` (through ``AIRFLOW_CONN_*``) at the sandbox's ``vendor``."""
    conn = sandbox.connection(vendor, **FAST_EXTRA)
    extra = overrides.pop("extra", None)
    if isinstance(extra, dict):
        conn["extra"] = {**conn["extra"], **extra}
    conn.update(overrides)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> SandboxServer:
    """``leadmagic_default``, ``localleads_default`` and ``truemail_default`` on the sandbox."""
    for vendor in NAMED_VENDORS:
        set_connection(monkeypatch, f"{vendor}_default", sandbox, vendor)
    return sandbox


@pytest.fixture
def canary_connections(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> SandboxServer:
    """Default connections whose key is :data:`CANARY`, which the sandbox accepts."""
    for vendor in NAMED_VENDORS:
        sandbox.state.set_key(vendor, CANARY)
        set_connection(monkeypatch, f"{vendor}_default", sandbox, vendor, password=CANARY)
    return sandbox


@pytest.fixture(scope="session")
def postgres_conn_uri() -> str:
    """The PostgreSQL URI for tests (see tests/postgres.py for how it is found)."""
    return postgres_uri()


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh Airflow metadata database (SQLite in the test AIRFLOW_HOME), for dag.test()."""
    from airflow.utils import db

    db.resetdb()
    _one_execution_api_per_process()


def _one_execution_api_per_process() -> None:
    """Reuse dag.test()'s in-process execution API across tasks, as Airflow 3.3 does.

    Before 3.3 (apache/airflow#65235), dag.test() built a new FastAPI app, with Cadwyn's versioned routers,
    for every task it ran: about 6 s a task on Airflow 3.2.2, most of a dag.test() in CI's older rows.
    Airflow 3.3 caches it for the process; this applies the same cache on 3.1 and 3.2 (tests only: the
    provider's code never touches it). Not on 3.0: its in-process client hands a rescheduled sensor its
    first reschedule date as a string (``model_construct``, fixed in 3.1), which a reused API exposes.
    """
    import functools
    from importlib.metadata import version

    from airflow.sdk.execution_time import supervisor

    build = supervisor.in_process_api_server
    cached = hasattr(build, "cache_clear")  # 3.3+ caches it already
    if not cached and version("apache-airflow").split(".")[:2] != ["3", "0"]:
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(build)  # type: ignore[assignment]
