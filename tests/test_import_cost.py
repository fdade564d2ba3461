"""Importing the provider stays cheap for DAG parsing: no network, no heavy modules."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import airflow_credits_provider
from tests.conftest import subprocess_env

ALL_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(airflow_credits_provider.__path__, "airflow_credits_provider.")
)
HEAVY = (
    "pandas",
    "numpy",
    "polars",
    "pyarrow",
    "airflow.providers.common.sql",
    "psycopg",
    "psycopg2",
    "airflow.providers_manager",
    "airflow.models",
    "wtforms",
    "flask",
)

PROBE = """
import json, socket, sys
import airflow.sdk
def refuse(*args, **kwargs):
    raise AssertionError("network access during import")
socket.socket.connect = refuse
socket.create_connection = refuse
before = set(sys.modules)
for name in {modules!r}:
    __import__(name)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_importing_every_module_touches_no_network_and_no_heavy_module() -> None:
    assert "airflow_credits_provider.hooks.leadmagic" in ALL_MODULES  # the walk found the package
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules=ALL_MODULES)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    added = json.loads(result.stdout.strip().splitlines()[-1])
    assert any(m.startswith("airflow_credits_provider.hooks") for m in added)
    heavy = [m for m in added if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
    assert heavy == []
    foreign = [m for m in added if not m.startswith(("airflow_credits_provider", "airflow.sdk"))]
    assert set(foreign) <= {
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
    }, foreign
