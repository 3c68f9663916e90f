"""Benchmark: policy scaling, the CPU cost per request of each policy as the pool grows.

The standard model of ``throughput.py`` (single-worker servers, Poisson arrivals, exponential
service with mean 10 ms, utilization 0.8) at 8, 64 and 512 servers, the arrival rate scaled with
the pool so that utilization stays the same. Each figure is the in-process CPU time
(``time.process_time``) of a whole run divided by the requests it ended, the median of
``--repeats`` runs, after an untimed run of each at a twentieth of the size (one-time costs,
such as lazy imports, are not a request's). Round-robin does O(1) work per request: its growth
with n is the rest of the simulator's (a larger event heap, more objects to touch), and a
policy's cost over round-robin's is its own work, which an index keeps about flat while a scan
grows with n.

    python benchmarks/policies.py                          # 200,000 requests a run, 3 repeats
    python benchmarks/policies.py --requests 50000 --repeats 1 --policies least_connections

Speed is measured here and never asserted by a test.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from sim.experiment import run
from sim.scenario import parse_scenario

MEAN_SERVICE_S = 0.010
UTILIZATION = 0.8
POLICIES = ("round_robin", "least_connections", "weighted_round_robin", "least_response_time")
SERVER_COUNTS = (8, 64, 512)


def scenario(policy: str, servers: int, requests: int):
    rate_per_s = UTILIZATION * servers / MEAN_SERVICE_S
    return parse_scenario(
        {
            "name": f"{policy}-{servers}",
            "duration": requests / rate_per_s,
            "workload": {
                "arrivals": {"rate": rate_per_s},
                "classes": [
                    {
                        "name": "request",
                        "share": 1,
                        "service_time": {"kind": "exponential", "mean": MEAN_SERVICE_S},
                    }
                ],
            },
            "balancer": {"policy": policy},
            "servers": [{"name": "web", "count": servers, "workers": 1}],
            "metrics": {"step": 60},
        }
    )


def cost_per_request_us(policy: str, servers: int, requests: int) -> float:
    """CPU microseconds per ended request of one run (build and summary included)."""
    model = scenario(policy, servers, requests)
    gc.collect()
    started = time.process_time()
    result = run(model, seed=1)
    elapsed = time.process_time() - started
    return elapsed / result.summary["requests"]["ended"] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000, help="per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--policies", nargs="*", default=list(POLICIES), choices=POLICIES)
    arguments = parser.parse_args()
    header = "".join(f"{count:>10} servers" for count in SERVER_COUNTS)
    print(f"policy scaling: CPU us per request, median of {arguments.repeats}")
    print(f"{'policy':<22}{header}{'512/8':>10}")
    measured: dict[str, list[float]] = {}
    for policy in arguments.policies:
        for servers in SERVER_COUNTS:  # untimed: one-time costs are not a request's
            cost_per_request_us(policy, servers, max(arguments.requests // 20, 1000))
        # Sizes interleaved within each repeat, so that a drift of the machine's speed (a shared
        # machine) touches every size alike.
        runs = [
            [cost_per_request_us(policy, servers, arguments.requests) for servers in SERVER_COUNTS]
            for _ in range(arguments.repeats)
        ]
        costs = [statistics.median(column) for column in zip(*runs, strict=True)]
        figures = "".join(f"{cost:>18.1f}" for cost in costs)
        line = f"{policy:<22}{figures}{costs[-1] / costs[0]:>9.2f}x"
        baseline = measured.get("round_robin")
        if baseline is not None:
            own = "  ".join(f"{c - b:+.1f}" for c, b in zip(costs, baseline, strict=True))
            line += f"   over round_robin: {own}"
        measured[policy] = costs
        print(line, flush=True)


if __name__ == "__main__":
    main()
