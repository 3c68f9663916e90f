"""Semi-synchronous replication as MySQL runs it: the ack timeout, the fallback to asynchronous
replication, the return once a replica has caught up, and the writes the fallback costs.

MySQL's behaviour (8.4 Reference Manual, 19.4.10): the source waits up to
``rpl_semi_sync_source_timeout`` (10 s) for a replica's acknowledgement, every commit taken
meanwhile waiting too; with none in time it reverts to asynchronous replication, and returns to
semi-sync when a replica catches up. One shard, a fixed apply delay D, Poisson writes at w per
second, web servers with workers enough that no request queues behind a stalled one. Commits are
recorded at the data tier's seam: when each write was taken by the master, when it was
acknowledged, and whether the master had fallen back.
"""

from __future__ import annotations

import math

import pytest

from sim import parse_scenario
from sim.model.cluster import Cluster
from sim.streams import Streams

APPLY_DELAY = 0.01
"""Seconds a write needs to reach a replica (fixed)."""


def scenario(replication: dict, failures: list, rate: float, duration: float, profile=()):
    return parse_scenario(
        {
            "seed": 7,
            "duration": duration,
            "warmup": 0,
            "metrics": {"step": 60},
            "workload": {
                "arrivals": {"rate": rate, "profile": list(profile)},
                "classes": [
                    {
                        "name": "order",
                        "share": 1,
                        "kind": "write",
                        "service_time": {"kind": "exponential", "mean": 0.001},
                        "database": {"writes": 1},
                    }
                ],
            },
            "servers": [{"name": "web", "count": 2, "workers": 1000}],
            "database": {
                "replication": {
                    "kind": "master_slave",
                    "apply_delay": APPLY_DELAY,
                    "promotion_delay": 1.0,
                    **replication,
                },
                "workers": 64,
                "read_time": {"kind": "exponential", "mean": 0.0005},
                "write_time": {"kind": "exponential", "mean": 0.0005},
                "detection": {"kind": "heartbeat", "interval": 0.5, "misses": 2},
            },
            "failures": failures,
        }
    )


def crash(server: str, at: float, duration: float) -> dict:
    return {"kind": "crash", "target": {"server": server}, "at": at, "duration": duration}


def run_recording(spec) -> tuple[dict, list[tuple[float, float, bool]]]:
    """The data summary, and every commit as (taken at, acknowledged at, async fallback)."""
    cluster = Cluster.build(spec, Streams(spec.seed))
    tier = cluster.data_tier
    commits: list[tuple[float, float, bool]] = []
    commit = tier._commit

    def recorded(operation, shard, arrivals, acked_at, async_fallback):
        commits.append((arrivals[operation.node], cluster.env.now, async_fallback))
        commit(operation, shard, arrivals, acked_at, async_fallback)

    tier._commit = recorded
    cluster.start()
    cluster.run(spec.duration)
    return tier.summary(spec.duration), commits


def test_the_only_replica_dead_writes_stall_ten_seconds_then_flow_async_and_a_crash_loses_them():
    """The replica dies at 60 s (back at 130 s); the master at 120 s. The first write the
    replica never acknowledges (taken at 60 s, or up to D before: in flight when it died) waits
    10 s; so does every write taken after it, and all commit at that instant; the master then
    acknowledges at once. When the replica, back, is promoted, every write since its death is
    lost: a Poisson count of mean w x 60 s (3,000 at w = 50/s), within 4 standard deviations
    (4 sqrt(3000) = 219), all of them acknowledged by the fallen-back master."""
    rate = 50.0
    data, commits = run_recording(
        scenario(
            {"mode": "semi_sync", "replicas": 1},
            [crash("db-0-2", 60, 70), crash("db-0-1", 120, 100)],
            rate,
            duration=135,  # the promoted replica has no replica: its first write would stall
        )
    )
    assert data["ack_timeouts"] == 1 and data["failovers"] == 1
    switch = min(acked for taken, acked, _ in commits if acked - taken > 1)
    stalled = [(taken, acked) for taken, acked, _ in commits if acked == switch > taken]
    assert stalled[0][0] == pytest.approx(switch - 10.0, abs=1e-9)  # the oldest waited 10 s
    assert 60 - APPLY_DELAY <= stalled[0][0] <= 60.5
    assert len(stalled) == data["stalled_writes"]
    # Every write taken from the oldest stalled one to the switch is released at the switch.
    oldest = stalled[0][0]
    assert [taken for taken, _ in stalled] == [t for t, _, _ in commits if oldest <= t < switch]
    assert data["write_stall_s"]["total"] == pytest.approx(sum(switch - t for t, _ in stalled))
    # Poisson writes are uniform over the 10 s stall: each waits U(0, 10), mean 5 s, and the
    # mean of n has standard deviation 10 / sqrt(12 n); within 4 of them.
    assert abs(data["write_stall_s"]["mean"] - 5.0) <= 4 * 10 / math.sqrt(12 * len(stalled))
    before = [acked - taken for taken, acked, _ in commits if taken < 60 - APPLY_DELAY]
    assert max(before) == pytest.approx(APPLY_DELAY)  # semi-sync: one apply delay
    after = [(taken, acked, fallback) for taken, acked, fallback in commits if taken > switch]
    assert after and all(acked == taken and fallback for taken, acked, fallback in after)
    assert data["async_fallback_s"] == pytest.approx(120 - switch)
    mean = rate * 60
    assert abs(data["lost_writes"] - mean) <= 4 * math.sqrt(mean)
    assert data["lost_writes_async_fallback"] == data["lost_writes"]


