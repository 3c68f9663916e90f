"""A cache tier in front of the database (memcached, Redis used as a look-aside cache).

    database:
      keys: {count: 100000, popularity: zipf, zipf_exponent: 0.9}
      cache: {nodes: 4, capacity: 5000, hit_time: {kind: exponential, mean: 500us}}

and, per request class, ``database: {reads: 3, cacheable: true}``.

Cache-aside, as operators run it: a cacheable read asks the key's cache node; a hit is answered
there, a miss (the key is absent, or the node refused the connection or did not answer within
the connect timeout) goes to the database, and the client then fills the key. Every write, of
any class, goes to the database and then deletes the key from the cache (invalidate on write,
the look-aside rule: a later read fills it afresh). Fills and deletions are sent without waiting
for the answer (memcached's ``noreply``): they cost the node a ``hit_time`` of work and the
request nothing.
"""

from __future__ import annotations

from pydantic import Field

from sim.distributions import DistributionSpec, Exponential
from sim.spec import Count, Spec

__all__ = ["CacheSpec"]


class CacheSpec(Spec):
    """``nodes`` cache nodes of ``capacity`` keys each, evicting the least recently used.

    Keys are spread over the nodes by consistent hashing (``virtual_nodes`` points per node, 160
    as in ketama), independently of the database shards. A node's keys stay its own while it is
    down (no remapping, as mcrouter and ketama without ejection do): their reads go to the
    database until it is back, and it comes back empty (a restarted process has lost its memory)
    and fills again from misses. Node ``j`` is named ``cache-j`` and lives in the database's
    ``zones[(j - 1) % len(zones)]``; all are members of the server group ``cache`` for failures.
    ``hit_time`` is the time a node takes to answer a look-up, a fill or a delete; ``workers``
    how many it serves at once (the others queue).
    """

    nodes: Count = Field(1, ge=1, le=1024)
    capacity: Count = Field(ge=1, le=10_000_000)
    hit_time: DistributionSpec = Exponential(mean=0.0005)
    workers: Count = Field(64, ge=1, le=100_000)
    virtual_nodes: Count = Field(160, ge=1, le=4096)

    def node_names(self) -> list[str]:
        return [f"cache-{number}" for number in range(1, self.nodes + 1)]
