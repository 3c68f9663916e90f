"""Master-slave replication: one master takes the writes, replicas copy them, a failover
promotes the most up-to-date replica (MySQL, PostgreSQL streaming replication, MongoDB)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.model.replication.base import REPLICATION_STRATEGIES

if TYPE_CHECKING:
    from sim.model.database import Shard
    from sim.model.write_log import Write
    from sim.scenario import MasterSlaveSpec
    from sim.streams import Streams

__all__ = ["MasterSlave"]


@REPLICATION_STRATEGIES.register("master_slave")
class MasterSlave:
    """Writes go to the master; reads to the master, to the replicas, or to replicas within
    ``max_lag`` (else the master). ``async`` acknowledges a write at once, ``semi_sync`` when
    the first replica has it, ``sync`` when the last live one has it; both fall back to async
    while no replica serves. When detection declares the master dead, a failover promotes,
    after ``promotion_delay``, the live replica with the most writes (the lowest number among
    equals); the writes it lacks are lost. A failover that finds no replica waits for the
    next node detected back, and promotes it after a whole ``promotion_delay`` again."""

    many_masters = False

    def __init__(self, spec: MasterSlaveSpec, streams: Streams) -> None:
        self._mode = spec.mode
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
            log, limit = shard.log, self._max_lag
            replicas = [i for i in replicas if log.lag_of(i, now) <= limit]
        return shard.next_in_turn(replicas or ([master] if master is not None else []))

    def acknowledged_at(self, now: float, arrivals: list[float]) -> float:
        if self._mode == "async" or not arrivals:
            return now
        return min(arrivals) if self._mode == "semi_sync" else max(arrivals)

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
