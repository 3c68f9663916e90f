"""Benchmark: what a simulated request costs in ecsim, against idiomatic SimPy.

The standard model: 8 identical single-worker servers behind a round-robin balancer with the
default health checks, Poisson arrivals, exponential service, utilization 0.8. It runs in two
time units, a mean service of 1 s and of 10 ms (the arrival rate scaled to match), because a
model's cost must not depend on the unit it is written in.

The reference is the idiomatic SimPy way to write the same model (a process per request, a
``simpy.Resource`` per server), drawing its random numbers in blocks as a research engine
would, so that it pays no per-draw numpy overhead. It has no health checks, no timeouts and no
metrics: everything ecsim adds is counted against ecsim. Beside it runs the floor: the same
model as two bare Timeout callbacks per request and nothing else, the least any model on SimPy
can cost. It completes exactly the requests the idiomatic model does (same draws, same order),
and it says how much room a ratio to idiomatic SimPy leaves for the simulator's own work. A
second floor has the events of the every-feature model's database (a read per request, a
write for one in five, the web worker held meanwhile) and nothing else: what those events
alone cost against the plain floor, and the room a ratio to the plain model leaves.

"Every feature" is the 10 ms model with failures (each server crashes every 10 minutes on
average, repaired in 30 s), health checks, outlier ejection, a hot spare, a timeout with
retries, and a database (one shard, a master and an asynchronous replica; one read per request,
and a write too for the one request in five that buys). A web server holds its worker while it
waits for the database, so its servers get two workers each: with one, the database's time
would push them past saturation, and the benchmark would time a retry storm that grows with the
run instead of the cost of a request. Two workers put the web tier at about half the plain
model's utilization (0.52 with the database, 0.40 without). The share of requests ok, the
attempts per request and the web tier's utilization are printed, so that an overloaded model
shows. The cost of a database operation is the difference between that model with and without
its database, over the operations done.

Each case first runs once, untimed, at a twentieth of the size, so that one-time costs (lazy
imports, first builds) are not counted. Runs on a shared 2-core machine still vary by 10-30%
from one to the next: each line gives the range of the repeats beside their median.

Times are in-process CPU seconds (``time.process_time``) and wall seconds, the median of
``--repeats`` runs interleaved across the cases; peak memory is what ``tracemalloc`` traces.
Nothing here is asserted by a test.

    python benchmarks/throughput.py
    python benchmarks/throughput.py --requests 100000 --repeats 3 --memory-requests
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import simpy
from simpy.events import Timeout

from sim.experiment import run
from sim.scenario import parse_scenario

SERVERS = 8
UTILIZATION = 0.8


def _scenario(requests: int, mean_service_s: float, **extra: Any):
    rate = UTILIZATION * SERVERS / mean_service_s
    request_class: dict[str, Any] = {
        "name": "request",
        "share": 1,
        "service_time": {"kind": "exponential", "mean": mean_service_s},
    }
    request_class.update(extra.pop("request", {}))
    classes = [request_class]
    if "buy" in extra:  # a second class, sharing the first one's service and options
        buy = {**request_class, "name": "buy", "share": 0.2, **extra.pop("buy")}
        classes = [{**request_class, "share": 0.8}, buy]
    servers: dict[str, Any] = {"name": "web", "count": SERVERS, "workers": 1}
    servers.update(extra.pop("servers", {}))
    return parse_scenario(
        {
            "name": "benchmark",
            "duration": requests / rate,
            "workload": {"arrivals": {"rate": rate}, "classes": classes},
            "balancer": {"policy": "round_robin", **extra.pop("balancer", {})},
            "servers": [servers],
            "metrics": {"step": 60 * mean_service_s / 0.01},
            **extra,
        }
    )


def standard(requests: int, mean_service_s: float):
    return _scenario(requests, mean_service_s)


def every_feature(requests: int, database: bool = True):
    extra: dict[str, Any] = {
        "request": {"timeout": 1.0, "retries": {"max": 2}},
        "servers": {"workers": 2, "standby": {"count": 1, "mode": "hot", "promotion_delay": 5}},
        "balancer": {"outlier_ejection": {"consecutive_errors": 5}},
        "failures": [
            {
                "kind": "crash_repair",
                "target": {"group": "web"},
                "time_to_failure": {"kind": "exponential", "mean": "10m"},
                "time_to_repair": {"kind": "exponential", "mean": "30s"},
            }
        ],
    }
    if database:
        extra["request"]["database"] = {"reads": 1}
        extra["buy"] = {"kind": "write", "database": {"reads": 1, "writes": 1}}
        extra["database"] = {
            "shards": 1,
            "replication": {"kind": "master_slave", "mode": "async", "replicas": 1},
        }
    return _scenario(requests, 0.01, **extra)


def run_ecsim(scenario) -> dict[str, Any]:
    return run(scenario, seed=1).summary


def _draws(rng: np.random.Generator, scale: float, block: int = 4096) -> Iterator[float]:
    while True:
        yield from rng.exponential(scale, block).tolist()


def run_plain_simpy(requests: int, mean_service_s: float) -> int:
    """The standard model, written the idiomatic SimPy way: a process per request."""
    env = simpy.Environment()
    rng = np.random.default_rng(1)
    rate = UTILIZATION * SERVERS / mean_service_s
    gaps, services = _draws(rng, 1 / rate), _draws(rng, mean_service_s)
    servers = [simpy.Resource(env, capacity=1) for _ in range(SERVERS)]
    latencies: list[float] = []

    def request(server: simpy.Resource, service_s: float):
        arrived = env.now
        with server.request() as slot:
            yield slot
            yield env.timeout(service_s)
        latencies.append(env.now - arrived)

    def arrivals():
        turn = 0
        while True:
            yield env.timeout(next(gaps))
            env.process(request(servers[turn % SERVERS], next(services)))
            turn += 1

    env.process(arrivals())
    env.run(until=requests / rate)
    return len(latencies)


def run_simpy_floor(requests: int, mean_service_s: float) -> int:
    """The same model at the least any SimPy model can pay: two bare Timeout callbacks per
    request (arrival, end of service), a list of waiting requests per server, the latency
    appended to a list, and nothing else: no attempt objects, no crash safety, no metrics."""
    env = simpy.Environment()
    rng = np.random.default_rng(1)
    rate = UTILIZATION * SERVERS / mean_service_s
    gaps, services = _draws(rng, 1 / rate), _draws(rng, mean_service_s)
    busy = [False] * SERVERS
    queues: list[deque[tuple[float, float]]] = [deque() for _ in range(SERVERS)]
    latencies: list[float] = []
    turn = 0

    def finish(service: simpy.Event) -> None:
        server, arrived = service.value
        latencies.append(env.now - arrived)
        if queues[server]:
            arrived, service_s = queues[server].popleft()
            Timeout(env, service_s, (server, arrived)).callbacks.append(finish)
        else:
            busy[server] = False

    def arrive(_: simpy.Event) -> None:
        nonlocal turn
        now = env.now
        Timeout(env, next(gaps)).callbacks.append(arrive)
        server = turn % SERVERS
        turn += 1
        if busy[server]:
            queues[server].append((now, next(services)))
        else:
            busy[server] = True
            Timeout(env, next(services), (server, now)).callbacks.append(finish)

    Timeout(env, next(gaps)).callbacks.append(arrive)
    env.run(until=requests / rate)
    return len(latencies)


def run_simpy_floor_with_database(requests: int) -> int:
    """The floor of the every-feature model's events: the 10 ms floor with two workers per web
    server, each request then reading once from the database (and writing once, for one in
    five) on a master of 8 workers with the default database service times (2 ms and 5 ms,
    exponential), the web worker held meanwhile. No failures, retries, ejection, spares,
    replication or metrics: what the database's events cost, and nothing else."""
    from sim.scenario import DatabaseSpec

    env = simpy.Environment()
    rng = np.random.default_rng(1)
    rate = UTILIZATION * SERVERS / 0.01
    spec = DatabaseSpec()
    gaps, services = _draws(rng, 1 / rate), _draws(rng, 0.01)
    read_s, write_s = _draws(rng, spec.read_time.mean()), _draws(rng, spec.write_time.mean())
    buys = (u < 0.2 for block in iter(lambda: rng.random(4096).tolist(), None) for u in block)
    web_busy, web_queues = [0] * SERVERS, [deque() for _ in range(SERVERS)]
    database = {"busy": 0, "queue": deque()}
    latencies: list[float] = []
    turn = 0

    def serve(job: tuple) -> None:
        # job: (server, arrived, buys, step), step 1 a read, 2 a write
        Timeout(env, next(write_s if job[3] == 2 else read_s), job).callbacks.append(answered)

    def to_database(job: tuple) -> None:
        if database["busy"] >= 8:
            database["queue"].append(job)
        else:
            database["busy"] += 1
            serve(job)

    def served(service: simpy.Event) -> None:
        to_database((*service.value, 1))

    def answered(operation: simpy.Event) -> None:
        server, arrived, buy, step = operation.value
        if database["queue"]:
            serve(database["queue"].popleft())
        else:
            database["busy"] -= 1
        if step == 1 and buy:
            to_database((server, arrived, buy, 2))
            return
        latencies.append(env.now - arrived)
        if web_queues[server]:
            waiting = web_queues[server].popleft()
            Timeout(env, next(services), waiting).callbacks.append(served)
        else:
            web_busy[server] -= 1

    def arrive(_: simpy.Event) -> None:
        nonlocal turn
        now = env.now
        Timeout(env, next(gaps)).callbacks.append(arrive)
        server = turn % SERVERS
        turn += 1
        request = (server, now, next(buys))
        if web_busy[server] >= 2:
            web_queues[server].append(request)
        else:
            web_busy[server] += 1
            Timeout(env, next(services), request).callbacks.append(served)

    Timeout(env, next(gaps)).callbacks.append(arrive)
    env.run(until=requests / rate)
    return len(latencies)


