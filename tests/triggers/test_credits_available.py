"""CreditsAvailableTrigger: once per crossing, state across restarts, errors, shared polling.

Time is virtual (tests/virtual_clock.py); HTTP to the sandbox is real. A scenario changes the sandbox's
balance at given virtual times while the watcher polls, and returns the events it fired.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from airflow_credits_provider.arrival import ArrivalRule, WatchState
from airflow_credits_provider.errors import InvalidCostEstimateError
from airflow_credits_provider.triggers.credits_available import CreditsAvailableTrigger
from tests.conftest import CANARY, FAST_EXTRA
from tests.virtual_clock import install_virtual_clock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from airflow_credits_provider.sandbox import SandboxServer
    from tests.virtual_clock import VirtualClock

CREDITS_PATH = "/v1/credits"


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    return install_virtual_clock(monkeypatch, CreditsAvailableTrigger)


class MemoryStateStore:
    """What Airflow 3.3's triggerer injects as ``asset_state_store`` (one watched asset), in memory."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)  # stored as JSON, as the real store does


def watch(
    trigger: CreditsAvailableTrigger,
    script: list[tuple[float, Callable[[], object]]],
    until: float,
    *,
    streams: Callable[[CreditsAvailableTrigger], AsyncIterator[Any]] | None = None,
) -> list[tuple[float, dict[str, Any]]]:
    """Run ``trigger`` for ``until`` virtual seconds, doing each ``(at, action)`` of ``script`` on the way.

    Times (the script's and the events') count from the start of this watch.
    """
    clock: VirtualClock = CreditsAvailableTrigger.clock  # type: ignore[assignment]
    start = clock.elapsed

    async def consume() -> list[tuple[float, dict[str, Any]]]:
        seen = []
        events = trigger.run() if streams is None else streams(trigger)
        try:
            async for event in events:
                seen.append((clock.elapsed - start, event.payload))
        except asyncio.CancelledError:
            await events.aclose()  # type: ignore[attr-defined]
        return seen

    async def main() -> list[tuple[float, dict[str, Any]]]:
        consumer = asyncio.ensure_future(consume())

        async def drive() -> None:
            for at, action in script:
                await clock.sleep(start + at - clock.elapsed)
                action()
            await clock.sleep(start + until - clock.elapsed)
            consumer.cancel()

        seen, _ = await clock.run(consumer, drive())
        return seen  # type: ignore[no-any-return]

    return asyncio.run(asyncio.wait_for(main(), 60))


def credits(server: SandboxServer, vendor: str, amount: int) -> Callable[[], None]:
    def set_balance() -> None:
        with server.state.lock:
            server.state.account(vendor).credits = Decimal(amount)

    return set_balance


def test_threshold_fires_once_per_crossing(connections: SandboxServer) -> None:
    credits(connections, "leadmagic", 100)()
    trigger = CreditsAvailableTrigger("leadmagic_default", threshold=1000, poll_interval=60)
    events = watch(
        trigger,
        [
            (150, credits(connections, "leadmagic", 5000)),  # crosses: seen at 180
            (400, credits(connections, "leadmagic", 4000)),  # still above: nothing
            (600, credits(connections, "leadmagic", 10)),  # below: re-arms
            (800, credits(connections, "leadmagic", 2000)),  # crosses again: seen at 840
        ],
        until=1000,
    )
    assert [(at, e["available"], e["previous"]) for at, e in events] == [
        (180, "5000", "100"),
        (840, "2000", "10"),
    ]
    assert events[0][1] == {
        "credit_conn_id": "leadmagic_default",
        "vendor": "leadmagic",
        "vendor_name": "LeadMagic",
        "available": "5000",
        "previous": "100",
        "threshold": "1000",
        "fetched_at": events[0][1]["fetched_at"],
    }
    assert len(connections.state.requests_for("leadmagic", CREDITS_PATH)) == 17  # at 0, 60, ..., 960


