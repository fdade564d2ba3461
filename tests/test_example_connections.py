"""Each example DAG says at its top which connections it uses, and the sandbox hands out all of them.

A new user running one example outside ``make demo`` learnt the missing connections one failed
``airflow dags test`` at a time. The ids an example uses are read from its tasks (every ``*_conn_id``
attribute, f-strings included) and from its source (ids its Python callables pass to a hook).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from airflow_credits_provider.cli.sandbox import sandbox_connections
from airflow_credits_provider.sandbox import SandboxServer, SandboxState
from airflow_credits_provider.sandbox.inbox import SandboxInbox

if TYPE_CHECKING:
    from types import ModuleType

EXAMPLES_DIR = Path(__file__).parent.parent / "example_dags"
EXAMPLES = sorted(p.stem for p in EXAMPLES_DIR.glob("example_*.py"))


def _sandbox_ids() -> set[str]:
    state = SandboxState()
    server = SandboxServer(state)  # not started: only its connections are read
    try:
        return set(sandbox_connections(server, "/tmp/unused", SandboxInbox(state)))
    finally:
        server.stop()


SANDBOX_IDS = _sandbox_ids()


def _fresh_module(module_name: str) -> ModuleType:
    """The example run as a new module, outside ``sys.modules``.

    The examples read settings from the environment when imported (``CREDITS_EXAMPLE_POKE_INTERVAL``):
    importing ``example_dags.<name>`` here would hand a later test that sets them this test's module.
    """
    path = EXAMPLES_DIR / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(f"_connections_of_{module_name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def used_connections(module_name: str) -> set[str]:
    """The connection ids the example's tasks and callables use."""
    from airflow.sdk import DAG

    module = _fresh_module(module_name)
    used = {
        value
        for dag in vars(module).values()
        if isinstance(dag, DAG)
        for task in dag.tasks
        for name, value in vars(task).items()
        if name.endswith("conn_id") and isinstance(value, str)
    }
    source = Path(module.__file__ or "").read_text()
    used |= {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and node.value in SANDBOX_IDS
    }
    # The rules files it loads (team_alerts.yaml): their notifiers' and accounts' connections.
    for name in set(re.findall(r"``([\w.]+\.yaml)``", source)):
        used |= {v for v in _strings(yaml.safe_load((EXAMPLES_DIR / name).read_text())) if v in SANDBOX_IDS}
    return used


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def listed_connections(module_name: str) -> set[str]:
    """The ids on the ``Connections:`` line of the example's docstring."""
    doc = ast.get_docstring(ast.parse((EXAMPLES_DIR / f"{module_name}.py").read_text())) or ""
    match = re.search(r"^Connections: (.+?)\.$", doc, flags=re.MULTILINE | re.DOTALL)
    assert match, f"{module_name}'s docstring has no 'Connections: ...' line"
    return set(re.findall(r"``([a-z_]+)``", match.group(1)))


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_docstring_lists_every_connection_the_example_uses(example: str) -> None:
    used = used_connections(example)
    assert used, example
    assert listed_connections(example) == used


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_sandbox_prints_every_connection_the_example_uses(example: str) -> None:
    assert used_connections(example) <= SANDBOX_IDS
