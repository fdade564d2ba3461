"""CreditBalanceTrigger: serialisation, every terminal event, backoff, and coalesced polling.

Time is virtual (tests/virtual_clock.py): it moves only when every trigger is asleep, so the counts
asserted here are exact whatever the machine's speed. HTTP to the sandbox is real.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider.triggers.balance import CreditBalanceTrigger
from airflow_credits_provider.triggers.poller import SharedBalancePoller
from tests.virtual_clock import install_virtual_clock

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer
    from tests.virtual_clock import VirtualClock


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    return install_virtual_clock(monkeypatch, CreditBalanceTrigger)


async def _events_of(trigger: CreditBalanceTrigger) -> dict[str, Any]:
    agen = trigger.run()
    event = await agen.__anext__()
    with pytest.raises(StopAsyncIteration):  # returns after every terminal event
        await agen.__anext__()
    return event.payload  # type: ignore[no-any-return]


def _first_event(trigger: CreditBalanceTrigger) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        (event,) = await CreditBalanceTrigger.clock.run(_events_of(trigger))  # type: ignore[attr-defined]
        return event  # type: ignore[no-any-return]

    return asyncio.run(asyncio.wait_for(run(), 30))


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
        "estimate": None,
    }
    assert CreditBalanceTrigger(**kwargs).serialize() == (path, kwargs)


def test_success_event_carries_the_balance_and_the_estimate(connections: SandboxServer) -> None:
    estimate = {"cost": "45000", "margin": "230", "basis": "estimated cost 45000"}
    event = _first_event(
        CreditBalanceTrigger("truemail_default", "45230", poll_interval=0.05, estimate=estimate)
    )
    assert event["status"] == "success"
    assert event["balance"]["available"] == "45230"
    assert event["estimate"] == estimate
    assert "raw" not in event["balance"]


def test_waits_until_topped_up(connections: SandboxServer, clock: VirtualClock) -> None:
    state = connections.state
    state.leadmagic.credits = Decimal(10)
    original = state.record
    seen_at: list[float] = []

    def record(request: Any) -> None:
        original(request)
        seen_at.append(clock.elapsed)
        if len(state.requests_for("leadmagic")) == 3:
            state.leadmagic.credits = Decimal(1000)

    state.record = record  # type: ignore[method-assign]
    event = _first_event(CreditBalanceTrigger("leadmagic_default", 500, poll_interval=60))
    assert event["status"] == "success"
    assert seen_at == [0, 60, 120]  # one check per poll interval


def test_timeout_event_at_the_deadline(connections: SandboxServer, clock: VirtualClock) -> None:
    connections.state.leadmagic.credits = Decimal(1)
    deadline = clock.now().add(seconds=300).isoformat()
    event = _first_event(CreditBalanceTrigger("leadmagic_default", 500, poll_interval=60, deadline=deadline))
    assert event["status"] == "timeout"
    assert "Still not 500 credits on connection 'leadmagic_default'" in event["message"]
    assert len(connections.state.requests_for("leadmagic")) == 5  # at 0, 60, 120, 180 and 240 s
    assert clock.elapsed == 300


def test_error_event_on_authentication_failure(connections: SandboxServer) -> None:
    connections.state.set_key("localleads", "ll_rotated")
    event = _first_event(CreditBalanceTrigger("localleads_default", 1, poll_interval=0.05))
    assert event["status"] == "error"
    assert event["error_type"] == "AuthenticationError"
    assert "LocalLeads rejected the API key" in event["message"]
    assert len(connections.state.requests_for("localleads")) == 1


def test_keeps_waiting_through_5xx_and_drops(connections: SandboxServer, clock: VirtualClock) -> None:
    # max_retries=2 per check: 3 checks' worth of 503s, then drops, then an answer.
    connections.state.inject("status", "truemail", status=503, times=9)
    connections.state.inject("drop", "truemail", times=3)
    event = _first_event(CreditBalanceTrigger("truemail_default", 10, poll_interval=10))
    assert event["status"] == "success"
    assert len(connections.state.requests_for("truemail")) == 13
    assert clock.elapsed == 10 + 20 + 40 + 80  # the pause doubles after each failed check


def test_not_before_defers_the_first_check(connections: SandboxServer, clock: VirtualClock) -> None:
    state = connections.state
    original = state.record
    seen_at: list[float] = []

    def record(request: Any) -> None:
        original(request)
        seen_at.append(clock.elapsed)

    state.record = record  # type: ignore[method-assign]
    not_before = clock.now().add(days=3)
    event = _first_event(
        CreditBalanceTrigger("truemail_default", 1, poll_interval=60, not_before=not_before.isoformat())
    )
    assert event["status"] == "success"
    assert seen_at == [3 * 24 * 3600]  # no call before the renewal, one right at it


def test_triggers_on_one_connection_share_requests(connections: SandboxServer, clock: VirtualClock) -> None:
    connections.state.leadmagic.credits = Decimal(1)
    deadline = clock.now().add(seconds=60).isoformat()
    triggers = [
        CreditBalanceTrigger("leadmagic_default", 100, poll_interval=15, deadline=deadline) for _ in range(50)
    ]

    events = asyncio.run(asyncio.wait_for(clock.run(*(_events_of(t) for t in triggers)), 30))
    assert {e["status"] for e in events} == {"timeout"}
    # 60 s of waiting at a 15 s interval: checks at 0, 15, 30 and 45 s, each shared by all 50 triggers.
    assert len(connections.state.requests_for("leadmagic")) == 4
    assert SharedBalancePoller._registry == {}  # released and closed when the last trigger ended


def test_a_tiny_shortfall_keeps_the_trigger_waiting(connections: SandboxServer, clock: VirtualClock) -> None:
    deadline = clock.now().add(seconds=120).isoformat()
    required = "82.000000000000000000000000000001"  # LocalLeads has exactly 82
    event = _first_event(
        CreditBalanceTrigger("localleads_default", required, poll_interval=60, deadline=deadline)
    )
    assert event["status"] == "timeout"