def test_a_balance_already_above_is_only_the_starting_point(connections: SandboxServer) -> None:
    # LeadMagic starts at 15432.5.
    quiet = watch(
        CreditsAvailableTrigger("leadmagic_default", threshold=1000, poll_interval=60), [], until=300
    )
    assert quiet == []
    eager = CreditsAvailableTrigger("leadmagic_default", threshold=1000, poll_interval=60, fire_on_start=True)
    fired = watch(eager, [], until=300)
    assert [(at, e["available"]) for at, e in fired] == [(0, "15432.5")]
    assert "previous" not in fired[0][1]  # nothing seen before; the payload holds no null


def test_rise_by_fires_on_a_reset_or_top_up_from_the_lowest_point(connections: SandboxServer) -> None:
    credits(connections, "leadmagic", 100)()
    trigger = CreditsAvailableTrigger("leadmagic_default", rise_by="500", poll_interval=60)
    events = watch(
        trigger,
        [
            (90, credits(connections, "leadmagic", 50)),  # spending: the low is 50
            (210, credits(connections, "leadmagic", 540)),  # +490 from the low: not yet
            (330, credits(connections, "leadmagic", 560)),  # +510: fires at 360, the low is now 560
            (450, credits(connections, "leadmagic", 600)),  # +40: nothing
            (570, credits(connections, "leadmagic", 1100)),  # +540: fires at 600
        ],
        until=700,
    )
    assert [(at, e["available"], e["rise_by"]) for at, e in events] == [
        (360, "560", "500"),
        (600, "1100", "500"),
    ]
    assert "threshold" not in events[0][1]


def test_the_state_store_carries_what_was_seen_across_restarts(connections: SandboxServer) -> None:
    store = MemoryStateStore()

    def restarted() -> CreditsAvailableTrigger:
        trigger = CreditsAvailableTrigger("leadmagic_default", threshold=1000, poll_interval=60)
        trigger.asset_state_store = store  # type: ignore[assignment]
        return trigger

    credits(connections, "leadmagic", 100)()
    first = watch(restarted(), [(100, credits(connections, "leadmagic", 5000))], until=200)
    assert [e["available"] for _, e in first] == ["5000"]
    [key] = store.values
    assert key == "airflow_credits_provider.credits_available:leadmagic_default:threshold=1000"
    assert json.loads(store.values[key]) == {"last": "5000", "above": True, "low": "100"}
    # A restart while the balance is still above: it already fired for this crossing.
    assert watch(restarted(), [], until=300) == []
    # Drops below, the triggerer goes down, credits arrive while it is down: the restart fires.
    watch(restarted(), [(30, credits(connections, "leadmagic", 10))], until=100)
    credits(connections, "leadmagic", 3000)()
    after_downtime = watch(restarted(), [], until=100)
    assert [(at, e["available"], e["previous"]) for at, e in after_downtime] == [(0, "3000", "10")]
    # Without the store (Airflow before 3.3) the same restart only sets a new starting point.
    credits(connections, "leadmagic", 10)()
    watch(CreditsAvailableTrigger("leadmagic_default", threshold=1000, poll_interval=60), [], until=60)
    credits(connections, "leadmagic", 3000)()
    assert (
        watch(CreditsAvailableTrigger("leadmagic_default", threshold=1000, poll_interval=60), [], until=60)
        == []
    )


def test_a_store_shared_by_several_assets_falls_back_to_memory(
    connections: SandboxServer, capfd: pytest.CaptureFixture[str]
) -> None:
    class SeveralAssets(MemoryStateStore):
        async def aget(self, key: str, default: Any = None) -> Any:
            raise ValueError("Task has 2 concrete inlets and outlets")

    credits(connections, "leadmagic", 100)()
    trigger = CreditsAvailableTrigger("leadmagic_default", threshold=1000, poll_interval=60)
    store = SeveralAssets()
    trigger.asset_state_store = store  # type: ignore[assignment]
    events = watch(trigger, [(100, credits(connections, "leadmagic", 5000))], until=200)
    assert [e["available"] for _, e in events] == ["5000"]
    assert store.values == {}
    assert "Not keeping the watch state across restarts: Task has 2 concrete inlets" in capfd.readouterr().out


