"""The write log of one shard, without a simulation: exact times worked out by hand.

Three nodes: 0 takes the writes (the origin), 1 and 2 copy them. Apply delays come from a list,
so each arrival time below is the delay of that write on that node, or the arrival of the write
before it on the same node when that is later (replicas apply in commit order).
"""

from __future__ import annotations

import math

import pytest

from sim.model import write_log
from sim.model.write_log import INF, WriteLog

ALL = (True, True, True)


def commit(log: WriteLog, key: int, now: float, delays: list[float], serving=ALL, origin=0):
    """Ship a write taken at ``now`` and commit it at once (an async acknowledgement)."""
    supply = iter(delays)
    arrivals = log.ship(origin, now, serving, supply)
    assert next(supply, None) is None, "every delay given was used: one per serving copy"
    return log.append(key, origin, now, arrivals, serving)


def test_replicas_apply_in_commit_order_so_a_fast_write_waits_for_a_slow_one():
    log = WriteLog(3)
    first = commit(log, key=7, now=0.0, delays=[0.5, 0.1])
    second = commit(log, key=8, now=0.2, delays=[0.1, 0.1])
    assert first.visible_at == [0.0, 0.5, 0.1]
    assert second.visible_at == [0.2, 0.5, 0.30000000000000004]  # 0.2 + 0.1 on node 2
    assert log.lag_of(1, 0.4) == pytest.approx(0.4)  # still lacks the write acknowledged at 0
    assert log.lag_of(2, 0.4) == 0.0


def test_a_node_that_does_not_serve_is_shipped_nothing_and_draws_no_delay():
    log = WriteLog(3)
    log.node_stopped(2, 0.0)
    write = commit(log, key=1, now=1.0, delays=[0.3], serving=(True, True, False))
    assert write.visible_at == [1.0, 1.3, INF]
    assert log.lag_of(2, 2.0) == 0.0  # a write it will never get is not lag


def test_a_read_shows_the_newest_write_already_applied_on_its_node():
    log = WriteLog(3)
    commit(log, key=5, now=0.0, delays=[0.1, 0.1])
    commit(log, key=5, now=1.0, delays=[0.5, 0.1])
    assert [log.version_seen(node, 5, 1.2) for node in range(3)] == [2, 1, 2]
    assert [log.stale(node, 5, 1.2) for node in range(3)] == [False, True, False]
    assert log.version_seen(1, 5, 1.5) == 2
    assert log.version_seen(1, 99, 1.5) == 0  # never written: older than the log


def test_writes_a_dead_origin_had_not_shipped_stay_on_it_alone():
    log = WriteLog(3)
    shipped = commit(log, key=1, now=0.0, delays=[0.1, 0.1])
    unshipped = commit(log, key=2, now=1.0, delays=[0.5, 0.5])
    log.node_stopped(0, 1.2)
    assert shipped.visible_at == [0.0, 0.1, 0.1]
    assert unshipped.visible_at == [1.0, INF, INF]
    assert log.held_only_by(0) == [unshipped]


def test_a_replica_that_stops_never_gets_what_it_had_not_applied():
    log = WriteLog(3)
    write = commit(log, key=1, now=0.0, delays=[0.5, 0.1])
    log.node_stopped(1, 0.2)
    assert write.visible_at == [0.0, INF, 0.1]
    assert log.held_only_by(0) == []  # node 2 has it


def test_a_write_acknowledged_after_a_node_stopped_never_reaches_it():
    log = WriteLog(3)
    arrivals = log.ship(0, 0.0, ALL, iter([0.2, 0.2]))  # a sync write, acknowledged at 0.2
    log.node_stopped(2, 0.1)
    write = log.append(1, 0, 0.2, [0.2, 0.2, 0.2], (True, True, False))
    assert arrivals == [0.0, 0.2, 0.2]
    assert write.visible_at == [0.2, 0.2, INF]


def test_the_promoted_replica_keeps_what_it_has_and_the_rest_is_missing():
    """Node 1 applied the first two writes, node 2 only the first, when the origin stopped."""
    log = WriteLog(3)
    writes = [
        commit(log, key=1, now=0.0, delays=[0.1, 0.1]),
        commit(log, key=2, now=1.0, delays=[0.1, 0.5]),
        commit(log, key=3, now=1.05, delays=[0.5, 0.5]),
    ]
    log.node_stopped(0, 1.2)
    assert [log.watermark(node) for node in (1, 2)] == [2, 1]
    assert log.missing_at(1) == [writes[2]]
    assert log.missing_at(2) == writes[1:]
    log.drop(log.missing_at(1))
    assert sorted(log.last_write) == [1, 2]
    assert [w.seq for w in log.recent] == [1, 2]


