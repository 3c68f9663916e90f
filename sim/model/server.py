"""An application server: a pool of workers in front of a FIFO queue of bounded capacity.

A server is a small G/G/c/K queue. It is written with SimPy callbacks rather than a process per
request: each service is a single Timeout event whose callback frees the worker and starts the
next queued attempt. That is what lets a run push millions of requests through in minutes (see
``benchmarks/``); the behaviour is that of a ``simpy.Resource`` with ``workers`` slots.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy

from sim.metrics import OK, REJECTED
from sim.model.request import Attempt

__all__ = ["Server"]


def _unwired(attempt: Attempt, outcome: int) -> None:
    raise RuntimeError("server used before the cluster wired its responses")


class Server:
    """Serves attempts; answers each one exactly once through ``respond(attempt, outcome)``.

    ``respond`` is wired by the cluster to the balancer that sends this server its work.
    """

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        group: str,
        zone: str,
        workers: int,
        queue_capacity: int | None,
        speed: float,
    ) -> None:
        self.env = env
        self.name = name
        self.group = group
        self.zone = zone
        self.workers = workers
        self.queue_capacity = queue_capacity
        self.speed = speed
        self.respond: Callable[[Attempt, int], None] = _unwired
        self._limit = float("inf") if queue_capacity is None else queue_capacity
        self.queue: deque[Attempt] = deque()
        self.busy = 0
        self.busy_time_s = 0.0
        self.queue_time_s = 0.0
        self._last_change = 0.0

    def _account(self, now: float) -> None:
        """Add the time since the last change to the busy and queued totals (for utilization)."""
        elapsed = now - self._last_change
        if elapsed:
            self.busy_time_s += self.busy * elapsed
            self.queue_time_s += len(self.queue) * elapsed
            self._last_change = now

    def submit(self, attempt: Attempt) -> None:
        """An attempt arrives: start it, queue it, or reject it when the queue is full."""
        self._account(self.env.now)
        if self.busy < self.workers:
            self._start(attempt)
        elif len(self.queue) < self._limit:
            self.queue.append(attempt)
        else:
            self.respond(attempt, REJECTED)

    def _start(self, attempt: Attempt) -> None:
        self.busy += 1
        service = self.env.timeout(attempt.request.demand_s / self.speed, attempt)
        service.callbacks.append(self._finish)

    def _finish(self, service: simpy.Event) -> None:
        self._account(self.env.now)
        self.busy -= 1
        if self.queue:
            self._start(self.queue.popleft())
        self.respond(service.value, OK)

    def totals(self) -> tuple[float, float]:
        """Busy worker-seconds and queued attempt-seconds since the start, up to now."""
        self._account(self.env.now)
        return self.busy_time_s, self.queue_time_s
