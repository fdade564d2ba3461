"""
Find the PostgreSQL server the tests use.

- ``CREDITS_TEST_POSTGRES_URI`` set: use it; unreachable is a failure.
- Unset under CI (``CI=true``): a failure; CI must run the PostgreSQL tests, never skip them.
- Unset elsewhere: try ``postgresql://postgres@127.0.0.1:5432/test``, then a throwaway server started
  with the local PostgreSQL binaries; when neither works, skip the PostgreSQL tests and say why.
"""

from __future__ import annotations

import atexit
import functools
import glob
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

ENV_VAR = "CREDITS_TEST_POSTGRES_URI"
LOCAL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _reachable(uri: str) -> str | None:
    """Return None when a query succeeds, else the reason."""
    import psycopg

    try:
        with psycopg.connect(uri, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _throwaway() -> str | None:
    """Start a throwaway server with the local binaries; None when there are none."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or (
        [shutil.which("initdb")] if shutil.which("initdb") else []
    )
    if not bins:
        return None
    bindir = os.path.dirname(bins[-1])
    data = tempfile.mkdtemp(prefix="credits-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [*run_as, f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c fsync=off -k {data}"
    # -l sends the server's output to a file: a pipe would keep subprocess.run waiting for EOF.
    subprocess.run(
        [*run_as, f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", f"{data}/server.log", "-w", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    atexit.register(
        subprocess.run,
        [*run_as, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
        capture_output=True,
    )
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


@functools.lru_cache(maxsize=1)
def _find() -> tuple[str | None, str]:
    uri = os.environ.get(ENV_VAR)
    if uri:
        reason = _reachable(uri)
        return (uri, "") if reason is None else (None, f"fail:{ENV_VAR}={uri} is unreachable: {reason}")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return None, f"fail:{ENV_VAR} is not set; CI must run the PostgreSQL tests (see .ci/run)"
    if _reachable(LOCAL_DEFAULT) is None:
        return LOCAL_DEFAULT, ""
    try:
        started = _throwaway()
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"skip:no PostgreSQL at {LOCAL_DEFAULT} and a throwaway server failed to start ({exc})"
    if started is None:
        return None, f"skip:no PostgreSQL at {LOCAL_DEFAULT} and no PostgreSQL binaries; set {ENV_VAR}"
    return started, ""


def use_or_explain(found: tuple[str | None, str], service: str) -> str:
    """The URI from a ``_find()`` result, or fail/skip the calling test with its reason."""
    uri, why = found
    if uri is not None:
        return uri
    kind, _, message = why.partition(":")
    if kind == "fail":
        pytest.fail(message, pytrace=False)
    pytest.skip(f"{service} tests skipped: {message}")


def postgres_uri() -> str:
    """The URI to use, or fail/skip the calling test as the rules above say."""
    return use_or_explain(_find(), "PostgreSQL")
