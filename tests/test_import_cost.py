"""Importing the provider stays cheap for DAG parsing: no network, no heavy modules."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import airflow_credits_provider
from tests.conftest import subprocess_env

ALL_MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(airflow_credits_provider.__path__, "airflow_credits_provider.")
    if not m.name.endswith(".__main__")  # `python -m airflow_credits_provider.cli` runs the command
)
HEAVY = (
    "pandas",
    "numpy",
    "polars",
    "pyarrow",
    "psycopg",
    "psycopg2",
    "wtforms",
    "flask",
    "airflow.providers.common.sql",
    "airflow.providers_manager",
    "airflow.models",
)
#: Standard-library modules the CLI and sandbox modules may add (all small).
SMALL_STDLIB = {
    "argparse",
    "http.server",
    "http",
    "socketserver",
    "mimetypes",
    "html",
    "email.utils",
    "email._parseaddr",
    "calendar",
    "uuid",
    "hashlib",
}

# The baseline is what any DAG file or provider pays: ``airflow.sdk``, Airflow's own authoring bases (on
# Airflow 3.0, BaseHook still lives in ``airflow.hooks.base``, which loads SQLAlchemy) and httpx, which
# Airflow 3.1+ loads for its own task API (on 3.0 the hook modules are the first to import it, with its
# command line's click and rich). The operator and sensor modules import no hook: see the next test.
PROBE = """
import json, socket, sys
import airflow.sdk
from airflow.providers.common.compat.sdk import BaseHook, BaseOperator, BaseSensorOperator
import httpx
def refuse(*args, **kwargs):
    raise AssertionError("network access during import")
socket.socket.connect = refuse
socket.create_connection = refuse
before = set(sys.modules)
for name in {modules!r}:
    __import__(name)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _imported_by(modules: list[str]) -> list[str]:
    """Modules that importing ``modules`` adds after ``import airflow.sdk``, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules=modules)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _heavy(added: list[str]) -> list[str]:
    return [m for m in added if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]


def test_dag_facing_modules_touch_no_network_and_no_heavy_module() -> None:
    """Everything a DAG file may import; the triggerer-only and api-server-only modules are checked below."""
    server_only = ("airflow_credits_provider.triggers.", "airflow_credits_provider.ui.")
    dag_facing = [m for m in ALL_MODULES if not m.startswith(server_only)]
    assert "airflow_credits_provider.sensors.preflight" in dag_facing  # the walk found the package
    added = _imported_by(dag_facing)
    assert "airflow_credits_provider.sensors.preflight" in added
    assert _heavy(added) == []
    # Beyond the standard library, only Airflow's own modules (its version-compat shims, and on older
    # Airflow the authoring bases they fall back to) and httpx's own submodules; never a heavy one.
    ours_or_airflows = ("airflow_credits_provider", "airflow.", "httpx")
    foreign = {m for m in added if not m.startswith(ours_or_airflows)}
    assert foreign <= SMALL_STDLIB, foreign


def test_operator_and_sensor_modules_import_no_hook() -> None:
    """What a DAG file imports loads no hook, transport or HTTP client: those load when a task runs."""
    added = _imported_by(
        [
            "airflow_credits_provider.operators.preflight",
            "airflow_credits_provider.sensors.preflight",
            "airflow_credits_provider.transfers.credit_transactions_to_sql",
            "airflow_credits_provider.transfers.credit_balance_to_sql",
        ]
    )
    assert "airflow_credits_provider.sensors.preflight" in added
    loaded_at_run = ("airflow_credits_provider.hooks", "airflow_credits_provider.client")
    assert [m for m in added if m.startswith(loaded_at_run)] == []


def test_trigger_modules_add_only_airflows_trigger_base() -> None:
    added = _imported_by(
        ["airflow_credits_provider.triggers.balance", "airflow_credits_provider.triggers.poller"]
    )
    assert _heavy(added) == []
    assert "airflow.triggers.base" in added
    assert not [m for m in added if m.startswith("airflow_credits_provider.hooks")]  # loaded on first poll


def test_the_ui_plugin_module_builds_nothing_on_import() -> None:
    """Every Airflow process (task runners too) imports entry-point plugins: the web app is built lazily."""
    added = _imported_by(["airflow_credits_provider.ui.plugin"])
    assert "airflow_credits_provider.ui.plugin" in added
    assert _heavy([m for m in added if m != "airflow.plugins_manager"]) == []
    lazy = ("fastapi", "starlette", "jinja2", "sqlalchemy", "airflow_credits_provider.ui.app")
    assert [m for m in added if m.startswith(lazy)] == []
    assert not [m for m in added if m.startswith("airflow_credits_provider.hooks")]
