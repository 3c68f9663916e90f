"""The data tier: database nodes in shards, replication, failover, and what it costs in data.

An application server that serves a request of a class with ``database: {reads, writes}``
holds its worker while it runs those operations one after another, each on a key drawn by
popularity. Each database node is a :class:`Server` (workers, queue, crashes, partitions) that
serves operations instead of requests.

Every committed write is remembered, per key, with the time it becomes visible on each node of
its shard, for as long as some live node has not applied it yet; that is enough to tell a stale
read, to count the writes a failover loses, and to find conflicting writes in multi-master.
Memory is bounded by the writes of one replication-lag window, and by the key space.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import simpy
from simpy.events import Timeout

from sim.metrics import LatencyHistogram
from sim.model.server import MAX_QUEUE, QueueOverflowError, Server
from sim.model.sharding import HashRing, KeySpace
from sim.request import Cause
from sim.scenario import DatabaseSpec
from sim.streams import Streams

if TYPE_CHECKING:
    from sim.model.monitor import Monitor
    from sim.request import Attempt

__all__ = ["DataTier", "DatabaseOperation", "Write"]

INF = math.inf
MAX_PENDING = 100_000
"""Most writes a shard remembers while some node lacks them (see _forget_old_writes)."""


class Write:
    """A committed write: its key, its origin, and when each node of the shard sees it."""

    __slots__ = ("acked_at", "key", "origin", "previous", "seq", "visible_at")

    def __init__(self, seq, key, origin, acked_at, visible_at, previous) -> None:
        self.seq = seq
        self.key = key
        self.origin = origin
        self.acked_at = acked_at
        self.visible_at = visible_at
        """Per node of the shard: when this write becomes visible there (inf: never, lost)."""
        self.previous = previous
        """The write it replaced on its key, kept while some live node may still show it."""


class DatabaseOperation:
    """One read or write of one key, served by a database node like an attempt by a server."""

    __slots__ = (
        "class_index",
        "demand_s",
        "job",
        "key",
        "kind",
        "live",
        "node",
        "queued_at",
        "request",
        "sent_at",
    )

    def __init__(self, job: _Job, kind: str, key: int, demand_s: float, now: float) -> None:
        self.request = self  # a Server reads the demand and class through .request
        self.class_index = job.attempt.request.class_index
        self.job = job
        self.kind = kind
        self.key = key
        self.demand_s = demand_s
        self.sent_at = now
        self.queued_at = now
        self.node = -1
        self.live = True


class _Job:
    """The database phase of one request: its operations, in order."""

    __slots__ = ("attempt", "kinds", "next", "on_done", "shards")

    def __init__(self, attempt, kinds: list[str], on_done) -> None:
        self.attempt = attempt
        self.kinds = kinds
        self.next = 0
        self.on_done = on_done


class _Shard:
    """One replica group: its nodes, who is master, who is believed up, its recent writes."""

    def __init__(self, index: int, nodes: list[Server], multi_master: bool) -> None:
        self.index = index
        self.nodes = nodes
        self.multi_master = multi_master
        self.master: int | None = 0
        self.believed_up = [True] * len(nodes)
        self.recent: deque[Write] = deque()
        self.last_write: dict[int, Write] = {}
        self.last_visible = [0.0] * len(nodes)  # replication applies in order, per node
        self.next_seq = 1
        self.turn = 0
        self.waiting: list[DatabaseOperation] = []
        self.promoting = False
        self.unacked: dict[DatabaseOperation, None] = {}
        self.down_since = [0.0] * len(nodes)
        self.master_failed_at = 0.0
        self.operations = 0
        self.failed_operations = 0
        self.writable_s = 0.0
        self.readable_s = 0.0
        self._since = 0.0
        self._writable = True
        self._readable = True


class DataTier:
    """Shards of database nodes, with replication, failover and their bookkeeping."""

    def __init__(
        self,
        env: simpy.Environment,
        spec: DatabaseSpec,
        nodes: list[Server],
        streams: Streams,
        monitor: Monitor,
    ) -> None:
        self.env = env
        self.spec = spec
        self.monitor = monitor
        replication = spec.replication
        self.replication = replication
        self.multi_master = replication.kind == "multi_master"
        size = spec.nodes_per_shard()
        self.shards = [
            _Shard(i, nodes[i * size : (i + 1) * size], self.multi_master)
            for i in range(spec.shards)
        ]
        self._shard_of_node = {node: shard for shard in self.shards for node in shard.nodes}
        self._impaired: set[int] = set()
        """Shards that cannot take a write or serve a read now (kept by :meth:`_account`)."""
        self.ring = HashRing(spec.shards, spec.virtual_nodes)
        self.keys = KeySpace(
            spec.keys.count, spec.keys.popularity, spec.keys.zipf_exponent, self.ring
        )
        self.shard_shares = self.keys.shard_shares(spec.shards)
        self._keys: dict[int, Iterator[tuple[int, int]]] = {}
        self._streams = streams
        self._read_time = spec.read_time.sampler(streams.generator("database/read_time"))
        self._write_time = spec.write_time.sampler(streams.generator("database/write_time"))
        self._apply_delay = replication.apply_delay.sampler(
            streams.generator("database/apply_delay")
        )
        self._promotion = replication.promotion_delay.sampler(
            streams.generator("database/promotion"), block=64
        )
        self._detection_rng = streams.generator("database/detection")
        self._verdicts: dict[Server, int] = {}
        for node in nodes:
            node.respond = self._answered
        # What the summary reports, counted in the measurement window only.
        self.measuring = False
        self.reads = 0
        self.stale_reads = 0
        self.writes = 0
        self.lost_writes = 0
        self.rpo_s = 0.0
        self.conflicts = 0
        self.lost_updates = 0
        self.failovers: list[float] = []
        self.write_latency = LatencyHistogram()
        self.replication_lag = LatencyHistogram()

    # -- requests -----------------------------------------------------------------------------

    def run(
        self,
        attempt: Attempt,
        class_name: str,
        reads: int,
        writes: int,
        on_done: Callable[[Attempt, Cause], None],
    ) -> None:
        """Run ``reads`` then ``writes`` operations for ``attempt``; then ``on_done(cause)``."""
        if class_name not in self._keys:
            rng = self._streams.generator(f"database/keys/{class_name}")
            self._keys[class_name] = self.keys.sampler(rng)
        job = _Job(attempt, ["read"] * reads + ["write"] * writes, on_done)
        job.shards = self._keys[class_name]
        self._step(job)

    def _step(self, job: _Job) -> None:
        if job.next == len(job.kinds):
            job.on_done(job.attempt, Cause.OK)
            return
        kind = job.kinds[job.next]
        key, shard_index = next(job.shards)
        demand = next(self._read_time) if kind == "read" else next(self._write_time)
        operation = DatabaseOperation(job, kind, key, demand, self.env.now)
        shard = self.shards[shard_index]
        if self.measuring:
            shard.operations += 1
        self._send(operation, shard)

    def _send(self, operation: DatabaseOperation, shard: _Shard) -> None:
        node = self._route(operation, shard)
        if node is None:
            if operation.kind == "write" and self.replication.writes_during_failover == "wait":
                self._hold(operation, shard)  # until a master is promoted
                return
            self._fail(operation, shard, Cause.DATABASE_FAILOVER)
            return
        operation.node = node
        shard.nodes[node].submit(operation)

    def _hold(self, operation: DatabaseOperation, shard: _Shard) -> None:
        """Keep a write for the next master; past :data:`MAX_QUEUE` of them the run stops."""
        if len(shard.waiting) >= MAX_QUEUE:
            raise QueueOverflowError(
                f"the writes waiting for a master of shard {shard.index}",
                self.env.now,
                "No replica could be promoted for a long time: give the shard replicas, or set"
                " replication.writes_during_failover: fail",
            )
        shard.waiting.append(operation)

    def _route(self, operation: DatabaseOperation, shard: _Shard) -> int | None:
        up = shard.believed_up
        if operation.kind == "write" and not shard.multi_master:
            return shard.master
        candidates = [i for i in range(len(shard.nodes)) if up[i]]
        if operation.kind == "read" and not shard.multi_master:
            policy = self.replication.read_from
            if policy == "master":
                return shard.master
            replicas = [i for i in candidates if i != shard.master]
            if policy == "replicas_within_lag":
                now = self.env.now
                limit = self.replication.max_lag
                replicas = [i for i in replicas if self._lag_of(shard, i, now) <= limit]
            candidates = replicas or ([shard.master] if shard.master is not None else [])
        if not candidates:
            return None
        shard.turn += 1
        return candidates[shard.turn % len(candidates)]

    def _fail(self, operation: DatabaseOperation, shard: _Shard, cause: Cause) -> None:
        if self.measuring:
            shard.failed_operations += 1
        operation.live = False
        operation.job.on_done(operation.job.attempt, cause)

    def _answered(self, operation: DatabaseOperation, cause: Cause) -> None:
        """A node finished (or refused, or lost) an operation."""
        if not operation.live:
            return
        shard = self.shards[self._shard_index(operation)]
        if cause != Cause.OK:
            self._fail(operation, shard, Cause.DATABASE_ERROR)
            return
        if operation.kind == "read":
            self._read(operation, shard)
        else:
            self._write(operation, shard)

    def _shard_index(self, operation: DatabaseOperation) -> int:
        return int(self.keys.shard_of_key[operation.key])

    def _done(self, operation: DatabaseOperation) -> None:
        job = operation.job
        job.next += 1
        self._step(job)

    # -- reads --------------------------------------------------------------------------------

    def version_seen(self, shard: _Shard, node: int, key: int) -> int:
        """The sequence number of the write to ``key`` that ``node`` shows now (0: older)."""
        now = self.env.now
        write = shard.last_write.get(key)
        while write is not None and write.visible_at[node] > now:
            write = write.previous
        return write.seq if write is not None else 0

    def _read(self, operation: DatabaseOperation, shard: _Shard) -> None:
        if self.measuring:
            self.reads += 1
            latest = shard.last_write.get(operation.key)
            if latest is not None and latest.visible_at[operation.node] > self.env.now:
                self.stale_reads += 1
        self._done(operation)

    # -- writes -------------------------------------------------------------------------------

    def _write(self, operation: DatabaseOperation, shard: _Shard) -> None:
        now = self.env.now
        origin = operation.node
        size = len(shard.nodes)
        arrivals = [INF] * size
        arrivals[origin] = now
        for index in range(size):
            if index != origin and shard.nodes[index].serving:
                arrival = max(now + next(self._apply_delay), shard.last_visible[index])
                shard.last_visible[index] = arrival
                arrivals[index] = arrival
        live = [arrivals[i] for i in range(size) if i != origin and arrivals[i] < INF]
        if self.measuring:
            for arrival in live:
                self.replication_lag.add(arrival - now)
        mode = "async" if shard.multi_master or not live else self.replication.mode
        acked_at = {"async": now, "semi_sync": min(live or [now]), "sync": max(live or [now])}[mode]
        visible_at = [max(arrival, acked_at) for arrival in arrivals]
        if acked_at > now:
            shard.unacked[operation] = None
            timer = Timeout(self.env, acked_at - now, operation)
            timer.callbacks.append(lambda _: self._commit(operation, shard, visible_at))
        else:
            self._commit(operation, shard, visible_at)

    def _commit(self, operation: DatabaseOperation, shard: _Shard, visible_at: list[float]) -> None:
        shard.unacked.pop(operation, None)
        if not operation.live:
            return  # the master died before the replicas acknowledged: the client saw an error
        now = self.env.now
        for index, node in enumerate(shard.nodes):
            # A replica that died before the write reached it never got it.
            if not node.serving and visible_at[index] > shard.down_since[index]:
                visible_at[index] = INF
        previous = shard.last_write.get(operation.key)
        # Written at another master and not yet seen here: concurrent. Last writer wins, so the
        # earlier write, acknowledged to its client, is silently overwritten.
        if (
            self.measuring
            and shard.multi_master
            and previous is not None
            and previous.origin != operation.node
            and previous.visible_at[operation.node] > now
        ):
            self.conflicts += 1
            self.lost_updates += 1
        write = Write(shard.next_seq, operation.key, operation.node, now, visible_at, previous)
        shard.next_seq += 1
        shard.last_write[operation.key] = write
        shard.recent.append(write)
        if self.measuring:
            self.writes += 1
            self.write_latency.add(now - operation.sent_at)
        self._forget_old_writes(shard, now)
        self._done(operation)

    def _forget_old_writes(self, shard: _Shard, now: float) -> None:
        """Drop writes every node has: they can no longer be lost or read stale.

        A node that is down lacks every write made meanwhile, and those writes may yet be lost
        (if the master dies before it catches up), so they are kept; past ``MAX_PENDING``
        writes the oldest go anyway, so that a node down for days cannot fill the memory.
        """
        recent = shard.recent
        while recent:
            oldest = recent[0]
            if len(recent) <= MAX_PENDING and any(
                now < visible < INF or (visible == INF and index != oldest.origin)
                for index, visible in enumerate(oldest.visible_at)
            ):
                break
            recent.popleft()
            if shard.last_write.get(oldest.key) is oldest:
                oldest.previous = None
            else:
                self._unlink(shard, oldest)

    @staticmethod
    def _unlink(shard: _Shard, write: Write) -> None:
        newer = shard.last_write.get(write.key)
        while newer is not None and newer.previous is not write:
            newer = newer.previous
        if newer is not None:
            newer.previous = None

    def _lag_of(self, shard: _Shard, node: int, now: float) -> float:
        """How far behind ``node`` is: age of the oldest write it has not applied yet."""
        # Replication applies in order: the writes a node lacks are the newest ones, so scan
        # back from the newest until one it has. A write it will never get is not lag.
        oldest = None
        for write in reversed(shard.recent):
            visible = write.visible_at[node]
            if visible <= now:
                break
            if visible < INF:
                oldest = write
        return now - oldest.acked_at if oldest is not None else 0.0

    # -- failures -----------------------------------------------------------------------------

    def node_changed(self, node: Server) -> None:
        """The truth about ``node`` changed: account, react, and schedule detection's verdict."""
        shard = self._shard_of_node[node]
        index = shard.nodes.index(node)
        now = self.env.now
        self._account(shard)
        if not node.serving:
            shard.down_since[index] = now
            self._truncate(shard, index, now)
            # Replication a dead master had not shipped yet never leaves it.
            for write in shard.recent:
                if write.origin == index:
                    for other, visible in enumerate(write.visible_at):
                        if visible > now:
                            write.visible_at[other] = INF
            if shard.multi_master:
                # No promotion: the other masters carry on without the writes only it had.
                self._drop(
                    shard,
                    [
                        w
                        for w in shard.recent
                        if w.origin == index
                        and all(v == INF for i, v in enumerate(w.visible_at) if i != index)
                    ],
                    now,
                )
            if index == shard.master or shard.multi_master:
                # Writes waiting for replicas die with their master: the clients see errors.
                for operation in list(shard.unacked):
                    if operation.node == index:
                        shard.unacked.pop(operation)
                        self._fail(operation, shard, Cause.DATABASE_ERROR)
        else:
            self._resync(shard, index, now)
        generation = self._verdicts.get(node, 0) + 1
        self._verdicts[node] = generation
        detection = self.spec.detection
        if node.serving != shard.believed_up[index]:
            delay = (
                detection.rejoin_delay(self._detection_rng)
                if node.serving
                else detection.detection_delay(
                    self._detection_rng, refused=node.refuses_connections
                )
            )
            timer = self.env.timeout(delay)
            timer.callbacks.append(lambda _: self._verdict(shard, index, generation))
        self._account(shard)

    def _resync(self, shard: _Shard, index: int, now: float) -> None:
        """A node serves again: it copies what live nodes have that it lacks, and what it has
        that live nodes lack is shipped to them anew (a master back from a short crash, before
        anyone noticed, still has its unshipped writes)."""
        nodes = shard.nodes
        for write in [*shard.recent, *shard.last_write.values()]:
            visible = write.visible_at
            if visible[index] > now and any(
                v <= now and nodes[i].serving for i, v in enumerate(visible) if i != index
            ):
                visible[index] = now
            if visible[index] <= now:
                for other, seen in enumerate(visible):
                    if other != index and seen == INF and nodes[other].serving:
                        arrival = max(now + next(self._apply_delay), shard.last_visible[other])
                        visible[other] = shard.last_visible[other] = arrival
        shard.last_visible[index] = now

    def _truncate(self, shard: _Shard, index: int, now: float) -> None:
        """A node that stops serving applies nothing more: what it has not seen, it never will
        (it resynchronizes from the master when it comes back)."""
        for write in shard.recent:
            if write.visible_at[index] > now:
                write.visible_at[index] = INF
        shard.last_visible[index] = now

    def _verdict(self, shard: _Shard, index: int, generation: int) -> None:
        node = shard.nodes[index]
        if self._verdicts[node] != generation:
            return
        self._account(shard)
        up = node.serving
        shard.believed_up[index] = up
        self.monitor.rotation_changed(node, up, "detected up" if up else "detected down")
        if up:
            # Back in the pool (resynchronized when it came back), as a replica if another
            # node became master meanwhile: fencing, never two masters.
            if not shard.multi_master and shard.master is None and not shard.promoting:
                self._start_failover(shard)
        elif not shard.multi_master and index == shard.master:
            self._start_failover(shard)
        self._account(shard)
        self.monitor.refresh()

    def _start_failover(self, shard: _Shard) -> None:
        if shard.master is not None:
            shard.master_failed_at = shard.down_since[shard.master]
        failed_at = shard.master_failed_at  # a retried failover still dates from the crash
        shard.master = None
        shard.promoting = True
        self.monitor.promotion_started(shard.nodes[0].pool)
        timer = self.env.timeout(next(self._promotion))
        timer.callbacks.append(lambda _: self._promote(shard, failed_at))

    def _promote(self, shard: _Shard, failed_at: float) -> None:
        shard.promoting = False
        self.monitor.promotion_ended(shard.nodes[0].pool)
        now = self.env.now
        self._account(shard)
        candidates = [
            i for i in range(len(shard.nodes)) if shard.believed_up[i] and shard.nodes[i].serving
        ]
        if not candidates:
            self.monitor.refresh()
            return  # no replica to promote: wait until one comes back
        watermark = {i: self._watermark(shard, i) for i in candidates}
        promoted = max(candidates, key=lambda i: (watermark[i], -i))
        self._lose_writes_beyond(shard, promoted, watermark[promoted], failed_at)
        shard.master = promoted
        if self.measuring:
            self.failovers.append(now - failed_at)
        self.monitor.log(shard.nodes[promoted].name, "promoted to master")
        waiting, shard.waiting = shard.waiting, []
        self._account(shard)
        for operation in waiting:
            if operation.live:
                self._send(operation, shard)
        self.monitor.refresh()

    def _watermark(self, shard: _Shard, node: int) -> int:
        """The last write ``node`` has, in sequence order (replication applies in order)."""
        applied = 0
        for write in shard.recent:
            if write.visible_at[node] == INF:
                break
            applied = write.seq
        return applied if shard.recent else shard.next_seq - 1

    def _lose_writes_beyond(
        self, shard: _Shard, promoted: int, watermark: int, failed_at: float
    ) -> None:
        """Writes the new master never got are gone: acknowledged, then lost. The RPO is the
        span of data lost: from the oldest lost write to the master's failure."""
        lost = [w for w in shard.recent if w.seq > watermark and w.visible_at[promoted] == INF]
        self._drop(shard, lost, failed_at)

    def _drop(self, shard: _Shard, lost: list[Write], failed_at: float) -> None:
        if not lost:
            return
        if self.measuring:
            self.lost_writes += len(lost)
            self.rpo_s = max(self.rpo_s, failed_at - min(w.acked_at for w in lost))
        gone = {id(w) for w in lost}
        for key in {w.key for w in lost}:
            write = shard.last_write[key]
            while write is not None and id(write) in gone:
                write = write.previous
            if write is None:
                del shard.last_write[key]
            else:
                shard.last_write[key] = write
        shard.recent = deque(w for w in shard.recent if id(w) not in gone)

    # -- what the monitor asks ----------------------------------------------------------------

    def knows(self, server: Server) -> bool:
        return server in self._shard_of_node

    def routes_to(self, server: Server) -> bool:
        shard = self._shard_of_node[server]
        return shard.believed_up[shard.nodes.index(server)]

    def back_in_service(self, server: Server) -> bool:
        """Believed up in its shard, and the shard takes writes again (a master is promoted
        and serving): a master repaired before its failover ends is not yet a restored shard."""
        shard = self._shard_of_node[server]
        master = shard.master
        writable = shard.multi_master or (
            master is not None and shard.believed_up[master] and shard.nodes[master].serving
        )
        return self.routes_to(server) and writable

    def _account(self, shard: _Shard) -> None:
        now = self.env.now
        if self.measuring:
            elapsed = now - shard._since
            shard.writable_s += elapsed * shard._writable
            shard.readable_s += elapsed * shard._readable
        shard._since = now
        shard._writable, shard._readable = self._serves(shard)
        if shard._writable and shard._readable:
            self._impaired.discard(shard.index)
        else:
            self._impaired.add(shard.index)

    def _serves(self, shard: _Shard) -> tuple[bool, bool]:
        serving = [shard.believed_up[i] and n.serving for i, n in enumerate(shard.nodes)]
        if shard.multi_master:
            writable = any(serving)
        else:
            writable = shard.master is not None and serving[shard.master]
        if not shard.multi_master and self.replication.read_from == "master":
            return writable, writable
        return writable, any(serving)

    def settled(self) -> bool:
        """Every node alive and believed up, every shard with a master and no failover or
        waiting write under way."""
        return all(
            not shard.promoting
            and not shard.waiting
            and (shard.multi_master or shard.master is not None)
            and all(shard.believed_up)
            and all(node.alive and node.serving for node in shard.nodes)
            for shard in self.shards
        )

    def whole(self) -> bool:
        """Every shard can take writes and serve reads now."""
        return not self._impaired

    def shard_states(self) -> list[tuple[bool, bool]]:
        """Per shard, whether it can take a write and serve a read now: a node serves when it
        is alive, reachable and believed up; a write needs the master (any node in
        multi-master), a read any node it may read from. (Kept by :meth:`_account`, which
        runs after every change of a node, a belief or the master.)"""
        return [(shard._writable, shard._readable) for shard in self.shards]

    def failed_nodes(self, index: int) -> list[Server]:
        """The nodes of shard ``index`` that cannot serve now."""
        shard = self.shards[index]
        return [n for i, n in enumerate(shard.nodes) if not (shard.believed_up[i] and n.serving)]

    def start_window(self) -> None:
        for shard in self.shards:
            self._account(shard)
        self.measuring = True
        for shard in self.shards:
            shard._since = self.env.now

    def summary(self, measured_s: float) -> dict:
        """The data tier's figures over the measurement window."""
        for shard in self.shards:
            self._account(shard)
        operations = sum(s.operations for s in self.shards)
        failed = sum(s.failed_operations for s in self.shards)
        lag = self.replication_lag
        return {
            "operations": operations,
            "failed_operations": failed,
            "availability": (operations - failed) / operations if operations else math.nan,
            "reads": self.reads,
            "stale_reads": self.stale_reads,
            "stale_read_fraction": self.stale_reads / self.reads if self.reads else math.nan,
            "writes": self.writes,
            "lost_writes": self.lost_writes,
            "rpo_s": self.rpo_s,
            "conflicts": self.conflicts,
            "lost_updates": self.lost_updates,
            "failovers": len(self.failovers),
            "mean_failover_s": float(np.mean(self.failovers)) if self.failovers else math.nan,
            "write_latency_s": {
                "mean": self.write_latency.mean(),
                "p50": self.write_latency.quantile(0.5),
                "p99": self.write_latency.quantile(0.99),
            },
            "replication_lag_s": {"p50": lag.quantile(0.5), "p99": lag.quantile(0.99)},
            "shards": {
                str(shard.index): {
                    "share": float(self.shard_shares[shard.index]),
                    "operations": shard.operations,
                    "availability": (
                        (shard.operations - shard.failed_operations) / shard.operations
                        if shard.operations
                        else math.nan
                    ),
                    "time_writable": shard.writable_s / measured_s,
                    "time_readable": shard.readable_s / measured_s,
                }
                for shard in self.shards
            },
        }
