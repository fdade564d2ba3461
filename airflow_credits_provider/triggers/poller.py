"""Coalesced balance polling: every trigger in one triggerer that watches a connection shares one request.

The vendors ask callers to cache the balance rather than call before every request. A triggerer may hold
hundreds of deferred sensors on one connection; through :class:`SharedBalancePoller` they share one
in-flight request and a short-lived cached balance, so N waiting sensors make about one request per
poll interval, not N.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_credits_provider.client.transport import CreditApiClient
    from airflow_credits_provider.hooks.base import CreditApiHook
    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.triggers.clock import TriggerClock


class SharedBalancePoller:
    """One connection's balance, shared by every trigger of one event loop.

    Get it with :meth:`acquire` and give it back with :meth:`release`; the last release closes its HTTP
    connections. :meth:`get` returns a balance no older than ``max_age`` seconds, joining the request
    already in flight when there is one.
    """

    _registry: dict[tuple[int, str], SharedBalancePoller] = {}

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.users = 0
        self.requests_made = 0
        self._hook: CreditApiHook | None = None
        self._client: CreditApiClient | None = None
        self._connections = contextlib.AsyncExitStack()  # the pooled HTTP session, once opened
        self._cached: CreditBalance | None = None
        self._cached_at = 0.0
        self._in_flight: asyncio.Future[CreditBalance] | None = None

    @classmethod
    def acquire(cls, conn_id: str) -> SharedBalancePoller:
        """The poller for ``conn_id`` in the running event loop (created on first use)."""
        key = (id(asyncio.get_running_loop()), conn_id)
        poller = cls._registry.get(key)
        if poller is None:
            poller = cls._registry[key] = cls(conn_id)
        poller.users += 1
        return poller

    async def release(self) -> None:
        """Stop using the poller; the last user closes its connections."""
        self.users -= 1
        if self.users > 0:
            return
        self._registry.pop((id(asyncio.get_running_loop()), self.conn_id), None)
        await self._connections.aclose()

    async def reset(self) -> None:
        """Forget the balance, the hook and its HTTP session: the next :meth:`get` reads the connection again.

        Used after an authentication or configuration error, so that a fixed connection is picked up.
        """
        await self._connections.aclose()
        self._connections = contextlib.AsyncExitStack()
        self._hook = self._client = self._cached = None

    async def get(self, max_age: float, clock: TriggerClock) -> CreditBalance:
        """A balance fetched less than ``max_age`` seconds ago on ``clock``, or a fresh one (shared)."""
        if self._cached is not None and clock.monotonic() - self._cached_at < max_age:
            return self._cached
        if self._in_flight is None:
            self._in_flight = asyncio.ensure_future(self._fetch())
            self._in_flight.add_done_callback(lambda future: self._done(future, clock))
        return await asyncio.shield(self._in_flight)

    def _done(self, future: asyncio.Future[CreditBalance], clock: TriggerClock) -> None:
        self._in_flight = None
        if not future.cancelled() and future.exception() is None:
            self._cached, self._cached_at = future.result(), clock.monotonic()

    async def _fetch(self) -> CreditBalance:
        if self._client is None:
            from airflow_credits_provider.hooks.resolve import aget_credit_hook

            self._hook = await aget_credit_hook(self.conn_id)
            self._client = await self._hook.aget_client()
            await self._connections.enter_async_context(self._client.asession())
        assert self._hook is not None
        self.requests_made += 1
        return await self._hook.aget_balance(self._client)
