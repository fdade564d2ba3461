"""Reservers racing in threads of this process, for the store, budget and partial-run races."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_credits_provider.reservations import ReservationStore

R = TypeVar("R")


def race_threads(
    jitters: list[float],
    store: Callable[[], ReservationStore],
    reserve: Callable[[int, ReservationStore], R],
) -> list[tuple[int, R]]:
    """One thread per jitter: each makes its own store, waits at a barrier, sleeps its jitter, reserves.

    :return: ``(index, reserve's result)`` of every thread (in the order they finished)
    :raises AssertionError: listing the exceptions of the threads that raised (one that fails before
        the barrier breaks it, so the others end too)
    """
    barrier = threading.Barrier(len(jitters))
    results: list[tuple[int, R]] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            mine = store()
            barrier.wait()
            time.sleep(jitters[i])
            results.append((i, reserve(i, mine)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()  # the others stop waiting for this one

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(jitters))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results
