"""CreditBalanceTrigger: serialisation, every terminal event, backoff, and coalesced polling."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pendulum
import pytest

from airflow_credits_provider.triggers.balance import CreditBalanceTrigger
from airflow_credits_provider.triggers.poller import SharedBalancePoller

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


def _first_event(trigger: CreditBalanceTrigger, timeout: float = 20) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        agen = trigger.run()
        event = await asyncio.wait_for(agen.__anext__(), timeout)
        with pytest.raises(StopAsyncIteration):  # returns after every terminal event
            await agen.__anext__()
        return event.payload  # type: ignore[no-any-return]

    return asyncio.run(run())


def test_serialize_round_trip_has_only_primitives() -> None:
    trigger = CreditBalanceTrigger(
        "leadmagic_default", Decimal("110.5"), 30, "2026-12-01T00:00:00+00:00", None
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_credits_provider.triggers.balance.CreditBalanceTrigger"
    assert kwargs == {
        "credit_conn_id": "leadmagic_default",
        "required": "110.5",
        "poll_interval": 30.0,
        "deadline": "2026-12-01T00:00:00+00:00",
        "not_before": None,
    }
    assert CreditBalanceTrigger(**kwargs).serialize() == (path, kwargs)


def test_success_event_carries_the_balance(connections: SandboxServer) -> None:
    event = _first_event(CreditBalanceTrigger("truemail_default", "45230", poll_interval=0.05))
    assert event["status"] == "success"
    assert event["balance"]["available"] == "45230"
    assert "raw" not in event["balance"]


def test_waits_until_topped_up(connections: SandboxServer) -> None:
    state = connections.state
    state.leadmagic.credits = Decimal(10)
    original = state.record

    def record(request: Any) -> None:
        original(request)
        if len(state.requests_for("leadmagic")) == 3:
            state.leadmagic.credits = Decimal(1000)

    state.record = record  # type: ignore[method-assign]
    event = _first_event(CreditBalanceTrigger("leadmagic_default", 500, poll_interval=0.05))
    assert event["status"] == "success"
    assert len(state.requests_for("leadmagic")) == 3


def test_timeout_event_at_the_deadline(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal(1)
    deadline = pendulum.now("UTC").add(seconds=0.3).isoformat()
    event = _first_event(
        CreditBalanceTrigger("leadmagic_default", 500, poll_interval=0.05, deadline=deadline)
    )
    assert event["status"] == "timeout"
    assert "Still not 500 credits on connection 'leadmagic_default'" in event["message"]


def test_error_event_on_authentication_failure(connections: SandboxServer) -> None:
    connections.state.set_key("localleads", "ll_rotated")
    event = _first_event(CreditBalanceTrigger("localleads_default", 1, poll_interval=0.05))
    assert event["status"] == "error"
    assert event["error_type"] == "AuthenticationError"
    assert "LocalLeads rejected the API key" in event["message"]
    assert len(connections.state.requests_for("localleads")) == 1


def test_keeps_waiting_through_5xx_and_drops(connections: SandboxServer) -> None:
    # max_retries=2 per check: 3 checks' worth of 503s, then drops, then an answer.
    connections.state.inject("status", "truemail", status=503, times=9)
    connections.state.inject("drop", "truemail", times=3)
    event = _first_event(CreditBalanceTrigger("truemail_default", 10, poll_interval=0.01))
    assert event["status"] == "success"
    assert len(connections.state.requests_for("truemail")) == 13


def test_not_before_defers_the_first_check(connections: SandboxServer) -> None:
    start = pendulum.now("UTC")
    not_before = start.add(seconds=0.5)
    event = _first_event(
        CreditBalanceTrigger("truemail_default", 1, poll_interval=0.05, not_before=not_before.isoformat())
    )
    assert event["status"] == "success"
    assert pendulum.parse(event["balance"]["fetched_at"]) >= not_before  # no call before the renewal


def test_triggers_on_one_connection_share_requests(connections: SandboxServer) -> None:
    connections.state.leadmagic.credits = Decimal(1)
    deadline = pendulum.now("UTC").add(seconds=1).isoformat()

    async def run_many() -> list[dict[str, Any]]:
        async def one() -> dict[str, Any]:
            async for event in CreditBalanceTrigger(
                "leadmagic_default", 100, poll_interval=0.25, deadline=deadline
            ).run():
                return event.payload  # type: ignore[no-any-return]
            raise AssertionError("no event")

        return await asyncio.gather(*(one() for _ in range(50)))

    events = asyncio.run(run_many())
    assert {e["status"] for e in events} == {"timeout"}
    calls = len(connections.state.requests_for("leadmagic"))
    # ~1 s of waiting at a 0.25 s interval: about 4-5 shared requests, not 50 x 4.
    assert 3 <= calls <= 8
    assert SharedBalancePoller._registry == {}  # released and closed when the last trigger ended
