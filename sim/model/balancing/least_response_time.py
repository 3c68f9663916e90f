"""Least response time: prefer backends that have been answering fast, weighed by their load.

The score is the exponentially weighted moving average (EWMA) of the latencies the balancer has
observed from a backend, times (requests in flight + 1), as peak-EWMA balancers do. The EWMA alone
would herd: every request would go to the backend that was fastest a moment ago until its average
caught up. A backend with no observation yet scores zero, so new and recovered backends get probed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from sim.model.balancing.base import BALANCING_POLICIES, Backend, Policy, PolicySpec


class LeastResponseTime(Policy):
    observes_latency = True

    def __init__(self, backend_count: int, smoothing: float) -> None:
        self._start = 0
        self._smoothing = smoothing
        self._ewma_s: list[float | None] = [None] * backend_count

    def observe(self, backend: Backend, latency_s: float) -> None:
        previous = self._ewma_s[backend.index]
        self._ewma_s[backend.index] = (
            latency_s if previous is None else previous + self._smoothing * (latency_s - previous)
        )

    def choose(self, backends: Sequence[Backend]) -> Backend:
        count = len(backends)
        start = self._start % count
        self._start = start + 1
        ewma_s = self._ewma_s
        best = None
        best_score = 0.0
        for offset in range(count):
            backend = backends[(start + offset) % count]
            latency = ewma_s[backend.index]
            score = 0.0 if latency is None else latency * (backend.active + 1) / backend.weight
            if best is None or score < best_score:
                best, best_score = backend, score
        return best


@BALANCING_POLICIES.register("least_response_time")
class LeastResponseTimeSpec(PolicySpec):
    """``smoothing`` is the EWMA weight of the newest observation (0 < smoothing <= 1)."""

    kind: Literal["least_response_time"] = "least_response_time"
    smoothing: float = Field(0.2, gt=0, le=1)

    def build(self, rng: np.random.Generator, backend_count: int) -> Policy:
        return LeastResponseTime(backend_count, self.smoothing)