@pytest.mark.parametrize(("mode", "timeouts"), [("semi_sync", 0), ("sync", 1)])
def test_with_a_second_replica_alive_the_same_crash_loses_nothing(mode, timeouts):
    """Two replicas, one dead from 60 s. Semi-sync never waits: the other acknowledges. Sync
    waits for both: its first write without the dead one's acknowledgement stalls 10 s, then
    the master stops counting on it and goes on with the other, never falling back. Either way
    every acknowledged write is on the live replica, which the crash at 120 s promotes."""
    data, commits = run_recording(
        scenario(
            {"mode": mode, "replicas": 2},
            [crash("db-0-2", 60, 200), crash("db-0-1", 120, 100)],
            rate=50.0,
            duration=130,
        )
    )
    assert data["failovers"] == 1 and data["lost_writes"] == 0
    assert data["ack_timeouts"] == timeouts
    assert data["async_fallback_s"] == 0 and not any(fallback for *_, fallback in commits)
    waits = [acked - taken for taken, acked, _ in commits]
    assert max(waits) == pytest.approx(10.0 if timeouts else APPLY_DELAY, abs=APPLY_DELAY)


def test_a_repaired_replica_that_has_caught_up_brings_semi_sync_back():
    """The replica is down 60-90 s. Back, it copies what it missed at once, so it has every
    write: the master counts on it again, and from then on waits for it (D = 100 ms each). The
    crash at 120 s then loses nothing, where an asynchronous master would lose the writes of the
    last D seconds, Poisson of mean w D = 10 (none with probability e^-10)."""
    delay = 0.1
    data, commits = run_recording(
        scenario(
            {"mode": "semi_sync", "replicas": 1, "apply_delay": delay},
            [crash("db-0-2", 60, 30), crash("db-0-1", 120, 100)],
            rate=100.0,
            duration=125,
        )
    )
    assert data["ack_timeouts"] == 1 and data["failovers"] == 1
    switch = min(acked for taken, acked, _ in commits if acked - taken > 1)
    assert data["async_fallback_s"] == pytest.approx(90 - switch)
    back = [acked - taken for taken, acked, fallback in commits if taken > 90 and not fallback]
    assert back and all(wait == pytest.approx(delay) for wait in back)
    assert not any(fallback for taken, _, fallback in commits if taken > 90)
    assert data["lost_writes"] == 0


def test_a_replica_back_before_the_timeout_acknowledges_the_stalled_writes():
    """Down 60-65 s only: the writes taken meanwhile wait for it, and it acknowledges them all
    when it is back and has copied them, 5 s into the stall: no timeout, no fallback."""
    data, commits = run_recording(
        scenario({"mode": "semi_sync", "replicas": 1}, [crash("db-0-2", 60, 5)], 50.0, 80)
    )
    assert data["ack_timeouts"] == 0 and data["async_fallback_s"] == 0
    held = [acked for taken, acked, _ in commits if 60 <= taken < 65]
    assert held and all(acked == 65.0 for acked in held)


def test_a_replica_slower_than_the_timeout_is_taken_back_once_it_has_drained_its_backlog():
    """Every write takes 2 s to reach the replica, the master waits 1 s: the first write stalls
    1 s and the master falls back. Writes stop at 30 s; the replica has them all 2 s after the
    last one was taken, and semi-sync is back: the fallback lasted (t_last + 2) - (t_first + 1)."""
    data, commits = run_recording(
        scenario(
            {"mode": "semi_sync", "replicas": 1, "apply_delay": 2.0, "ack_timeout": 1.0},
            [],
            rate=20.0,
            duration=40,
            profile=[{"at": 30, "rate": 0}],
        )
    )
    first, last = commits[0][0], commits[-1][0]
    assert data["ack_timeouts"] == 1
    assert commits[0][1] == pytest.approx(first + 1.0)
    assert data["async_fallback_s"] == pytest.approx((last + 2.0) - (first + 1.0))
