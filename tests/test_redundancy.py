"""Redundant balancers: VRRP takeover after the master-down interval, preemption, and the cost.

An active/passive pair with advertisements every second: the backup (priority 240) takes over
3 x 1 s + 16/256 s after the last advertisement it heard, which went out at a uniform phase
before the master died; so the address is lost for 2.0625 s to 3.0625 s.
"""

from __future__ import annotations

import pytest

from sim import parse_scenario, run
from sim.scenario import BALANCER_REDUNDANCY

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
    """The contract of a redundancy kind: the service survives one instance's death within
    its declared takeover delay, and is whole again once the instance is back."""
    spec = {"kind": kind}
    scenario = parse_scenario(shop([ACTIVE_DIES], spec))
    redundancy = scenario.balancer.redundancy
    bound = max(redundancy.takeover_delay(_Highest(), index) for index in range(1, 2))
    summary = run(scenario).summary
    assert summary["availability"]["downtime_s"] <= bound + 1e-9
    assert summary["requests"]["ok"] > 0.99 * summary["requests"]["ended"]


class _Highest:
    """A generator stand-in that draws the longest delay a law allows (the lowest phase)."""

    def uniform(self, low, high):
        return low
