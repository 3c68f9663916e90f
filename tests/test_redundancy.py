"""Redundant balancers: VRRP takeover after the master-down interval, preemption, and the cost.

An active/passive pair with advertisements every second: the backup (priority 240) takes over
3 x 1 s + 16/256 s after the last advertisement it heard, which went out at a uniform phase
before the master died; so the address is lost for 2.0625 s to 3.0625 s.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim import parse_scenario, run
from sim.reliability import estimate_availability, markov_availability
from sim.scenario import BALANCER_REDUNDANCY
from sim.theory import dns_balancer_reach

INTERVAL_S = 1.0
BACKUP_MASTER_DOWN_S = 3 * INTERVAL_S + (256 - 240) / 256 * INTERVAL_S


def shop(failures: list, redundancy: dict | None = None) -> dict:
    balancer: dict = {"detection": {"kind": "health_check", "interval": 1.0}}
    if redundancy is not None:
        balancer["redundancy"] = redundancy
    return {
        "name": "pair",
        "duration": 600,
        "workload": {
            "arrivals": {"rate": 50},
            "classes": [
                {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.01}}
            ],
        },
        "balancer": balancer,
        "servers": [{"name": "web", "count": 2}],
        "failures": failures,
    }


PAIR = {"kind": "active_passive", "advertisement_interval": INTERVAL_S}
ACTIVE_DIES = {"kind": "crash", "target": "balancer", "at": 100, "duration": 200}


def test_the_backup_takes_over_after_its_master_down_interval_and_the_master_takes_it_back():
    result = run(parse_scenario(shop([ACTIVE_DIES], PAIR)))
    summary = result.summary
    down_s = summary["availability"]["downtime_s"]
    assert BACKUP_MASTER_DOWN_S - INTERVAL_S <= down_s <= BACKUP_MASTER_DOWN_S
    assert summary["availability"]["downtime_by_cause_s"]["balancer"] == pytest.approx(down_s)
    events = result.events
    takeover = events[events.event == "took over the address"]
    assert list(takeover.component) == ["lb-2"]
    assert takeover.time_s.iloc[0] == pytest.approx(100 + down_s)
    # Preemption: lb-1, repaired at 300 s, listens for its own master-down interval, then
    # takes the address back without any downtime.
    back = events[events.event.str.startswith("took the address back")]
    assert list(back.component) == ["lb-1"]
    assert back.time_s.iloc[0] == pytest.approx(300 + 3 + 6 / 256)
    # Only requests that arrived while nobody held the address, or were in flight through
    # lb-1 when it died, failed: about 50/s over the gap.
    failed = summary["requests"]["error"]
    assert 0 < failed <= 50 * BACKUP_MASTER_DOWN_S * 2
    incident = result.incidents.iloc[0]
    assert incident.component == "lb-1"
    assert incident.failover_time_s == pytest.approx(down_s)


def test_without_preemption_the_backup_keeps_the_address():
    result = run(parse_scenario(shop([ACTIVE_DIES], {**PAIR, "preempt": False})))
    assert not result.events.event.str.startswith("took the address back").any()


def test_when_every_instance_is_dead_the_first_back_listens_a_whole_interval_before_it_leads():
    both_die = {
        "kind": "crash_repair",
        "target": "balancer",
        "time_to_failure": {"kind": "deterministic", "value": 100},
        "time_to_repair": {"kind": "deterministic", "value": 50},
    }
    # Each instance fails at 100, 250, 400 and 550 s and is back 50 s later. A single balancer
    # is back at once; the pair hears no advertisement and waits for lb-1's master-down
    # interval (the run ends at 600 s, during the fourth outage).
    single = run(parse_scenario(shop([both_die]))).summary["availability"]
    pair = run(parse_scenario(shop([both_die], PAIR))).summary["availability"]
    assert single["downtime_s"] == pytest.approx(4 * 50)
    lb1_master_down = 3 + 6 / 256
    assert pair["downtime_s"] == pytest.approx(3 * (50 + lb1_master_down) + 50)


def test_a_scheduled_crash_hits_the_instance_that_holds_the_address_then():
    first = {"kind": "crash", "target": "balancer", "at": 100, "duration": 50}
    second = {**first, "at": 120}
    result = run(parse_scenario(shop([first, second], {**PAIR, "preempt": False})))
    assert list(result.incidents.component) == ["lb-1", "lb-2"]
    # Down while lb-2 takes over from lb-1 (100 s), then from lb-2's death (120 s) until lb-1,
    # back at 150 s, has listened for its master-down interval.
    down_s = result.summary["availability"]["downtime_s"]
    second_gap = 150 + 3 + 6 / 256 - 120
    assert BACKUP_MASTER_DOWN_S - INTERVAL_S <= down_s - second_gap <= BACKUP_MASTER_DOWN_S


@pytest.mark.parametrize("kind", BALANCER_REDUNDANCY.names())
def test_every_redundancy_kind_keeps_the_address_through_the_death_of_one_instance(kind):
    """The contract of a redundancy kind: the service survives one instance's death, losing
    at most the traffic its spec declares, and is whole again once the instance is back."""
    spec = {"kind": kind}
    scenario = parse_scenario(shop([ACTIVE_DIES], spec))
    bound = scenario.balancer.redundancy.longest_loss_s()
    assert 0 < bound < 200
    result = run(scenario)
    summary = result.summary
    assert 0 < summary["availability"]["downtime_s"] <= bound + 1e-9
    # Requests arrive at 50/s: at most the Poisson count of the lost seconds fails (5 sigma).
    lost = 50 * bound
    assert summary["requests"]["error"] <= lost + 5 * lost**0.5
    service = result.events[result.events.component == "service"]
    assert list(service.event) == ["down", "up"]


DNS = {"kind": "dns", "count": 2, "ttl": 60, "health_check_interval": 10, "resolvers": 10}


def test_behind_dns_a_dead_instance_fails_its_share_until_withdrawn_and_every_cache_expired():
    """Two instances share the traffic. lb-1 dies at 100 s: half the requests fail until the
    health checks withdraw it, 20 s to 30 s later (three failed probes 10 s apart, the first
    at a uniform phase), then less and less as the resolvers' caches expire (within 60 s)."""
    result = run(parse_scenario(shop([ACTIVE_DIES], DNS)))
    events = result.events
    withdrawn = events[events.event == "withdrawn from DNS"].time_s.iloc[0]
    assert 120 <= withdrawn <= 130
    back = events[events.event == "back in DNS"].time_s.iloc[0]
    assert 320 <= back <= 330  # repaired at 300 s, three good probes
    down_s = result.summary["availability"]["downtime_s"]
    assert (withdrawn - 100) / 2 < down_s < (withdrawn - 100 + 60) / 2
    # Requests see the same loss: 50/s over the lost seconds, within 4 Poisson sigmas.
    failed = result.summary["requests"]["error"]
    assert abs(failed - 50 * down_s) <= 4 * (50 * down_s) ** 0.5
    incident = result.incidents.iloc[0]
    assert incident.time_to_detect_s == pytest.approx(withdrawn - 100)
    assert withdrawn - 100 <= incident.failover_time_s <= withdrawn - 100 + 60


