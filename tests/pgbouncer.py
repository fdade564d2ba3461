"""
A PgBouncer in transaction pooling mode in front of the tests' PostgreSQL (Debian's ``pgbouncer``).

Deployments put PgBouncer between Airflow's workers and PostgreSQL; in transaction mode a client's
statements may reach a different server connection in each transaction, so nothing may rely on session
state (``SET`` outside a transaction, server-side prepared statements). The reservation tests run on it
too (tests/reservations/conftest.py), with fewer server connections than reservers.

Started once per test session on a free port, as the ``postgres`` user (PgBouncer refuses to run as
root); missing under CI is a failure, elsewhere a skip that says what to install.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.processes import free_port

#: Server connections per database and user: fewer than the race tests' reservers, so they share them.
POOL_SIZE = 4


@functools.lru_cache(maxsize=1)
def _start(postgres_uri: str) -> str:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    parts = urlsplit(postgres_uri)
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    folder.chmod(0o755)
    user = parts.username or "postgres"
    (folder / "userlist.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'userlist.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {POOL_SIZE}\nmax_client_conn = 500\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    for path in folder.iterdir():
        path.chmod(0o644)
    run_as = ["-u", "postgres"] if os.geteuid() == 0 else []
    with (folder / "pgbouncer.log").open("w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [binary, *run_as, str(folder / "pgbouncer.ini")], stdout=log, stderr=subprocess.STDOUT
        )
    atexit.register(proc.terminate)
    uri = urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}"))
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(uri, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return uri
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"PgBouncer did not start: {(folder / 'pgbouncer.log').read_text()[-2000:]}"
                ) from None
            time.sleep(0.2)


def pgbouncer_uri(postgres_uri: str) -> str:
    """The URI of a transaction-mode PgBouncer in front of ``postgres_uri`` (started on first use)."""
    if not (shutil.which("pgbouncer") or Path("/usr/sbin/pgbouncer").exists()):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(
                "CI needs Debian's pgbouncer (apt-get install pgbouncer; .ci/run installs it)", pytrace=False
            )
        pytest.skip("Debian's pgbouncer is not installed (apt-get install pgbouncer)")
    return _start(postgres_uri)
