"""Partial partitions and fencing: the failover manager loses a master that its clients still
reach, a replica is promoted, and what keeps two masters from taking writes at once."""

from __future__ import annotations

import pytest
from test_database import data_scenario

from sim import run

WRITES_PER_S = 50.0
CUT_AT, HEALED_AT = 30.0, 90.0


def manager_cut_off(fencing: dict | str) -> dict:
    """One shard of three nodes, async, heartbeats every second with three misses, a 5 s
    promotion; from 30 s to 90 s the failover manager and the master cannot talk (clients
    and replicas still reach the master)."""
    result = run(
        data_scenario(
            {"mode": "async", "replicas": 2, "promotion_delay": 5, "fencing": fencing},
            [
                {
                    "kind": "partition",
                    "target": {"server": "db-0-1"},
                    "peer": "failover_manager",
                    "at": CUT_AT,
                    "duration": HEALED_AT - CUT_AT,
                }
            ],
            rate=WRITES_PER_S,
            duration=150,
            detection={"kind": "heartbeat", "interval": 1, "misses": 3},
        )
    )
    return result


def promoted_at(result) -> float:
    events = result.events
    return events[events.event == "promoted to master"].time_s.iloc[0]


def test_without_fencing_two_masters_take_writes_until_the_partition_heals():
    """Promotion comes 2-3 s (detection) + 5 s after the cut; from then until the heal the
    shard's address answers from both masters, which take the writes in turn: half of the
    w (T_heal - T_promotion) writes go to the old one, a binomial count held to 4 standard
    deviations. Each is thrown away when the old master is demoted at the heal."""
    result = manager_cut_off("none")
    data = result.summary["data"]
    promotion = promoted_at(result)
    assert CUT_AT + 7 <= promotion <= CUT_AT + 8
    split = HEALED_AT - promotion
    assert data["split_brain_s"] == pytest.approx(split)
    expected = WRITES_PER_S * split / 2
    assert abs(data["split_brain_writes"] - expected) < 4 * (WRITES_PER_S * split / 4) ** 0.5
    assert data["lost_writes"] >= data["split_brain_writes"]
    demoted = result.events[result.events.event == "demoted to replica"]
    assert list(demoted.time_s) == [HEALED_AT]


@pytest.mark.parametrize("fencing", ["stonith", {"kind": "lease", "lease_time": 10}])
def test_with_fencing_there_is_never_a_second_master(fencing):
    result = manager_cut_off(fencing)
    data = result.summary["data"]
    assert data["split_brain_writes"] == 0 and data["split_brain_s"] == 0
    assert data["failovers"] == 1
    if fencing == "stonith":
        fenced = result.events[result.events.event == "fenced: powered off (STONITH)"]
        assert list(fenced.component) == ["db-0-1"]
    else:  # the promotion waits for the old master's lease: 10 s after it lost contact
        assert promoted_at(result) == pytest.approx(CUT_AT + 10)


@pytest.mark.parametrize(
    ("direction", "suspected"), [("from_target", True), ("to_target", False), ("both", True)]
)
def test_heartbeats_go_one_way_so_only_that_way_matters(direction, suspected):
    """The master's heartbeats travel from it to the manager: cutting that way alone makes the
    manager suspect it, cutting the other way alone does not."""
    result = run(
        data_scenario(
            {"mode": "async", "replicas": 1, "promotion_delay": 5, "fencing": "stonith"},
            [
                {
                    "kind": "partition",
                    "target": {"server": "db-0-1"},
                    "peer": "failover_manager",
                    "direction": direction,
                    "at": 30,
                    "duration": 20,
                }
            ],
            rate=10,
            duration=80,
            detection={"kind": "heartbeat", "interval": 1, "misses": 3},
        )
    )
    assert (result.summary["incidents"]["false_suspicions"] == 1) == suspected
    assert (result.summary["data"]["failovers"] == 1) == suspected


def test_a_replica_cut_off_from_its_master_lacks_what_it_missed_when_promoted():
    """The only replica is cut off from the master from 30 s; the master dies at 70 s and the
    replica is promoted: every write of those 40 s is lost, w x 40 s, a Poisson count held to
    4 standard deviations (plus the last apply delay's few)."""
    result = run(
        data_scenario(
            {"mode": "async", "replicas": 1, "promotion_delay": 2},
            [
                {
                    "kind": "partition",
                    "target": {"server": "db-0-2"},
                    "peer": {"server": "db-0-1"},
                    "at": 30,
                    "duration": 100,
                },
                {"kind": "crash", "target": {"server": "db-0-1"}, "at": 70},
            ],
            rate=WRITES_PER_S,
            duration=100,
            detection={"kind": "heartbeat", "interval": 1, "misses": 3},
        )
    )
    expected = WRITES_PER_S * 40
    assert abs(result.summary["data"]["lost_writes"] - expected) < 4 * expected**0.5 + 5
