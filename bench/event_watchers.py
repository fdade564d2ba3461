"""
100 credit watchers (``CreditsAvailableTrigger``, for ``AssetWatcher``) of one connection: requests per poll.

Three ways to run N watchers of one connection in one event loop, against the sandbox (its own
process, so its work is not counted), for ``--duration`` seconds, interleaved, medians of ``--repeat``:

- ``shared-stream``: Airflow 3.3's triggerer mechanism (``SharedStreamManager``): one poll per group of
  watchers with the same ``shared_stream_key``, fanned out to each watcher's ``filter_shared_stream``.
- ``provider-poller``: each watcher's own ``run()`` (what Airflow before 3.3 calls), sharing requests
  through the provider's ``SharedBalancePoller``.
- ``independent`` (the baseline): every watcher polls with its own client, as an event trigger that does
  not share does.

Prints requests per poll interval and CPU per watcher. Goal: one request per interval per connection.

    python bench/event_watchers.py [--watchers 100] [--interval 0.5] [--duration 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ and tests/ helpers

from bench.sandbox_process import sandbox_process  # noqa: E402
from bench.trigger_fanout import CONN_ID, measure, naive  # noqa: E402

THRESHOLD = 10**12  # never reached: the watchers poll for the whole run


async def _watch_until(events: Any, duration: float) -> None:
    """Consume a watcher's events for ``duration`` seconds, then stop it."""

    async def consume() -> None:
        async for _ in events:
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(duration)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await events.aclose()


def _watchers(n: int, interval: float) -> list[Any]:
    from airflow_credits_provider.triggers.credits_available import CreditsAvailableTrigger

    return [
        CreditsAvailableTrigger(CONN_ID, threshold=THRESHOLD + i, poll_interval=interval) for i in range(n)
    ]


async def shared_stream(n: int, interval: float, duration: float) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    manager = SharedStreamManager()

    async def one(i: int, trigger: Any) -> None:
        key = trigger.shared_stream_key()
        try:
            stream = manager.subscribe(trigger_id=i, trigger=trigger, key=key)
            await _watch_until(trigger.filter_shared_stream(stream), duration)
        finally:
            await manager.unsubscribe(i, key)

    await asyncio.gather(*(one(i, t) for i, t in enumerate(_watchers(n, interval))))


async def provider_poller(n: int, interval: float, duration: float) -> None:
    await asyncio.gather(*(_watch_until(t.run(), duration) for t in _watchers(n, interval)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"  # watchers log; keep the report readable
    from airflow.triggers.base import BaseEventTrigger

    modes: dict[str, Any] = {"provider-poller": provider_poller, "independent": naive}
    if hasattr(BaseEventTrigger, "open_shared_stream"):  # Airflow 3.3+
        modes = {"shared-stream": shared_stream, **modes}
    with sandbox_process(timeout=30) as url:
        n, intervals = args.watchers, args.duration / args.interval
        print(
            f"{n} watchers of one connection, interval {args.interval}s, "
            f"{args.duration}s ({intervals:.0f} intervals)"
        )
        for runner in modes.values():  # warm-up: imports, the first connection look-up
            asyncio.run(runner(1, args.interval, 0.2))
        results: dict[str, list[dict[str, float]]] = {name: [] for name in modes}
        for _ in range(args.repeat):  # interleaved
            for name, runner in modes.items():
                results[name].append(measure(name, runner, n, args.interval, args.duration, url))
        header = f"{'mode':<16} {'requests':>9} {'req/interval':>13} {'CPU ms/watcher':>15}"
        print(header)
        print("-" * len(header))
        medians = {}
        for name, runs in results.items():
            med = medians[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            late = (
                "  (could not keep up: asked for one per watcher per interval)"
                if med["wall"] > args.duration * 1.2
                else ""
            )
            print(
                f"{name:<16} {med['requests']:>9.0f} {med['per_interval']:>13.1f} "
                f"{med['cpu_ms_per_waiter']:>15.3f}{late}"
            )
        for name in medians:
            if name != "independent":
                ratio = medians["independent"]["requests"] / max(1, medians[name]["requests"])
                print(f"independent/{name} requests = {ratio:.0f}x")


if __name__ == "__main__":
    main()
