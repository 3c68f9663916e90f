"""The write log of one shard: its recent writes, and when each node of the shard sees each one.

Every committed write is kept, per key, with the time it becomes visible on each node (``inf``:
never, the node missed it), for as long as some node may still lack it. That is enough to tell
a stale read, to count the writes a failover loses, and to find conflicting writes in
multi-master. Memory is bounded by the writes of one replication-lag window, and by the key
space. Writes shipped but not yet acknowledged (semi-sync, sync) are kept apart, in flight,
with when each node gets them: a node that stops before one arrives never gets it (so never
acknowledges it), a node that comes back copies it at once like the rest.

Replication applies writes in commit order on each node, like a relay log: a write reaches a
node no earlier than the writes before it. Plain data, no simulation: the data tier
(:mod:`sim.model.database`) says what happened and when (``now``, in seconds), which nodes
serve (``serving``, one boolean per node of the shard), and lends its stream of apply delays.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence

__all__ = ["INF", "MAX_PENDING", "Write", "WriteLog"]

INF = math.inf
MAX_PENDING = 100_000
"""Most writes a shard remembers while some node lacks them (see :meth:`WriteLog.forget_old`)."""


class Write:
    """A committed write: its key, its origin, and when each node of the shard sees it."""

    __slots__ = ("acked_at", "async_fallback", "key", "origin", "previous", "seq", "visible_at")

    def __init__(
        self,
        seq: int,
        key: int,
        origin: int,
        acked_at: float,
        visible_at: list[float],
        previous: Write | None,
        async_fallback: bool = False,
    ) -> None:
        self.seq = seq
        self.key = key
        self.origin = origin
        self.acked_at = acked_at
        self.visible_at = visible_at
        """Per node of the shard: when this write becomes visible there (inf: never, lost)."""
        self.previous = previous
        """The write it replaced on its key, kept while some live node may still show it."""
        self.async_fallback = async_fallback
        """Acknowledged without any replica's acknowledgement because the master had fallen
        back to asynchronous replication (semi-sync or sync after an ack timeout)."""

    def __repr__(self) -> str:
        return f"Write(seq={self.seq}, key={self.key}, origin={self.origin})"


class WriteLog:
    """The recent writes of one shard of ``size`` nodes, numbered 0 to ``size - 1``."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a shard has at least one node, got {size}")
        self.size = size
        self.recent: deque[Write] = deque()
        """Writes some node may still lack, oldest first (sequence order)."""
        self.last_write: dict[int, Write] = {}
        """The newest write of each key; older ones hang from its ``previous``."""
        self.last_visible = [0.0] * size
        """Per node: when the newest write shipped to it becomes visible there."""
        self.stopped_at = [0.0] * size
        """Per node: when it last stopped serving."""
        self.in_flight: dict[object, list[float]] = {}
        """Writes shipped and not yet acknowledged, oldest first, by the caller's token (the
        data tier's operation): when each node gets each one (``inf``: never)."""
        self.next_seq = 1

    # -- writes -------------------------------------------------------------------------------

    def ship(
        self, origin: int, now: float, serving: Sequence[bool], apply_delays: Iterator[float]
    ) -> list[float]:
        """When a write that ``origin`` took at ``now`` reaches each node: ``now`` there,
        ``inf`` on a node that does not serve (it copies the write when it comes back), else
        after its own apply delay, and not before the writes shipped to that node before it."""
        arrivals = [INF] * self.size
        arrivals[origin] = now
        last_visible = self.last_visible
        for index in range(self.size):
            if index != origin and serving[index]:
                arrival = max(now + next(apply_delays), last_visible[index])
                last_visible[index] = arrival
                arrivals[index] = arrival
        return arrivals

    def append(
        self,
        key: int,
        origin: int,
        now: float,
        visible_at: list[float],
        serving: Sequence[bool],
        async_fallback: bool = False,
    ) -> Write:
        """Commit a write of ``key`` taken by ``origin`` and acknowledged at ``now``, visible on
        each node at ``visible_at`` (changed in place: a node that stopped serving before the
        write reached it never gets it); ``async_fallback``: see :attr:`Write.async_fallback`."""
        stopped_at = self.stopped_at
        for index in range(self.size):
            if not serving[index] and visible_at[index] > stopped_at[index]:
                visible_at[index] = INF
        write = Write(
            self.next_seq, key, origin, now, visible_at, self.last_write.get(key), async_fallback
        )
        self.next_seq += 1
        self.last_write[key] = write
        self.recent.append(write)
        return write

    @staticmethod
    def concurrent(write: Write) -> bool:
        """Whether ``write`` overwrote one taken at another node that had not reached its own
        origin yet: two writes to one key, neither aware of the other (a conflict)."""
        previous = write.previous
        return (
            previous is not None
            and previous.origin != write.origin
            and previous.visible_at[write.origin] > write.acked_at
        )

    def forget_old(self, now: float) -> None:
        """Drop writes every node has: they can no longer be lost or read stale.

        A node that is down lacks every write made meanwhile, and those writes may yet be lost
        (if the master dies before it catches up), so they are kept; past ``MAX_PENDING``
        writes the oldest go anyway, so that a node down for days cannot fill the memory.
        """
        recent = self.recent
        while recent:
            oldest = recent[0]
            if len(recent) <= MAX_PENDING:
                origin = oldest.origin
                for index, visible in enumerate(oldest.visible_at):
                    # Not visible yet, or never on a node other than its origin: lacked.
                    if visible > now and (visible < INF or index != origin):
                        return  # kept, and every newer write with it
            recent.popleft()
            if self.last_write.get(oldest.key) is oldest:
                oldest.previous = None
            else:
                self._unlink(oldest)

    def _unlink(self, write: Write) -> None:
        newer = self.last_write.get(write.key)
        while newer is not None and newer.previous is not write:
            newer = newer.previous
        if newer is not None:
            newer.previous = None

    # -- what a node shows --------------------------------------------------------------------

    def version_seen(self, node: int, key: int, now: float) -> int:
        """The sequence number of the write to ``key`` that ``node`` shows at ``now`` (0: a
        write older than the log)."""
        write = self.last_write.get(key)
        while write is not None and write.visible_at[node] > now:
            write = write.previous
        return write.seq if write is not None else 0

    def stale(self, node: int, key: int, now: float) -> bool:
        """Whether ``node`` lacks, at ``now``, the newest committed write to ``key``."""
        latest = self.last_write.get(key)
        return latest is not None and latest.visible_at[node] > now

    def lag_of(self, node: int, now: float) -> float:
        """How far behind ``node`` is: age of the oldest write it has not applied yet."""
        # Replication applies in order: the writes a node lacks are the newest ones, so scan
        # back from the newest until one it has. A write it will never get is not lag.
        oldest = None
        for write in reversed(self.recent):
            visible = write.visible_at[node]
            if visible <= now:
                break
            if visible < INF:
                oldest = write
        return now - oldest.acked_at if oldest is not None else 0.0

    def due(self, node: int) -> float:
        """When ``node`` will have every write taken so far, committed or in flight (``inf``:
        never, it missed one). Replication applies in order, so the newest decide."""
        due = self.recent[-1].visible_at[node] if self.recent else 0.0
        for arrivals in self.in_flight.values():
            due = max(due, arrivals[node])
        return due

    def caught_up(self, node: int, now: float) -> bool:
        """Whether ``node`` has, at ``now``, every write taken so far."""
        return self.due(node) <= now

    def watermark(self, node: int) -> int:
        """The last write ``node`` has, in sequence order (replication applies in order)."""
        applied = 0
        for write in self.recent:
            if write.visible_at[node] == INF:
                break
            applied = write.seq
        return applied if self.recent else self.next_seq - 1

    # -- nodes stopping and coming back -------------------------------------------------------

    def node_stopped(self, node: int, now: float) -> None:
        """``node`` stops serving at ``now``: it applies nothing more (what it has not seen, it
        never will; it copies it when it comes back), and what it took but had not shipped yet
        never leaves it (the data tier fails the writes in flight at it: never acknowledged)."""
        self.stopped_at[node] = now
        for arrivals in self.in_flight.values():
            if arrivals[node] > now:
                arrivals[node] = INF
        for write in self.recent:
            visible = write.visible_at
            if visible[node] > now:
                visible[node] = INF
            if write.origin == node:
                for other, seen in enumerate(visible):
                    if seen > now:
                        visible[other] = INF
        self.last_visible[node] = now

    def held_only_by(self, node: int) -> list[Write]:
        """The writes no node but ``node`` has or will ever get."""
        return [
            write
            for write in self.recent
            if write.origin == node
            and all(seen == INF for other, seen in enumerate(write.visible_at) if other != node)
        ]

    def node_resumed(
        self, node: int, now: float, serving: Sequence[bool], apply_delays: Iterator[float]
    ) -> None:
        """``node`` serves again at ``now``: it copies at once what serving nodes have that it
        lacks, the writes in flight included, and what it has that serving nodes lack is
        shipped to them anew (a master back from a short crash, before anyone noticed, still has
        its unshipped writes)."""
        last_visible = self.last_visible
        for arrivals in self.in_flight.values():
            if arrivals[node] > now and any(
                seen <= now and serving[other]
                for other, seen in enumerate(arrivals)
                if other != node
            ):
                arrivals[node] = now
        for write in [*self.recent, *self.last_write.values()]:
            visible = write.visible_at
            if visible[node] > now and any(
                seen <= now and serving[other]
                for other, seen in enumerate(visible)
                if other != node
            ):
                visible[node] = now
            if visible[node] <= now:
                for other, seen in enumerate(visible):
                    if other != node and seen == INF and serving[other]:
                        arrival = max(now + next(apply_delays), last_visible[other])
                        visible[other] = last_visible[other] = arrival
        last_visible[node] = now

    # -- losing writes ------------------------------------------------------------------------

    def missing_at(self, node: int) -> list[Write]:
        """The writes ``node`` will never get beyond the last one it has: lost if it becomes
        the master."""
        watermark = self.watermark(node)
        return [w for w in self.recent if w.seq > watermark and w.visible_at[node] == INF]

    def drop(self, lost: list[Write]) -> None:
        """Forget ``lost`` writes as if never made: each key shows the write before them."""
        if not lost:
            return
        gone = {id(w) for w in lost}
        for key in {w.key for w in lost}:
            write = self.last_write[key]
            while write is not None and id(write) in gone:
                write = write.previous
            if write is None:
                del self.last_write[key]
            else:
                self.last_write[key] = write
        self.recent = deque(w for w in self.recent if id(w) not in gone)
