"""The load balancer: spreads attempts over the backends it *believes* are up.

The balancer's list of healthy backends is its belief, not the truth: it changes only when
detection (health checks, outlier ejection) tells it so, never because a server died. An attempt
that finds no backend it believes healthy fails at once as ``no_backend``, like a 503 from a
proxy whose upstream pool is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import simpy

from sim.metrics import NO_BACKEND
from sim.model.balancing import Backend, Policy
from sim.model.request import Attempt

__all__ = ["Balancer"]


class Balancer:
    def __init__(
        self,
        env: simpy.Environment,
        policy: Policy,
        backends: Sequence[Backend],
        respond: Callable[[Attempt, int], None],
    ) -> None:
        self.env = env
        self.policy = policy
        self.backends = list(backends)
        self.up: list[Backend] = list(backends)
        self._choose = policy.choose
        self._observe = policy.observe if policy.observes_latency else None
        self._respond = respond

    def dispatch(self, attempt: Attempt) -> None:
        """Send an attempt to the backend the policy picks among those believed up."""
        up = self.up
        if not up:
            self._respond(attempt, NO_BACKEND)
            return
        backend = self._choose(up)
        attempt.backend = backend
        backend.active += 1
        backend.server.submit(attempt)

    def on_response(self, attempt: Attempt, outcome: int) -> None:
        """A backend answered (or refused) an attempt; pass it on to the client."""
        backend = attempt.backend
        if backend is not None:
            backend.active -= 1
            if self._observe is not None:
                self._observe(backend, self.env.now - attempt.sent_at)
        self._respond(attempt, outcome)

    def mark_down(self, backend: Backend) -> None:
        """Stop sending to ``backend``: detection has judged it unhealthy."""
        if backend in self.up:
            self.up.remove(backend)

    def mark_up(self, backend: Backend) -> None:
        """Send to ``backend`` again, keeping the declared order so choices stay deterministic."""
        if backend not in self.up:
            self.up = [b for b in self.backends if b in self.up or b is backend]
