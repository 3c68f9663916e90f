"""Memory stays bounded: what a run holds does not grow with the requests it simulates, and a
queue that would grow without end stops the run with a message saying what to change.

The overflow tests lower the bound (one million waiting attempts, hundreds of megabytes) to a
few thousand, so that reaching it takes a fraction of a second; the mechanism is the same.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest

from sim import parse_scenario, run
from sim.model import database, server
from sim.model.server import QueueOverflowError
from tests.builders import exponential, queue_scenario

SMALL_BOUND = 5_000


@pytest.fixture
def small_bound(monkeypatch):
    monkeypatch.setattr(server, "MAX_QUEUE", SMALL_BOUND)
    monkeypatch.setattr(database, "MAX_QUEUE", SMALL_BOUND)


def overloaded(queue_capacity=None):
    """Twice the work one server can do: its queue grows by about 50 attempts a second."""
    return queue_scenario(
        arrival_rate=100, service=exponential(0.02), queue_capacity=queue_capacity, duration=600
    )


def test_a_queue_without_a_bound_stops_the_run_when_it_passes_the_limit(small_bound):
    with pytest.raises(QueueOverflowError) as raised:
        run(overloaded())
    message = str(raised.value)
    assert "the queue of web-1 passed 5,000 waiting" in message
    assert "queue_capacity" in message
    # 5,000 attempts at a net 50 a second: about 100 s of simulated time.
    assert 80 < raised.value.now < 120


def test_a_bounded_queue_rejects_the_overflow_and_runs_to_the_end(small_bound):
    requests = run(overloaded(queue_capacity=SMALL_BOUND)).summary["requests"]
    # Half the arrivals find the queue full once it has filled, after about 100 s of 600.
    assert requests["ok"] > 0
    assert 0.3 < requests["rejected"] / requests["arrived"] < 0.5


def waiting_writes_scenario():
    """The only database node dies for good and writes wait for a master that never comes."""
    return parse_scenario(
        {
            "duration": 3600,
            "workload": {
                "arrivals": {"rate": 50},
                "classes": [
                    {
                        "name": "checkout",
                        "share": 1,
                        "kind": "write",
                        "service_time": exponential(0.01),
                        "timeout": 2,
                        "database": {"writes": 1},
                    }
                ],
            },
            # Each waiting write holds a web worker: enough of them to pass the bound.
            "servers": [{"name": "web", "count": 1, "workers": 2 * SMALL_BOUND}],
            "database": {"replication": {"replicas": 0, "writes_during_failover": "wait"}},
            "failures": [{"kind": "crash", "target": {"server": "db-0-1"}, "at": 10}],
        }
    )


def test_writes_waiting_for_a_master_that_never_comes_stop_the_run(small_bound):
    with pytest.raises(QueueOverflowError) as raised:
        run(waiting_writes_scenario())
    assert "the writes waiting for a master of shard 0 passed 5,000" in str(raised.value)
    assert "writes_during_failover: fail" in str(raised.value)


def peak_bytes(duration: float) -> int:
    scenario = queue_scenario(
        arrival_rate=400,
        service=exponential(0.01),
        servers=4,
        workers=2,
        timeout=1.0,
        duration=duration,
        step=duration / 10,  # as many time-series rows either way
    )
    gc.collect()
    tracemalloc.start()
    try:
        run(scenario)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_does_not_grow_with_the_simulated_requests():
    short, long = peak_bytes(40), peak_bytes(400)  # 16,000 and 160,000 requests
    # Measured: 0.94 MB and 0.70 MB (the first run also fills caches). A model that kept a
    # two-field tuple per attempt (about 64 bytes) held 9.1 MB more in the long run when tried;
    # the allowance, 2 MB, covers sketch buckets that fill in the tails.
    assert long - short < 2_000_000, (short, long)


def peak_bytes_over_years(years: float) -> int:
    from test_cli import ROOT

    from sim import load_scenario
    from sim.reliability import simulate_years

    scenario = load_scenario(ROOT / "scenarios" / "four_nines.yaml")
    gc.collect()
    tracemalloc.start()
    try:
        simulate_years(scenario, years, seed=1, replication=0, markov={})
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_does_not_grow_with_the_simulated_years():
    """The long-horizon mode tallies incidents as they end: 30 years or 300 (about 2,200 and
    22,000 incidents) peak at 1.1 MB and 0.3 MB, measured (the first run also fills caches).
    The mode once kept every incident: 3.1 MB then 21.2 MB; the allowance is 2 MB."""
    short, long = peak_bytes_over_years(30), peak_bytes_over_years(300)
    assert long - short < 2_000_000, (short, long)


YEAR_S = 365.25 * 86_400
EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "scenarios").glob("*.yaml"))


def cyclic_garbage_while_running(path: Path, requests: bool, until_s: float) -> int:
    """Objects the cyclic collector finds after the model ran from ``until_s / 2`` to
    ``until_s`` with the collector off, the model itself still alive (so only what the run
    threw away counts)."""
    from sim import load_scenario
    from sim.model.cluster import Cluster
    from sim.streams import Streams

    cluster = Cluster.build(load_scenario(path), Streams(3, 0), requests=requests)
    cluster.start()
    cluster.run(until_s / 2)  # one-time structures (lazy keys, first plans) are built by now
    gc.collect()
    gc.disable()
    try:
        cluster.run(until_s)
        return gc.collect()
    finally:
        gc.enable()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_a_running_model_throws_away_no_reference_cycles(path):
    """What a request, an operation or a hedging round leaves behind is freed by refcounting
    the moment it ends. A reference cycle per request (a database operation that was its own
    ``request``; a hedging round and its attempts pointing at each other) left 5 to 8 objects
    per operation for the cyclic collector, whose passes then cost 15-25% of a run with a
    database. Measured: 0 objects in every example. The allowance (100) is for a library's
    one-off garbage; the cycles found left thousands in this window."""
    assert cyclic_garbage_while_running(path, requests=True, until_s=60.0) < 100


@pytest.mark.parametrize("name", ["trading_system", "four_nines"])
def test_the_long_horizon_mode_throws_away_no_reference_cycles(name):
    path = next(path for path in EXAMPLES if path.stem == name)
    assert cyclic_garbage_while_running(path, requests=False, until_s=4 * YEAR_S) < 100
