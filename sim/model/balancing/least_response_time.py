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

Scoring every backend costs O(n) per request. Over the balancer's routing list the policy keeps
an index instead. Aging multiplies every estimate by the same factor, so the order of the scores
at any time is the order of the time-free keys ``ln(estimate) + answered_at / decay_time +
ln((in flight + 1) / weight)``, kept in a heap (entries made stale by a change are skipped).
Floats round the keys and the scores differently, by less than 1e-11 relative; so the policy
computes the scan's own score for every backend whose key lies within 2^-20 of the smallest
(one, as a rule) and applies the scan's rule to those: the smallest score, ties to the first in
circular order from the rotating start. That is the backend the scan picks, as long as no score
is near underflow, where relative precision is lost: when the smallest key stands for a score
below e^-600 (an estimate aged for hundreds of decay times), or a weight is outside [2^-20,
2^20], or the list is shorter than ``index_from``, or for any list other than the routing list,
the policy scans. Backends never answered
yet are kept apart: those with nothing in flight (score 0) in a sorted list, first in circular
order wins; those with a request in flight (infinite score) nowhere. Keys count time from an
epoch moved to the present every 512 decay times (an O(n) refiling), which keeps them small.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from heapq import heapify, heappop, heappush
from typing import Literal

import numpy as np
from pydantic import Field

from sim.model.balancing.base import BALANCING_POLICIES, Backend, Policy, PolicySpec
from sim.spec import PositiveDuration

_UNKNOWN = math.inf
"""The score of a backend never answered yet that already has a request in flight."""
_KEY_MARGIN = 2.0**-20
"""Keys within this of the least are scored exactly: far wider than the rounding (< 1e-11)."""
_LEAST_LOG_SCORE = -600.0
"""Below a score of e^-600 (with weights in range) the index gives way to the scan."""
_LEAST_WEIGHT, _MOST_WEIGHT = 2.0**-20, 2.0**20
_REFILE_AFTER = 512.0
"""Decay times after which the keys' epoch moves to the present."""


class LeastResponseTime(Policy):
    observes_latency = True
    watches_load = True

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
        self._routing: Sequence[Backend] | None = None
        """The list the index is over: the balancer's routing list, when its length and
        weights allow."""
        self._position = [-1] * backend_count
        """Position of each backend (by ``index``) in ``_routing``, -1 when not in it."""
        self._epoch = 0.0
        self._aged: list[float | None] = []
        """Per position: ln(estimate) + (answered_at - epoch) / decay_time; None if unknown."""
        self._log_weight: list[float] = []
        self._key: list[float | None] = []
        """Per position: the key the heap holds for it now; None if never answered."""
        self._keys: list[tuple[float, int]] = []
        """Heap of (key, position); an entry whose key is no longer the position's is stale."""
        self._idle_unknown: list[int] = []
        """Sorted positions of backends never answered with nothing in flight."""

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
        estimate = self._estimate_s[index] = (
            latency_s if aged is None else aged + self._smoothing * (latency_s - aged)
        )
        self._answered_at[index] = now
        place = self._position[index]
        if place >= 0:
            if aged is None:
                self._forget_idle_unknown(place)
            self._aged[place] = self._aged_key(estimate, now)
            self._file(place, backend)

    def routing_changed(self, backends: Sequence[Backend]) -> None:
        position = self._position
        for backend in self._routing or ():
            position[backend.index] = -1
        self._routing = None
        if len(backends) >= self.index_from and all(
            _LEAST_WEIGHT <= backend.weight <= _MOST_WEIGHT for backend in backends
        ):
            self._routing = backends
            for place, backend in enumerate(backends):
                position[backend.index] = place
            self._log_weight = [math.log(backend.weight) for backend in backends]
            self._refile(self._clock())

    def load_changed(self, backend: Backend) -> None:
        place = self._position[backend.index]
        if place >= 0:
            self._file(place, backend)

    def choose(self, backends: Sequence[Backend]) -> Backend:
        count = len(backends)
        start = self._start % count
        self._start = start + 1
        now = self._clock()
        if backends is self._routing:
            aged_for = (now - self._epoch) * self._rate
            if aged_for > _REFILE_AFTER:
                self._refile(now)
                aged_for = 0.0
            keys, current = self._keys, self._key
            while keys and current[keys[0][1]] != keys[0][0]:
                heappop(keys)
            if not keys or keys[0][0] - aged_for >= _LEAST_LOG_SCORE:
                idle = self._idle_unknown
                if idle:
                    at = bisect_left(idle, start)
                    return backends[idle[at] if at < len(idle) else idle[0]]
                if not keys:
                    return backends[start]  # every score is infinite: the first one wins
                return self._least_of_keys(backends, start, now)
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

    def _least_of_keys(self, backends: Sequence[Backend], start: int, now: float) -> Backend:
        """The scan's choice among the backends whose key is within the margin of the least."""
        keys, current, count = self._keys, self._key, len(backends)
        bound = keys[0][0] + _KEY_MARGIN
        if all(key > bound for key, _ in keys[1:3]):
            return backends[keys[0][1]]  # the only candidate: nothing to compare
        best = None
        best_score = best_distance = 0.0
        pending = [0]
        while pending:
            node = pending.pop()
            key, place = keys[node]
            if key > bound:
                continue  # and so is every key under it in the heap
            if current[place] == key:
                backend = backends[place]
                score = self.estimate(backend, now) * (backend.active + 1) / backend.weight
                distance = (place - start) % count
                if (
                    best is None
                    or score < best_score
                    or (score == best_score and distance < best_distance)
                ):
                    best, best_score, best_distance = backend, score, distance
            child = 2 * node + 1
            pending.extend(range(child, min(child + 2, len(keys))))
        return best

    def _aged_key(self, estimate: float, answered_at: float) -> float:
        """The time-free part of a key: ln(estimate) + (answered_at - epoch) / decay_time."""
        log_estimate = math.log(estimate) if estimate > 0.0 else -math.inf
        return log_estimate + (answered_at - self._epoch) * self._rate

    def _file(self, place: int, backend: Backend) -> None:
        """File the backend at ``place`` under its key after a change."""
        aged = self._aged[place]
        if aged is None:
            if backend.active:
                self._forget_idle_unknown(place)
            else:
                idle = self._idle_unknown
                at = bisect_left(idle, place)
                if at == len(idle) or idle[at] != place:
                    idle.insert(at, place)
            return
        key = aged + math.log(backend.active + 1) - self._log_weight[place]
        if key != self._key[place]:
            self._key[place] = key
            heappush(self._keys, (key, place))
            if len(self._keys) > 2 * len(self._key) + 64:
                # Stale entries would pile up where no choice pops them: keep the current ones.
                self._keys = [(k, p) for p, k in enumerate(self._key) if k is not None]
                heapify(self._keys)

    def _forget_idle_unknown(self, place: int) -> None:
        idle = self._idle_unknown
        at = bisect_left(idle, place)
        if at < len(idle) and idle[at] == place:
            del idle[at]

    def _refile(self, now: float) -> None:
        """Move the epoch to ``now`` and file every backend of the routing list afresh."""
        backends = self._routing
        self._epoch = now
        estimates, answered = self._estimate_s, self._answered_at
        self._aged = [
            None
            if estimates[backend.index] is None
            else self._aged_key(estimates[backend.index], answered[backend.index])
            for backend in backends
        ]
        self._key = [None] * len(backends)
        self._keys = []
        self._idle_unknown = []
        for place, backend in enumerate(backends):
            self._file(place, backend)


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