def test_dropping_the_newest_write_of_a_key_shows_the_one_before():
    log = WriteLog(3)
    older = commit(log, key=4, now=0.0, delays=[0.1, 0.1])
    newer = commit(log, key=4, now=0.5, delays=[0.1, 0.1])
    log.drop([newer])
    assert log.last_write[4] is older
    log.drop([older])
    assert 4 not in log.last_write
    log.drop([])  # nothing lost: nothing changes


def test_a_node_back_copies_what_live_nodes_have_and_ships_what_only_it_has():
    log = WriteLog(3)
    log.node_stopped(2, 0.0)
    missed = commit(log, key=1, now=1.0, delays=[0.1], serving=(True, True, False))
    log.node_resumed(2, 2.0, ALL, iter([]))
    assert missed.visible_at == [1.0, 1.1, 2.0]  # copied at once from the live nodes

    log = WriteLog(3)
    unshipped = commit(log, key=1, now=1.0, delays=[0.5, 0.5])
    log.node_stopped(0, 1.2)  # the origin is cut off before shipping it
    log.node_resumed(0, 1.3, ALL, iter([0.2, 0.4]))  # back before anyone noticed
    assert unshipped.visible_at == [1.0, pytest.approx(1.5), pytest.approx(1.7)]


def test_writes_every_node_has_are_forgotten_and_those_a_down_node_lacks_are_kept():
    log = WriteLog(3)
    commit(log, key=1, now=0.0, delays=[0.1, 0.1])
    log.forget_old(0.05)
    assert len(log.recent) == 1  # still on its way to the replicas
    log.forget_old(0.2)
    assert len(log.recent) == 0 and log.last_write[1].seq == 1  # the newest of a key stays
    log.node_stopped(2, 1.0)
    commit(log, key=2, now=2.0, delays=[0.1], serving=(True, True, False))
    log.forget_old(10.0)
    assert [w.key for w in log.recent] == [2]  # node 2 may yet make it lost


def test_past_the_bound_the_oldest_writes_go_even_if_a_node_lacks_them(monkeypatch):
    monkeypatch.setattr(write_log, "MAX_PENDING", 3)
    log = WriteLog(2)
    log.node_stopped(1, 0.0)
    for k in range(5):
        commit(log, key=k, now=float(k), delays=[], serving=(True, False))
        log.forget_old(float(k))
    assert [w.key for w in log.recent] == [2, 3, 4]


def test_two_masters_writing_one_key_before_either_write_arrives_is_a_conflict():
    log = WriteLog(2)
    first = commit(log, key=9, now=0.0, delays=[0.3], origin=0)
    second = commit(log, key=9, now=0.1, delays=[0.3], origin=1)  # node 1 sees key 9 at 0.3
    later = commit(log, key=9, now=1.0, delays=[0.3], origin=0)  # node 0 saw the second at 0.4
    assert not log.concurrent(first)
    assert log.concurrent(second)
    assert not log.concurrent(later)


def test_a_shard_has_a_node():
    with pytest.raises(ValueError, match="at least one node"):
        WriteLog(0)
    assert math.isinf(INF)


def test_a_write_in_flight_never_reaches_a_node_that_stops_and_is_copied_when_it_is_back():
    """Semi-sync: a write shipped at 1.0 waits for its acknowledgements. Node 1 dies at 1.05,
    before it arrives (1.1): it never gets it, so it never acknowledges it; back at 3.0, it
    copies it from the master at once. Node 2 lags by 0.5 s, so it has every write at 1.5."""
    log = WriteLog(3)
    arrivals = log.ship(0, 1.0, ALL, iter([0.1, 0.5]))
    log.in_flight["write"] = arrivals
    assert log.due(1) == pytest.approx(1.1) and not log.caught_up(2, 1.4)
    assert log.caught_up(2, 1.5)
    log.node_stopped(1, 1.05)
    assert arrivals == [1.0, INF, 1.5]
    assert log.due(1) == INF
    log.node_resumed(1, 3.0, ALL, iter([]))
    assert arrivals[1] == 3.0 and log.caught_up(1, 3.0)
    del log.in_flight["write"]
    committed = log.append(4, 0, 3.0, [max(arrival, 3.0) for arrival in arrivals], ALL, True)
    assert committed.async_fallback and log.due(1) == 3.0 and log.due(2) == 3.0
