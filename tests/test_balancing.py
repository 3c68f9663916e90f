"""Balancing policies: the contract every policy keeps, each one's own rule, and how they rank."""

from __future__ import annotations

import numpy as np
import pytest
import simpy
from builders import exponential, queue_scenario, replicate

from sim import parse_scenario
from sim.analysis import mean_confidence_interval
from sim.model.balancer import Balancer
from sim.model.balancing import BALANCING_POLICIES, Backend
from sim.model.cluster import Cluster
from sim.model.timing import advance
from sim.request import Attempt, Cause, Request
from sim.scenario import OutlierEjectionSpec
from sim.streams import Streams


def backends(weights=(1, 1, 1, 1)) -> list[Backend]:
    return [Backend(i, f"web-{i + 1}", weight) for i, weight in enumerate(weights)]


def build(kind: str, count: int, seed: int = 1):
    spec = BALANCING_POLICIES.get(kind).model_validate({"kind": kind})
    return spec.build(np.random.default_rng(seed), count, lambda: 0.0)


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
    balancer = Balancer(
        simpy.Environment(), build(kind, len(pool)), pool, lambda a, o: answers.append(o)
    )
    for backend in pool:
        balancer.mark_down(backend)
    balancer.dispatch(Attempt(Request(0, 0.0, 1.0), 0.0, float("inf")))
    assert answers == [Cause.NO_BACKEND]


def rotation_scenario():
    """Every way a backend enters or leaves the rotation: detection of crashes and repairs,
    outlier ejection, hot spares promoted and retired, a rolling deploy's drains, and an
    autoscaled group that launches and retires servers as the load steps up and down."""
    return parse_scenario(
        {
            "duration": 900,
            "workload": {
                "arrivals": {
                    "rate": 60,
                    "profile": [{"at": 300, "rate": 200}, {"at": 600, "rate": 40}],
                },
                "classes": [
                    {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.05}}
                ],
            },
            "balancer": {
                "detection": {"kind": "health_check", "interval": 1.0},
                "outlier_ejection": {"consecutive_errors": 3, "ejection_time": 5},
            },
            "servers": [
                {
                    "name": "web",
                    "count": 4,
                    "workers": 2,
                    "standby": {"count": 1, "mode": "hot", "promotion_delay": 5},
                },
                {
                    "name": "auto",
                    "count": 2,
                    "workers": 2,
                    "autoscaling": {
                        "target": 0.5,
                        "min": 2,
                        "max": 6,
                        "evaluation_period": 30,
                        "scale_out_cooldown": 30,
                        "scale_in_cooldown": 60,
                        "provisioning_delay": 20,
                        "drain_timeout": 5,
                    },
                },
            ],
            "failures": [
                {
                    "kind": "crash_repair",
                    "target": {"group": "web"},
                    "time_to_failure": {"kind": "exponential", "mean": 120},
                    "time_to_repair": {"kind": "exponential", "mean": 20},
                }
            ],
            "maintenance": [
                {
                    "target": {"group": "web"},
                    "at": 100,
                    "batch": 1,
                    "drain_timeout": 5,
                    "deploy_time": 30,
                }
            ],
        }
    )


def test_the_rotation_is_always_the_routable_backends_in_declared_order():
    """The balancer updates its rotation by the one backend that changed: after every event it
    must equal the routable backends in declared order, whatever moved them."""
    scenario = rotation_scenario()
    cluster = Cluster.build(scenario, Streams(1))
    cluster.start()
    balancer, env = cluster.balancer, cluster.env
    reasons = set()
    cluster.monitor.log = lambda component, event, detail="": reasons.add(detail.split(" (")[0])
    seen = None
    while env.peek() < scenario.duration:
        env.step()
        if balancer.up is not seen:
            seen = balancer.up
            assert seen == [b for b in balancer.backends if b.routable], f"at {env.now:.3f} s"
    assert {"detected up", "ejected", "promoted", "retired", "draining"} <= reasons


def test_the_serving_count_is_always_that_of_the_routing_list():
    """The balancer counts its routed backends that serve only when the routing list or a
    server's truth changed: after every event the count must equal a scan, through crashes,
    a partition, a zone outage, promotions and panic routing."""
    spec = rotation_scenario().to_dict()
    spec["balancer"]["panic_threshold"] = 0.5
    spec["servers"][0]["zone"] = "zone-a"
    spec["failures"] += [
        {"kind": "partition", "target": {"server": "web-2"}, "at": 200, "duration": 60},
        {"kind": "zone_outage", "zone": "zone-a", "at": 400, "duration": 60},
    ]
    scenario = parse_scenario(spec)
    cluster = Cluster.build(scenario, Streams(1))
    cluster.start()
    balancer, env = cluster.balancer, cluster.env
    counts, panics = set(), set()
    while env.peek() < scenario.duration:
        env.step()
        scanned = len([b for b in balancer.routing if b.server.serving])
        assert balancer.serving_count() == scanned, f"at {env.now:.3f} s"
        counts.add(scanned)
        panics.add(balancer.panicking)
    assert panics == {False, True}
    assert len(counts) >= 4


