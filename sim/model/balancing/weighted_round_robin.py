"""Smooth weighted round-robin, as nginx does it: shares follow weights, without bursts.

Each pick adds every backend's weight to its running score, sends the request to the highest
score (the first in list order on a tie), and takes the total weight off the winner. Weights
5, 1, 1 give a, a, b, a, c, a, a rather than a, a, a, a, a, b, c: the heavy server never
receives a burst.

Adding every weight at every pick costs O(n) per request. Over the balancer's routing list the
policy keeps an index instead: backends of equal weight gain equally at each pick, so within a
weight group the order of the scores changes only when the winner loses the total. Each group
keeps a heap of ``offset - score``, where its offset grows by the group's weight per pick; the
winner is the best of the groups' tops. This is O(g + log n) for g distinct weights, and it is
exact when every weight and score is a whole number: float sums of whole numbers below 2^53 are
exact in any order, so ``offset - key`` is the scan's running score to the last bit. The index
keeps every number below 2^53: it is built only over whole scores within 2^40 of zero and a
total weight up to 2^26 (a score falls only as the highest, hence from above the list's
average, by the total, so none falls below -2^40 - 2^26), and it is folded back into plain
scores once the highest score or an offset passes 2^50. With a fractional weight or score in
the routing list, with fewer backends than ``index_from``, and for any other list (slow
start's steady backends, hot migration's other backends), the policy scans.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from heapq import heapify, heapreplace
from typing import Literal

import numpy as np

from sim.model.balancing.base import BALANCING_POLICIES, Backend, Policy, PolicySpec

_MAX_TOTAL_WEIGHT = 2.0**26
_MAX_INDEXED_SCORE = 2.0**40
_MAX_RUNNING = 2.0**50
"""A score or a group's offset past this folds the index back into plain scores."""


class _WeightGroup:
    """The backends of one weight in the routing list: a heap of (offset - score, position),
    whose top is the highest score, the first in list order on a tie."""

    __slots__ = ("heap", "offset", "weight")

    def __init__(self, weight: float, heap: list[tuple[float, int]]) -> None:
        self.weight = weight
        self.offset = 0.0
        heapify(heap)
        self.heap = heap


class WeightedRoundRobin(Policy):
    def __init__(self, backend_count: int) -> None:
        self._score = [0.0] * backend_count
        """Running score of each backend (by ``index``), except while the index holds it."""
        self._routing: Sequence[Backend] | None = None
        self._exact = False
        """``_routing`` is long enough, its weights whole and their total small enough."""
        self._groups: list[_WeightGroup] | None = None
        """The index over ``_routing`` while it holds the scores of its backends."""
        self._total = 0.0

    def routing_changed(self, backends: Sequence[Backend]) -> None:
        self._release()
        self._routing = backends
        total = 0.0
        for backend in backends:
            total += backend.weight
        self._total = total
        self._exact = (
            len(backends) >= self.index_from
            and total <= _MAX_TOTAL_WEIGHT
            and all(float(backend.weight).is_integer() for backend in backends)
        )

    def choose(self, backends: Sequence[Backend]) -> Backend:
        if backends is self._routing and self._exact:
            return self._choose_indexed(backends)
        self._release()
        score = self._score
        total = 0.0
        best = backends[0]
        best_score = None
        for backend in backends:
            weight = backend.weight
            total += weight
            current = score[backend.index] + weight
            score[backend.index] = current
            if best_score is None or current > best_score:
                best, best_score = backend, current
        score[best.index] -= total
        return best

    def _choose_indexed(self, backends: Sequence[Backend]) -> Backend:
        groups = self._groups
        if groups is None:
            groups = self._groups = self._index(backends)
            if groups is None:
                self._exact = False
                return self.choose(backends)
        best = groups[0]
        best_score = best_place = None
        for group in groups:
            group.offset += group.weight
            key, place = group.heap[0]
            current = group.offset - key
            if (
                best_score is None
                or current > best_score
                or (current == best_score and place < best_place)
            ):
                best, best_score, best_place = group, current, place
        heap = best.heap
        heapreplace(heap, (heap[0][0] + self._total, best_place))
        if best_score > _MAX_RUNNING or best.offset > _MAX_RUNNING:
            self._release()
        return backends[best_place]

    def _index(self, backends: Sequence[Backend]) -> list[_WeightGroup] | None:
        """The index over ``backends``; None when a score is fractional (left by a list with a
        fractional weight) or too far from zero."""
        heaps: dict[float, list[tuple[float, int]]] = {}
        score = self._score
        for place, backend in enumerate(backends):
            current = score[backend.index]
            if abs(current) > _MAX_INDEXED_SCORE or not current.is_integer():
                return None
            heaps.setdefault(backend.weight, []).append((-current, place))
        return [_WeightGroup(weight, heap) for weight, heap in heaps.items()]

    def _release(self) -> None:
        """Write the index's scores back to ``_score`` and drop the index."""
        if self._groups is None:
            return
        score, backends = self._score, self._routing
        for group in self._groups:
            for key, place in group.heap:
                score[backends[place].index] = group.offset - key
        self._groups = None


@BALANCING_POLICIES.register("weighted_round_robin")
class WeightedRoundRobinSpec(PolicySpec):
    kind: Literal["weighted_round_robin"] = "weighted_round_robin"

    def build(
        self, rng: np.random.Generator, backend_count: int, clock: Callable[[], float]
    ) -> Policy:
        return WeightedRoundRobin(backend_count)
