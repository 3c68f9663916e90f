"""The data tier learns of its nodes' deaths as the balancer does: from real detectors
(heartbeats, health checks, phi-accrual), so a slow, paused or cut-off node behaves as it
would, and so do the failovers that follow."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from test_database import data_scenario

from sim import run


def master_failover_times(detection: dict, seeds: range, shards: int = 25) -> list[float]:
    """Every shard's master crashes at 20 s (its detector at its own phase): the failover
    times (crash to promotion), promotion delay 1 s."""
    times = []
    for seed in seeds:
        scenario = data_scenario(
            {"mode": "async", "replicas": 1, "promotion_delay": 1},
            [
                {"kind": "crash", "target": {"server": f"db-{shard}-1"}, "at": 20}
                for shard in range(shards)
            ],
            rate=1,
            duration=60,
            shards=shards,
            seed=seed,
            detection=detection,
        )
        events = run(scenario).events
        times += list(events[events.event == "promoted to master"].time_s - 20.0)
    return times


def test_a_crashed_master_is_detected_after_the_heartbeat_law_then_promoted():
    """Heartbeats every 0.5 s, two misses: a crash at a uniform phase is noticed after a delay
    uniform on [0.5 s, 1 s] (the detector's law), then the 1 s promotion: failover times
    uniform on [1.5 s, 2 s]. 100 failovers, a one-sample KS test at the 0.1% level."""
    times = master_failover_times({"kind": "heartbeat", "interval": 0.5, "misses": 2}, range(4))
    assert len(times) == 100
    assert min(times) >= 1.5 - 1e-9 and max(times) <= 2.0 + 1e-9
    assert stats.kstest(np.array(times), stats.uniform(1.5, 0.5).cdf).pvalue > 0.001


def test_a_health_checked_master_that_refuses_is_detected_after_fall_probes():
    """Health checks every 2 s, fall 3, a refused probe failing at once: detection after
    U(0, 2 s) + 4 s; with the 1 s promotion, failover times uniform on [5 s, 7 s]."""
    detection = {"kind": "health_check", "interval": 2, "fall": 3}
    times = master_failover_times(detection, range(4))
    assert stats.kstest(np.array(times), stats.uniform(5.0, 2.0).cdf).pvalue > 0.001


@pytest.mark.parametrize(
    "failure",
    [
        {
            "kind": "slowdown",
            "target": {"server": "db-0-1"},
            "at": 30,
            "duration": 60,
            "factor": 1000,
        },
        {"kind": "pause", "target": {"server": "db-0-1"}, "at": 30, "duration": 20},
    ],
    ids=["slow", "paused"],
)
def test_a_slow_or_paused_master_fails_its_checks_and_a_replica_takes_over(failure):
    """A master whose health probes take 5 ms x 1000 (past the 1 s timeout), or that is
    frozen for 20 s, is alive yet fails three probes in a row: the failover manager suspects
    it falsely, and promotes a replica, as it would in production."""
    scenario = data_scenario(
        {"mode": "semi_sync", "replicas": 2, "promotion_delay": 2},
        [failure],
        rate=20,
        duration=120,
        detection={"kind": "health_check", "interval": 2, "timeout": 1, "fall": 3},
    )
    result = run(scenario)
    summary = result.summary
    assert summary["incidents"]["false_suspicions"] >= 1
    assert summary["data"]["failovers"] == 1
    promoted = result.events[result.events.event == "promoted to master"]
    assert list(promoted.component) != ["db-0-1"] and 36 <= promoted.time_s.iloc[0] <= 40
