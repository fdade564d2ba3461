"""Live balances for the Credits page: every credit connection, fetched in parallel, cached briefly.

Connections are read where the api-server can read them: environment variables (``AIRFLOW_CONN_*``),
then the metadata database, the order in which Airflow itself resolves an id. Secrets backends cannot be
listed, so connections kept only there do not appear (docs/ui.md).

Each balance is fetched at most once per ``ttl`` seconds per connection and process, concurrent page
loads share one request, and a fetch that takes longer than ``timeout`` (retries included) becomes that
row's one-line error while the other rows render. A connection edited since its balance was cached is
fetched again (the cache key includes what the request depends on).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import CreditProviderError, truncate

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_credits_provider.models import CreditBalance

log = logging.getLogger(__name__)

#: Longest error shown in a row.
MAX_ERROR = 300


@dataclass(frozen=True)
class CreditConnection:
    """A credit connection as the page lists it: nothing secret.

    :param conn_id: the connection id
    :param conn_type: its type (the vendor's key)
    :param vendor_name: the vendor's display name
    :param source: ``"environment"`` or ``"metadata database"``
    """

    conn_id: str
    conn_type: str
    vendor_name: str
    source: str


@dataclass(frozen=True)
class BalanceResult:
    """One connection's live balance, or the one-line reason there is none.

    :param conn_id: the connection id
    :param balance: the balance, ``None`` when the fetch failed
    :param error: what went wrong, one line, never the key
    :param checked_at: when the vendor was asked (UTC)
    :param cached: the result came from the cache
    """

    conn_id: str
    balance: CreditBalance | None
    error: str | None
    checked_at: datetime
    cached: bool = False


def list_credit_connections() -> list[tuple[CreditConnection, Any]]:
    """Every credit connection and the connection object itself (kept server-side), sorted by id."""
    from airflow_credits_provider.vendors import registered_vendors

    vendors = registered_vendors()
    found: dict[str, tuple[CreditConnection, Any]] = {}
    for conn in _database_connections(list(vendors)):
        found[conn.conn_id] = (_describe(conn, vendors, "metadata database"), conn)
    for conn in _environment_connections():  # the environment wins, as in Airflow's own look-up
        if conn.conn_type in vendors:
            found[conn.conn_id] = (_describe(conn, vendors, "environment"), conn)
        else:
            found.pop(conn.conn_id, None)  # an environment variable hides the database's connection
    return [found[conn_id] for conn_id in sorted(found)]


def get_credit_connection(conn_id: str) -> tuple[CreditConnection, Any] | None:
    """One credit connection by id (environment first, then the metadata database), or ``None``."""
    for info, conn in list_credit_connections():
        if info.conn_id == conn_id:
            return info, conn
    return None


def _describe(conn: Any, vendors: dict[str, Any], source: str) -> CreditConnection:
    vendor = vendors[conn.conn_type]
    return CreditConnection(conn.conn_id, conn.conn_type, vendor.display_name, source)


def _database_connections(conn_types: list[str]) -> list[Any]:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = list(session.scalars(select(Connection).where(Connection.conn_type.in_(conn_types))))
        for row in rows:  # load the (decrypted) fields before the session closes
            _ = (row.password, row.extra)
        session.expunge_all()
    return rows


def _environment_connections() -> list[Any]:
    from airflow.models.connection import Connection

    conns = []
    for name, value in os.environ.items():
        if not name.startswith("AIRFLOW_CONN_") or not value:
            continue
        conn_id = name[len("AIRFLOW_CONN_") :].lower()
        try:
            if value.lstrip().startswith("{"):
                conns.append(Connection.from_json(value, conn_id=conn_id))
            else:
                conns.append(Connection(conn_id=conn_id, uri=value))
        except Exception:  # not ours to judge; Airflow reports a malformed one when it is used
            log.debug("Skipping unreadable environment connection %s", conn_id)
    return conns


def _fingerprint(conn: Any) -> str:
    """What a balance request depends on, hashed (the key never leaves the hash)."""
    parts = [conn.conn_type, conn.host, conn.schema, conn.port, conn.password, conn.extra]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def one_line(message: str, secret: str | None = None) -> str:
    """``message`` as one short line, with ``secret`` (when given) blanked out."""
    line = " ".join(message.split())
    if secret and secret.strip():
        line = line.replace(secret.strip(), "***")
    return truncate(line, MAX_ERROR)


class BalanceCache:
    """Fetch balances in parallel, each at most once per ``ttl`` seconds, each bounded by ``timeout``.

    :param ttl: seconds a fetched balance (or error) is reused
    :param timeout: seconds one fetch may take, its retries included
    :param clock: monotonic seconds (injectable for tests)
    """

    def __init__(self, ttl: float, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._clock = clock
        self._results: dict[str, tuple[str, float, BalanceResult]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[BalanceResult]] = {}

    async def get_many(self, conns: Sequence[Any]) -> dict[str, BalanceResult]:
        """The balance of every connection in ``conns``, by connection id; never raises for one row."""
        results = await asyncio.gather(*(self.get(conn) for conn in conns))
        return {result.conn_id: result for result in results}

    async def get(self, conn: Any) -> BalanceResult:
        """One connection's balance: cached, joined to a fetch under way, or fetched now."""
        key = _fingerprint(conn)
        cached = self._results.get(conn.conn_id)
        if cached and cached[0] == key and self._clock() < cached[1]:
            result = cached[2]
            return BalanceResult(result.conn_id, result.balance, result.error, result.checked_at, True)
        flight = (conn.conn_id, key)
        future = self._inflight.get(flight)
        if future is None:
            future = asyncio.ensure_future(self._fetch(conn))
            self._inflight[flight] = future
            try:
                result = await asyncio.shield(future)
            finally:
                self._inflight.pop(flight, None)
            self._results[conn.conn_id] = (key, self._clock() + self.ttl, result)
            return result
        return await asyncio.shield(future)

    async def _fetch(self, conn: Any) -> BalanceResult:
        from asgiref.sync import sync_to_async

        checked_at = datetime.now(timezone.utc)
        secret = conn.password
        try:
            hook_type = hook_class(conn.conn_type)
            # Reading a connection's extras may call Airflow's secret masker: not on the event loop.
            hook = await sync_to_async(hook_type.for_connection)(conn)
            balance = await asyncio.wait_for(hook.aget_balance(hook.client), self.timeout)
        except asyncio.TimeoutError:
            error = f"No balance within {self.timeout:g} s (timeout, retries included)."
        except CreditProviderError as exc:
            error = one_line(str(exc), secret)
        except Exception as exc:  # an unexpected failure: its type only (a message could hold anything)
            log.warning("Balance of %s failed with %s", conn.conn_id, type(exc).__name__)
            error = f"Unexpected error ({type(exc).__name__}); see the api-server log."
        else:
            return BalanceResult(conn.conn_id, balance, None, checked_at)
        return BalanceResult(conn.conn_id, None, error, checked_at)


def hook_class(conn_type: str) -> Any:
    """The hook class serving the credit connection type ``conn_type``."""
    from airflow_credits_provider.vendors import vendor_class

    module, _, name = vendor_class(conn_type).hook_class_name.rpartition(".")
    return getattr(importlib.import_module(module), name)
