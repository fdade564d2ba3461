"""Helpers for tests that run real Airflow processes: free ports, waiting on a condition, health."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx

#: Debian's chromium (``apt-get install chromium``), which playwright drives; nothing downloads a browser.
CHROMIUM = "/usr/bin/chromium"
#: Headless as root on a machine whose network is closed: no sandbox, GPU, QUIC or background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Any, timeout: float, what: str, step: float = 0.5) -> Any:
    """Call ``check`` until it returns something truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def healthy(base_url: str) -> bool:
    """Whether the api-server at ``base_url`` answers its health check."""
    try:
        return httpx.get(f"{base_url}/api/v2/monitor/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