def measure(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """CPU seconds, wall seconds and the result of ``work()``."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    result = work()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def peak_memory_mb(work: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    work()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-requests", type=int, nargs="*", default=[1_000_000])
    arguments = parser.parse_args()
    n = arguments.requests

    def cases_of(n: int) -> dict[str, Callable[[], Any]]:
        return {
            "ecsim, 1 s service": lambda: run_ecsim(standard(n, 1.0)),
            "SimPy, 1 s service": lambda: run_plain_simpy(n, 1.0),
            "ecsim, 10 ms service": lambda: run_ecsim(standard(n, 0.01)),
            "SimPy, 10 ms service": lambda: run_plain_simpy(n, 0.01),
            "SimPy floor, 10 ms service": lambda: run_simpy_floor(n, 0.01),
            "every feature": lambda: run_ecsim(every_feature(n)),
            "every feature but the database": lambda: run_ecsim(every_feature(n, database=False)),
            "SimPy floor with the database": lambda: run_simpy_floor_with_database(n),
        }

    for work in cases_of(max(n // 20, 1000)).values():
        work()  # untimed: one-time costs (lazy imports, first builds) are not a request's
    cases = cases_of(n)
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    wall: dict[str, list[float]] = {name: [] for name in cases}
    done: dict[str, Any] = {}
    for _ in range(arguments.repeats):
        for name, work in cases.items():
            seconds, wall_s, done[name] = measure(work)
            cpu[name].append(seconds)
            wall[name].append(wall_s)

    def ended(name: str) -> int:
        result = done[name]
        return result if isinstance(result, int) else result["requests"]["ended"]

    def per_request_us(name: str, times: dict[str, list[float]]) -> float:
        return statistics.median(times[name]) / ended(name) * 1e6

    def spread(name: str) -> str:
        low, high = (t / ended(name) * 1e6 for t in (min(cpu[name]), max(cpu[name])))
        return f"{low:.2f}-{high:.2f}"

    print(f"{n:,} requests per run, median of {arguments.repeats} interleaved runs")
    print(f"{'model':<32} {'CPU us/request':>15} {'(range)':>13} {'wall us/request':>16}")
    for name in cases:
        print(
            f"{name:<32} {per_request_us(name, cpu):15.2f} {spread(name):>13}"
            f" {per_request_us(name, wall):16.2f}"
        )
    for unit in ("1 s", "10 ms"):
        ours, simpy_ = f"ecsim, {unit} service", f"SimPy, {unit} service"
        print(
            f"ecsim against idiomatic SimPy, {unit} service:"
            f" {per_request_us(simpy_, cpu) / per_request_us(ours, cpu):.2f}x in CPU,"
            f" {per_request_us(simpy_, wall) / per_request_us(ours, wall):.2f}x in wall time"
        )
    floor, idiomatic = (per_request_us(f"SimPy{m}, 10 ms service", cpu) for m in (" floor", ""))
    print(
        f"the floor (two bare SimPy events per request) is {idiomatic / floor:.2f}x idiomatic"
        f" SimPy: at 3.5x, {idiomatic / 3.5 - floor:.2f} us per request would be left for all"
        " ecsim does beyond scheduling"
    )
    plain = per_request_us("ecsim, 10 ms service", cpu)
    print(
        f"every feature costs {per_request_us('every feature', cpu) / plain:.2f}x the plain"
        " model per request (CPU)"
    )
    with_database = per_request_us("SimPy floor with the database", cpu)
    print(
        f"the floor of every feature's events is {with_database / floor:.2f}x the plain floor:"
        f" at 2x, {2 * plain - with_database:.2f} us per request would be left for all every"
        f" feature does beyond scheduling (it takes"
        f" {per_request_us('every feature', cpu) - with_database:.2f})"
    )
    for name in ("ecsim, 10 ms service", "every feature", "every feature but the database"):
        requests = done[name]["requests"]
        print(
            f"{name}: {requests['ok'] / requests['ended']:.1%} of requests ok,"
            f" {done[name]['attempts_per_request']:.3f} attempts per request,"
            f" web tier utilization {done[name]['groups']['web']['utilization']:.2f}"
        )
    operations = done["every feature"]["data"]["operations"]
    extra_s = statistics.median(cpu["every feature"]) - statistics.median(
        cpu["every feature but the database"]
    )
    print(f"a database operation costs {extra_s / operations * 1e6:.2f} us of CPU")
    for requests in arguments.memory_requests:
        megabytes = peak_memory_mb(lambda requests=requests: run_ecsim(standard(requests, 0.01)))
        print(f"peak memory, ecsim, {requests:,} requests: {megabytes:.1f} MB")


if __name__ == "__main__":
    main()
