"""A user's request and the attempts a client makes to get it served.

A request is what a user wants (show me this product); an attempt is one try at a server. A
request whose attempt times out may be retried, and the timed-out attempt may still be queued or
running on its server: the server does not know the client gave up, which is exactly how retries
amplify load. A request ends exactly once; attempts that come back after their request has moved
on are wasted work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Attempt", "Request"]


class Request:
    __slots__ = ("attempts", "class_index", "created_at", "demand_s", "ended", "on_end")

    def __init__(
        self,
        class_index: int,
        created_at: float,
        demand_s: float,
        on_end: Callable[[int], Any] | None = None,
    ) -> None:
        self.class_index = class_index
        self.created_at = created_at
        self.demand_s = demand_s
        self.on_end = on_end
        self.attempts = 0
        self.ended = False


class Attempt:
    """One try of a request at one backend; ``live`` until the client stops waiting for it."""

    __slots__ = ("backend", "deadline", "live", "migrated", "queued_at", "request", "sent_at")

    def __init__(self, request: Request, sent_at: float, deadline: float) -> None:
        self.request = request
        self.sent_at = sent_at
        self.deadline = deadline
        self.backend: Any = None
        self.live = True
        self.migrated = False
        self.queued_at = sent_at
