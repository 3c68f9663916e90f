"""Slow start: a backend that joins the rotation gets a linearly rising share of the traffic.

A server that has just come back (repaired and passing its checks again, a promoted spare, a
backend whose ejection ended) is often cold: handed its full share at once, it can fall over
again. HAProxy (``slowstart``), nginx (``slow_start``) and Envoy (slow start mode, aggression 1)
all ramp the backend's *weight* linearly from about zero to its nominal value over a window
after it becomes healthy; the servers in rotation at the start never ramp (HAProxy's rule).
So here: while a backend is ``elapsed`` seconds into its window of ``window_s``, its weight is
``weight * elapsed / window_s``, and it receives

    share = ramped weight / (ramped weight + weight of the other candidates)

of the attempts, which is 0 when it joins and its nominal ``weight / total`` at the end (1/n of
n equal servers; the share is concave in time, as with those balancers: the *weight* is linear).

One place serves every policy: the balancer splits each choice between the backends in steady
state and the ramping ones by these weights, with smooth weighted round-robin (nginx's scheduler,
deterministic: a ramping backend's count never strays by more than half an attempt from the sum
of its shares, so no random stream is needed), and hands the steady side to the policy, which
chooses among those as it always does. The weights are the configured ones for every policy,
as in HAProxy and Envoy, whose ramping algorithms are all weighted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import simpy

from sim.model.balancing import Backend

if TYPE_CHECKING:
    from sim.model.monitor import Monitor

__all__ = ["SlowStart"]


class SlowStart:
    """The ramps of the backends within their slow-start window, and the choice that honours them.

    ``choose`` stands in for the policy's own: with no backend ramping it is the policy's choice.
    """

    def __init__(
        self,
        env: simpy.Environment,
        window_s: float,
        policy_choose: Callable[[Sequence[Backend]], Backend],
        monitor: Monitor | None = None,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"a slow-start window must be > 0 s, got {window_s:g}")
        self.env = env
        self.window_s = window_s
        self.monitor = monitor
        self._policy_choose = policy_choose
        self._since: dict[Backend, float] = {}
        """Ramping backends and the time each joined the rotation (looked up, never iterated)."""
        self._score: dict[Backend, float] = {}
        """Smooth weighted round-robin: each ramping backend's running score."""
        self._steady_score = 0.0
        """... and that of the backends in steady state, taken as one."""

    @property
    def ramping(self) -> bool:
        return bool(self._since)

    def begin(self, backend: Backend) -> None:
        """``backend`` has just entered the rotation: its weight starts again from zero."""
        start = self.env.now
        self._since[backend] = start
        self._score.setdefault(backend, 0.0)
        timer = self.env.timeout(self.window_s)
        timer.callbacks.append(lambda _: self._window_over(backend, start))

    def end(self, backend: Backend) -> None:
        """``backend`` left the rotation: its ramp, if any, stops."""
        if self._since.pop(backend, None) is not None:
            # Its score joins the steady side, so that the scores still sum to zero.
            self._steady_score += self._score.pop(backend)

    def _window_over(self, backend: Backend, start: float) -> None:
        if self._since.get(backend) != start:
            return  # it left meanwhile (and may be ramping again, from a later start)
        self.end(backend)
        if self.monitor is not None:
            self.monitor.log(backend.name, "slow start over", f"{self.window_s:g}s")

    def choose(self, backends: Sequence[Backend]) -> Backend:
        """The backend for the next attempt among ``backends`` (non-empty, declared order)."""
        since = self._since
        if not since:
            return self._policy_choose(backends)
        steady: list[Backend] = []
        ramping: list[Backend] = []
        for backend in backends:
            (ramping if backend in since else steady).append(backend)
        if not steady or not ramping:
            # Every candidate ramps (all came back together) or none does: weights would only
            # scale alike, so the policy chooses, as Envoy notes of an all-new pool.
            return self._policy_choose(backends)
        now = self.env.now
        window_s = self.window_s
        weights = [backend.weight * (now - since[backend]) / window_s for backend in ramping]
        steady_weight = sum(backend.weight for backend in steady)
        total = steady_weight + sum(weights)
        score = self._score
        best: Backend | None = None  # the steady side
        best_score = self._steady_score = self._steady_score + steady_weight / total
        for backend, weight in zip(ramping, weights, strict=True):
            current = score[backend] = score[backend] + weight / total
            if current > best_score:
                best, best_score = backend, current
        if best is None:
            self._steady_score -= 1.0
            return self._policy_choose(steady)
        score[best] -= 1.0
        return best
