"""Each example DAG says at its top which connections it uses, and the sandbox hands out all of them.

A new user running one example outside ``make demo`` learnt the missing connections one failed
``airflow dags test`` at a time. The ids an example uses are read from its tasks (every ``*_conn_id``
attribute, f-strings included) and from its source (ids its Python callables pass to a hook).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from airflow_credits_provider.cli import sandbox_connections
from airflow_credits_provider.sandbox import SandboxServer, SandboxState

EXAMPLES = sorted(p.stem for p in (Path(__file__).parent.parent / "example_dags").glob("example_*.py"))


def _sandbox_ids() -> set[str]:
    server = SandboxServer(SandboxState())  # not started: only its connections are read
    try:
        return set(sandbox_connections(server, "/tmp/unused"))
    finally:
        server.stop()


SANDBOX_IDS = _sandbox_ids()


def used_connections(module_name: str) -> set[str]:
    """The connection ids the example's tasks and callables use."""
    from airflow.sdk import DAG

    module = importlib.import_module(f"example_dags.{module_name}")
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
    return used


def listed_connections(module_name: str) -> set[str]:
    """The ids on the ``Connections:`` line of the example's docstring."""
    doc = importlib.import_module(f"example_dags.{module_name}").__doc__ or ""
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
