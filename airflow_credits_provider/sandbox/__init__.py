"""An offline sandbox of the vendors' credit APIs: LeadMagic, LocalLeads, TrueMail and the generic presets.

It is a real HTTP server on 127.0.0.1 (stdlib only) that serves each vendor's documented endpoints,
bodies, headers, error shapes and pagination, with controllable state (balances, keys, a ledger of any
size) and fault injection (429 with or without Retry-After, 5xx, slow answers, dropped connections,
truncated JSON, HTML pages, wrong types). Use it in tests of your own DAGs::

    from airflow_credits_provider.sandbox import SandboxServer

    with SandboxServer() as sandbox:
        monkeypatch.setenv(...)  # sandbox.airflow_env() gives AIRFLOW_CONN_* for the default ids
        sandbox.state.leadmagic.credits = Decimal(10)
        sandbox.state.inject("rate_limit", "leadmagic", retry_after="1")

Each vendor's emulation is one module in :mod:`airflow_credits_provider.sandbox.emulators`. Or run it
in the foreground with ``airflow-credits sandbox --port 8765`` and drive it over HTTP
(``/_sandbox/state``, ``/_sandbox/faults``, ``/_sandbox/ledger``, ``/_sandbox/requests``).
"""

from __future__ import annotations

from airflow_credits_provider.sandbox.server import SandboxServer
from airflow_credits_provider.sandbox.state import DEFAULT_KEYS, Fault, Ledger, SandboxState

__all__ = ["DEFAULT_KEYS", "Fault", "Ledger", "SandboxServer", "SandboxState"]
