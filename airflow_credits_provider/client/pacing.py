"""Pacing concurrent requests to one vendor: how many may be in flight, and how fast they may start.

A :class:`Throttle` is shared by the requests of one job (the concurrent ledger pages of a landing
run). It holds three limits, checked before each request starts (retries included):

- **in flight**: at most :attr:`Throttle.limit` requests at once, between 1 and ``max_in_flight``;
- **rate**: with ``requests_per_second``, starts are spaced at least ``1 / requests_per_second`` apart;
- **pause**: after a 429, no request starts before the vendor's ``Retry-After`` (or a backoff) has passed.

A 429 halves the in-flight limit (once for the requests that were in flight together: the 429s of
requests started before the last decrease only extend the pause) and pauses every request of the job,
not just the one that was refused. After that, the limit rises by one each time ``limit`` requests
started since the 429 have succeeded in a row (additive increase, multiplicative decrease, as TCP
does). So a rate-limited landing slows down as a whole and comes back gradually, and never answers a
429 with a burst of retries.

Airflow-free; time and sleeping go through ``clock`` and ``sleep`` (tests pass virtual ones).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: The pause after a 429 that carried no ``Retry-After``, in seconds (doubling while 429s continue).
DEFAULT_PAUSE = 1.0
#: The longest pause, ``Retry-After`` included.
MAX_PAUSE = 60.0
#: How many times a paced request refused with 429 is retried (at least; more if the connection's
#: ``max_retries`` says so): with the pause doubling from 1 s to 60 s, about 3 minutes of asking for time.
RATE_LIMIT_RETRIES = 8


class Throttle:
    """The in-flight limit, the start rate and the 429 pause shared by one job's requests.

    :param max_in_flight: the most requests at once (the limit starts here)
    :param requests_per_second: the most request starts per second (``None``: no cap)
    :param clock: monotonic seconds
    :param sleep: waits that many seconds
    """

    def __init__(
        self,
        max_in_flight: int,
        requests_per_second: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be a whole number >= 1, got {max_in_flight!r}")
        if requests_per_second is not None and (
            isinstance(requests_per_second, bool)
            or not isinstance(requests_per_second, (int, float))
            or not 0 < requests_per_second < float("inf")
        ):
            raise ValueError(f"requests_per_second must be a positive number, got {requests_per_second!r}")
        self.max_in_flight = max_in_flight
        self.requests_per_second = requests_per_second
        self.limit = max_in_flight
        self.in_flight = 0
        #: How many 429s the job received, and the lowest limit it went down to (for logs and tests).
        self.rate_limited_count = 0
        self.lowest_limit = max_in_flight
        self.peak_in_flight = 0
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._not_before = 0.0
        self._next_start = 0.0
        self._successes = 0
        self._pause = DEFAULT_PAUSE
        self._epoch = 0

    @contextmanager
    def slot(self) -> Iterator[int]:
        """Wait until a request may start, hold its place while it runs; yield its epoch.

        Pass the epoch to :meth:`succeeded` when the request succeeds.
        """
        epoch = self._acquire()
        try:
            yield epoch
        finally:
            with self._cond:
                self.in_flight -= 1
                self._cond.notify_all()

    def _acquire(self) -> int:
        while True:
            with self._cond:
                now = self._clock()
                wait = max(self._not_before, self._next_start) - now
                if wait <= 0 and self.in_flight < self.limit:
                    self.in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                    if self.requests_per_second:
                        self._next_start = max(now, self._next_start) + 1.0 / self.requests_per_second
                    return self._epoch
                if wait <= 0:  # full: wait for a request to end
                    self._cond.wait(timeout=1.0)
                    continue
            self._sleep(min(wait, MAX_PAUSE))

    def succeeded(self, epoch: int) -> None:
        """A request (started in ``epoch``) succeeded: after ``limit`` successes in a row, allow one more."""
        with self._cond:
            if epoch != self._epoch:  # started before the last 429: says nothing about the rate now
                return
            self._pause = DEFAULT_PAUSE
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.max_in_flight:
                self.limit += 1
                self._successes = 0
                self._cond.notify_all()

    def rate_limited(self, retry_after: float | None, epoch: int | None = None) -> float:
        """A request got a 429: halve the limit and pause every request until ``retry_after`` has passed.

        :param epoch: the refused request's (from :meth:`slot`): one started before the last decrease
            extends the pause but does not halve the limit again
        :return: the pause, in seconds
        """
        with self._cond:
            self.rate_limited_count += 1
            if epoch is None or epoch == self._epoch:
                self._epoch += 1
                self.limit = max(1, self.limit // 2)
                self.lowest_limit = min(self.lowest_limit, self.limit)
            self._successes = 0
            if retry_after is not None:
                pause = min(max(retry_after, 0.0), MAX_PAUSE)
            else:
                pause, self._pause = self._pause, min(self._pause * 2, MAX_PAUSE)
            self._not_before = max(self._not_before, self._clock() + pause)
            return pause
