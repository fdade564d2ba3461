"""What the triggers wait with: the clock (replaceable in tests) and the back-off after failed polls."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pendulum import DateTime

#: Longest pause between polls after errors (seconds).
MAX_ERROR_BACKOFF = 600.0


def error_backoff(poll_interval: float, failures: int) -> float:
    """Seconds to wait after ``failures`` failed checks in a row: the interval doubled per failure, capped."""
    return min(poll_interval * 2.0 ** (failures - 1), MAX_ERROR_BACKOFF)


class TriggerClock:
    """The time and the waiting a trigger uses: the wall clock and ``asyncio.sleep``.

    Tests replace :attr:`CreditBalanceTrigger.clock` with a virtual clock, so that no test depends on
    how fast the machine is.
    """

    def now(self) -> DateTime:
        """The current time (UTC)."""
        import pendulum

        return pendulum.now("UTC")

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for cache ages)."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        await asyncio.sleep(seconds)
