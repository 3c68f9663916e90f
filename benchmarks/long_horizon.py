"""Benchmark: the long-horizon mode, crude and biased.

1. Crude: ``scenarios/trading_system.yaml`` (a balancer pair, eight web servers in two zones
   with spares, four semi-sync shards of three nodes), 1,000 simulated years in 10
   replications, every tier failing, detecting, failing over and repairing: the CPU time of
   the replications in this process, and the wall time of the command a user runs,
   ``ecsim availability scenarios/trading_system.yaml --workers 2`` (start-up included).
2. Biased against crude at 99.9999%, on two designs whose Markov chains put the unavailability
   at 1.0e-6: two servers of which one suffices, failing every 999 hours, and three of which
   one suffices, failing every 99 hours (repairs take an hour). Each method runs a fixed amount
   (``--cycles``, ``--crude-years``), and the CPU time it needs for a 95% interval within 10%
   of the unavailability is extrapolated from its own interval (half-widths shrink as one
   over the square root of the work).

Times are CPU seconds of this process (``time.process_time``); each figure is the median of
``--repeats`` runs. Nothing here is asserted by a test.

    python benchmarks/long_horizon.py
    python benchmarks/long_horizon.py --years 200 --crude-years 2000 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sim import load_scenario, parse_scenario
from sim.rare_events import estimate_by_failure_biasing
from sim.reliability import estimate_availability, markov_availability

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.10


def six_nines(servers: int = 2, mttf: str = "999h"):
    """``servers`` servers of which one suffices, failing every ``mttf``, repaired in an hour."""
    return parse_scenario(
        {
            "name": "six_nines",
            "duration": 60,
            "workload": {
                "arrivals": {"rate": 1},
                "classes": [
                    {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.01}}
                ],
            },
            "balancer": {"detection": {"kind": "heartbeat", "interval": 0.001, "misses": 1}},
            "servers": [{"name": "web", "count": servers}],
            "failures": [
                {
                    "kind": "crash_repair",
                    "target": {"group": "web"},
                    "time_to_failure": {"kind": "exponential", "mean": mttf},
                    "time_to_repair": {"kind": "exponential", "mean": "1h"},
                }
            ],
        }
    )


DESIGNS = {
    "two servers, one needed, failing every 999 h": (2, "999h"),
    "three servers, one needed, failing every 99 h": (3, "99h"),
}


def cpu(work):
    started = time.process_time()
    result = work()
    return time.process_time() - started, result


def command_wall_s(years: float) -> float:
    """Wall time of the command on two worker processes, start-up and writing included."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        scenario = ROOT / "scenarios" / "trading_system.yaml"
        command = [sys.executable, "-m", "sim", "availability", str(scenario), "--years"]
        command += [str(years), "--workers", "2", "--out", str(Path(folder) / "run")]
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - started


def needed(seconds: float, relative: float) -> float:
    """CPU seconds for a relative half-width of TARGET, from a run that reached ``relative``
    in ``seconds`` (half-widths shrink as one over the square root of the work)."""
    return seconds * (relative / TARGET) ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=float, default=1000.0)
    parser.add_argument("--crude-years", type=float, default=5000.0)
    parser.add_argument("--cycles", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()

    trading = load_scenario(ROOT / "scenarios" / "trading_system.yaml")
    times = [
        cpu(lambda: estimate_availability(trading, arguments.years, 10))[0]
        for _ in range(arguments.repeats)
    ]
    walls = [command_wall_s(arguments.years) for _ in range(arguments.repeats)]
    print(
        f"crude, trading_system, {arguments.years:g} years of every tier:"
        f" {statistics.median(times):7.1f} s CPU in one process;"
        f" `ecsim availability --workers 2`: {statistics.median(walls):5.1f} s wall"
    )

    for label, (servers, mttf) in DESIGNS.items():
        scenario = six_nines(servers, mttf)
        chain = markov_availability(scenario)["value"]
        biased_needs, crude_needs = [], []
        for _ in range(arguments.repeats):
            seconds, biased = cpu(
                lambda scenario=scenario: estimate_by_failure_biasing(scenario, arguments.cycles)
            )
            biased_needs.append(needed(seconds, biased["availability"]["relative_half_width"]))
            seconds, crude = cpu(
                lambda scenario=scenario: estimate_availability(scenario, arguments.crude_years, 10)
            )
            value = crude["availability"]
            crude_needs.append(needed(seconds, value["half_width"] / (1 - value["value"])))
        biased_s, crude_s = statistics.median(biased_needs), statistics.median(crude_needs)
        print(f"{label}: Markov chain unavailability {1 - chain:.3g}")
        print(
            f"  biased: {arguments.cycles:,} cycles, unavailability"
            f" {biased['availability']['unavailability']:.3g}"
            f" +-{biased['availability']['relative_half_width']:.1%}; +-10% takes"
            f" {biased_s:8.1f} s CPU"
        )
        print(
            f"  crude:  {arguments.crude_years:g} years, unavailability"
            f" {1 - value['value']:.3g} +-{value['half_width'] / (1 - value['value']):.1%};"
            f" +-10% takes {crude_s:8.1f} s CPU"
        )
        print(f"  failure biasing is {crude_s / biased_s:,.0f} times faster")


if __name__ == "__main__":
    main()
