"""The cluster of a scenario: server groups and the load balancer in front of them."""

from __future__ import annotations

from pydantic import Field

from sim.model.balancing import PolicySpecField, RoundRobinSpec
from sim.spec import Name, Spec

__all__ = ["BalancerSpec", "ServerGroupSpec"]


class ServerGroupSpec(Spec):
    """Identical servers: ``count`` of them, each with ``workers`` serving at once.

    A request that finds every worker busy waits in a FIFO queue of ``queue_capacity`` places
    (no limit when omitted); one that finds the queue full is rejected at once. ``speed`` divides
    service times (2.0 is twice as fast); ``weight`` is used by weighted policies.
    """

    name: Name
    count: int = Field(1, ge=1)
    workers: int = Field(1, ge=1)
    queue_capacity: int | None = Field(None, ge=0)
    speed: float = Field(1.0, gt=0)
    weight: float = Field(1.0, gt=0)
    zone: Name = "default"


class BalancerSpec(Spec):
    """The load balancer in front of the servers; ``backends`` lists server groups (default all)."""

    policy: PolicySpecField = RoundRobinSpec()
    backends: list[Name] | None = None
