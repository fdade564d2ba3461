"""Fixtures for the Credits UI tests: one real api-server per test module (see tests/ui/stack.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider.sandbox import SandboxServer, SandboxState
from tests.ui.stack import start_ui_stack, stop_ui_stack

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.ui.stack import UiStack


@pytest.fixture(scope="session")
def ui_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    """The api-server with the Credits plugin, the sandbox it reads, and the DAG runs it shows.

    One for the whole session (starting Airflow costs half a minute): tests that change the sandbox
    undo it, and tests that count holds count what their own runs add.
    """
    with SandboxServer(SandboxState()) as sandbox:
        stack = start_ui_stack(tmp_path_factory.mktemp("ui"), sandbox)
        try:
            yield stack
        finally:
            stop_ui_stack(stack.proc)
