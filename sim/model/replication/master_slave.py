"""Master-slave replication: one master takes the writes, replicas copy them, a failover
promotes the most up-to-date replica (MySQL, PostgreSQL streaming replication, MongoDB).

Semi-synchronous replication as MySQL runs it (MySQL 8.4 Reference Manual, 19.4.10
"Semisynchronous Replication" and 19.4.10.2 "Configuring Semisynchronous Replication",
https://dev.mysql.com/doc/refman/8.4/en/replication-semisync.html): with the default wait point
``AFTER_SYNC`` the source commits a transaction, and shows it to anyone, only once a replica
has acknowledged receiving it; it waits up to ``rpl_semi_sync_source_timeout`` (10 s by
default), and every commit taken meanwhile waits too; if no replica acknowledges in time, the
source reverts to asynchronous replication (the waiting commits return, later ones do not wait),
and returns to semi-synchronous replication when a replica catches up
(``Rpl_semi_sync_source_status``, 19.4.10.3 "Semisynchronous Replication Monitoring"). With
``rpl_semi_sync_source_wait_no_replica`` ON (the default) the source waits out the timeout even
when no replica is connected: the master learns of a replica's death only through the missing
acknowledgement, never from the replica's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.model.replication.base import REPLICATION_STRATEGIES
from sim.model.write_log import INF

if TYPE_CHECKING:
    from sim.model.database import Shard
    from sim.model.write_log import Write
    from sim.scenario import MasterSlaveSpec
    from sim.streams import Streams

__all__ = ["MasterSlave"]


@REPLICATION_STRATEGIES.register("master_slave")
class MasterSlave:
    """Writes go to the master; reads to the master, to the replicas, or to replicas within
    ``max_lag`` (else the master). When detection declares the master dead, a failover
    promotes, after ``promotion_delay``, the live replica with the most writes (the lowest
    number among equals); the writes it lacks are lost. A failover that finds no replica waits
    for the next node detected back, and promotes it after a whole ``promotion_delay`` again.

    When a write is acknowledged: ``async`` at once; ``semi_sync`` when the first replica the
    master counts on has it, ``sync`` when every one of them has it. The master counts on every
    replica at first, and after a failover on those detection believes up (the replicas the
    failover re-points). A write that gets no acknowledgement it needs within ``ack_timeout``
    (from when it was taken; the writes taken after it wait as well) makes the master stop
    counting on the replicas that did not acknowledge it: for ``semi_sync`` every one, so the
    master falls back to asynchronous replication, as MySQL does; for ``sync``, the ones that
    did not answer, and the write commits on the acknowledgements of the others, as Galera
    evicts a member that stops answering or a failover manager drops a standby from
    PostgreSQL's ``synchronous_standby_names``; with none left, ``sync`` falls back too. The
    waiting writes then commit, acknowledged by no replica while fallen back. A replica left
    out is counted on again once it has every write the master has (the write log says when:
    at once when a repaired replica comes back and copies what it missed; a replica slower
    than the timeout only when it has drained its backlog), which ends a fallback. A long
    ``ack_timeout`` (say ``1y``) waits as PostgreSQL's ``synchronous_commit`` does, until a
    replica is back. With no replica at all (``replicas: 0``) there is nothing to wait for:
    every mode acknowledges at once."""

    many_masters = False

    def __init__(self, spec: MasterSlaveSpec, streams: Streams) -> None:
        self._mode = spec.mode if spec.replicas else "async"
        self._all = spec.mode == "sync"
        self.ack_timeout = spec.ack_timeout
        self._read_from = spec.read_from
        self._max_lag = spec.max_lag
        self._promotion = spec.promotion_delay.sampler(
            streams.generator("database/promotion"), block=64
        )

    def write_node(self, shard: Shard) -> int | None:
        if not shard.deposed:
            return shard.master
        # Split brain: the shard's address answers from the new master and from an old one no
        # demotion has reached (a virtual IP both hold, a proxy that sees both writable).
        writers = [*([] if shard.master is None else [shard.master]), *shard.deposed]
        return writers[0] if len(writers) == 1 else shard.next_in_turn(writers)

    def read_node(self, shard: Shard, now: float) -> int | None:
        master = shard.master
        if self._read_from == "master":
            return master
        up = shard.believed_up
        replicas = [i for i in range(len(up)) if up[i] and i != master]
        if self._read_from == "replicas_within_lag":
            # The lag the router measured at its last check, not the lag now.
            lag, limit = shard.checked_lag, self._max_lag
            replicas = [i for i in replicas if lag[i] <= limit]
        return shard.next_in_turn(replicas or ([master] if master is not None else []))

    def acknowledged_at(self, shard: Shard, taken_at: float, arrivals: list[float]) -> float:
        if self._mode == "async" or shard.async_since is not None:
            return taken_at
        counted = shard.acknowledging
        awaited = [arrival for index, arrival in enumerate(arrivals) if counted[index]]
        if not awaited:
            return INF  # counting on no replica, not yet fallen back: the timeout decides
        return max(awaited) if self._all else min(awaited)

    def timed_out(self, shard: Shard, now: float, arrivals: list[float]) -> None:
        counted = shard.acknowledging
        for index, arrival in enumerate(arrivals):
            if arrival > now:
                counted[index] = False
        if not any(counted):
            shard.async_since = now

    def caught_up(self, shard: Shard, node: int) -> None:
        shard.acknowledging[node] = True
        shard.async_since = None

    def promoted(self, shard: Shard) -> None:
        master = shard.master
        shard.acknowledging = [up and i != master for i, up in enumerate(shard.believed_up)]
        shard.async_since = None

    def lost_with(self, shard: Shard, node: int) -> list[Write]:
        return []  # what only a dead master had is lost when a replica without it is promoted

    def failover_delay(self, shard: Shard, node: int, up: bool) -> float | None:
        if not up:
            return next(self._promotion) if node == shard.master else None
        # Back in a shard whose failover found no one to promote; else it rejoins as a replica
        # (fenced: never two masters).
        if shard.master is None and not shard.promoting:
            return next(self._promotion)
        return None

    def elect(self, shard: Shard, candidates: list[int]) -> int:
        log = shard.log
        watermark = {i: log.watermark(i) for i in candidates}
        return max(candidates, key=lambda i: (watermark[i], -i))

    def serves(self, shard: Shard) -> tuple[bool, bool]:
        up, nodes, master = shard.believed_up, shard.nodes, shard.master
        writable = master is not None and up[master] and nodes[master].serving
        if writable or self._read_from == "master":
            return writable, writable
        return False, any(up[i] and node.serving for i, node in enumerate(nodes))

    def takes_writes(self, shard: Shard) -> bool:
        master = shard.master
        return master is not None and shard.believed_up[master] and shard.nodes[master].serving