def test_a_backend_held_down_while_in_rotation_leaves_it_at_once():
    pool = backends()
    balancer = Balancer(simpy.Environment(), build("round_robin", 4), pool, lambda a, o: None)
    balancer.hold_down(pool[1])
    assert balancer.up == [pool[0], pool[2], pool[3]]
    assert balancer.routing == balancer.up


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


@pytest.mark.slow
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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_least_response_time_ages_an_estimate_toward_zero_while_no_answer_comes():
    """Decay time 10 s: an estimate of 320 ms unrefreshed for 10 s reads 320/e ms, and an
    answer of 40 ms then moves it a fifth (smoothing 0.2) of the way from there."""
    pool, clock = backends((1,)), Clock()
    spec = BALANCING_POLICIES.get("least_response_time")(decay_time=10, smoothing=0.2)
    policy = spec.build(np.random.default_rng(1), 1, clock)
    policy.observe(pool[0], 0.320)
    clock.now = 10.0
    assert policy.estimate(pool[0], clock.now) == pytest.approx(0.320 / np.e)
    policy.observe(pool[0], 0.040)
    aged = 0.320 / np.e
    assert policy.estimate(pool[0], clock.now) == pytest.approx(aged + 0.2 * (0.040 - aged))


def recovered_share(rate: float, policy: str, start: float, end: float) -> float:
    """The share of the work web-1 gets in [start, end]: 4 servers of 8 workers, 40 ms
    requests, web-1 eight times slower from 30 s to 90 s."""
    scenario = parse_scenario(
        {
            "duration": end,
            "workload": {
                "arrivals": {"rate": rate},
                "classes": [
                    {
                        "name": "r",
                        "share": 1,
                        "service_time": {"kind": "deterministic", "value": 0.04},
                    }
                ],
            },
            "balancer": {"policy": policy},
            "servers": [{"name": "web", "count": 4, "workers": 8}],
            "failures": [
                {
                    "kind": "slowdown",
                    "target": {"server": "web-1"},
                    "at": 30,
                    "duration": 60,
                    "factor": 8,
                }
            ],
        }
    )
    cluster = Cluster.build(scenario, Streams(1))
    cluster.start()
    advance(cluster.env, start)
    before = [sum(server.accepted) for server in cluster.servers]
    advance(cluster.env, end)
    work = [
        sum(server.accepted) - then for server, then in zip(cluster.servers, before, strict=True)
    ]
    return work[0] / sum(work)


@pytest.mark.parametrize("rate", [100, 200])
def test_least_response_time_gives_a_recovered_server_its_share_again_within_seconds(rate):
    """Once web-1 is back to speed at 90 s, it gets about a quarter of the work from 100 s on
    (the old policy, which never aged its estimate, gave it nothing until 120 s and 15% after).
    Balanced work is 25%; 2,000 or more requests per window put 20% and 30% several standard
    deviations away."""
    assert 0.2 <= recovered_share(rate, "least_response_time", 100, 120) <= 0.3
    assert 0.2 <= recovered_share(rate, "least_response_time", 120, 300) <= 0.3


def test_outlier_ejection_grows_for_repeat_offenders_and_forgives_with_time():
    """Ejection time 30 s times the multiplier, at most 100 s; the multiplier loses one per
    10 s interval spent back in the pool."""
    env = simpy.Environment()
    pool = backends((1, 1))
    spec = OutlierEjectionSpec(
        consecutive_errors=1, ejection_time=30, max_ejection_time=100, interval=10
    )
    balancer = Balancer(
        env, build("round_robin", 2), pool, lambda a, o: None, outlier_ejection=spec
    )
    ejections = []

    def fail_at(moment: float) -> None:
        def fail(_):
            attempt = Attempt(Request(0, env.now, 1.0), env.now, float("inf"))
            attempt.backend = pool[0]
            pool[0].active += 1
            balancer.on_response(attempt, Cause.SERVER_CRASH)

        env.timeout(moment - env.now).callbacks.append(fail)

    def changed(backend):
        if backend.ejected:
            ejections.append(env.now)
        else:
            ejections[-1] = env.now - ejections[-1]

    balancer.listeners.append(changed)
    for moment in (0, 35, 95, 185, 1285):
        fail_at(moment)
        env.run(until=moment + 0.5)
    env.run(until=2000)
    # 35 s is 5 s after the first ejection ended: nothing forgiven. 95 and 185 come right at
    # the end of the previous one. 1,285 s is 1,000 s (100 intervals) later: all forgiven.
    assert ejections == [30, 60, 90, 100, 30]
