"""Indexed policies choose exactly as scanning the list would, step by step.

Least connections, smooth weighted round-robin and least response time keep an index over the
balancer's routing list. Each test drives a policy and a plain scan written here from the
documented rule, side by side, through random sequences of choices, requests ending, rotation
changes, weight changes and lists the policy was never told of, and asserts the same backend at
every step. The estimate of least response time (its aging arithmetic, unchanged by the index)
is read from the policy: what the index decides is only which backend wins.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim import parse_scenario
from sim.model.balancing import Backend, LeastConnections, LeastResponseTime, WeightedRoundRobin
from sim.model.balancing import weighted_round_robin as wrr_module
from sim.model.cluster import Cluster
from sim.model.timing import advance
from sim.streams import Streams


class ScanLeastConnections:
    """The fewest ``active / weight``; ties to the first in circular order from a start that
    moves one place along the list at each choice."""

    def __init__(self) -> None:
        self.turn = 0

    def choose(self, backends):
        start = self.turn % len(backends)
        self.turn = start + 1
        circular = [*backends[start:], *backends[:start]]
        return min(circular, key=lambda backend: backend.active / backend.weight)


class ScanSmoothWeightedRoundRobin:
    """nginx: add each weight to its backend's score, the highest score wins (the first in list
    order on a tie), and the winner loses the list's total weight (summed in list order)."""

    def __init__(self, backend_count: int) -> None:
        self.score = [0.0] * backend_count

    def choose(self, backends):
        total = 0.0
        for backend in backends:
            self.score[backend.index] += backend.weight
            total += backend.weight
        best = max(backends, key=lambda backend: self.score[backend.index])
        self.score[best.index] -= total
        return best


class ScanLeastResponseTime:
    """Score: aged estimate x (in flight + 1) / weight; never answered: 0 with nothing in
    flight, infinite otherwise. The smallest wins, ties as in least connections."""

    def __init__(self, policy: LeastResponseTime, clock) -> None:
        self.policy, self.clock, self.turn = policy, clock, 0

    def choose(self, backends):
        start = self.turn % len(backends)
        self.turn = start + 1
        now = self.clock()

        def score(backend):
            estimate = self.policy.estimate(backend, now)
            if estimate is None:
                return math.inf if backend.active else 0.0
            return estimate * (backend.active + 1) / backend.weight

        return min([*backends[start:], *backends[:start]], key=score)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(policy, reference, pool, rng, steps, weights, clock=None, advances=(), churn=1.0):
    """Random steps: choose on the routing list (the chosen backend gets a request), a request
    ends on a random busy backend, and, ``churn`` times as often as by default, the rotation
    changes, a weight changes (and the policy is told again), or a choice is made on a list the
    policy was never told of (slow start's steady backends, hot migration's other backends);
    the rest of the time, time passes. Every choice must agree; returns how many were checked."""
    routing = list(pool)
    policy.routing_changed(routing)
    checked = 0
    rotation, weight, other = np.cumsum([0.80, 0.05 * churn, 0.03 * churn, 0.07 * churn])[1:]

    def tell_load(backend):
        if policy.watches_load:
            policy.load_changed(backend)

    for _ in range(steps):
        draw = rng.random()
        if draw < 0.45:
            chosen = policy.choose(routing)
            assert chosen is reference.choose(routing), f"choice {checked}"
            checked += 1
            chosen.active += 1
            tell_load(chosen)
        elif draw < 0.80:
            busy = [backend for backend in pool if backend.active]
            if busy:
                backend = busy[rng.integers(len(busy))]
                backend.active -= 1
                tell_load(backend)
                if policy.observes_latency:
                    policy.observe(backend, float(rng.choice([0.01, 0.02, 0.05, 0.3])))
        elif draw < rotation:
            keep = rng.random(len(pool)) < rng.choice([0.3, 0.9, 1.0])
            routing = [backend for backend, kept in zip(pool, keep, strict=True) if kept]
            routing = routing or [pool[rng.integers(len(pool))]]
            policy.routing_changed(routing)
        elif draw < weight:
            pool[rng.integers(len(pool))].weight = weights[rng.integers(len(weights))]
            policy.routing_changed(routing)
        elif draw < other:
            others = [backend for backend in routing if rng.random() < 0.8] or routing[:1]
            assert policy.choose(others) is reference.choose(others), f"choice {checked}"
            checked += 1
        elif clock is not None:
            clock.now += float(rng.choice(advances))
    return checked


