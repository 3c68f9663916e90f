"""Benchmark: sweep throughput (runs per minute) on the local process pool against serial.

A 3 x 2 grid (server count x balancing policy) of the baseline scenario shortened to two
minutes, 4 replications per point: 24 runs, once in this process and once on a pool of all
cores. The two tables must be identical; only the wall time may differ.

    python benchmarks/sweep_throughput.py
    python benchmarks/sweep_throughput.py --duration 30s --replications 1   # a quick look
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from sim import load_scenario
from sim.executors import ProcessExecutor, SerialExecutor
from sim.experiment import grid, sweep

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="2m", help="simulated time of each run")
    parser.add_argument("--replications", type=int, default=4, help="per point")
    arguments = parser.parse_args()
    scenario = load_scenario(
        ROOT / "scenarios" / "baseline.yaml", [f"duration={arguments.duration}", "warmup=10s"]
    )
    points = grid(
        {"servers[0].count": [4, 6, 8], "balancer.policy": ["round_robin", "least_connections"]}
    )
    replications = arguments.replications
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