def first_order_lost_share(mttf: float, mttr: float, interval: float, k: int, ttl: float):
    """Renewal-reward, one instance at a time: a failure costs the instance's share for
    min(R, X), R the exponential repair and X = (k - 1) interval + U(0, interval) + U(0, ttl)
    (the verdict, then a resolver's cache expiry); E[min(R, X)] = (1 - E[exp(-X / MTTR)]) MTTR,
    the transforms of X's independent parts multiplying. Each instance carries 1/n of the
    traffic and there are n of them: the lost share is E[min(R, X)] / (MTTF + MTTR)."""

    def uniform(width: float) -> float:
        return 1.0 if width == 0 else -math.expm1(-width / mttr) / (width / mttr)

    transform = math.exp(-(k - 1) * interval / mttr) * uniform(interval) * uniform(ttl)
    return (1 - transform) * mttr / (mttf + mttr)


def test_the_dns_chain_reduces_to_the_renewal_reward_value_when_outages_do_not_overlap():
    """Failures every 1,000 hours, repairs in 15 minutes: two outages overlap a 4,000th of
    the time, and the chain's lost share is the first-order one within 1% (the Erlang stages
    of the verdict and the cache expiry, and the overlaps, leave less)."""
    for count in (2, 4):
        reach = dns_balancer_reach(count, 1000 * 3600, 900, 30, 3, 300)
        expected = first_order_lost_share(1000 * 3600, 900, 30, 3, 300)
        assert 1 - reach == pytest.approx(expected, rel=0.01)
    # Every instance dead at once: nothing is reached, as with one instance failing alone.
    single = dns_balancer_reach(1, 3600, 3600, 30, 3, 0)
    assert single == pytest.approx(0.5, rel=1e-3)


