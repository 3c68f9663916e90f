"""Load shedding and priorities: a token bucket passes its rate and never more than its burst
allows, limits keep a reserve for the highest priority, a priority queue gives Cobham's waits,
and shedding policies bound the time an attempt can wait before it is served."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from sim import parse_scenario, run
from sim.model.admission import Admission, priority_shares
from sim.request import Cause
from sim.scenario import QUEUE_SHEDDING, AdmissionSpec


def shop(rate: float, duration: float, classes: list[dict], group: dict, **balancer) -> dict:
    return {
        "name": "shedding",
        "duration": duration,
        "seed": 5,
        "workload": {"arrivals": {"rate": rate}, "classes": classes},
        "balancer": balancer,
        "servers": [{"name": "web", **group}],
        "metrics": {"step": 10},
    }


def page(name: str, share: float, priority: int = 0, mean: float = 0.1) -> dict:
    return {
        "name": name,
        "share": share,
        "priority": priority,
        "service_time": {"kind": "exponential", "mean": mean},
    }


def test_a_token_bucket_passes_its_rate_in_the_long_run():
    """Poisson arrivals at 200/s into a bucket of 100/s, burst 20, for 200 s: the bucket is
    empty nearly all the time, so about 100 x 200 + 20 (the full bucket at the start) pass,
    within 4 sd of the Poisson count of the tokens' wasted moments (4 x sqrt(20,000) ~ 570)."""
    scenario = shop(
        200,
        200,
        [page("api", 1, mean=0.001)],
        {"count": 4, "workers": 4},
        admission={"rate_limit": {"rate": 100, "burst": 20}},
    )
    summary = run(parse_scenario(scenario)).summary
    requests = summary["requests"]
    passed = requests["ended"] - requests["shed"]
    assert passed == pytest.approx(100 * 200 + 20, abs=4 * math.sqrt(20_000))
    assert requests["shed"] == requests["shed_by_cause"]["rate_limited"]
    assert summary["attempts"] == requests["ended"]  # nothing retried


def test_a_token_bucket_never_passes_more_than_its_burst_plus_rate_times_the_window():
    """Over every window [t_i, t_j] between two admitted attempts, at most burst + rate x
    (t_j - t_i) attempts passed: bursty arrivals (200/s for 5 s, silence for 5 s) probe the
    bucket full and empty."""
    env = simpy.Environment()
    rate, burst = 50.0, 10
    gate = Admission(env, AdmissionSpec(rate_limit={"rate": rate, "burst": burst}), [0])
    rng = np.random.default_rng(8)
    admitted: list[float] = []

    def arrivals():
        while env.now < 60:
            yield env.timeout(rng.exponential(1 / 200))
            if int(env.now / 5) % 2 == 0 and gate.admit(0) is None:
                gate.in_flight -= 1  # answered at once
                admitted.append(env.now)

    env.process(arrivals())
    env.run()
    times = np.array(admitted)
    assert len(times) > 1000
    for i in range(len(times)):
        counts = np.arange(1, len(times) - i + 1)
        assert np.all(counts <= burst + rate * (times[i:] - times[i]) + 1e-9)


def test_limits_keep_their_reserve_for_the_highest_priority():
    """With a 20% reserve the highest priority may use the whole limit, the lowest 80% of it,
    and a priority in between 90%."""
    assert priority_shares([5, 0, 2, 0], 0.2) == pytest.approx([1.0, 0.8, 0.9, 0.8])
    env = simpy.Environment()
    gate = Admission(env, AdmissionSpec(concurrency_limit=10, reserve=0.2), [1, 0])
    low = [gate.admit(1) for _ in range(9)]
    assert low == [None] * 8 + [Cause.CONCURRENCY_LIMITED]
    high = [gate.admit(0) for _ in range(3)]
    assert high == [None, None, Cause.CONCURRENCY_LIMITED]


