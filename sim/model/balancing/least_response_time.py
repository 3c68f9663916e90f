"""Least response time: prefer backends that have been answering fast, weighed by their load.

The score of a backend is its latency estimate times (requests in flight + 1), as peak-EWMA
balancers (Finagle, Linkerd) compute it. The estimate alone would herd: every request would go to
the backend that was fastest a moment ago until its average caught up.

The estimate learns only from answers, and a balancer gets answers only from the backends it
chooses: a backend that was once slow would get no traffic, hence no news, and stay starved
forever. So, as Finagle's PeakEwma does, an estimate *ages*: while no answer comes it decays
toward zero with time constant ``decay_time``, and a starved backend is tried again once its
aged estimate falls below the others' scores, within ``decay_time * ln(estimate / their score)``.
Each answer of latency r then moves the aged estimate a fraction ``smoothing`` toward r. A
backend never answered yet scores zero while it has nothing in flight, so new and recovered
backends get probed, one request at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from sim.model.balancing.base import BALANCING_POLICIES, Backend, Policy, PolicySpec
from sim.spec import PositiveDuration

_UNKNOWN = math.inf
"""The score of a backend never answered yet that already has a request in flight."""


class LeastResponseTime(Policy):
    observes_latency = True

    def __init__(
        self,
        backend_count: int,
        smoothing: float,
        decay_time_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._start = 0
        self._smoothing = smoothing
        self._rate = 1.0 / decay_time_s
        self._clock = clock
        self._estimate_s: list[float | None] = [None] * backend_count
        self._answered_at = [0.0] * backend_count

    def estimate(self, backend: Backend, now: float) -> float | None:
        """The latency estimate of ``backend`` at ``now``, aged since its last answer."""
        estimate = self._estimate_s[backend.index]
        if estimate is None:
            return None
        return estimate * math.exp((self._answered_at[backend.index] - now) * self._rate)

    def observe(self, backend: Backend, latency_s: float) -> None:
        now = self._clock()
        aged = self.estimate(backend, now)
        index = backend.index
        self._estimate_s[index] = (
            latency_s if aged is None else aged + self._smoothing * (latency_s - aged)
        )
        self._answered_at[index] = now

    def choose(self, backends: Sequence[Backend]) -> Backend:
        count = len(backends)
        start = self._start % count
        self._start = start + 1
        now = self._clock()
        best = None
        best_score = 0.0
        for offset in range(count):
            backend = backends[(start + offset) % count]
            estimate = self.estimate(backend, now)
            if estimate is None:
                score = _UNKNOWN if backend.active else 0.0
            else:
                score = estimate * (backend.active + 1) / backend.weight
            if best is None or score < best_score:
                best, best_score = backend, score
        return best


@BALANCING_POLICIES.register("least_response_time")
class LeastResponseTimeSpec(PolicySpec):
    """``smoothing``: the weight of the newest answer in the estimate (0 < smoothing <= 1);
    ``decay_time``: the time constant with which an estimate ages toward zero while no answer
    comes (10 s, Finagle's and Linkerd's default)."""

    kind: Literal["least_response_time"] = "least_response_time"
    smoothing: float = Field(0.2, gt=0, le=1)
    decay_time: PositiveDuration = 10.0

    def build(
        self, rng: np.random.Generator, backend_count: int, clock: Callable[[], float]
    ) -> Policy:
        return LeastResponseTime(backend_count, self.smoothing, self.decay_time, clock)
