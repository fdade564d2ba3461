"""``[core] hostname_callable`` for the CeleryExecutor test: each worker names itself (``CREDITS_WORKER``)."""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """The worker's name from its environment, else the machine's."""
    return os.environ.get("CREDITS_WORKER") or socket.getfqdn()