def test_a_concurrency_limit_bounds_what_is_in_flight():
    """A limit of 12 in front of 4 servers of 8 workers at 150% load: no server ever holds
    more than the limit, so nothing queues beyond 12 in all, and the rest is shed at once."""
    scenario = shop(
        480,
        60,
        [page("api", 1, mean=0.1)],
        {"count": 4, "workers": 8, "queue_capacity": 100},
        admission={"concurrency_limit": 12},
    )
    summary = run(parse_scenario(scenario)).summary
    assert summary["groups"]["web"]["utilization"] <= 12 / 32 + 1e-9
    assert summary["requests"]["shed_by_cause"]["concurrency_limited"] > 0
    assert summary["requests"]["rejected"] == 0


def test_a_priority_queue_gives_cobhams_waits():
    """One server, exponential services of 100 ms, 8/s (rho 0.8), 30% of them of higher
    priority. Cobham's non-preemptive priority M/G/1 (1954): W_k = W0 / ((1 - s_{k-1})(1 -
    s_k)), W0 = sum lambda_i E[S_i^2] / 2 = 8 x 0.02 / 2 = 0.08 s, s the load of the classes
    of higher or equal priority: 0.105 s for the high class, 0.526 s for the low one. Over
    10,000 s four seeds scatter by 1.6% and 2.3% (sd; 1.1% and 1.6% over 20,000 s): 7% and
    11% are over 4 sd, and FIFO, which gives both classes 0.4 s, is far outside."""
    scenario = shop(
        8,
        10_000,
        [page("checkout", 0.3, priority=1), page("browse", 0.7)],
        {"count": 1, "queue_discipline": "priority"},
    )
    scenario["warmup"] = 200
    classes = run(parse_scenario(scenario)).summary["classes"]
    w0 = 8 * 2 * 0.1**2 / 2
    assert classes["checkout"]["wait_s"]["mean"] == pytest.approx(w0 / (1 - 0.24), rel=0.07)
    assert classes["browse"]["wait_s"]["mean"] == pytest.approx(
        w0 / ((1 - 0.24) * (1 - 0.8)), rel=0.11
    )


def test_priority_shedding_keeps_the_high_class_when_capacity_is_half_the_load():
    """Capacity for half the load (4 servers x 4 workers of 100 ms: 160/s, 320/s arriving):
    priority queues with a 1 s bound on the wait shed the low class and keep checkout (20% of
    the load: 40% of the capacity) at 99% ok or better."""
    scenario = shop(
        320,
        120,
        [page("checkout", 0.2, priority=1), page("browse", 0.8)],
        {
            "count": 4,
            "workers": 4,
            "queue_discipline": "priority",
            "shedding": {"kind": "max_delay", "limit": 1},
        },
    )
    scenario["warmup"] = 20
    classes = run(parse_scenario(scenario)).summary["classes"]
    assert classes["checkout"]["availability"]["request_based"] >= 0.99
    assert classes["browse"]["availability"]["request_based"] < 0.5


SHEDDING_EXAMPLES = {
    "max_delay": ({"kind": "max_delay", "limit": 0.25}, 0.25),
    "codel": ({"kind": "codel"}, 0.1),
}
"""Each registered queue shedding policy, with the longest wait it allows."""


def test_every_queue_shedding_policy_is_held_to_its_bound_here():
    assert set(SHEDDING_EXAMPLES) == set(QUEUE_SHEDDING.names())


@pytest.mark.parametrize("shedding, longest", SHEDDING_EXAMPLES.values(), ids=SHEDDING_EXAMPLES)
def test_no_attempt_is_served_after_waiting_longer_than_the_policy_allows(shedding, longest):
    """Under overload (120%), the attempts served waited at most the bound (CoDel's is its
    interval: target while the queue stands, interval after an empty moment): their 99.9th
    percentile does, within the histogram's 1.005% bucket error (without the policy it grows
    past 10 s), and what the policy dropped is shed, not rejected."""
    scenario = shop(96, 120, [page("api", 1)], {"count": 1, "workers": 8, "shedding": shedding})
    summary = run(parse_scenario(scenario)).summary
    assert summary["classes"]["api"]["wait_s"]["p99.9"] <= longest * 1.01005
    assert summary["requests"]["shed_by_cause"]["queue_delay"] > 0
    assert summary["requests"]["rejected"] == 0
