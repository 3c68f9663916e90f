"""Round-robin: each backend in turn, the default of most balancers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from sim.model.balancing.base import BALANCING_POLICIES, Backend, Policy, PolicySpec


class RoundRobin(Policy):
    """Cycles through the backends that are up; a backend going down shortens the cycle."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, backends: Sequence[Backend]) -> Backend:
        index = self._next % len(backends)
        self._next = index + 1
        return backends[index]


@BALANCING_POLICIES.register("round_robin")
class RoundRobinSpec(PolicySpec):
    kind: Literal["round_robin"] = "round_robin"

    def build(
        self, rng: np.random.Generator, backend_count: int, clock: Callable[[], float]
    ) -> Policy:
        return RoundRobin()
