"""Smooth weighted round-robin, as nginx does it: shares follow weights, without bursts.

Each pick adds every backend's weight to its running score, sends the request to the highest
score, and takes the total weight off the winner. Weights 5, 1, 1 give a, a, b, a, c, a, a rather
than a, a, a, a, a, b, c: the heavy server never receives a burst.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from sim.model.balancing.base import BALANCING_POLICIES, Backend, Policy, PolicySpec


class WeightedRoundRobin(Policy):
    def __init__(self, backend_count: int) -> None:
        self._score = [0.0] * backend_count

    def choose(self, backends: Sequence[Backend]) -> Backend:
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


@BALANCING_POLICIES.register("weighted_round_robin")
class WeightedRoundRobinSpec(PolicySpec):
    kind: Literal["weighted_round_robin"] = "weighted_round_robin"

    def build(
        self, rng: np.random.Generator, backend_count: int, clock: Callable[[], float]
    ) -> Policy:
        return WeightedRoundRobin(backend_count)
