"""docs/ui.md's "Try it locally" steps, run as written, and the page they lead to.

A new user ran the docs' steps and met a command that failed ("already exists") and a page whose live
balance and history disagreed. Here the block is read out of the docs and run line by line by bash, in
a user's shell (a fresh Airflow home, set up with ``airflow db migrate``, no variable of the test
suite). Only the two ports change: the sandbox's ``--port 8765`` and the api-server's (through
``AIRFLOW__API__PORT``, with ``AIRFLOW__API__BASE_URL`` as the docs say another port needs). The two
long-running commands are started in the background; the sandbox is ready once it has written its
connections file, as the docs say. Then the page's JSON must agree with itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.processes import free_port
from tests.ui.stack import serve_until_healthy, stop_ui_stack

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECTION = "## Try it locally"
NOISE = re.compile(r"\d\.\d*(?:0{6,}|9{6,})\d")


def docs_block(path: Path = ROOT / "docs" / "ui.md", section: str = SECTION) -> list[str]:
    """The command lines of the first ``bash`` block under ``section`` (comments dropped)."""
    text = path.read_text(encoding="utf-8")
    after = text[text.index(section) :]
    block = after[after.index("```bash\n") + 8 : after.index("\n```", after.index("```bash\n"))]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def as_script(lines: list[str], sandbox_port: int) -> str:
    """The docs' lines as one bash script: the sandbox and the api-server started as the docs say."""
    script = ["set -euo pipefail"]
    for line in lines:
        command = line.split("  #")[0].strip()
        if command.startswith("airflow-credits sandbox"):
            assert "--port 8765" in command, command
            connections = re.search(r"--connections-file (\S+)", command)
            assert connections, command
            script.append(f"{command.replace('--port 8765', f'--port {sandbox_port}')} > sandbox.log 2>&1 &")
            script.append(
                f"for _ in $(seq 600); do [ -s {connections.group(1)} ] && break; sleep 0.2; done; "
                f"[ -s {connections.group(1)} ] || {{ cat sandbox.log; exit 1; }}"
            )
        elif command == "airflow api-server":
            script.append("exec airflow api-server")
        else:
            script.append(command)
    return "\n".join(script) + "\n"


def test_the_try_it_locally_block_is_what_this_test_runs() -> None:
    lines = docs_block()
    assert lines[0].startswith("airflow-credits examples ")
    assert any(line.startswith("airflow-credits sandbox --port 8765 --history-days") for line in lines)
    assert lines[-1].split("#")[0].strip() == "airflow api-server"
    assert not any("connections add" in line for line in lines)  # import --overwrite: reruns work


@pytest.fixture(scope="module")
def tried(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from importlib.metadata import version

    if tuple(int(p) for p in version("apache-airflow").split(".")[:2]) < (3, 1):
        pytest.skip("Airflow 3.0 has no plugin views: docs/ui.md's steps lead to a page it does not have")
    home = tmp_path_factory.mktemp("try-it-locally")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.pop("PYTHONPATH", None)
    env.update(
        AIRFLOW_HOME=str(home),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API__WORKERS="1",  # a machine of 2 cores: one worker, as in the other UI tests
    )
    migrated = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    (home / "steps.sh").write_text(as_script(docs_block(), free_port()))
    base = f"http://127.0.0.1:{port}"
    steps = serve_until_healthy(["bash", str(home / "steps.sh")], env, home / "steps.log", base, 600, home)
    try:
        yield base, home
    finally:
        stop_ui_stack(steps)  # the api-server and the backgrounded sandbox: one session


def _admin_get(base: str, home: Path, path: str) -> httpx.Response:
    passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
    token = httpx.post(
        f"{base}/auth/token", json={"username": "admin", "password": passwords["admin"]}, timeout=30
    )
    assert token.status_code == 201, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    return httpx.get(f"{base}/credits/{path}", headers=headers, timeout=60)


def test_the_page_the_docs_steps_lead_to_agrees_with_itself(tried: tuple[str, Path]) -> None:
    base, home = tried
    overview = _admin_get(base, home, "api/accounts")
    assert overview.status_code == 200, overview.text[:500]
    rows = {row["conn_id"]: row for row in overview.json()["connections"]}
    assert set(rows) >= {"leadmagic_default", "localleads_default", "truemail_default", "credit_api_default"}
    for conn_id in ("leadmagic_default", "localleads_default", "truemail_default", "credit_api_default"):
        row = rows[conn_id]
        assert row["error"] is None, row
        gap = row["history_gap"]
        assert gap is not None, conn_id
        assert gap["behind"] is False, (conn_id, gap)  # the history ends at the live balance
        live = Decimal(row["balance"]["available"])
        assert Decimal(gap["live_available"]) == live
        assert abs(Decimal(gap["newest_snapshot_available"]) - live) <= live / 100, (conn_id, gap)
        assert row["runway"] is not None, (conn_id, row["runway_note"])
        assert row["runway"]["starts_from"] == "last snapshot"
        assert Decimal(row["runway"]["balance"]) == Decimal(gap["newest_snapshot_available"])
        assert row["spent_this_month"] is not None
        assert len(row["sparkline"]) >= 14
    account = _admin_get(base, home, "api/accounts/leadmagic_default").json()
    assert [u["dag_id"] for u in account["usage_by_dag"]] == ["example_shared_account_contacts"]
    assert Decimal(account["usage_by_dag"][0]["spent"]) > 0
    for path in ("", "api/accounts", "accounts/leadmagic_default", "accounts/localleads_default"):
        text = _admin_get(base, home, path).text
        assert not NOISE.search(text), (path, NOISE.search(text))
    page = _admin_get(base, home, "accounts/leadmagic_default").text
    assert 'id="history-gap"' not in page
    assert '<svg class="chart"' in page
