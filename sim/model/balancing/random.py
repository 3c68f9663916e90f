"""Random: each request to a uniformly chosen backend; the baseline every policy should beat."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from sim.model.balancing.base import BALANCING_POLICIES, Backend, Policy, PolicySpec
from sim.streams import uniforms


class RandomChoice(Policy):
    def __init__(self, rng: np.random.Generator) -> None:
        self._uniform = uniforms(rng)

    def choose(self, backends: Sequence[Backend]) -> Backend:
        return backends[int(next(self._uniform) * len(backends))]


@BALANCING_POLICIES.register("random")
class RandomSpec(PolicySpec):
    kind: Literal["random"] = "random"

    def build(
        self, rng: np.random.Generator, backend_count: int, clock: Callable[[], float]
    ) -> Policy:
        return RandomChoice(rng)
