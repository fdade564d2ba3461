"""Run the sandbox in its own process for benchmarks, so its CPU is not counted in the measured one."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def sandbox_process(**extra: Any) -> Iterator[str]:
    """
    Start ``airflow-credits sandbox`` on a free port, export its ``AIRFLOW_CONN_*`` here, yield its URL.

    :param extra: connection extras to override (e.g. ``timeout=30``)
    """
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "sandbox.env"
        command = [
            sys.executable,
            "-m",
            "airflow_credits_provider.cli",
            "sandbox",
            "--port",
            "0",
            "--data-dir",
            tmp,
        ]
        proc = subprocess.Popen(
            [*command, "--env-file", str(env_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while not (env_file.exists() and env_file.read_text().endswith("\n")):  # written at once
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the sandbox did not start")
                time.sleep(0.05)
            url = ""
            for line in env_file.read_text().splitlines():
                name, _, value = line.removeprefix("export ").partition("=")
                conn = json.loads(value.strip("'"))
                if conn["conn_type"] == "sqlite":  # the examples' warehouse: not the bench's
                    continue
                if not str(conn.get("host", "")).startswith("http"):  # the inbox's SMTP connection
                    os.environ[name] = json.dumps(conn)
                    continue
                conn["extra"] = {**conn.get("extra", {}), **extra}
                os.environ[name] = json.dumps(conn)
                url = conn["host"].rsplit("/", 1)[0]
            yield url
        finally:
            proc.terminate()
            proc.wait()