def test_errors_back_off_and_a_fixed_connection_resumes_the_watch(
    connections: SandboxServer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    credits(connections, "leadmagic", 100)()
    good = json.dumps(connections.connection("leadmagic", **FAST_EXTRA))
    bad = json.loads(good)
    bad["password"] = CANARY  # a key the vendor rejects
    monkeypatch.setenv("AIRFLOW_CONN_LEADMAGIC_DEFAULT", json.dumps(bad))
    trigger = CreditsAvailableTrigger("leadmagic_default", threshold=1000, poll_interval=10)
    events = watch(
        trigger,
        [
            (35, lambda: monkeypatch.setenv("AIRFLOW_CONN_LEADMAGIC_DEFAULT", good)),  # the key is fixed
            (95, credits(connections, "leadmagic", 2000)),
        ],
        until=200,
    )
    # 401 at 0, 10 and 30 (backing off 10, 20, 40 s); at 70 the connection is read afresh: 100 credits,
    # the starting point; every 10 s after; 2000 seen at 100.
    assert [(at, e["available"], e["previous"]) for at, e in events] == [(100, "2000", "100")]
    out = capfd.readouterr().out
    assert out.count("Balance check of leadmagic_default failed: LeadMagic rejected the API key") == 3
    # The recovery is said once, so an operator reading the triggerer log knows the watch is back.
    assert out.count("Balance check of leadmagic_default works again after 3 failed attempt(s)") == 1
    assert CANARY not in out


def test_5xx_and_network_errors_keep_the_watch_going(connections: SandboxServer) -> None:
    credits(connections, "leadmagic", 100)()
    connections.state.inject("status", "leadmagic", status=503, times=6)  # max_retries=2: two checks' worth
    connections.state.inject("drop", "leadmagic", times=3)
    trigger = CreditsAvailableTrigger("leadmagic_default", threshold=1000, poll_interval=10)
    events = watch(trigger, [(75, credits(connections, "leadmagic", 5000))], until=100)
    # Failed checks at 0, 10 and 30 (backing off 10, 20, 40 s); 100 credits at 70; 5000 at 80.
    assert [(at, e["available"], e["previous"]) for at, e in events] == [(80, "5000", "100")]
    assert len(connections.state.requests_for("leadmagic", CREDITS_PATH)) == 9 + 3  # 3 checks x 3 tries, 3 ok


def test_serialize_holds_the_rule_and_no_key(canary_connections: SandboxServer) -> None:
    trigger = CreditsAvailableTrigger("leadmagic_default", threshold=Decimal("1e3"), poll_interval=30)
    path, kwargs = trigger.serialize()
    assert path == "airflow_credits_provider.triggers.credits_available.CreditsAvailableTrigger"
    assert kwargs == {
        "credit_conn_id": "leadmagic_default",
        "threshold": "1E+3",
        "rise_by": None,
        "poll_interval": 30.0,
        "fire_on_start": False,
    }
    assert CreditsAvailableTrigger(**kwargs).serialize() == (path, kwargs)
    assert CANARY not in repr(trigger) + json.dumps(kwargs)
    assert (
        trigger.shared_stream_key()
        == CreditsAvailableTrigger("leadmagic_default", rise_by=5, poll_interval=30).shared_stream_key()
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "exactly one of threshold"),
        ({"threshold": 1, "rise_by": 1}, ValueError, "exactly one of threshold"),
        ({"threshold": "-5"}, InvalidCostEstimateError, "threshold"),
        ({"threshold": "lots"}, InvalidCostEstimateError, "threshold"),
        ({"rise_by": 0}, ValueError, "rise_by must be more than 0"),
        ({"rise_by": 5, "fire_on_start": True}, ValueError, "fire_on_start applies to threshold only"),
        ({"threshold": 5, "poll_interval": 0}, ValueError, "poll_interval"),
    ],
)
def test_a_bad_rule_fails_when_the_dag_is_parsed(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        CreditsAvailableTrigger("leadmagic_default", **kwargs)


def test_watch_state_reads_back_only_its_own_shape() -> None:
    state = WatchState(Decimal("1.5"), True, Decimal("0.5"))
    assert WatchState.from_json(json.loads(json.dumps(state.to_json()))) == state
    for foreign in (None, {}, "x", {"last": "nan?", "above": True, "low": "1"}, [1, 2]):
        assert WatchState.from_json(foreign) is None
    rule = ArrivalRule(threshold=Decimal(10))
    assert rule.observe(None, Decimal(10)) == (False, WatchState(Decimal(10), True, Decimal(10)))
    assert rule.observe(WatchState(Decimal(9), False, Decimal(9)), Decimal(10))[0] is True


@pytest.mark.skipif(
    not hasattr(__import__("airflow.triggers.base").triggers.base.BaseEventTrigger, "open_shared_stream"),
    reason="shared streams arrived in Airflow 3.3; older versions share through the provider's poller",
)
def test_many_watchers_share_one_poll_through_airflows_shared_streams(
    connections: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 watchers of one connection in Airflow's own SharedStreamManager: one request per poll.

    Real time (the manager's poll runs in its own task, outside the virtual clock), so the assertions
    are counts, not timings: every watcher sees every balance, and the sandbox saw one request each.
    """
    from airflow.triggers.shared_stream import SharedStreamManager

    from airflow_credits_provider.triggers.balance import TriggerClock

    monkeypatch.setattr(CreditsAvailableTrigger, "clock", TriggerClock())
    credits(connections, "leadmagic", 100)()
    state = connections.state
    manager = SharedStreamManager(cohort_grace_period=0.5)  # every watcher joins before the first poll
    watchers = [
        CreditsAvailableTrigger("leadmagic_default", threshold=1000 + i, poll_interval=0.05)
        for i in range(100)
    ]
    balances_seen = [0] * len(watchers)
    fired: list[list[str]] = [[] for _ in watchers]

    async def counted(i: int, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for balance in stream:
            balances_seen[i] += 1
            yield balance

    async def one(i: int, trigger: CreditsAvailableTrigger) -> None:
        key = trigger.shared_stream_key()
        stream = manager.subscribe(trigger_id=i, trigger=trigger, key=key)
        try:
            async for event in trigger.filter_shared_stream(counted(i, stream)):
                fired[i].append(event.payload["available"])
                if sum(map(len, fired)) == 51:
                    all_fired.set()
        finally:
            await manager.unsubscribe(i, key)

    all_fired = asyncio.Event()

    async def main() -> int:
        consumers = [asyncio.ensure_future(one(i, w)) for i, w in enumerate(watchers)]
        # The sandbox serves from its own thread: its request log has nothing to await, so poll it.
        while len(state.requests_for("leadmagic", CREDITS_PATH)) < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        credits(connections, "leadmagic", 1050)()  # thresholds 1000..1050 are reached
        await all_fired.wait()
        await asyncio.sleep(0.3)  # a few more polls at 1050: nothing more may fire
        for consumer in consumers:
            consumer.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        return len(state.requests_for("leadmagic", CREDITS_PATH))

    requests = asyncio.run(asyncio.wait_for(main(), 60))
    assert fired == [["1050"]] * 51 + [[]] * 49  # once each, and only where the threshold was reached
    assert len(set(balances_seen)) == 1  # every watcher saw every balance...
    assert requests - balances_seen[0] in (0, 1)  # ...and each balance was one request (one may be in flight)
    assert balances_seen[0] >= 8
