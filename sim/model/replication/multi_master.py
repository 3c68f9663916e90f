"""Multi-master replication: every node of a shard takes writes and ships them to the others
(Galera in asynchronous mode, MySQL circular replication, active-active across zones)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.model.replication.base import REPLICATION_STRATEGIES
from sim.model.write_log import INF

if TYPE_CHECKING:
    from sim.model.database import Shard
    from sim.model.write_log import Write
    from sim.scenario import MultiMasterSpec
    from sim.streams import Streams

__all__ = ["MultiMaster"]


@REPLICATION_STRATEGIES.register("multi_master")
class MultiMaster:
    """Reads and writes go to every node believed up in turn; a write is acknowledged at once.
    Two writes to one key, each taken before the other reached its node, conflict: the last
    writer wins and the other, acknowledged to its client, is silently overwritten (counted as
    a lost update). A node's death promotes no one: the others carry on, and the writes only
    it had are lost at once."""

    many_masters = True

    def __init__(self, spec: MultiMasterSpec, streams: Streams) -> None:
        pass  # no option of its own, no randomness of its own

    def write_node(self, shard: Shard) -> int | None:
        up = shard.believed_up
        return shard.next_in_turn([i for i in range(len(up)) if up[i]])

    def read_node(self, shard: Shard, now: float) -> int | None:
        up = shard.believed_up
        return shard.next_in_turn([i for i in range(len(up)) if up[i]])

    ack_timeout = INF  # no write ever waits for an acknowledgement

    def acknowledged_at(self, shard: Shard, taken_at: float, arrivals: list[float]) -> float:
        return taken_at

    def timed_out(self, shard: Shard, now: float, arrivals: list[float]) -> None:
        raise RuntimeError("a multi-master write never waits for an acknowledgement")

    def caught_up(self, shard: Shard, node: int) -> None:
        raise RuntimeError("a multi-master node never counts on another's acknowledgements")

    def promoted(self, shard: Shard) -> None:
        raise RuntimeError("a multi-master shard never fails over, so never promotes a master")

    def lost_with(self, shard: Shard, node: int) -> list[Write]:
        return shard.log.held_only_by(node)

    def failover_delay(self, shard: Shard, node: int, up: bool) -> float | None:
        return None

    def elect(self, shard: Shard, candidates: list[int]) -> int:
        raise RuntimeError("a multi-master shard never fails over, so never elects a master")

    def serves(self, shard: Shard) -> tuple[bool, bool]:
        up = shard.believed_up
        serving = any(up[i] and node.serving for i, node in enumerate(shard.nodes))
        return serving, serving

    def takes_writes(self, shard: Shard) -> bool:
        return True  # every node believed up is a master