def test_behind_dns_the_lost_share_over_years_agrees_with_the_chain():
    """Each instance fails every 100 h (exponential) and is repaired in 15 min (exponential):
    40 years in 10 replications against :func:`sim.theory.dns_balancer_reach` inside the 95%
    interval widened by 1% of the unavailability (the stages' error)."""
    failure = {
        "kind": "crash_repair",
        "target": "balancer",
        "time_to_failure": {"kind": "exponential", "mean": "100h"},
        "time_to_repair": {"kind": "exponential", "mean": "15min"},
    }
    spec = {**DNS, "ttl": 300, "health_check_interval": 30, "resolvers": 4}
    scenario = parse_scenario(shop([failure], spec))
    reach = dns_balancer_reach(2, 100 * 3600, 900, 30, 3, 300)
    assert markov_availability(scenario)["value"] == pytest.approx(reach)
    estimate = estimate_availability(scenario, years=40, replications=10)["availability"]
    assert abs(estimate["value"] - reach) <= estimate["half_width"] + 0.01 * (1 - reach)


@pytest.mark.slow
def test_behind_dns_overlapping_outages_cost_what_the_chain_says():
    """Instances failing monthly and repaired in 4 hours (exponential): both are down at once
    about 16 minutes a year, when everything is lost, which a first-order value (21 minutes a
    year in all, against 37 simulated) leaves out. 1,000 years in 10 replications; the chain
    within the 99.9% interval."""
    failure = {
        "kind": "crash_repair",
        "target": "balancer",
        "time_to_failure": {"kind": "exponential", "mean": "30d"},
        "time_to_repair": {"kind": "exponential", "mean": "4h"},
    }
    scenario = parse_scenario(shop([failure], DNS))
    chain = markov_availability(scenario)["value"]
    estimate = estimate_availability(scenario, years=1000, replications=10, confidence=0.999)
    value = estimate["availability"]
    assert abs(value["value"] - chain) <= value["half_width"]
    first_order = 1 - first_order_lost_share(30 * 86400, 4 * 3600, 10, 3, 60)
    assert abs(value["value"] - first_order) > value["half_width"]


def test_the_takeover_delay_has_the_moments_the_chain_uses():
    """The first backup takes over 3 intervals plus its skew after the master's last
    advertisement, which went out U x interval before the death: its master-down interval
    less a uniform, mean that less interval / 2, variance interval^2 / 12 (RFC 5798 6.1). Over
    20,000 draws of the law the long-horizon mode samples: the mean within 4 standard errors,
    the variance within 4 standard deviations of a uniform's sample variance,
    sigma^2 sqrt(0.8 / n)."""
    spec = BALANCER_REDUNDANCY.get("active_passive").model_validate(
        {"kind": "active_passive", "advertisement_interval": 2.0}
    )
    mean, variance = spec.takeover_moments(1)
    assert mean == pytest.approx(3 * 2.0 + (256 - 240) / 256 * 2.0 - 1.0, rel=1e-12)
    assert variance == pytest.approx(4.0 / 12, rel=1e-12)
    rng = np.random.default_rng(3)
    draws = np.array([spec.takeover_delay(rng, 1) for _ in range(20_000)])
    n = len(draws)
    assert abs(draws.mean() - mean) <= 4 * math.sqrt(variance / n)
    assert abs(draws.var() - variance) <= 4 * variance * math.sqrt(0.8 / n)
