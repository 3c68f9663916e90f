"""Benchmark: sweep throughput (runs per minute) on the local process pool against serial.

A 3 x 2 grid (server count x balancing policy) of the baseline scenario shortened to two
minutes, 4 replications per point: 24 runs, once in this process and once on a pool of all
cores. The two tables must be identical; only the wall time may differ.

    python benchmarks/sweep_throughput.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from sim import load_scenario
from sim.executors import ProcessExecutor, SerialExecutor
from sim.experiment import grid, sweep

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "baseline.yaml", ["duration=2m", "warmup=10s"])
    points = grid(
        {"servers[0].count": [4, 6, 8], "balancer.policy": ["round_robin", "least_connections"]}
    )
    replications = 4
    runs = len(points) * replications
    timings = {}
    tables = {}
    for name, executor in (("serial", SerialExecutor()), ("pool", ProcessExecutor())):
        started = time.perf_counter()
        try:
            tables[name] = sweep(scenario, points, replications, executor=executor)
        finally:
            executor.close()
        timings[name] = time.perf_counter() - started
    pd.testing.assert_frame_equal(tables["serial"], tables["pool"])
    for name, seconds in timings.items():
        print(f"{name:>6}: {runs} runs in {seconds:6.1f} s = {runs / seconds * 60:6.1f} runs/min")
    print(
        f"speed-up on {os.cpu_count()} cores: {timings['serial'] / timings['pool']:.2f}x "
        "(identical tables)"
    )


if __name__ == "__main__":
    main()
