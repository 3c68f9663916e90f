"""A user's request, the attempts a client makes to get it served, and how each one ends.

A request is what a user wants (show me this product); an attempt is one try at a server. A
request whose attempt times out may be retried, and the timed-out attempt may still be queued or
running on its server: the server does not know the client gave up, which is exactly how retries
amplify load. A request ends exactly once; attempts that come back after their request has moved
on are wasted work.

Every attempt ends with a typed :class:`Cause` (why), which determines its :class:`Outcome`
(what the user sees). This module is plain data: the metrics and the summary read it too.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

__all__ = ["CAUSE_OUTCOME", "Attempt", "Cause", "Outcome", "Request"]


class Outcome(IntEnum):
    """How a request's life ends, as its user sees it; each request ends with exactly one."""

    OK = 0
    TIMEOUT = 1
    """The client stopped waiting at its deadline."""
    REJECTED = 2
    """A full queue turned the attempt away."""
    NO_BACKEND = 3
    """The balancer believed no backend up (a 503 from an empty pool)."""
    ERROR = 4
    """Something broke: see the :class:`Cause`."""
    SHED = 5
    """Turned away on purpose, at once, to protect the service from overload (a rate limit,
    a concurrency limit, a queueing delay too long): a fast failure the user may try again
    later, counted apart from ``rejected`` (a full queue) and errors."""

    @property
    def label(self) -> str:
        return self.name.lower()


class Cause(IntEnum):
    """Why an attempt ended as it did. Each cause belongs to one outcome (:data:`CAUSE_OUTCOME`);
    ``error`` has several, so a summary can say what broke."""

    OK = 0
    TIMEOUT = 1
    QUEUE_FULL = 2
    NO_BACKEND = 3
    SERVER_CRASH = 4
    """Refused by a crashed server, or lost in its crash."""
    UNREACHABLE = 5
    """A partition: the connect timeout expired, or the connection was cut."""
    BALANCER_DOWN = 6
    """The load balancer itself was down."""
    DATABASE_FAILOVER = 7
    """A database operation found no node to take it: no master during a failover (or no
    readable node)."""
    DATABASE_ERROR = 8
    """A database node refused, lost, rejected or never received an operation."""
    CIRCUIT_OPEN = 9
    """The client's circuit breaker for the class was open (or half-open with its probes out):
    the request failed at once without reaching the balancer, as a user sees a fast 503."""
    RATE_LIMITED = 10
    """The balancer's token bucket had no token for it (:mod:`sim.model.admission`)."""
    CONCURRENCY_LIMITED = 11
    """The balancer already had its limit of attempts in flight (for this priority)."""
    QUEUE_DELAY = 12
    """A server dropped it from its queue: it had waited longer than the server's shedding
    policy allows."""

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def outcome(self) -> Outcome:
        return CAUSE_OUTCOME[self]


_OUTCOME_OF = {
    Cause.OK: Outcome.OK,
    Cause.TIMEOUT: Outcome.TIMEOUT,
    Cause.QUEUE_FULL: Outcome.REJECTED,
    Cause.NO_BACKEND: Outcome.NO_BACKEND,
    Cause.SERVER_CRASH: Outcome.ERROR,
    Cause.UNREACHABLE: Outcome.ERROR,
    Cause.BALANCER_DOWN: Outcome.ERROR,
    Cause.DATABASE_FAILOVER: Outcome.ERROR,
    Cause.DATABASE_ERROR: Outcome.ERROR,
    Cause.CIRCUIT_OPEN: Outcome.ERROR,
    Cause.RATE_LIMITED: Outcome.SHED,
    Cause.CONCURRENCY_LIMITED: Outcome.SHED,
    Cause.QUEUE_DELAY: Outcome.SHED,
}
CAUSE_OUTCOME: tuple[Outcome, ...] = tuple(_OUTCOME_OF[cause] for cause in Cause)
"""The outcome of each cause, indexed by cause (a cause without one fails at import)."""


class Request:
    __slots__ = ("attempts", "class_index", "created_at", "demand_s", "ended", "on_end")

    def __init__(
        self,
        class_index: int,
        created_at: float,
        demand_s: float,
        on_end: Callable[[Cause], Any] | None = None,
    ) -> None:
        self.class_index = class_index
        self.created_at = created_at
        self.demand_s = demand_s
        self.on_end = on_end
        self.attempts = 0
        self.ended = False


class Attempt:
    """One try of a request at one backend; ``live`` until the client stops waiting for it.

    ``demand_s`` is the work it brings a server (at speed 1): the request's, which a retry
    repeats; a hedged attempt draws its own (:mod:`sim.model.resilient_client`).
    """

    __slots__ = (
        "backend",
        "deadline",
        "demand_s",
        "entry",
        "live",
        "migrated",
        "queued_at",
        "request",
        "sent_at",
    )

    def __init__(self, request: Request, sent_at: float, deadline: float) -> None:
        self.request = request
        self.sent_at = sent_at
        self.deadline = deadline
        self.demand_s = request.demand_s
        self.backend: Any = None
        self.entry: Any = None  # the balancer instance it went through, behind DNS
        self.live = True
        self.migrated = False
        self.queued_at = sent_at
