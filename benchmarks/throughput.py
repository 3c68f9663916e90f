"""Benchmark: simulated requests per wall second and peak memory, ecsim against plain SimPy.

The standard model: 8 identical single-worker servers behind a round-robin balancer, Poisson
arrivals, exponential service with mean 10 ms, utilization 0.8, 10^6 requests. The reference is
the idiomatic SimPy way to write the same model: one process per request and one
``simpy.Resource`` per server. Both run in this process, one after the other, on the same machine.

    python benchmarks/throughput.py            # 10^6 requests, memory at 10^5 and 10^6
    python benchmarks/throughput.py --requests 200000

Speed is measured here and reported in the README; no test asserts it.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np
import simpy

from sim.experiment import run
from sim.scenario import parse_scenario

SERVERS = 8
MEAN_SERVICE_S = 0.010
UTILIZATION = 0.8
ARRIVAL_RATE_PER_S = UTILIZATION * SERVERS / MEAN_SERVICE_S


def ecsim_scenario(requests: int):
    return parse_scenario(
        {
            "name": "benchmark",
            "duration": requests / ARRIVAL_RATE_PER_S,
            "workload": {
                "arrivals": {"rate": ARRIVAL_RATE_PER_S},
                "classes": [
                    {
                        "name": "request",
                        "share": 1,
                        "service_time": {"kind": "exponential", "mean": MEAN_SERVICE_S},
                    }
                ],
            },
            "balancer": {"policy": "round_robin"},
            "servers": [{"name": "web", "count": SERVERS, "workers": 1}],
            "metrics": {"step": 60},
        }
    )


def run_ecsim(requests: int) -> int:
    result = run(ecsim_scenario(requests), seed=1)
    return result.summary["requests"]["ended"]


def run_plain_simpy(requests: int) -> int:
    """The same model written the idiomatic SimPy way: a process per request."""
    env = simpy.Environment()
    rng = np.random.default_rng(1)
    servers = [simpy.Resource(env, capacity=1) for _ in range(SERVERS)]
    latencies: list[float] = []
    duration = requests / ARRIVAL_RATE_PER_S

    def request(server: simpy.Resource, service_s: float):
        arrived = env.now
        with server.request() as slot:
            yield slot
            yield env.timeout(service_s)
        latencies.append(env.now - arrived)

    def arrivals():
        turn = 0
        while True:
            yield env.timeout(rng.exponential(1 / ARRIVAL_RATE_PER_S))
            env.process(request(servers[turn % SERVERS], rng.exponential(MEAN_SERVICE_S)))
            turn += 1

    env.process(arrivals())
    env.run(until=duration)
    return len(latencies)


def throughput(function, requests: int) -> tuple[float, int]:
    gc.collect()
    started = time.perf_counter()
    completed = function(requests)
    return completed / (time.perf_counter() - started), completed


def peak_memory_mb(function, requests: int) -> float:
    gc.collect()
    tracemalloc.start()
    function(requests)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--memory-requests", type=int, nargs="*", default=[100_000, 1_000_000])
    arguments = parser.parse_args()
    ours, ours_done = throughput(run_ecsim, arguments.requests)
    plain, plain_done = throughput(run_plain_simpy, arguments.requests)
    print(f"requests simulated: ecsim {ours_done:,}, plain SimPy {plain_done:,}")
    print(f"ecsim        {ours:12,.0f} requests per wall second")
    print(f"plain SimPy  {plain:12,.0f} requests per wall second")
    print(f"speed-up     {ours / plain:12.2f}x")
    for label, function in (("ecsim", run_ecsim), ("plain SimPy", run_plain_simpy)):
        for requests in arguments.memory_requests:
            megabytes = peak_memory_mb(function, requests)
            print(f"peak memory, {label:<11} {requests:>9,} requests: {megabytes:8.2f} MB")


if __name__ == "__main__":
    main()
