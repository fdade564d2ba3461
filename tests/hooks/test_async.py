"""The async path the deferrable trigger uses: same vendors, same errors, pooled connections."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_credits_provider import errors
from airflow_credits_provider.hooks.leadmagic import LeadMagicHook
from airflow_credits_provider.hooks.localleads import LocalLeadsHook
from airflow_credits_provider.hooks.truemail import TrueMailHook

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


def test_async_balances_match_sync(connections: SandboxServer) -> None:
    async def fetch_all() -> list[Decimal]:
        return [
            (await hook.aget_balance()).available
            for hook in (LeadMagicHook(), LocalLeadsHook(), TrueMailHook())
        ]

    assert asyncio.run(fetch_all()) == [
        h().get_balance().available for h in (LeadMagicHook, LocalLeadsHook, TrueMailHook)
    ]


def test_session_pools_one_connection_across_polls(connections: SandboxServer) -> None:
    async def poll() -> list[Decimal]:
        hook = TrueMailHook()
        client = await hook.aget_client()
        async with client.asession():
            return [(await hook.aget_balance(client)).available for _ in range(3)]

    assert asyncio.run(poll()) == [Decimal(45230)] * 3
    received = connections.state.requests_for("truemail")
    assert len(received) == 3
    assert len({r.client_port for r in received}) == 1  # keep-alive: one TCP connection


def test_sync_session_pools_too(connections: SandboxServer) -> None:
    connections.state.ledger.size = 300
    with LocalLeadsHook() as hook:
        hook.get_balance()
        assert len(list(hook.iter_transactions())) == 300
    received = connections.state.requests_for("localleads")
    assert len(received) == 4
    assert len({r.client_port for r in received}) == 1


def test_async_auth_error_is_not_retried(connections: SandboxServer) -> None:
    connections.state.set_key("localleads", "ll_rotated")
    with pytest.raises(errors.AuthenticationError):
        asyncio.run(LocalLeadsHook().aget_balance())
    assert len(connections.state.requests_for("localleads")) == 1
