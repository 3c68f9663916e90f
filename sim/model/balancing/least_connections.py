"""Least connections: the backend with the fewest requests in flight, relative to its weight."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from sim.model.balancing.base import BALANCING_POLICIES, Backend, Policy, PolicySpec


class LeastConnections(Policy):
    """Picks the smallest ``active / weight``; ties go round-robin, so idle backends share work."""

    def __init__(self) -> None:
        self._start = 0

    def choose(self, backends: Sequence[Backend]) -> Backend:
        count = len(backends)
        start = self._start % count
        self._start = start + 1
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
        return LeastConnections()
