"""The data tier: database nodes in shards, and the router that sends them operations.

An application server that serves a request of a class with ``database: {reads, writes}``
holds its worker while it runs those operations one after another, each on a key drawn by
popularity. Each database node is a :class:`Server` (workers, queue, crashes, partitions) that
serves operations instead of requests.

The data tier is a router. Each shard's replication strategy (:mod:`sim.model.replication`, one
per ``replication.kind``) says where an operation goes, when a write is acknowledged, what a
node's death costs and whom a failover promotes; each shard's write log
(:mod:`sim.model.write_log`) knows which node sees which write when. What is the same for
every kind lives here: sending operations, shipping and acknowledging writes (with the timers
of acknowledgements and their timeout), detection's verdicts, the failover's timer, and the
figures the summary reports.

Detection, never magic: in a run with requests each node is watched by a real detector (the
scenario's ``database.detection``: probes or heartbeats, see :mod:`sim.model.detection`) that
reports to the failover manager, so a slow, paused or cut-off node is suspected exactly when
its detector would suspect it. The long-horizon mode, which simulates no probe, draws each
verdict's delay from the detector's law instead: exact for crashes and repairs, blind to
false suspicions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
from simpy.events import Timeout

from sim.metrics import LatencyHistogram
from sim.model.balancing import Backend
from sim.model.network import FAILOVER_MANAGER, Network
from sim.model.replication import REPLICATION_STRATEGIES
from sim.model.server import MAX_QUEUE, QueueOverflowError, Server
from sim.model.sharding import HashRing, KeySpace
from sim.model.write_log import INF, Write, WriteLog
from sim.request import Cause
from sim.scenario import DatabaseSpec
from sim.streams import Streams

if TYPE_CHECKING:
    from sim.model.cache import CacheTier
    from sim.model.monitor import Monitor
    from sim.request import Attempt

__all__ = ["DataTier", "DatabaseOperation", "Shard"]

_OK = Cause.OK  # a global's lookup costs less than an enum member's, twice per operation


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
        "sent_at",
        "shard",
    )

    def __init__(
        self, job: _Job, kind: str, key: int, shard: int, demand_s: float, now: float
    ) -> None:
        self.class_index = job.attempt.request.class_index
        self.job = job
        self.kind = kind
        self.key = key
        self.shard = shard
        """The index of the shard that holds ``key``."""
        self.demand_s = demand_s
        self.sent_at = now
        self.queued_at = now
        self.node = -1
        self.live = True

    @property
    def request(self) -> DatabaseOperation:
        """Itself: a Server reads an attempt's class through ``.request``. A property, not an
        attribute, so that an operation is no reference cycle: refcounting frees it (and the
        job and attempt it holds) the moment it ends, and the cyclic collector never has to."""
        return self


class _Job:
    """The database phase of one request: its operations, in order."""

    __slots__ = ("attempt", "cached", "kinds", "next", "on_done", "shards")

    def __init__(self, attempt, kinds: tuple[str, ...], on_done, cached: bool) -> None:
        self.attempt = attempt
        self.kinds = kinds
        self.next = 0
        self.on_done = on_done
        self.cached = cached
        """Its reads look in the cache first (a cacheable class, and a cache)."""


class Shard:
    """One replica group: its nodes, who is master, who is believed up, its write log, and the
    operations it holds. What a replication strategy decides from."""

    def __init__(self, index: int, nodes: list[Server], multi_master: bool) -> None:
        self.index = index
        self.nodes = nodes
        self.multi_master = multi_master
        """Several nodes take writes at once (the strategy's ``many_masters``)."""
        self.master: int | None = None if multi_master else 0
        """The node that takes writes; None during a failover (and with several masters)."""
        self.believed_up = [True] * len(nodes)
        self.log = WriteLog(len(nodes))
        self.turn = 0
        self.waiting: list[DatabaseOperation] = []
        """Writes that found no node to take them, waiting for one (writes_during_failover)."""
        self.promoting = False
        self.checked_lag = [0.0] * len(nodes)
        """Each node's replication lag, seconds, as the router last measured it."""
        self.deposed: dict[int, float | None] = {}
        """Old masters that still take writes because no demotion reached them (split brain
        under ``fencing: none``), with when a new master was promoted (None: not yet)."""
        self.acknowledging = [i != self.master for i in range(len(nodes))]
        """Per node: whether the master counts on its acknowledgements (semi-sync, sync); the
        replication strategy keeps it (:meth:`ReplicationStrategy.timed_out`)."""
        self.async_since: float | None = None
        """When the master fell back to asynchronous replication after an ack timeout; None
        while it waits for acknowledgements as its mode says."""
        self.ack_timer = False
        """Whether the ack timeout of the oldest write waiting is scheduled."""
        self.catch_up_timer = False
        """Whether a check that a replica left out has caught up is scheduled."""
        self.master_failed_at = 0.0
        self.old_master: int | None = None
        """The master the last failover replaced."""
        self.operations = 0
        self.failed_operations = 0
        self.writable_s = 0.0
        self.readable_s = 0.0
        self._since = 0.0
        self._writable = True
        self._readable = True

    @property
    def unacked(self) -> dict[DatabaseOperation, list[float]]:
        """Writes taken by the master, waiting for replicas to acknowledge them, oldest first,
        with when each node gets them (the write log's writes in flight)."""
        return self.log.in_flight

    @property
    def last_write(self) -> dict[int, Write]:
        """The newest committed write of each key (the write log's)."""
        return self.log.last_write

    def next_in_turn(self, candidates: list[int]) -> int | None:
        """The next of ``candidates`` in round-robin order, or None when there is none."""
        if not candidates:
            return None
        self.turn += 1
        return candidates[self.turn % len(candidates)]


class DataTier:
    """Shards of database nodes: routes each operation as the replication strategy says, and
    keeps what is the same for every kind (shipping, acknowledgements, detection, failover)."""

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
        self.strategy = REPLICATION_STRATEGIES.get(replication.kind)(replication, streams)
        # Bound once: these run for every operation and every change of a node.
        self._write_node = self.strategy.write_node
        self._read_node = self.strategy.read_node
        self._acknowledged_at = self.strategy.acknowledged_at
        self._serves = self.strategy.serves
        self._hold_writes = replication.writes_during_failover == "wait"
        size = spec.nodes_per_shard()
        self.shards = [
            Shard(i, nodes[i * size : (i + 1) * size], self.strategy.many_masters)
            for i in range(spec.shards)
        ]
        self._shard_of_node = {node: shard for shard in self.shards for node in shard.nodes}
        self._index_of_node = {
            node: index for shard in self.shards for index, node in enumerate(shard.nodes)
        }
        self._impaired: set[int] = set()
        """Shards that cannot take a write or serve a read now (kept by :meth:`_account`)."""
        self._keys: dict[str, Iterator[tuple[int, int]]] = {}
        self._plans: dict[str, tuple] = {}
        """Per class: (reads, writes), the kinds of its operations in order, its keys, and
        whether its reads look in the cache (built at its first request)."""
        self.cache: CacheTier | None = None
        """The cache in front of the nodes (:meth:`use_cache`), if any."""
        self._cached_classes: frozenset[str] = frozenset()
        self.reads_sent = 0
        self.writes_sent = 0
        """Operations sent to the nodes since the start of the run (the time series' load)."""
        self._streams = streams
        self._read_time = spec.read_time.sampler(streams.generator("database/read_time"))
        self._write_time = spec.write_time.sampler(streams.generator("database/write_time"))
        self._apply_delay = replication.apply_delay.sampler(
            streams.generator("database/apply_delay")
        )
        self._detection_rng = spec.detection.delay_stream(streams.generator("database/detection"))
        self._verdicts: dict[Server, int] = {}
        self.network = Network()
        """Links partial partitions cut (the failure injector's, set by the cluster)."""
        fencing = getattr(replication, "fencing", None)
        self.fencing = fencing.kind if fencing is not None else "none"
        self._fencing = fencing
        self.stonith: Callable[[Server, float], None] | None = None
        """Powers a node off for a while, out of band (set by the cluster)."""
        self.sampled_detection = True
        """Verdicts as delays drawn from the detector's law (the long-horizon mode); after
        :meth:`watch` real detector processes give them."""
        for node in nodes:
            node.respond = self._answered
        # What the summary reports, counted in the measurement window only.
        self.measuring = False
        self.reads = 0
        self.stale_reads = 0
        self.writes = 0
        self.lost_writes = 0
        self.lost_writes_async_fallback = 0
        self.ack_timeouts = 0
        self.stalled_writes = 0
        self.write_stall_s = 0.0
        self.async_fallback_s = 0.0
        self._window_start = 0.0
        self.rpo_s = 0.0
        self.conflicts = 0
        self.lost_updates = 0
        self.split_brain_writes = 0
        self.split_brain_s = 0.0
        self.failovers: list[float] = []
        self.write_latency = LatencyHistogram()
        self.replication_lag = LatencyHistogram()

    @cached_property
    def keys(self) -> KeySpace:
        """The key space and each key's shard on the ring: built at the first request (a
        long-horizon run, which has none, never pays for its hundred thousand keys)."""
        spec = self.spec
        ring = HashRing(spec.shards, spec.virtual_nodes)
        return KeySpace(spec.keys.count, spec.keys.popularity, spec.keys.zipf_exponent, ring)

    @cached_property
    def shard_shares(self) -> np.ndarray:
        """The fraction of key accesses that land on each shard."""
        return self.keys.shard_shares(self.spec.shards)

    def use_cache(self, cache: CacheTier, cacheable_classes: frozenset[str]) -> None:
        """Reads of ``cacheable_classes`` look in ``cache`` first; every write invalidates."""
        self.cache = cache
        self._cached_classes = cacheable_classes
        self._plans.clear()

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
        plan = self._plans.get(class_name)
        if plan is None or plan[0] != (reads, writes):
            if class_name not in self._keys:
                rng = self._streams.generator(f"database/keys/{class_name}")
                self._keys[class_name] = self.keys.sampler(rng)
            kinds = ("read",) * reads + ("write",) * writes
            cached = class_name in self._cached_classes
            plan = (reads, writes), kinds, self._keys[class_name], cached
            self._plans[class_name] = plan
        job = _Job(attempt, plan[1], on_done, plan[3])
        job.shards = plan[2]
        self._step(job)

    def _step(self, job: _Job) -> None:
        if job.next == len(job.kinds):
            job.on_done(job.attempt, _OK)
            return
        kind = job.kinds[job.next]
        key, shard_index = next(job.shards)
        if kind == "read":
            operation = DatabaseOperation(
                job, kind, key, shard_index, next(self._read_time), self.env.now
            )
            if job.cached:
                self.cache.look_up(operation)  # on to the database only if it misses
                return
            self.reads_sent += 1
        else:
            operation = DatabaseOperation(
                job, kind, key, shard_index, next(self._write_time), self.env.now
            )
            self.writes_sent += 1
        shard = self.shards[shard_index]
        if self.measuring:
            shard.operations += 1
        self._send(operation, shard)

    def read_hit(self, operation: DatabaseOperation) -> None:
        """The cache had the key of a read: the request goes on without the database."""
        self._done(operation)

    def read_missed(self, operation: DatabaseOperation) -> None:
        """The cache did not have the key of a read (or its node did not answer): the database
        serves it."""
        self.reads_sent += 1
        shard = self.shards[operation.shard]
        if self.measuring:
            shard.operations += 1
        self._send(operation, shard)

    def _send(self, operation: DatabaseOperation, shard: Shard) -> None:
        write = operation.kind == "write"
        node = self._write_node(shard) if write else self._read_node(shard, self.env.now)
        if node is None:
            if write and self._hold_writes:
                self._hold(operation, shard)  # until a node can take it
                return
            self._fail(operation, shard, Cause.DATABASE_FAILOVER)
            return
        operation.node = node
        target = shard.nodes[node]
        if self.network.partial and not self.network.both_ways(
            operation.job.attempt.backend.server.name, target.name
        ):
            # Cut off from this client: it waits for its connect timeout, as for any host
            # that does not answer.
            timer = Timeout(self.env, target.connect_timeout_s)
            timer.callbacks.append(lambda _: self._fail(operation, shard, Cause.DATABASE_ERROR))
            return
        target.submit(operation)

    def _hold(self, operation: DatabaseOperation, shard: Shard) -> None:
        """Keep a write for the next master; past :data:`MAX_QUEUE` of them the run stops."""
        if len(shard.waiting) >= MAX_QUEUE:
            raise QueueOverflowError(
                f"the writes waiting for a master of shard {shard.index}",
                self.env.now,
                "No replica could be promoted for a long time: give the shard replicas, or set"
                " replication.writes_during_failover: fail",
            )
        shard.waiting.append(operation)

    def _release_waiting(self, shard: Shard) -> None:
        """Send the writes held for want of a node again (those that still find none wait)."""
        waiting, shard.waiting = shard.waiting, []
        for operation in waiting:
            if operation.live:
                self._send(operation, shard)

    def _fail(self, operation: DatabaseOperation, shard: Shard, cause: Cause) -> None:
        if self.measuring:
            shard.failed_operations += 1
        operation.live = False
        operation.job.on_done(operation.job.attempt, cause)

    def _answered(self, operation: DatabaseOperation, cause: Cause) -> None:
        """A node finished (or refused, or lost) an operation."""
        if not operation.live:
            return
        shard = self.shards[operation.shard]
        if cause != _OK:
            self._fail(operation, shard, Cause.DATABASE_ERROR)
            return
        if operation.kind == "read":
            self._read(operation, shard)
        else:
            self._write(operation, shard)

    def _done(self, operation: DatabaseOperation) -> None:
        job = operation.job
        job.next += 1
        if job.next == len(job.kinds):
            job.on_done(job.attempt, _OK)  # the request's last operation: no step to take
        else:
            self._step(job)

    # -- reads --------------------------------------------------------------------------------

    def version_seen(self, shard: Shard, node: int, key: int) -> int:
        """The sequence number of the write to ``key`` that ``node`` shows now (0: older)."""
        return shard.log.version_seen(node, key, self.env.now)

    def _read(self, operation: DatabaseOperation, shard: Shard) -> None:
        if self.measuring:
            self.reads += 1
            if shard.log.stale(operation.node, operation.key, self.env.now):
                self.stale_reads += 1
        if operation.job.cached:  # a cacheable read here missed: the client fills the key
            self.cache.fill(operation)
        self._done(operation)

    # -- writes -------------------------------------------------------------------------------

    def _write(self, operation: DatabaseOperation, shard: Shard) -> None:
        """A node took a write: ship it, and commit it when the strategy acknowledges it."""
        now = self.env.now
        origin = operation.node
        if not shard.multi_master and not self._takes_writes(shard, origin):
            # Demoted to read-only, or its lease ran out, while it held the write: refused.
            self._fail(operation, shard, Cause.DATABASE_ERROR)
            return
        serving = [node.serving for node in shard.nodes]
        if self.network.partial or shard.deposed:
            serving = self._shipped_to(shard, origin, serving)
        arrivals = shard.log.ship(origin, now, serving, self._apply_delay)
        if self.measuring:
            for index, arrival in enumerate(arrivals):
                if index != origin and arrival < INF:
                    self.replication_lag.add(arrival - now)
        if shard.deposed.get(origin) is not None:
            # A second master: its replicas follow the new one, so it waits for no
            # acknowledgement of theirs (its own ack timeout would only delay this write).
            self._commit(operation, shard, arrivals, now, True)
            return
        acked_at = self._acknowledged_at(shard, now, arrivals)
        if acked_at > now:
            self._await_acknowledgement(operation, shard, arrivals, acked_at)
        else:
            self._commit(operation, shard, arrivals, acked_at, shard.async_since is not None)

    def _takes_writes(self, shard: Shard, node: int) -> bool:
        """The master, or a deposed master no demotion has reached; under a lease, only
        while it holds it."""
        if node != shard.master and node not in shard.deposed:
            return False
        return self.fencing != "lease" or self._holds_lease(shard, node)

    def _shipped_to(self, shard: Shard, origin: int, serving: list[bool]) -> list[bool]:
        """Where a write taken by ``origin`` goes: nowhere from a deposed master (the replicas
        follow the new one), else to serving nodes its link reaches."""
        if shard.deposed.get(origin) is not None:
            return [False] * len(serving)
        name, network = shard.nodes[origin].name, self.network
        return [
            up and network.reaches(name, n.name) for up, n in zip(serving, shard.nodes, strict=True)
        ]

    def _commit(
        self,
        operation: DatabaseOperation,
        shard: Shard,
        arrivals: list[float],
        acked_at: float,
        async_fallback: bool,
    ) -> None:
        """The write is acknowledged at ``acked_at`` (``async_fallback``: by a master fallen
        back to asynchronous replication): into the log, visible nowhere before, and its client
        goes on."""
        if not operation.live:
            return  # its node died before the replicas acknowledged: the client saw an error
        now = self.env.now
        if self.measuring and shard.deposed.get(operation.node) is not None:
            self.split_brain_writes += 1  # a second master took it
        log = shard.log
        serving = [node.serving for node in shard.nodes]
        visible_at = [max(arrival, acked_at) for arrival in arrivals]
        write = log.append(operation.key, operation.node, now, visible_at, serving, async_fallback)
        if self.measuring:
            # Written at another master and not yet seen here: concurrent. Last writer wins, so
            # the earlier write, acknowledged to its client, is silently overwritten.
            if shard.multi_master and log.concurrent(write):
                self.conflicts += 1
                self.lost_updates += 1
            self.writes += 1
            self.write_latency.add(now - operation.sent_at)
        log.forget_old(now)
        if self.cache is not None:  # cache-aside: the writer deletes the key it changed
            self.cache.invalidate(operation)
        self._done(operation)

    # -- acknowledgements (semi-sync, sync) ---------------------------------------------------

    def _await_acknowledgement(
        self, operation: DatabaseOperation, shard: Shard, arrivals: list[float], acked_at: float
    ) -> None:
        """The write waits for the replicas' acknowledgements (``acked_at``: when the one it
        needs is due, inf when none is coming), and for the ack timeout at the latest."""
        shard.unacked[operation] = arrivals
        if acked_at < INF:
            self._expect_acknowledgement(operation, shard, acked_at)
        if not shard.ack_timer:
            self._start_ack_timer(shard)

    def _expect_acknowledgement(
        self, operation: DatabaseOperation, shard: Shard, due: float
    ) -> None:
        timer = Timeout(self.env, due - self.env.now, operation)
        timer.callbacks.append(lambda _: self._acknowledgement_due(operation, shard, due))

    def _acknowledgement_due(self, operation: DatabaseOperation, shard: Shard, due: float) -> None:
        """The acknowledgement a waiting write needed was due: commit it if it came (the
        replica was still there to get the write), else wait for the next one due, or the ack
        timeout."""
        arrivals = shard.unacked.get(operation)
        if arrivals is None:
            return  # committed at an ack timeout, or failed with its master
        acked_at = self._acknowledged_at(shard, arrivals[operation.node], arrivals)
        if acked_at <= due:
            del shard.unacked[operation]
            self._commit(operation, shard, arrivals, due, shard.async_since is not None)
        elif acked_at < INF:
            self._expect_acknowledgement(operation, shard, acked_at)

    def _start_ack_timer(self, shard: Shard) -> None:
        """Time out the oldest write waiting, ``ack_timeout`` after it was taken (writes wait in
        the order they were taken, so the oldest times out first)."""
        operation, arrivals = next(iter(shard.unacked.items()))
        shard.ack_timer = True
        deadline = arrivals[operation.node] + self.strategy.ack_timeout
        timer = Timeout(self.env, max(deadline - self.env.now, 0.0))
        timer.callbacks.append(lambda _: self._ack_timed_out(shard, operation))

    def _ack_timed_out(self, shard: Shard, operation: DatabaseOperation) -> None:
        shard.ack_timer = False
        arrivals = shard.unacked.get(operation)
        if arrivals is not None:  # still waiting: no acknowledgement came in time
            if self.measuring:
                self.ack_timeouts += 1
            self.strategy.timed_out(shard, self.env.now, arrivals)
            self._commit_acknowledged(shard, stalled=True)
            if operation in shard.unacked:
                raise RuntimeError(
                    f"replication strategy {self.replication.kind!r} left a write waiting past"
                    " its ack timeout: it must count on no replica that did not acknowledge it"
                )
            self._catch_up(shard)
        if shard.unacked and not shard.ack_timer:
            self._start_ack_timer(shard)

    def _commit_acknowledged(self, shard: Shard, stalled: bool) -> None:
        """Commit the waiting writes the strategy now deems acknowledged (after an ack timeout:
        ``stalled``, counted), and expect the acknowledgements the others now need."""
        now = self.env.now
        for operation, arrivals in list(shard.unacked.items()):
            if operation not in shard.unacked:
                continue
            taken_at = arrivals[operation.node]
            acked_at = self._acknowledged_at(shard, taken_at, arrivals)
            if acked_at <= now:
                del shard.unacked[operation]
                if stalled and self.measuring:
                    self.stalled_writes += 1
                    self.write_stall_s += now - taken_at
                self._commit(operation, shard, arrivals, now, shard.async_since is not None)
            elif acked_at < INF:
                self._expect_acknowledgement(operation, shard, acked_at)

    def _catch_up(self, shard: Shard) -> None:
        """Take back each replica the master left out that has every write now; check again
        when the next of them is due to have them (its acknowledgement of the newest write)."""
        if shard.master is None:
            return  # a failover is under way: the new master starts afresh
        fallback_since = shard.async_since
        now = self.env.now
        log = shard.log
        next_due = INF
        for index in range(len(shard.nodes)):
            if shard.acknowledging[index] or index == shard.master:
                continue
            due = log.due(index)
            if due <= now:
                self.strategy.caught_up(shard, index)
            else:
                next_due = min(next_due, due)
        if fallback_since is not None and shard.async_since is None:
            self._fallback_ended(fallback_since, now)
        if next_due < INF and not shard.catch_up_timer:
            shard.catch_up_timer = True
            timer = Timeout(self.env, next_due - now)
            timer.callbacks.append(lambda _: self._catch_up_due(shard))

    def _catch_up_due(self, shard: Shard) -> None:
        shard.catch_up_timer = False
        self._catch_up(shard)

    def _replica_resumed(self, shard: Shard, index: int) -> None:
        """A node serves again, having copied what the master has, the writes waiting for
        acknowledgements included: it acknowledges them, and the master takes it back once it
        has every write."""
        if index == shard.master:
            return
        self._catch_up(shard)
        if shard.unacked:
            self._commit_acknowledged(shard, stalled=False)

    def _fallback_ended(self, since: float, until: float) -> None:
        if self.measuring:
            self.async_fallback_s += max(until - max(since, self._window_start), 0.0)

    # -- failures -----------------------------------------------------------------------------

    def node_changed(self, node: Server) -> None:
        """The truth about ``node`` changed: account, react, and schedule detection's verdict."""
        shard = self._shard_of_node[node]
        index = self._index_of_node[node]
        now = self.env.now
        self._account(shard)
        if not node.serving:
            shard.log.node_stopped(index, now)
            lost = self.strategy.lost_with(shard, index)
            if lost:
                self._drop(shard, lost, now)
            if shard.unacked:
                # Writes waiting for replicas die with the node that took them: the clients
                # see errors.
                for operation in list(shard.unacked):
                    if operation.node == index:
                        shard.unacked.pop(operation)
                        self._fail(operation, shard, Cause.DATABASE_ERROR)
        else:
            serving = [other.serving for other in shard.nodes]
            shard.log.node_resumed(index, now, serving, self._apply_delay)
            self._replica_resumed(shard, index)
        if not self.sampled_detection:
            self._account(shard)
            return  # the node's detector will notice, or not
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

    def check_lag(self) -> None:
        """Start measuring replicas' lag, for reads within a lag bound (a run with requests:
        the long-horizon mode has no reads, and a check every few seconds for centuries would
        cost more than everything else)."""
        replication = self.replication
        interval = getattr(replication, "lag_check_interval", None)  # master-slave only
        if interval is not None and replication.read_from == "replicas_within_lag":
            self._check_lag(interval)

    def _check_lag(self, interval: float) -> None:
        """Measure every replica's lag now and every ``interval`` seconds, as a proxy's
        monitor polls its replicas (reads within the lag bound go by the last measure)."""
        now = self.env.now
        for shard in self.shards:
            log = shard.log
            shard.checked_lag = [log.lag_of(i, now) for i in range(len(shard.nodes))]
        self.env.timeout(interval).callbacks.append(lambda _: self._check_lag(interval))

    def watch(self, start: Callable[[Backend, Any], None]) -> None:
        """Watch every node with a real detector: ``start(backend, watcher)`` starts one on
        ``backend`` (the node as the failover manager sees it) that tells ``watcher`` its
        verdicts through ``mark_down`` and ``mark_up``, as it tells a balancer. Sampled
        verdicts stop."""
        self.sampled_detection = False
        watcher = _FailoverManager(self)
        for shard in self.shards:
            for index, node in enumerate(shard.nodes):
                start(Backend(index, node.name, 1.0, _SeenByManager(node, self)), watcher)

    def _verdict(self, shard: Shard, index: int, generation: int) -> None:
        node = shard.nodes[index]
        if self._verdicts[node] != generation:
            return
        # The delay drawn was the detector's: its verdict is the node's state by then.
        self.believe(shard, index, node.serving)

    def believe(self, shard: Shard, index: int, up: bool) -> None:
        """Detection says node ``index`` of ``shard`` is up (or down): fail over, or take it
        back."""
        node = shard.nodes[index]
        if up and index in shard.deposed:
            self._demote(shard, index)  # the manager hears it again, and can demote it
        self._integrate(shard)  # nothing below reads the shard's state before it is reassessed
        shard.believed_up[index] = up
        self.monitor.rotation_changed(node, up, "detected up" if up else "detected down")
        delay = self.strategy.failover_delay(shard, index, up)
        if delay is not None:
            self._start_failover(shard, delay)
        self._account(shard)
        if up and shard.waiting:
            self._release_waiting(shard)  # the node back may take them (multi-master)
        self.monitor.refresh()

    def _start_failover(self, shard: Shard, delay: float) -> None:
        old = shard.master
        if old is not None:
            shard.old_master = old
            self._depose(shard, old)
        if shard.master is not None:
            shard.master_failed_at = shard.log.stopped_at[shard.master]
        failed_at = shard.master_failed_at  # a retried failover still dates from the crash
        shard.master = None
        shard.promoting = True
        self.monitor.promotion_started(shard.nodes[0].pool)
        timer = self.env.timeout(delay)
        timer.callbacks.append(lambda _: self._promote(shard, failed_at))

    def _promote(self, shard: Shard, failed_at: float) -> None:
        if not self._fenced(shard, failed_at):
            return
        shard.promoting = False
        self.monitor.promotion_ended(shard.nodes[0].pool)
        now = self.env.now
        self._account(shard)
        candidates = [i for i in range(len(shard.nodes)) if shard.believed_up[i]]
        if not candidates:
            self.monitor.refresh()
            return  # no replica to promote: wait until one comes back
        promoted = self.strategy.elect(shard, candidates)
        # The new master's log is the truth now: what it lacks is gone, acknowledged or not.
        # The RPO is the span of data lost: from the oldest lost write to the master's failure.
        self._drop(shard, shard.log.missing_at(promoted), failed_at)
        shard.master = promoted
        if shard.async_since is not None:
            self._fallback_ended(shard.async_since, failed_at)
        self.strategy.promoted(shard)
        if self.measuring:
            self.failovers.append(now - failed_at)
        self.monitor.log(shard.nodes[promoted].name, "promoted to master")
        self._account(shard)
        self._release_waiting(shard)
        self.monitor.refresh()

    # -- fencing ------------------------------------------------------------------------------

    def _depose(self, shard: Shard, old: int) -> None:
        """A failover starts: the manager tells the old master to turn read-only. A dead one
        comes back read-only anyway; one that serves clients but that the message cannot reach
        (cut off from the manager, or paused) keeps taking writes until a message does."""
        node = shard.nodes[old]
        if not node.serving or (
            not node.paused and self.network.reaches(FAILOVER_MANAGER, node.name)
        ):
            return
        shard.deposed[old] = None
        self.monitor.log(node.name, "deposed master still takes writes", self.fencing)
        if node.paused:
            node.on_resume.append(lambda: self._demote(shard, old))

    def _fenced(self, shard: Shard, failed_at: float) -> bool:
        """Whether the promotion may go ahead now, as fencing says (True); else it has been
        put off or called off."""
        old = shard.old_master
        if self.fencing == "lease" and old is not None:
            lost = self._contact_lost_at(shard, old)
            if lost is None:  # the master still renews its lease: nothing to take over
                shard.promoting = False
                self.monitor.promotion_ended(shard.nodes[0].pool)
                shard.deposed.pop(old, None)
                shard.master = old
                self.monitor.log(shard.nodes[old].name, "failover called off: lease renewed")
                self._account(shard)
                self._release_waiting(shard)
                self.monitor.refresh()
                return False
            expiry = lost + self._fencing.lease_time
            if expiry > self.env.now:
                timer = self.env.timeout(expiry - self.env.now)
                timer.callbacks.append(lambda _: self._promote(shard, failed_at))
                return False
            shard.deposed.pop(old, None)  # its lease has run out: it takes no write now
        for deposed in list(shard.deposed):
            if self.fencing == "stonith" and self.stonith is not None:
                del shard.deposed[deposed]
                self.monitor.log(shard.nodes[deposed].name, "fenced: powered off (STONITH)")
                self.stonith(shard.nodes[deposed], self._fencing.reboot_time)
            else:
                shard.deposed[deposed] = self.env.now  # two masters from now on
        return True

    def _holds_lease(self, shard: Shard, node: int) -> bool:
        lost = self._contact_lost_at(shard, node)
        return lost is None or self.env.now - lost < self._fencing.lease_time

    def _contact_lost_at(self, shard: Shard, index: int) -> float | None:
        """Since when ``index`` has not renewed its lease (None: it renews): since it
        stopped, paused, or lost its link to the manager, whichever came first."""
        node, network = shard.nodes[index], self.network
        times = [
            network.cut_since(node.name, FAILOVER_MANAGER),
            network.cut_since(FAILOVER_MANAGER, node.name),
            node._paused_at if node.paused else None,
            shard.log.stopped_at[index] if not node.serving else None,
        ]
        times = [time for time in times if time is not None]
        return min(times) if times else None

    def _demote(self, shard: Shard, node: int) -> None:
        """A message of the manager reaches a deposed master: read-only now, and the writes
        it took as a second master, which no other node has, are thrown away."""
        if node not in shard.deposed:
            return
        promoted_at = shard.deposed.pop(node)
        now = self.env.now
        if promoted_at is None:  # demoted before a new master was promoted: no second master
            self.monitor.log(shard.nodes[node].name, "demoted to replica")
            return
        if self.measuring:
            self.split_brain_s += now - promoted_at
        self._drop(shard, shard.log.held_only_by(node), now)
        self.monitor.log(shard.nodes[node].name, "demoted to replica")

    def links_changed(self, ends: set[str]) -> None:
        """Partitions cut or healed links between ``ends``: a deposed master the manager
        reaches again is demoted."""
        now = self.env.now
        for shard in self.shards:
            for index in list(shard.deposed):
                node = shard.nodes[index]
                reached = self.network.reaches(FAILOVER_MANAGER, node.name)
                if node.name in ends and reached and not node.paused:
                    self._demote(shard, index)
            for index, node in enumerate(shard.nodes):
                if (
                    node.name in ends and node.serving
                ):  # a replica reconnected copies what it missed
                    serving = [other.serving for other in shard.nodes]
                    shard.log.node_resumed(index, now, serving, self._apply_delay)

    def _drop(self, shard: Shard, lost: list[Write], failed_at: float) -> None:
        """Writes acknowledged, then lost (``failed_at``: when the node that had them died)."""
        if not lost:
            return
        if self.measuring:
            self.lost_writes += len(lost)
            self.lost_writes_async_fallback += sum(write.async_fallback for write in lost)
            self.rpo_s = max(self.rpo_s, failed_at - min(w.acked_at for w in lost))
        shard.log.drop(lost)

    # -- what the monitor asks ----------------------------------------------------------------

    def knows(self, server: Server) -> bool:
        return server in self._shard_of_node

    def routes_to(self, server: Server) -> bool:
        return self._shard_of_node[server].believed_up[self._index_of_node[server]]

    def back_in_service(self, server: Server) -> bool:
        """Believed up in its shard, and the shard takes writes again (a master is promoted
        and serving): a master repaired before its failover ends is not yet a restored shard."""
        return self.routes_to(server) and self.strategy.takes_writes(self._shard_of_node[server])

    def _integrate(self, shard: Shard) -> None:
        """Count the time since the last change at the state assessed then."""
        now = self.env.now
        if self.measuring:
            elapsed = now - shard._since
            shard.writable_s += elapsed * shard._writable
            shard.readable_s += elapsed * shard._readable
        shard._since = now

    def _account(self, shard: Shard) -> None:
        """Integrate, then assess the shard's state again (after any change of a node, a
        belief or the master)."""
        self._integrate(shard)
        shard._writable, shard._readable = self._serves(shard)
        if shard._writable and shard._readable:
            self._impaired.discard(shard.index)
        else:
            self._impaired.add(shard.index)

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
        ) and (self.cache is None or self.cache.settled())

    def whole(self) -> bool:
        """Every shard can take writes and serve reads now."""
        return not self._impaired

    def shard_states(self) -> list[tuple[bool, bool]]:
        """Per shard, whether it can take a write and serve a read now, as its replication
        strategy's ``serves`` says (kept by :meth:`_account`, which runs after every change of
        a node, a belief or the master)."""
        return [(shard._writable, shard._readable) for shard in self.shards]

    def failed_nodes(self, index: int) -> list[Server]:
        """The nodes of shard ``index`` that cannot serve now."""
        shard = self.shards[index]
        return [n for i, n in enumerate(shard.nodes) if not (shard.believed_up[i] and n.serving)]

    def running_totals(self) -> dict[str, int]:
        """Reads and writes sent to the nodes since the start of the run, and the cache's
        counts (:meth:`CacheTier.totals`) when there is one."""
        totals = {"reads": self.reads_sent, "writes": self.writes_sent}
        if self.cache is not None:
            totals.update(self.cache.totals())
        return totals

    def start_window(self) -> None:
        for shard in self.shards:
            self._account(shard)
        self.measuring = True
        self._window_start = self.env.now
        for shard in self.shards:
            shard._since = self.env.now
        self._busy_at_window = [node.busy_time_so_far() for node in self.nodes_in_order()]
        if self.cache is not None:
            self.cache.start_window()

    def nodes_in_order(self) -> list[Server]:
        """Every node, shard by shard."""
        return [node for shard in self.shards for node in shard.nodes]

    def _utilizations(self, measured_s: float) -> list[float]:
        """Per node (shard by shard): busy worker-seconds in the window / (workers x window)."""
        then = getattr(self, "_busy_at_window", None)
        nodes = self.nodes_in_order()
        if then is None:
            then = [0.0] * len(nodes)
        capacity = self.spec.workers * measured_s
        return [
            (node.busy_time_so_far() - before) / capacity if capacity > 0 else math.nan
            for node, before in zip(nodes, then, strict=True)
        ]

    def summary(self, measured_s: float) -> dict:
        """The data tier's figures over the measurement window."""
        for shard in self.shards:
            self._account(shard)
        operations = sum(s.operations for s in self.shards)
        failed = sum(s.failed_operations for s in self.shards)
        lag = self.replication_lag
        now = self.env.now
        fallback_s = self.async_fallback_s + sum(
            max(now - max(shard.async_since, self._window_start), 0.0)
            for shard in self.shards
            if shard.async_since is not None and self.measuring
        )
        busy = self._utilizations(measured_s)
        per_shard = len(self.shards[0].nodes) if self.shards else 1
        figures = {
            "operations": operations,
            "failed_operations": failed,
            "utilization": float(np.mean(busy)) if busy else math.nan,
            "busiest_node_utilization": max(busy) if busy else math.nan,
            "availability": (operations - failed) / operations if operations else math.nan,
            "reads": self.reads,
            "stale_reads": self.stale_reads,
            "stale_read_fraction": self.stale_reads / self.reads if self.reads else math.nan,
            "writes": self.writes,
            "lost_writes": self.lost_writes,
            "lost_writes_async_fallback": self.lost_writes_async_fallback,
            "rpo_s": self.rpo_s,
            "ack_timeouts": self.ack_timeouts,
            "stalled_writes": self.stalled_writes,
            "write_stall_s": {
                "total": self.write_stall_s,
                "mean": (
                    self.write_stall_s / self.stalled_writes if self.stalled_writes else math.nan
                ),
            },
            "async_fallback_s": fallback_s,
            "conflicts": self.conflicts,
            "lost_updates": self.lost_updates,
            "split_brain_writes": self.split_brain_writes,
            "split_brain_s": self.split_brain_s
            + sum(
                self.env.now - since
                for shard in self.shards
                for since in shard.deposed.values()
                if since is not None
            ),
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
                    "utilization": float(
                        np.mean(busy[shard.index * per_shard : (shard.index + 1) * per_shard])
                    ),
                }
                for shard in self.shards
            },
        }
        if self.cache is not None:
            figures["cache"] = self.cache.summary()
        return figures


