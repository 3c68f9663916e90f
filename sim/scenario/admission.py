"""Protection against overload: admission control at the balancer, shedding at the servers.

    balancer:
      admission:
        rate_limit: {rate: 500/s, burst: 100}   # a token bucket
        concurrency_limit: 400                  # attempts in flight through the balancer
        reserve: 20%                            # of each limit, kept for higher priorities
    servers:
      - {name: web, queue_discipline: priority, shedding: {kind: codel, target: 5ms}}

A request turned away by any of them ends at once with the outcome ``shed`` (a fast failure,
apart from ``rejected``, a full queue). Classes have a ``priority`` (higher is more important,
0 by default): the balancer keeps ``reserve`` of each limit for the highest priority present,
so lower priorities are shed first, and a server with the ``priority`` discipline serves its
queue highest priority first (non-preemptive), so under a queueing-delay policy the lower
priorities wait longest and are dropped first.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Literal

from pydantic import Field, model_validator

from sim.registry import Registry
from sim.scenario.workload import MAX_RATE_PER_S
from sim.spec import (
    Count,
    Fraction,
    PositiveDuration,
    PositiveRate,
    Spec,
    located_error,
    registered,
)

__all__ = [
    "QUEUE_SHEDDING",
    "AdmissionSpec",
    "CodelSpec",
    "MaxDelaySpec",
    "QueueSheddingSpec",
    "QueueSheddingSpecField",
    "RateLimitSpec",
]


class RateLimitSpec(Spec):
    """A token bucket: ``burst`` tokens at most, refilled at ``rate`` per second; an attempt
    takes one, and without one it is shed. Over any window of t seconds at most
    burst + rate x t attempts pass."""

    rate: PositiveRate = Field(le=MAX_RATE_PER_S)
    burst: Count = Field(1, ge=1, le=10_000_000)


class AdmissionSpec(Spec):
    """What the balancer lets in: a rate limit, a limit on attempts in flight, or both."""

    rate_limit: RateLimitSpec | None = None
    concurrency_limit: Count | None = Field(None, ge=1, le=10_000_000)
    """Attempts sent to servers and not yet answered, through the balancer, at most."""
    reserve: Fraction = 0.0
    """The share of each limit (the bucket's ``burst``, the ``concurrency_limit``) only the
    highest priority may use; priorities in between get a share in proportion to their rank
    (the lowest gets 1 - reserve)."""

    @model_validator(mode="after")
    def _lowest_priority_can_pass(self) -> AdmissionSpec:
        """A reserve that leaves the lowest priority less than one token, or less than one
        attempt in flight, would shed it all, however light the load."""
        rate_limit = self.rate_limit
        if rate_limit is not None and rate_limit.burst * (1.0 - self.reserve) < 1.0:
            needed = math.ceil(1.0 / (1.0 - self.reserve)) if self.reserve < 1 else None
            raise located_error(
                ".reserve",
                f"a reserve of {self.reserve:.0%} of a burst of {rate_limit.burst} leaves the"
                " lowest priority less than one token, so it would all be shed"
                + (f": give a burst of at least {needed}" if needed else ": keep it below 100%"),
            )
        limit = self.concurrency_limit
        if limit is not None and limit * (1.0 - self.reserve) < 1.0:
            raise located_error(
                ".reserve",
                f"a reserve of {self.reserve:.0%} of a concurrency limit of {limit} leaves the"
                " lowest priority no attempt in flight, so it would all be shed",
            )
        return self


QUEUE_SHEDDING: Registry[type[QueueSheddingSpec]] = Registry("queue shedding policy")


class QueueSheddingSpec(Spec, ABC):
    """When a server drops a queued attempt instead of serving it. Each policy is checked as
    an attempt reaches the head of the queue (a worker is free for it): one that waited too
    long is shed, and the next one is looked at."""

    kind: str

    @abstractmethod
    def limit_s(self, busy_for_s: float) -> float:
        """The longest an attempt may have waited, when the queue has not been empty for
        ``busy_for_s`` seconds."""


@QUEUE_SHEDDING.register("max_delay")
class MaxDelaySpec(QueueSheddingSpec):
    """A fixed bound on the time in queue (HAProxy's ``timeout queue``, a deadline)."""

    kind: Literal["max_delay"] = "max_delay"
    limit: PositiveDuration = Field(le=86_400)

    def limit_s(self, busy_for_s: float) -> float:
        return self.limit


@QUEUE_SHEDDING.register("codel")
class CodelSpec(QueueSheddingSpec):
    """Controlled delay for request queues, as Facebook runs it ("Fail at scale", Maurer,
    ACM Queue 2015, after Nichols & Jacobson's CoDel): while the queue has been empty within
    the last ``interval``, an attempt may wait up to ``interval`` (a burst is absorbed); once
    it has stayed non-empty for a whole ``interval`` (a standing queue), only up to
    ``target``."""

    kind: Literal["codel"] = "codel"
    target: PositiveDuration = Field(0.005, le=3_600)
    interval: PositiveDuration = Field(0.1, le=86_400)

    def limit_s(self, busy_for_s: float) -> float:
        return self.target if busy_for_s >= self.interval else self.interval


QueueSheddingSpecField = registered(QUEUE_SHEDDING, QueueSheddingSpec)
