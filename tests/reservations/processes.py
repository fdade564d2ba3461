"""Reservers in separate processes, for the race and killed-holder tests of the reservation store.

Each process is forked from a fork server that has imported Airflow once (a fork of this multi-threaded
test process could deadlock; spawning 20 fresh interpreters costs a minute).

The processes are daemons, and a race's barrier is aborted when its test ends: a test that fails
between rounds (or is stopped by its timeout while cleaning up) never leaves a process waiting at the
barrier for good, which multiprocessing's exit handler would join forever (CI's 3.1.8 row hung so
after a round failed).

The barrier and queue are torn down here, at a known point: left to the garbage collector, their
semaphores may be finalized while the multiprocessing resource tracker is itself sending a message,
which Python 3.12 reports as ``ReentrantCallError`` (an unraisable exception that fails the next test).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# The modules whose functions run in the reserver processes: imported once, in the fork server.
PRELOAD = [
    "tests.reservations.test_store",
    "tests.reservations.test_budgets",
    "tests.reservations.test_partial_reservations",
    "tests.reservations.test_alerts",
    "airflow_credits_provider.sql.connections",
    "airflow_credits_provider.hooks.leadmagic",
]


def reserver_context() -> Any:
    """The multiprocessing context of the reserver processes."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def connections_env() -> dict[str, str]:
    """This test's Airflow settings and connections, for its reserver processes."""
    return {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW")}


@dataclass
class Race:
    """Processes started together; ``barrier`` has room for each of them and the test."""

    barrier: Any
    results: Any


@contextlib.contextmanager
def racing(target: Callable[..., None], count: int, *args: Any) -> Iterator[Race]:
    """Run ``target(index, *args, env, barrier, results)`` in ``count`` processes.

    ``env`` is :func:`connections_env`. On exit every process has ended (killed after 30 s) and the
    barrier, the queue and the processes are closed.
    """
    ctx = reserver_context()
    race = Race(ctx.Barrier(count + 1), ctx.Queue())
    procs = [
        ctx.Process(
            target=target, args=(i, *args, connections_env(), race.barrier, race.results), daemon=True
        )
        for i in range(count)
    ]
    for p in procs:
        p.start()
    try:
        yield race
    finally:
        race.barrier.abort()  # a failed round leaves the others waiting at the next one: let them go
        for p in procs:
            _stop(p)
        _close(race.results)
        race.barrier = race.results = None
        gc.collect()


@dataclass
class Holding:
    """One process; it puts one result on ``ready`` when it holds what the test needs."""

    process: Any
    ready: Any

    def kill(self) -> None:
        """SIGKILL the process, as the kernel's OOM killer would, and wait for it to end."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(timeout=30)


@contextlib.contextmanager
def holding(target: Callable[..., None], *args: Any) -> Iterator[Holding]:
    """Run ``target(*args, env, ready)`` in one process; on exit it has ended (killed after 30 s)."""
    ctx = reserver_context()
    held = Holding(None, ctx.Queue())
    proc = held.process = ctx.Process(target=target, args=(*args, connections_env(), held.ready), daemon=True)
    proc.start()
    try:
        yield held
    finally:
        _stop(proc)
        _close(held.ready)
        held.process = held.ready = None
        gc.collect()


def _stop(proc: Any) -> None:
    proc.join(timeout=30)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=30)
    proc.close()


def _close(queue: Any) -> None:
    queue.close()
    queue.join_thread()