class _FailoverManager:
    """Where a database node's detector reports (the part of an Orchestrator, MHA or Patroni
    that watches nodes): the same two calls a balancer takes."""

    def __init__(self, tier: DataTier) -> None:
        self.tier = tier

    def mark_down(self, backend: Backend) -> None:
        self._tell(backend, False)

    def mark_up(self, backend: Backend) -> None:
        self._tell(backend, True)

    def _tell(self, backend: Backend, up: bool) -> None:
        backend.detected_up = up
        shard = self.tier._shard_of_node[backend.server.node]
        self.tier.believe(shard, backend.index, up)


class _SeenByManager:
    """A database node as the failover manager's detector sees it: the node itself, across
    the link between them (a partial partition may cut it, one way or both)."""

    state_watchers = None
    """None: what a probe sees also depends on the network, so its checks never rest."""

    def __init__(self, node: Server, tier: DataTier) -> None:
        self.node = node
        self._tier = tier

    def __getattr__(self, name: str) -> Any:
        return getattr(self.node, name)

    @property
    def reachable(self) -> bool:
        """A probe and its answer both get through."""
        node = self.node
        return node.reachable and self._tier.network.both_ways(FAILOVER_MANAGER, node.name)

    @property
    def serving(self) -> bool:
        """Its heartbeats get to the manager."""
        node = self.node
        return node.serving and self._tier.network.reaches(node.name, FAILOVER_MANAGER)
