"""Least connections: the backend with the fewest requests in flight, relative to its weight.

The rule: the smallest ``active / weight``; ties go to the first such backend in circular order
from a start that moves one place along the list at each choice, so idle backends share work.

Scanning the list costs O(n) per request. Over the balancer's routing list the policy keeps
an index instead: the positions of the backends grouped in buckets by their exact load (the same
float ``active / weight`` the scan compares), each bucket a sorted list, and a heap of the loads
that have a bucket. The smallest load is the top of the heap, and the first backend at or after
the start in circular order is a binary search in its bucket; a change of ``active`` moves one
position between two buckets. So the index picks exactly the backend the scan would, in
O(log n) (a bisection, and list insertions that move memory but compare nothing). Shorter
lists than ``index_from``, and any list other than the routing list (slow start's steady
backends, hot migration's other backends), are scanned.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from heapq import heappop, heappush
from typing import Literal

import numpy as np

from sim.model.balancing.base import BALANCING_POLICIES, Backend, Policy, PolicySpec


class LeastConnections(Policy):
    """Picks the smallest ``active / weight``; ties go round-robin, so idle backends share work."""

    watches_load = True

    def __init__(self, backend_count: int) -> None:
        self._start = 0
        self._routing: Sequence[Backend] | None = None
        """The list the index is over: the balancer's routing list."""
        self._position = [-1] * backend_count
        """Position of each backend (by ``index``) in that list, -1 when not in it."""
        self._load: list[float] = []
        """Load of the backend at each position, as the index filed it."""
        self._buckets: dict[float, list[int]] = {}
        """Load -> sorted positions with that load; an emptied bucket stays until it surfaces."""
        self._loads: list[float] = []
        """Heap of the keys of ``_buckets``, each once."""

    def routing_changed(self, backends: Sequence[Backend]) -> None:
        position = self._position
        for backend in self._routing or ():
            position[backend.index] = -1
        if len(backends) < self.index_from:
            self._routing = None
            return
        self._routing = backends
        self._load = [backend.active / backend.weight for backend in backends]
        buckets: dict[float, list[int]] = {}
        for place, (backend, load) in enumerate(zip(backends, self._load, strict=True)):
            position[backend.index] = place
            buckets.setdefault(load, []).append(place)
        self._buckets = buckets
        self._loads = sorted(buckets)  # a sorted list is a heap

    def load_changed(self, backend: Backend) -> None:
        place = self._position[backend.index]
        if place < 0:
            return
        old = self._load[place]
        new = self._load[place] = backend.active / backend.weight
        bucket = self._buckets[old]
        del bucket[bisect_left(bucket, place)]
        bucket = self._buckets.get(new)
        if bucket is None:
            self._buckets[new] = [place]
            heappush(self._loads, new)
        else:
            insort(bucket, place)

    def choose(self, backends: Sequence[Backend]) -> Backend:
        count = len(backends)
        start = self._start % count
        self._start = start + 1
        if backends is self._routing:
            buckets, loads = self._buckets, self._loads
            while not buckets[loads[0]]:
                del buckets[heappop(loads)]
            bucket = buckets[loads[0]]
            at = bisect_left(bucket, start)
            return backends[bucket[at] if at < len(bucket) else bucket[0]]
        best = backends[start]
        best_load = best.active / best.weight
        for offset in range(1, count):
            backend = backends[(start + offset) % count]
            load = backend.active / backend.weight
            if load < best_load:
                best, best_load = backend, load
        return best


@BALANCING_POLICIES.register("least_connections")
class LeastConnectionsSpec(PolicySpec):
    kind: Literal["least_connections"] = "least_connections"

    def build(
        self, rng: np.random.Generator, backend_count: int, clock: Callable[[], float]
    ) -> Policy:
        return LeastConnections(backend_count)
