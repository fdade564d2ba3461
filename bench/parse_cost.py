"""
What importing the provider adds to DAG parsing, measured in fresh processes.

Each run starts a new interpreter, imports ``airflow.sdk`` (the baseline every DAG file pays), then
imports every provider module a DAG file may use (hooks, operators, sensors; the trigger module is
loaded only by the triggerer) and times that step alone. Prints medians over the runs, plus the
baseline's own import time for scale. Goal: under 10 ms extra.

    python bench/parse_cost.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

MODULES = [
    "airflow_credits_provider",
    "airflow_credits_provider.get_provider_info",
    "airflow_credits_provider.errors",
    "airflow_credits_provider.models",
    "airflow_credits_provider.hooks.leadmagic",
    "airflow_credits_provider.hooks.localleads",
    "airflow_credits_provider.hooks.truemail",
    "airflow_credits_provider.hooks.resolve",
    "airflow_credits_provider.operators.preflight",
    "airflow_credits_provider.sensors.preflight",
]

PROBE = """
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
for name in {modules!r}:
    __import__(name)
t2 = time.perf_counter()
print(json.dumps({{"baseline": t1 - t0, "extra": t2 - t1}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = {
        **os.environ,
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", tempfile.mkdtemp()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    # Measure what a deployment sees: byte-compiled modules (pip and Airflow images compile them).
    # Without this, a PYTHONDONTWRITEBYTECODE environment would time the compiler instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    code = PROBE.format(modules=MODULES)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)  # warm .pyc
    baseline, extra = [], []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        )
        sample = json.loads(out.stdout.strip().splitlines()[-1])
        baseline.append(sample["baseline"] * 1000)
        extra.append(sample["extra"] * 1000)
    b, e = statistics.median(baseline), statistics.median(extra)
    print(f"runs: {args.runs} fresh processes")
    print(f"import airflow.sdk (baseline): median {b:8.1f} ms")
    print(f"provider modules, extra:       median {e:8.1f} ms  (min {min(extra):.1f}, max {max(extra):.1f})")
    print(f"extra / baseline:              {e / b:8.2%}")
    print(f"goal (< 10 ms extra):          {'met' if e < 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
