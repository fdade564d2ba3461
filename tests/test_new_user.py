"""The path a new user takes outside ``make demo``: a fresh Airflow home, the sandbox's connections added
with ``airflow connections add``, then the CLI, a plain Python script and ``airflow dags test``.

The DAG folder is what ``airflow-credits examples`` copies out of the installed package. Every step is
a real process in a user's environment (no ``AIRFLOW_*`` variable of the test suite, no
``AIRFLOW_CONN_*``: the connections live in the metadata database). In CI's Airflow 3.1.8 row the
provider is installed from its built wheel, not from this checkout (``.ci/matrix``); the processes
here run outside the checkout, so they use what is installed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from packaging.version import Version

if TYPE_CHECKING:
    from collections.abc import Iterator

BIN = Path(sys.executable).parent
EXAMPLES = Path(__file__).parent.parent / "example_dags"
LEADMAGIC_CREDITS = "15432.5"  # the sandbox's default LeadMagic balance


class User:
    """A user's shell: its own Airflow home, the sandbox running, its connections in the database."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),  # filled by `airflow-credits examples`
        )
        self.env.pop("PYTHONPATH", None)
        self.sandbox_output: list[str] = []
        self.examples_output = ""

    def run(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        """Run a command of the venv (``airflow``, ``airflow-credits``, ``python``) from the home."""
        command = [str(BIN / args[0]), *args[1:]]
        return subprocess.run(
            command, capture_output=True, text=True, env={**self.env, **env}, cwd=self.home, timeout=timeout
        )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        return self.run("python", "-c", code)


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[User]:
    shell = User(tmp_path_factory.mktemp("new-user"))
    copied = shell.run("airflow-credits", "examples", str(shell.home / "dags"))
    assert copied.returncode == 0, copied.stderr[-2000:]
    shell.examples_output = copied.stdout
    migrated = shell.run("airflow", "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    sandbox = subprocess.Popen(
        [str(BIN / "airflow-credits"), "sandbox", "--port", "0", "--data-dir", str(shell.home / "data"),
         "--connections-file", str(shell.home / "connections.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=shell.env, cwd=shell.home,
    )  # fmt: skip
    try:
        assert sandbox.stdout is not None
        for line in sandbox.stdout:
            shell.sandbox_output.append(line.rstrip("\n"))
            if line.startswith("export AIRFLOW_CONN_CREDITS_RESERVATIONS="):
                break
        yield shell
    finally:
        sandbox.terminate()
        sandbox.communicate(timeout=30)  # and close its pipes


@pytest.fixture(scope="module")
def added(user: User) -> list[str]:
    """The sandbox's connections in the metadata database: its first ``airflow connections add`` line
    run as printed, then all of them from its ``--connections-file`` with ``airflow connections import``.
    """
    adds = [line for line in user.sandbox_output if line.startswith("airflow connections add ")]
    first = user.run(*shlex.split(adds[0]))
    assert first.returncode == 0, (adds[0], first.stderr[-2000:])
    imported = user.run(
        "airflow", "connections", "import", str(user.home / "connections.json"), "--overwrite"
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    return [shlex.split(line)[3] for line in adds]


def test_the_sandbox_prints_airflow_connections_add_for_every_example_connection(
    user: User, added: list[str]
) -> None:
    from tests.test_example_connections import EXAMPLES as EXAMPLE_MODULES
    from tests.test_example_connections import used_connections

    needed = set().union(*(used_connections(m) for m in EXAMPLE_MODULES))
    assert needed <= set(added)
    assert f"(or all at once: airflow connections import {user.home / 'connections.json'} --overwrite)" in (
        user.sandbox_output
    )


def test_the_readme_snippet_finds_a_connection_of_the_metadata_database(user: User, added: list[str]) -> None:
    result = user.python(
        "from airflow_credits_provider.hooks.leadmagic import LeadMagicHook\n"
        "print(LeadMagicHook().get_balance().available)"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == LEADMAGIC_CREDITS


def test_a_missing_connection_in_a_script_says_where_it_looked(user: User) -> None:
    result = user.python(
        "from airflow_credits_provider.errors import CreditConnectionConfigError\n"
        "from airflow_credits_provider.hooks.leadmagic import LeadMagicHook\n"
        "try:\n"
        "    LeadMagicHook('nowhere').get_balance()\n"
        "except CreditConnectionConfigError as exc:\n"
        "    print(exc)\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == (
        "Connection 'nowhere' is not defined (looked in the environment, the secrets backends and the "
        "metadata database). Create it in the UI, with `airflow connections add`, or as the environment "
        "variable AIRFLOW_CONN_NOWHERE."
    )


def test_cli_errors_are_one_line_on_stderr(user: User, added: list[str]) -> None:
    missing = user.run("airflow-credits", "balance", "nowhere")
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr.splitlines() == [
        "error: Connection 'nowhere' is not defined (looked in the environment, the secrets backends and "
        "the metadata database). Create it in the UI, with `airflow connections add`, or as the "
        "environment variable AIRFLOW_CONN_NOWHERE."
    ]
    ok = user.run("airflow-credits", "balance", "leadmagic_default")
    assert ok.returncode == 0, ok.stderr
    assert (
        ok.stdout.splitlines()[0] == f"leadmagic_default (leadmagic): {LEADMAGIC_CREDITS} credits available"
    )
    assert ok.stderr == ""
    key = json.loads((user.home / "connections.json").read_text())["leadmagic_default"]["password"]
    assert key not in ok.stdout
    import socket

    with socket.socket() as taken:  # a sandbox on a busy port: one line, not a traceback
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = user.run("airflow-credits", "sandbox", "--port", str(port), timeout=120)
    assert busy.returncode == 1
    assert busy.stderr.splitlines() == [
        f"error: cannot serve the sandbox on 127.0.0.1:{port}: Address already in use; pick another port "
        "with --port N (0: a free one)"
    ]


def test_sql_commands_keep_airflows_example_plugins_quiet(user: User, added: list[str]) -> None:
    """A fresh airflow.cfg loads Airflow's examples; common-sql's lineage then loads their plugins, one
    of which warns that pandas is missing."""
    listed = user.run(
        "airflow-credits", "budgets", "list", "--conn-id", "credits_reservations",
        AIRFLOW__CORE__LOAD_EXAMPLES="True",
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("No budgets defined.")
    assert listed.stderr == ""


def test_runway_on_a_sqlite_file_that_does_not_exist_says_so_and_creates_nothing(
    user: User, added: list[str]
) -> None:
    result = user.run("airflow-credits", "runway", "leadmagic_default", "--sql-conn-id", "credits_warehouse")
    warehouse = user.home / "data" / "warehouse.db"
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"error: Connection 'credits_warehouse' names the SQLite file {warehouse}, which does not exist: "
        "nothing has been landed there yet (the landing operators create it on their first run), or the "
        "connection's host is not the file they write to."
    ]
    assert not warehouse.exists()


def test_a_generic_connection_is_not_told_to_install_a_package(user: User) -> None:
    made = user.run("airflow", "connections", "add", "just_generic", "--conn-type", "generic")
    assert made.returncode == 0, made.stderr[-2000:]
    result = user.run("airflow-credits", "balance", "just_generic")
    assert result.returncode == 2
    assert "pip install" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: Connection 'just_generic' has type 'generic', one of Airflow's types without a hook, so it "
        "is not a credit API connection type (leadmagic, localleads, truemail, credit_api): give it the "
        "type of what it connects to."
    ]


def test_help_is_plain_text(user: User) -> None:
    for command in ((), ("budgets",), ("runway",), ("sandbox",)):
        result = user.run("airflow-credits", *command, "--help")
        assert result.returncode == 0, result.stderr
        assert "``" not in result.stdout, command
        assert "usage: airflow-credits" in result.stdout


def test_an_example_runs_with_the_printed_connections_only(user: User, added: list[str]) -> None:
    """The reservations example needs a credit connection and the reservation database."""
    result = user.run(
        "airflow", "dags", "test", "example_shared_account_contacts", "-c", '{"leads": 4}', timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = user.python(
        "from airflow.models.dagrun import DagRun\n"
        "[run] = DagRun.find(dag_id='example_shared_account_contacts')\n"
        "print(run.state, sorted({ti.state for ti in run.get_task_instances()}))"
    )
    assert state.returncode == 0, state.stderr[-2000:]
    assert state.stdout.splitlines()[-1] == "success ['success']"


def test_a_connection_variable_airflow_cannot_read_is_warned_about_when_the_database_has_it(
    user: User, added: list[str]
) -> None:
    """Airflow passes over an unreadable ``AIRFLOW_CONN_*`` variable without a word and uses the metadata
    database's connection of the same id: the CLI and a task say so, without the variable's key."""
    from tests.conftest import CANARY

    broken = json.dumps({"conn_type": "leadmagic", "password": CANARY, "port": "eighty"})
    warning = (
        "Connection 'leadmagic_default': the environment variable AIRFLOW_CONN_LEADMAGIC_DEFAULT is set, "
        "but Airflow cannot read it as a connection (ValueError: Expected integer value for `port`, but "
        "got 'eighty' instead.)."
    )
    used = "Airflow used the connection 'leadmagic_default' of a secrets backend or the metadata database"
    balance = user.run(
        "airflow-credits", "balance", "leadmagic_default", AIRFLOW_CONN_LEADMAGIC_DEFAULT=broken
    )
    assert balance.returncode == 0, balance.stderr[-2000:]
    from_database = user.run("airflow-credits", "balance", "leadmagic_default")
    assert from_database.stderr == ""
    first_line = balance.stdout.splitlines()[0]  # the metadata database's connection, key and host
    assert first_line == from_database.stdout.splitlines()[0]
    assert first_line.startswith("leadmagic_default (leadmagic): ")
    assert warning in balance.stderr
    assert used in balance.stderr
    run = user.run(
        "airflow", "dags", "test", "example_leadmagic_enrichment", "-c", '{"leads": 2}',
        AIRFLOW_CONN_LEADMAGIC_DEFAULT=broken, timeout=600,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    words = " ".join(out.split())  # Airflow 3.0's task log wraps lines
    assert warning in words
    assert used in words
    assert CANARY not in balance.stdout + balance.stderr
    if Version(package_version("apache-airflow")) >= Version("3.1"):
        assert CANARY not in out  # Airflow 3.0's task log shows its own traceback's locals (docs/install.md)


def test_the_cli_is_the_installed_package(user: User) -> None:
    """In CI's wheel row the processes above ran the built wheel, not this checkout; its metadata
    names the Python versions CI runs (docs/install.md's table) among its classifiers."""
    where = user.python(
        "import importlib.metadata as m, airflow_credits_provider as p\n"
        "print(p.__file__)\n"
        "print('|'.join(m.metadata('airflow-credits-provider').get_all('Classifier')))"
    )
    assert where.returncode == 0, where.stderr
    location, classifiers = where.stdout.strip().splitlines()[-2:]
    installed = Path(location)
    if os.environ.get("CREDITS_TEST_FROM_WHEEL"):
        assert "site-packages" in installed.parts
    assert installed.name == "__init__.py"
    for version in ("3.10", "3.11", "3.12", "3.13", f"{sys.version_info.major}.{sys.version_info.minor}"):
        assert f"Programming Language :: Python :: {version}" in classifiers.split("|")


def test_the_examples_come_with_the_installed_package(user: User) -> None:
    """``airflow-credits examples DIR`` copied every example (and its YAML) out of what is installed (the
    wheel, in CI's 3.1.8 row), each line naming the connections the example uses; a second copy into the
    same folder refuses to overwrite, and names the files."""
    dags = user.home / "dags"
    shipped = sorted(p.name for p in [*EXAMPLES.glob("example_*.py"), *EXAMPLES.glob("*.yaml")])
    assert sorted(p.name for p in dags.iterdir() if p.is_file()) == shipped
    for name in shipped:
        assert (dags / name).read_bytes() == (EXAMPLES / name).read_bytes(), name
    lines = {line.split()[0]: line for line in user.examples_output.splitlines()[1:] if line.startswith("  ")}
    assert "connections: leadmagic_default, credits_reservations" in lines["example_team_budgets.py"]
    assert "connections: credit_api_default" in lines["example_generic_credit_gate.py"]
    again = user.run("airflow-credits", "examples", str(dags))
    assert again.returncode == 1
    assert "already has example_credit_alerts.py" in again.stderr
    assert "--force" in again.stderr
