"""What every replication strategy answers, and the registry that finds one by its kind.

A replication strategy is the policy of one kind of replication (``database.replication.kind``):
where a read and a write go, when a write is acknowledged, what a node's death costs in data,
when a failover starts and whom it promotes. The data tier (:mod:`sim.model.database`) does
everything else the same way for every kind: it sends operations to nodes, ships each write
through the shard's write log (:mod:`sim.model.write_log`), learns of deaths and returns through
detection, runs the failover's timer, fences, and counts.

A strategy holds no clock and schedules nothing: it decides from the shard it is shown (its
nodes, which of them detection believes up, its master, its write log, which replicas the master
counts on for acknowledgements), so its decisions are those of a real replication manager that
knows what its monitoring and the acknowledgements it receives tell it. The data tier runs the
timers: an acknowledgement due, the ack timeout, a replica that may have caught up.

Adding a kind is a spec in :mod:`sim.scenario.database` registered in ``REPLICATION_KINDS``, a
class here registered under the same name in ``REPLICATION_STRATEGIES``, and a test;
``tests/test_replication_contract.py`` runs every registered kind through the same invariants.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sim.registry import Registry

if TYPE_CHECKING:
    from sim.model.database import Shard
    from sim.model.write_log import Write

__all__ = ["REPLICATION_STRATEGIES", "ReplicationStrategy"]


class ReplicationStrategy(Protocol):
    """The decisions of one replication kind, for the shards of a data tier.

    Nodes are numbered within their shard (0 is ``db-<shard>-1``). Built by the registered
    class from its spec and the run's streams: ``cls(spec, streams)``.
    """

    many_masters: bool
    """Whether several nodes of a shard take writes at once (multi-master); else at most one
    does, the shard's ``master``, and a new one only after a failover."""

    def write_node(self, shard: Shard) -> int | None:
        """The node that takes the next write, or None when none can (a failover)."""
        ...

    def read_node(self, shard: Shard, now: float) -> int | None:
        """The node that serves the next read, or None when none can."""
        ...

    ack_timeout: float
    """Seconds the master waits for an acknowledgement before :meth:`timed_out`."""

    def acknowledged_at(self, shard: Shard, taken_at: float, arrivals: list[float]) -> float:
        """When a write taken at ``taken_at`` is acknowledged to its client, as far as the
        master can tell now, given when it reaches each node of the shard (``arrivals``, one
        per node, ``inf`` where it never does): ``taken_at`` (at once), when the acknowledgement
        it needs is due, or ``inf`` (none is coming: it waits for the ack timeout). Called for
        every write, so it must be quick."""
        ...

    def timed_out(self, shard: Shard, now: float, arrivals: list[float]) -> None:
        """The oldest write waiting (``arrivals``) got no acknowledgement it needed within
        ``ack_timeout``: change whom the master counts on, or fall back to asynchronous
        replication (``shard.acknowledging``, ``shard.async_since``)."""
        ...

    def caught_up(self, shard: Shard, node: int) -> None:
        """Replica ``node``, which the master no longer counts on, has every write now."""
        ...

    def promoted(self, shard: Shard) -> None:
        """A failover has just promoted ``shard.master``: whom the new master counts on."""
        ...

    def lost_with(self, shard: Shard, node: int) -> list[Write]:
        """The writes lost at once because ``node`` stopped serving (the log already knows
        it ships nothing more)."""
        ...

    def failover_delay(self, shard: Shard, node: int, up: bool) -> float | None:
        """Detection has just judged ``node`` up (or down): how long the failover this
        starts takes until :meth:`elect` is asked, or None when it starts none."""
        ...

    def elect(self, shard: Shard, candidates: list[int]) -> int:
        """Whom a failover promotes, among the ``candidates`` (non-empty) that can serve;
        asked only at the end of a failover that :meth:`failover_delay` started. The writes
        the new master lacks are lost."""
        ...

    def serves(self, shard: Shard) -> tuple[bool, bool]:
        """Whether the shard can take a write and serve a read now: a node serves when it is
        alive, reachable and believed up. Called after every change of a node, a belief or
        the master, so it must be quick."""
        ...

    def takes_writes(self, shard: Shard) -> bool:
        """Whether the shard takes writes again once a node of it is back in service (a
        master promoted and serving)."""
        ...


REPLICATION_STRATEGIES: Registry[Callable[..., ReplicationStrategy]] = Registry(
    "replication strategy"
)
"""Replication kind -> class(spec, streams) of its strategy."""
