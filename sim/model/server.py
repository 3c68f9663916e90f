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
from simpy.events import Timeout

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
        # Work is accounted when a service starts (its length is known then), and waiting time
        # when a queued attempt leaves the queue: exact totals at a fraction of the cost of
        # integrating queue lengths at every change.
        self.busy_time_s = 0.0
        self.wait_time_s = 0.0
        self.accepted = 0
        self.queued = 0
        self.rejected = 0

    def submit(self, attempt: Attempt) -> None:
        """An attempt arrives: start it, queue it, or reject it when the queue is full."""
        if self.busy < self.workers:
            self.accepted += 1
            self.busy += 1
            service_s = attempt.request.demand_s / self.speed
            self.busy_time_s += service_s
            Timeout(self.env, service_s, attempt).callbacks.append(self._finish)
        elif len(self.queue) < self._limit:
            self.accepted += 1
            self.queued += 1
            self.queue.append(attempt)
        else:
            self.rejected += 1
            self.respond(attempt, REJECTED)

    def _finish(self, service: simpy.Event) -> None:
        if self.queue:
            attempt = self.queue.popleft()
            self.wait_time_s += self.env.now - attempt.sent_at
            service_s = attempt.request.demand_s / self.speed
            self.busy_time_s += service_s
            Timeout(self.env, service_s, attempt).callbacks.append(self._finish)
        else:
            self.busy -= 1
        self.respond(service.value, OK)
