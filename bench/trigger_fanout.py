"""
N deferred sensors waiting on one connection: coalesced triggers vs one request per trigger.

Runs N ``CreditBalanceTrigger`` instances (N = 10, 100, 1,000) in one event loop against the sandbox
(started as a separate process, so its work is not counted here), all waiting for credits that never
come, until their deadline. The naive baseline, in the same process and run, gives every waiter its own
client and its own request each interval. Prints requests per poll interval, CPU and traced memory per
waiter. Goal: about 1 request per interval per connection at N = 1,000, under 20 KB per waiting trigger.

    python bench/trigger_fanout.py [--interval 0.5] [--duration 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ and tests/ helpers

from bench.sandbox_process import sandbox_process  # noqa: E402

CONN_ID = "leadmagic_default"
REQUIRED = 10**12


async def coalesced(n: int, interval: float, duration: float) -> None:
    import pendulum

    from airflow_credits_provider.triggers.balance import CreditBalanceTrigger

    deadline = pendulum.now("UTC").add(seconds=duration).isoformat()

    async def one() -> None:
        async for _ in CreditBalanceTrigger(
            CONN_ID, REQUIRED, poll_interval=interval, deadline=deadline
        ).run():
            return

    await asyncio.gather(*(one() for _ in range(n)))


async def naive(n: int, interval: float, duration: float) -> None:
    from airflow_credits_provider.compat import get_async_connection
    from airflow_credits_provider.hooks.resolve import aget_credit_hook

    # Resolve the connection once so the baseline measures polling, not connection look-ups.
    hook = await aget_credit_hook(CONN_ID)
    conn = await get_async_connection(CONN_ID)
    stop = time.monotonic() + duration

    async def one() -> None:
        client = hook._client_from_connection(conn)  # its own client, as a trigger without sharing has
        async with client.asession():
            while time.monotonic() < stop:
                balance = await hook.aget_balance(client)
                if balance.available >= REQUIRED:
                    return
                await asyncio.sleep(max(0.0, min(interval, stop - time.monotonic())))

    await asyncio.gather(*(one() for _ in range(n)))


def measure(name: str, runner, n: int, interval: float, duration: float, url: str) -> dict[str, float]:
    httpx.delete(f"{url}/_sandbox/requests").raise_for_status()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    asyncio.run(runner(n, interval, duration))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    requests = len(httpx.get(f"{url}/_sandbox/requests", timeout=30).json())
    return {
        "requests": requests,
        "per_interval": requests / (duration / interval),
        "cpu_ms_per_waiter": cpu * 1000 / n,
        "kb_per_waiter": (peak - base) / 1024 / n,
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--sizes", default="10,100,1000")
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = (
        "WARNING"  # triggers log every poll; keep the report readable
    )
    with sandbox_process(timeout=30) as url:
        intervals = args.duration / args.interval
        print(f"interval {args.interval}s, duration {args.duration}s, {intervals:.0f} intervals")
        columns = (("requests", 9), ("req/interval", 13), ("CPU ms/waiter", 14), ("KB/waiter", 10))
        header = f"{'N':>6} {'mode':<10} " + " ".join(f"{name:>{width}}" for name, width in columns)
        print(header)
        print("-" * len(header))
        asyncio.run(coalesced(1, args.interval, 0.1))  # warm-up: imports and first connection look-up
        asyncio.run(naive(1, args.interval, 0.1))
        for n in (int(s) for s in args.sizes.split(",")):
            results = {}
            for name, runner in (("coalesced", coalesced), ("naive", naive)):
                r = results[name] = measure(name, runner, n, args.interval, args.duration, url)
                late = (
                    "  (could not keep up: asked for N per interval)"
                    if r["wall"] > args.duration * 1.2
                    else ""
                )
                print(
                    f"{n:>6} {name:<10} {r['requests']:>9.0f} {r['per_interval']:>13.1f} "
                    f"{r['cpu_ms_per_waiter']:>14.3f} {r['kb_per_waiter']:>10.1f}{late}"
                )
            ratio = results["naive"]["requests"] / max(1, results["coalesced"]["requests"])
            print(f"{n:>6} {'ratio':<10} naive/coalesced requests = {ratio:.0f}x")


if __name__ == "__main__":
    main()