def pool_of(count, weights, rng):
    return [
        Backend(index, f"web-{index + 1}", weights[rng.integers(len(weights))])
        for index in range(count)
    ]


# Fractional weights make loads such as 3 / 0.1 = 30.000000000000004: float keys must match.
LEAST_CONNECTION_WEIGHTS = (1, 1, 1, 2, 3, 0.5, 0.1, 1.5)


RUNS = [
    (8, 6000, 1.0, 1),
    (8, 6000, 0.02, 1),
    (64, 3000, 1.0, 16),
    (512, 3000, 1.0, 16),
    (512, 2000, 0.02, 16),
]
"""(backends, steps, churn, index_from): a low churn lets an index live for thousands of steps;
``index_from`` 1 indexes even the shortest lists, 16 (the default) scans the shorter ones, and
with 64 backends the rotation crosses that length back and forth."""


@pytest.mark.parametrize(("count", "steps", "churn", "index_from"), RUNS)
def test_least_connections_chooses_as_the_scan_does(count, steps, churn, index_from):
    rng = np.random.default_rng(count)
    pool = pool_of(count, LEAST_CONNECTION_WEIGHTS, rng)
    policy, reference = LeastConnections(count), ScanLeastConnections()
    policy.index_from = index_from
    checked = drive(policy, reference, pool, rng, steps, LEAST_CONNECTION_WEIGHTS, churn=churn)
    assert checked > 0.4 * steps


@pytest.mark.parametrize(
    "weights",
    [(1,), (1, 2, 3, 5), (1, 2, 0.1, 0.2, 0.3, 0.7)],
    ids=["equal", "whole", "fractional"],
)
@pytest.mark.parametrize(("count", "steps", "churn", "index_from"), RUNS)
def test_smooth_weighted_round_robin_chooses_as_the_scan_does(
    count, steps, churn, index_from, weights
):
    """Whole weights use the index; a fractional weight makes the policy scan, and leaves
    fractional scores that keep it scanning lists of whole weights."""
    rng = np.random.default_rng(count + len(weights))
    pool = pool_of(count, weights, rng)
    policy, reference = WeightedRoundRobin(count), ScanSmoothWeightedRoundRobin(count)
    policy.index_from = index_from
    checked = drive(policy, reference, pool, rng, steps, weights, churn=churn)
    assert checked > 0.4 * steps


def test_smooth_weighted_round_robin_folds_its_index_back_and_refuses_far_scores(monkeypatch):
    """The limits that keep the index's numbers below 2^53, made small (offsets 100, scores
    200): over this run the index is folded back into plain scores and rebuilt about 1,200
    times, and refused a few times, and every choice must still be the scan's."""
    monkeypatch.setattr(wrr_module, "_MAX_RUNNING", 100.0)
    monkeypatch.setattr(wrr_module, "_MAX_INDEXED_SCORE", 200.0)
    weights = (1, 2, 3, 7)
    rng = np.random.default_rng(7)
    pool = pool_of(64, weights, rng)
    policy, reference = WeightedRoundRobin(64), ScanSmoothWeightedRoundRobin(64)
    policy.index_from = 1
    assert drive(policy, reference, pool, rng, 6000, weights, churn=0.1) > 2400


@pytest.mark.parametrize(("count", "steps", "churn", "index_from"), RUNS)
def test_least_response_time_chooses_as_the_scan_does(count, steps, churn, index_from):
    """Decay time 0.5 s; time jumps up to 600 s (1,200 decay times: estimates aged to scores
    below e^-600 and to zero, and the keys' epoch moved), responses of a few latencies at equal
    times (exact ties), and backends never answered."""
    rng = np.random.default_rng(count + 1)
    weights = (1, 1, 2, 0.5, 3)
    pool = pool_of(count, weights, rng)
    clock = Clock()
    policy = LeastResponseTime(count, smoothing=0.2, decay_time_s=0.5, clock=clock)
    policy.index_from = index_from
    advances = (0.0, 0.001, 0.01, 0.1, 1.0, 5.0, 300.0, 600.0)
    reference = ScanLeastResponseTime(policy, clock)
    checked = drive(policy, reference, pool, rng, steps, weights, clock, advances, churn)
    assert checked > 0.4 * steps


