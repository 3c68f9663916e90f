"""The cache tier: look-aside cache nodes in front of the database, each an LRU of keys.

A cacheable read asks the node that owns its key (consistent hashing over the nodes): a hit
ends there; a miss goes on to the database, and when the database has answered, the client
fills the key on that node. A write, once the database has taken it, deletes the key from its
node. The hit ratio is not a parameter: it emerges from the keys' popularity, the capacity and
what failed.

Each node is a :class:`Server` (workers, queue, crashes, partitions, pauses) serving cache
operations, so cache nodes fail through the same failure entries as every other server
(``{group: cache}``, ``{server: cache-2}``, a zone). Detection, never magic: the client learns
that a node is down only as a client does, from the connection refused at once (a crash) or
not answered within the connect timeout (a partition), and treats that as a miss. A crash
loses the node's contents: it comes back empty and fills from misses, and its share of the
reads falls on the database meanwhile (the cold-cache load spike).

Only the presence of keys is modelled, not their values: a fill that lands after a later
write's delete (the look-aside race that Facebook's memcache leases close) is not counted as a
stale read.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
from simpy.events import Timeout

from sim.model.network import Network
from sim.model.server import Server
from sim.model.sharding import HashRing
from sim.request import Cause
from sim.scenario.cache import CacheSpec
from sim.streams import Streams

if TYPE_CHECKING:
    from sim.model.database import DatabaseOperation

__all__ = ["CACHE_RING_SALT", "CacheOperation", "CacheTier", "LruCache"]

CACHE_RING_SALT = 1
"""Sets the cache's hash ring apart from the database's, so that a cache node's keys are not
the keys of one shard."""

LOOKUP, FILL, DELETE = 0, 1, 2
_OK = Cause.OK


class LruCache:
    """At most ``capacity`` keys; adding one more evicts the least recently used.

    An ``OrderedDict`` kept in recency order (oldest first): every operation is O(1), and
    memory is bounded by the capacity.
    """

    __slots__ = ("_keys", "capacity", "evictions")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a cache holds at least 1 key, got capacity {capacity}")
        self.capacity = capacity
        self._keys: OrderedDict[int, None] = OrderedDict()
        self.evictions = 0

    def get(self, key: int) -> bool:
        """Whether ``key`` is held (a hit); a hit makes it the most recently used."""
        keys = self._keys
        if key in keys:
            keys.move_to_end(key)
            return True
        return False

    def put(self, key: int) -> None:
        """Hold ``key`` as the most recently used, evicting the least recently used if full."""
        keys = self._keys
        if key in keys:
            keys.move_to_end(key)
            return
        keys[key] = None
        if len(keys) > self.capacity:
            keys.popitem(last=False)
            self.evictions += 1

    def delete(self, key: int) -> None:
        self._keys.pop(key, None)

    def clear(self) -> None:
        self._keys.clear()

    def __contains__(self, key: int) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


class CacheOperation:
    """One look-up, fill or delete of one key, served by a cache node like an attempt."""

    __slots__ = ("class_index", "demand_s", "key", "kind", "node", "operation", "queued_at")

    def __init__(
        self,
        kind: int,
        key: int,
        node: int,
        demand_s: float,
        class_index: int,
        operation: DatabaseOperation | None,
        now: float,
    ) -> None:
        self.kind = kind
        self.key = key
        self.node = node
        self.demand_s = demand_s
        self.class_index = class_index
        self.operation = operation
        """The database read a look-up stands for (None for a fill or a delete)."""
        self.queued_at = now

    @property
    def request(self) -> CacheOperation:
        """A Server reads the demand and the class through ``.request``."""
        return self


class CacheTier:
    """The cache nodes, the key of each, and what the cache did.

    ``on_hit(operation)`` ends a database read the cache answered; ``on_miss(operation)`` sends
    it to the database. Counts run from the start of the run; the summary and each
    time-series row are differences of two readings of :meth:`totals`.
    """

    def __init__(
        self,
        env: simpy.Environment,
        spec: CacheSpec,
        nodes: list[Server],
        key_count: int,
        streams: Streams,
        on_hit: Callable[[DatabaseOperation], None],
        on_miss: Callable[[DatabaseOperation], None],
    ) -> None:
        if len(nodes) != spec.nodes:
            raise ValueError(f"the cache has {spec.nodes} nodes, got {len(nodes)} servers")
        self.env = env
        self.spec = spec
        self.nodes = nodes
        self._index = {node: index for index, node in enumerate(nodes)}
        self.lrus = [LruCache(spec.capacity) for _ in nodes]
        ring = HashRing(spec.nodes, spec.virtual_nodes, salt=CACHE_RING_SALT)
        self.node_of_key = ring.shard_of(np.arange(key_count)).astype(np.int32)
        """The node that owns each key (keys numbered by popularity rank, as the database's)."""
        self._hit_time = spec.hit_time.sampler(streams.generator("cache/hit_time"))
        self._on_hit = on_hit
        self._on_miss = on_miss
        for node in nodes:
            node.respond = self._answered
        self.lookups = 0
        self.hits = 0
        self.failed_lookups = 0
        """Look-ups the node did not answer (crashed, cut off): misses too."""
        self.fills = 0
        self.deletes = 0
        self._window: dict[str, int] | None = None
        self.network = Network()
        """Links partial partitions cut (the failure injector's, set by the cluster)."""

    # -- operations ---------------------------------------------------------------------------

    def look_up(self, operation: DatabaseOperation) -> None:
        """A cacheable read: ask the key's node; a hit ends it, a miss sends it on."""
        key = operation.key
        node = int(self.node_of_key[key])
        target = self.nodes[node]
        if self.network.partial and not self.network.both_ways(
            operation.job.attempt.backend.server.name, target.name
        ):
            # Cut off from this client: no answer within the connect timeout, then a miss.
            timer = Timeout(self.env, target.connect_timeout_s)
            timer.callbacks.append(lambda _: self._unanswered(operation))
            return
        target.submit(
            CacheOperation(
                LOOKUP,
                key,
                node,
                next(self._hit_time),
                operation.class_index,
                operation,
                self.env.now,
            )
        )

    def fill(self, operation: DatabaseOperation) -> None:
        """The database answered a read that missed: put its key in the cache, unanswered."""
        self._send(FILL, operation)

    def invalidate(self, operation: DatabaseOperation) -> None:
        """The database took a write: delete its key from the cache, unanswered."""
        self._send(DELETE, operation)

    def _unanswered(self, operation: DatabaseOperation) -> None:
        self.lookups += 1
        self.failed_lookups += 1
        self._on_miss(operation)

    def _send(self, kind: int, operation: DatabaseOperation) -> None:
        key = operation.key
        node = int(self.node_of_key[key])
        target = self.nodes[node]
        if self.network.partial and not self.network.both_ways(
            operation.job.attempt.backend.server.name, target.name
        ):
            return  # sent without waiting for an answer, and lost on the cut link
        target.submit(
            CacheOperation(
                kind, key, node, next(self._hit_time), operation.class_index, None, self.env.now
            )
        )

    def _answered(self, cache_operation: CacheOperation, cause: Cause) -> None:
        """A node served (or refused, or lost) a cache operation."""
        kind = cache_operation.kind
        if kind == LOOKUP:
            self.lookups += 1
            if cause == _OK and self.lrus[cache_operation.node].get(cache_operation.key):
                self.hits += 1
                self._on_hit(cache_operation.operation)
                return
            if cause != _OK:
                self.failed_lookups += 1
            self._on_miss(cache_operation.operation)
        elif cause == _OK:  # a fill or delete the node never got changes nothing
            if kind == FILL:
                self.fills += 1
                self.lrus[cache_operation.node].put(cache_operation.key)
            else:
                self.deletes += 1
                self.lrus[cache_operation.node].delete(cache_operation.key)

    # -- failures -----------------------------------------------------------------------------

    def node_changed(self, node: Server) -> None:
        """The truth about ``node`` changed: a process that is not alive has lost its memory."""
        if not node.alive:
            self.lrus[self._index[node]].clear()

    # -- what the monitor asks ----------------------------------------------------------------

    def knows(self, server: Server) -> bool:
        return server in self._index

    def routes_to(self, server: Server) -> bool:
        """Clients always send a key's operations to its node: nothing takes a node out."""
        return True

    def back_in_service(self, server: Server) -> bool:
        return server.serving

    def settled(self) -> bool:
        """Every node alive and reachable."""
        return all(node.alive and node.serving for node in self.nodes)

    # -- figures ------------------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """Running counts since the start of the run."""
        return {
            "lookups": self.lookups,
            "hits": self.hits,
            "failed_lookups": self.failed_lookups,
            "fills": self.fills,
            "deletes": self.deletes,
            "evictions": sum(lru.evictions for lru in self.lrus),
        }

    def start_window(self) -> None:
        self._window = self.totals()

    def summary(self) -> dict[str, Any]:
        """What the cache did over the measurement window."""
        now = self.totals()
        then = self._window if self._window is not None else dict.fromkeys(now, 0)
        window = {key: now[key] - then[key] for key in now}
        lookups, hits = window["lookups"], window["hits"]
        return {
            "lookups": lookups,
            "hits": hits,
            "misses": lookups - hits,
            "hit_ratio": hits / lookups if lookups else math.nan,
            "failed_lookups": window["failed_lookups"],
            "fills": window["fills"],
            "invalidations": window["deletes"],
            "evictions": window["evictions"],
        }
