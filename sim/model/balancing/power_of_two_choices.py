"""Power of two choices: sample two backends at random, send to the less loaded one.

Mitzenmacher's result: picking the better of d = 2 random backends instead of one shrinks the
longest queue from O(log n / log log n) to O(log log n), almost as good as least-connections
while asking only two backends for their load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from sim.model.balancing.base import BALANCING_POLICIES, Backend, Policy, PolicySpec
from sim.spec import Count
from sim.streams import uniforms


class PowerOfChoices(Policy):
    """Samples ``choices`` distinct backends; the fewest requests in flight (per weight) wins."""

    def __init__(self, rng: np.random.Generator, choices: int) -> None:
        self._uniform = uniforms(rng)
        self._choices = choices

    def choose(self, backends: Sequence[Backend]) -> Backend:
        count = len(backends)
        if count == 1:
            return backends[0]
        uniform = self._uniform
        if self._choices == 2:
            first = int(next(uniform) * count)
            second = int(next(uniform) * (count - 1))
            if second >= first:
                second += 1
            a, b = backends[first], backends[second]
            return b if b.active / b.weight < a.active / a.weight else a
        pool = list(backends)
        best = None
        for _ in range(min(self._choices, count)):
            picked = pool.pop(int(next(uniform) * len(pool)))
            if best is None or picked.active / picked.weight < best.active / best.weight:
                best = picked
        return best


@BALANCING_POLICIES.register("power_of_two_choices")
class PowerOfTwoChoicesSpec(PolicySpec):
    """``choices`` is how many backends are sampled per request (d in the literature)."""

    kind: Literal["power_of_two_choices"] = "power_of_two_choices"
    choices: Count = Field(2, ge=2, le=100)

    def build(
        self, rng: np.random.Generator, backend_count: int, clock: Callable[[], float]
    ) -> Policy:
        return PowerOfChoices(rng, self.choices)