def test_least_response_time_with_every_score_infinite_takes_the_start_of_the_rotation():
    """Backends never answered, each with a request in flight, all score infinity: the scan
    keeps the first it looks at, and the start moves one place per choice."""
    pool = pool_of(3, (1,), np.random.default_rng(1))
    policy = LeastResponseTime(3, smoothing=0.2, decay_time_s=10, clock=lambda: 0.0)
    policy.index_from = 1
    policy.routing_changed(pool)
    for backend in pool:
        backend.active = 1
        policy.load_changed(backend)
    assert [policy.choose(pool).name for _ in range(4)] == ["web-1", "web-2", "web-3", "web-1"]


def test_least_response_time_scans_when_a_weight_is_out_of_the_index_range():
    rng = np.random.default_rng(3)
    weights = (1, 2, 1e-7)
    pool = pool_of(16, weights, rng)
    clock = Clock()
    policy = LeastResponseTime(16, smoothing=0.5, decay_time_s=10, clock=clock)
    policy.index_from = 1
    drive(policy, ScanLeastResponseTime(policy, clock), pool, rng, 2000, weights, clock, (0.01,))


def checked_choices(policy_kind: str, reference_of) -> int:
    """A cluster run with crashes and their detection, panic routing, hot migration, outlier
    ejection and slow start: every choice the balancer asks of the policy is compared with
    the scan's. A path of the balancer that changed ``active`` or the routing list without
    telling the policy would make them differ."""
    scenario = parse_scenario(
        {
            "duration": 120,
            "workload": {
                "arrivals": {"rate": 300},
                "classes": [
                    {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.02}}
                ],
            },
            "balancer": {
                "policy": policy_kind,
                "detection": {"kind": "health_check", "interval": 1.0},
                "panic_threshold": 0.7,
                "hot_migration": True,
                "slow_start": 5,
                "outlier_ejection": {"consecutive_errors": 3, "ejection_time": 5},
            },
            "servers": [
                {"name": "web", "count": 6, "workers": 2, "weight": 1},
                {"name": "big", "count": 2, "workers": 4, "weight": 2},
            ],
            "failures": [
                {"kind": "crash", "target": {"server": "web-1"}, "at": 10, "duration": 20},
                {"kind": "crash", "target": {"server": "web-2"}, "at": 15, "duration": 20},
                {"kind": "crash", "target": {"server": "web-3"}, "at": 20, "duration": 30},
                {"kind": "crash", "target": {"server": "big-1"}, "at": 60, "duration": 5},
            ],
        }
    )
    cluster = Cluster.build(scenario, Streams(1))
    policy = cluster.balancer.policy
    policy.index_from = 1  # 8 servers: index every list, however short
    policy.routing_changed(cluster.balancer.routing)
    reference = reference_of(policy, cluster)
    indexed_choose = policy.choose
    choices = []

    def compared(backends):
        chosen = indexed_choose(backends)
        assert chosen is reference.choose(backends), f"choice {len(choices)}"
        choices.append(chosen)
        return chosen

    cluster.balancer.slow_start._policy_choose = compared
    cluster.start()
    advance(cluster.env, scenario.duration)
    return len(choices)


@pytest.mark.parametrize(
    ("kind", "reference_of"),
    [
        ("least_connections", lambda policy, cluster: ScanLeastConnections()),
        (
            "weighted_round_robin",
            lambda policy, cluster: ScanSmoothWeightedRoundRobin(len(cluster.backends)),
        ),
        (
            "least_response_time",
            lambda policy, cluster: ScanLeastResponseTime(policy, lambda: cluster.env.now),
        ),
    ],
)
def test_the_balancer_keeps_the_index_current_on_every_path(kind, reference_of):
    assert checked_choices(kind, reference_of) > 30_000
