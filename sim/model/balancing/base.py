"""What every balancing policy shares: the balancer's view of a backend, and the policy contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sim.registry import Registry
from sim.spec import Spec, registered

__all__ = ["BALANCING_POLICIES", "Backend", "Policy", "PolicySpec", "PolicySpecField"]


class Backend:
    """The balancer's view of one server: what it has sent there and seen come back.

    A policy sees only this view, never the server itself: a real balancer knows how many
    connections it has open to a backend and how fast answers came back, not the backend's queue.
    """

    __slots__ = (
        "active",
        "consecutive_errors",
        "detected_up",
        "drained",
        "ejected",
        "ejections",
        "errors",
        "in_rotation_since",
        "index",
        "member",
        "name",
        "readmitted_at",
        "rotation_s",
        "server",
        "weight",
    )

    def __init__(
        self, index: int, name: str, weight: float, server: Any = None, member: bool = True
    ) -> None:
        self.index = index
        self.name = name
        self.weight = weight
        self.server = server
        self.active = 0
        self.member = member
        """In the pool at all: false for a spare until it is promoted."""
        self.detected_up = True
        """The failure detector's verdict."""
        self.ejected = False
        """Set by outlier ejection, for a while."""
        self.drained = False
        """Taken out of rotation by planned maintenance (:mod:`sim.model.maintenance`)."""
        self.consecutive_errors = 0
        self.ejections = 0
        """Outlier ejection's multiplier: ejections in a row, forgiven with time."""
        self.readmitted_at = 0.0
        self.errors = 0
        """Answers from it that were not ok (refused, lost, rejected, failed)."""
        self.rotation_s = 0.0
        """Seconds spent in rotation before the current spell (see ``in_rotation_since``)."""
        self.in_rotation_since: float | None = 0.0 if self.routable else None

    def rotation_time(self, now: float) -> float:
        """Seconds in rotation from the start of the run to ``now``."""
        since = self.in_rotation_since
        return self.rotation_s + (now - since if since is not None else 0.0)

    @property
    def routable(self) -> bool:
        return self.member and self.detected_up and not self.ejected and not self.drained

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, active={self.active})"


class Policy(ABC):
    """Chooses one backend from a non-empty list of the backends the balancer considers up.

    The list keeps the declared order of the servers, so choices are deterministic for a seed.
    The balancer never calls a policy with an empty list: it fails the request as ``no_backend``.

    A policy that would otherwise scan every backend per request may keep an *index* over the
    balancer's routing list, a structure that answers in O(log n) exactly as the scan would.
    The balancer keeps it current through two calls: :meth:`routing_changed` whenever its
    routing list changes, and :meth:`load_changed` after every change of a backend's
    ``active`` (only for policies that set ``watches_load``). ``choose`` uses the index only
    for the very list it was told of, when it has ``index_from`` backends or more, and scans
    any other list (slow start's steady backends, hot migration's other backends, a test's).
    """

    observes_latency = False
    """True for policies that learn from response times; only they are told of each response."""

    watches_load = False
    """True for policies whose index orders backends by ``active``; only they are told of each
    change of it."""

    index_from = 16
    """Routing lists shorter than this are scanned, not indexed: there a scan costs no more than
    keeping the index current (``benchmarks/policies.py``)."""

    @abstractmethod
    def choose(self, backends: Sequence[Backend]) -> Backend:
        """The backend that receives the next request."""

    def observe(self, backend: Backend, latency_s: float) -> None:
        """A response from ``backend`` took ``latency_s``; called when ``observes_latency``."""
        return None

    def routing_changed(self, backends: Sequence[Backend]) -> None:
        """From now on the balancer passes this very list (never changed in place) to
        ``choose``; it calls again on each new list, and must call again after changing a
        backend's ``weight``. Policies without an index ignore it."""
        return None

    def load_changed(self, backend: Backend) -> None:
        """``backend.active`` has just changed; called when ``watches_load``."""
        return None


class PolicySpec(Spec, ABC):
    """The options of a policy, as written under ``balancer.policy`` in a scenario."""

    kind: str

    @abstractmethod
    def build(
        self, rng: np.random.Generator, backend_count: int, clock: Callable[[], float]
    ) -> Policy:
        """A live policy for ``backend_count`` backends, drawing randomness from ``rng``;
        ``clock()`` is the simulated time in seconds, for policies whose knowledge ages."""


BALANCING_POLICIES: Registry[type[PolicySpec]] = Registry("balancing policy")

PolicySpecField = registered(BALANCING_POLICIES, PolicySpec)
"""Field type of ``balancer.policy``: a policy name, or ``{kind: <name>, ...options}``."""
