"""Balancing policies: the contract every policy keeps, each one's own rule, and how they rank."""

from __future__ import annotations

import numpy as np
import pytest
from builders import exponential, queue_scenario, replicate

from sim.analysis import mean_confidence_interval
from sim.metrics import NO_BACKEND
from sim.model.balancer import Balancer
from sim.model.balancing import BALANCING_POLICIES, Backend
from sim.model.request import Attempt, Request


def backends(weights=(1, 1, 1, 1)) -> list[Backend]:
    return [Backend(i, f"web-{i + 1}", weight) for i, weight in enumerate(weights)]


def build(kind: str, count: int, seed: int = 1):
    spec = BALANCING_POLICIES.get(kind).model_validate({"kind": kind})
    return spec.build(np.random.default_rng(seed), count)


ALL_POLICIES = BALANCING_POLICIES.names()


@pytest.mark.parametrize("kind", ALL_POLICIES)
def test_every_policy_picks_only_among_the_backends_it_is_given(kind):
    pool = backends((1, 2, 1, 3, 1))
    policy = build(kind, len(pool))
    healthy = [pool[0], pool[2], pool[3]]
    for turn in range(500):
        healthy[turn % 3].active = turn % 5
        chosen = policy.choose(healthy)
        assert chosen in healthy
        if policy.observes_latency:
            policy.observe(chosen, 0.01 * (1 + turn % 7))


@pytest.mark.parametrize("kind", ALL_POLICIES)
def test_every_policy_is_deterministic_for_a_seed(kind):
    def sequence() -> list[str]:
        pool = backends((1, 2, 3))
        policy = build(kind, len(pool), seed=42)
        names = []
        for turn in range(200):
            chosen = policy.choose(pool)
            chosen.active += 1
            if turn % 3 == 0:
                pool[turn % len(pool)].active = 0
            if policy.observes_latency:
                policy.observe(chosen, 0.001 * turn)
            names.append(chosen.name)
        return names

    assert sequence() == sequence()


@pytest.mark.parametrize("kind", ALL_POLICIES)
def test_with_no_healthy_backend_a_request_fails_at_once_as_no_backend(kind):
    answers = []
    pool = backends()
    balancer = Balancer(None, build(kind, len(pool)), pool, lambda a, o: answers.append(o))
    for backend in pool:
        balancer.mark_down(backend)
    balancer.dispatch(Attempt(Request(0, 0.0, 1.0), 0.0, float("inf")))
    assert answers == [NO_BACKEND]


def test_round_robin_cycles_in_declared_order_and_skips_a_backend_marked_down():
    pool = backends()
    policy = build("round_robin", 4)
    assert [policy.choose(pool).name for _ in range(5)] == [
        "web-1",
        "web-2",
        "web-3",
        "web-4",
        "web-1",
    ]
    up = [pool[0], pool[2], pool[3]]
    assert {policy.choose(up).name for _ in range(3)} == {"web-1", "web-3", "web-4"}


def test_smooth_weighted_round_robin_interleaves_like_nginx():
    pool = [Backend(0, "a", 5), Backend(1, "b", 1), Backend(2, "c", 1)]
    policy = build("weighted_round_robin", 3)
    assert "".join(policy.choose(pool).name for _ in range(14)) == "aabacaa" * 2


def test_least_connections_picks_the_fewest_active_relative_to_weight():
    pool = backends((1, 1, 4))
    pool[0].active, pool[1].active, pool[2].active = 3, 2, 6  # loads 3, 2, 1.5
    assert build("least_connections", 3).choose(pool).name == "web-3"


def test_power_of_two_choices_never_picks_the_busier_of_its_two_samples():
    pool = backends((1,) * 6)
    for index, backend in enumerate(pool):
        backend.active = index
    policy = build("power_of_two_choices", 6)
    picks = [policy.choose(pool).index for _ in range(3000)]
    # The busiest backend can never win a pair; the idlest wins every pair it is drawn in.
    assert 5 not in picks
    assert picks.count(0) / len(picks) == pytest.approx(1 / 3, abs=0.03)  # P(drawn) = 2/6


def test_least_response_time_prefers_the_backend_answering_faster():
    pool = backends((1, 1))
    policy = build("least_response_time", 2)
    for _ in range(20):
        policy.observe(pool[0], 0.200)
        policy.observe(pool[1], 0.020)
    assert [policy.choose(pool).name for _ in range(5)] == ["web-2"] * 5


def test_policies_rank_as_theory_says_under_equal_exponential_service():
    """8 single-worker servers at utilization 0.8, mean service 100 ms, 4 replications each.

    Random splitting makes 8 independent M/M/1 queues (mean response 0.5 s); round-robin
    regularizes each server's arrivals; least-connections approaches a shared M/M/8 queue; two
    random choices recover most of that gain. Every policy sees the same arrivals and service
    demands in replication i (common random numbers), so differences are paired; each must
    exclude zero at 99%.
    """
    means = {}
    for kind in ("random", "round_robin", "least_connections", "power_of_two_choices"):
        scenario = queue_scenario(
            arrival_rate=64,
            service=exponential(0.1),
            servers=8,
            policy=kind,
            duration=1050,
            warmup=50,
        )
        means[kind] = [s["latency_s"]["mean"] for s in replicate(scenario, replications=4)]

    def paired(better: str, worse: str) -> tuple[float, float]:
        differences = [w - b for b, w in zip(means[better], means[worse], strict=True)]
        return mean_confidence_interval(differences, 0.99)

    for better in ("round_robin", "least_connections", "power_of_two_choices"):
        gain, half_width = paired(better, "random")
        assert gain - half_width > 0, f"{better} is not better than random"
    gap_to_best, _ = paired("least_connections", "power_of_two_choices")
    gain_of_best, _ = paired("least_connections", "random")
    assert gap_to_best < 0.25 * gain_of_best, "two choices should recover 75% of the gain"
