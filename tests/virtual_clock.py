"""A virtual clock for triggers: time moves only when every trigger under test is asleep.

Replaces ``CreditBalanceTrigger.clock``. Real I/O (HTTP to the sandbox) still happens in real time; the
clock advances to the next wake-up only once no trigger is doing anything else, so what a test observes
(requests made, events, their order) does not depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import TYPE_CHECKING, Any

import pendulum

from airflow_credits_provider.triggers.balance import TriggerClock

if TYPE_CHECKING:
    from collections.abc import Coroutine

    import pytest
    from pendulum import DateTime


class VirtualClock(TriggerClock):
    """Starts at ``start`` (default: now) and advances only inside :meth:`run`."""

    def __init__(self, start: DateTime | None = None) -> None:
        self.start = start or pendulum.now("UTC")
        self.elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> DateTime:
        return self.start.add(microseconds=round(self.elapsed * 1_000_000))

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.elapsed + max(0.0, seconds), next(self._order), future))
        await future

    async def run(self, *coroutines: Coroutine[Any, Any, Any]) -> list[Any]:
        """Run ``coroutines`` to completion, advancing time whenever all unfinished ones are asleep."""
        tasks = [asyncio.ensure_future(c) for c in coroutines]
        while not all(task.done() for task in tasks):
            asleep = sum(not f.done() for _, _, f in self._sleepers)
            if asleep < sum(not task.done() for task in tasks):
                await asyncio.sleep(0.001)  # someone is doing real I/O: let it finish
                continue
            wake = self._sleepers[0][0]
            self.elapsed = max(self.elapsed, wake)
            while self._sleepers and self._sleepers[0][0] <= self.elapsed:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            await asyncio.sleep(0)
        return [task.result() for task in tasks]


def install_virtual_clock(monkeypatch: pytest.MonkeyPatch, trigger_class: type) -> VirtualClock:
    """Virtual time for ``trigger_class``, and no real waiting between the hook's own retries."""
    from airflow_credits_provider.client.transport import CreditApiClient

    virtual = VirtualClock()
    monkeypatch.setattr(trigger_class, "clock", virtual)

    async def no_wait(seconds: float) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(CreditApiClient, "asleep", staticmethod(no_wait))
    return virtual
