"""What goes wrong: the failure models a scenario can inject, under ``failures:``.

Each entry names a ``kind`` and a ``target``: a server (``{server: web-2}``), every server of a
group, each on its own (``{group: web}``), a whole zone at once (``{zone: zone-a}``), or the load
balancer (``balancer``)::

    failures:
      - {kind: crash_repair, target: {group: web},
         time_to_failure: {kind: exponential, mean: 30d},
         time_to_repair: {kind: lognormal, mean: 2h, cv: 1}}
      - {kind: crash, target: {server: web-2}, at: 10m, duration: 5m}
      - {kind: slowdown, target: {server: web-3}, at: 5m, duration: 10m, factor: 5}
      - {kind: partition, target: {zone: zone-b}, at: 20m, duration: 2m}
      - {kind: pause, target: {group: web}, duration: {kind: lognormal, mean: 200ms, cv: 1},
         time_between: {kind: exponential, mean: 1m}}
      - {kind: zone_outage, zone: zone-a, at: 30m, duration: 10m}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sim.distributions import DelaySpec, DistributionSpec
from sim.registry import Registry
from sim.spec import (
    Count,
    Name,
    NonNegativeDuration,
    PositiveDuration,
    Spec,
    located_error,
    registered,
)

__all__ = [
    "FAILURE_MODELS",
    "CrashRepairSpec",
    "CrashSpec",
    "FailureSpec",
    "FailureSpecField",
    "PartitionSpec",
    "PauseSpec",
    "PeerSpec",
    "SlowdownSpec",
    "TargetSpec",
    "ZoneOutageSpec",
]

FAILURE_MODELS: Registry[type[FailureSpec]] = Registry("failure model")


class TargetSpec(Spec):
    """Exactly one of ``server``, ``group``, ``zone`` or ``balancer: true``."""

    server: Name | None = None
    group: Name | None = None
    zone: Name | None = None
    balancer: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if data == "balancer":
            return {"balancer": True}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetSpec:
        given = [self.server, self.group, self.zone, self.balancer or None]
        if sum(item is not None for item in given) != 1:
            raise ValueError("give exactly one of server, group, zone, or write: balancer")
        return self

    def describe(self) -> str:
        if self.balancer:
            return "balancer"
        for key in ("server", "group", "zone"):
            value = getattr(self, key)
            if value is not None:
                return f"{key} {value}"
        return "nothing"


class FailureSpec(Spec):
    """Common to every failure model: what it hits."""

    kind: str
    target: TargetSpec

    def starts_at(self) -> float | None:
        """When a scheduled failure begins (seconds); None for a random one."""
        return None


def _repair_once(spec: Any) -> Any:
    if spec.duration is not None and spec.time_to_repair is not None:
        raise located_error(".duration", "give 'duration' or 'time_to_repair', not both")
    return spec


@FAILURE_MODELS.register("crash_repair")
class CrashRepairSpec(FailureSpec):
    """Random crashes and repairs, forever: an alternating renewal process per component.

    A group target gives each server its own independent process; a zone target fails the zone
    as one, taking all its servers down together.
    """

    kind: Literal["crash_repair"] = "crash_repair"
    time_to_failure: DistributionSpec
    time_to_repair: DistributionSpec
    repair_crews: Count | None = Field(None, ge=1, le=10_000)
    """How many components of this entry can be under repair at once (unlimited when omitted);
    the others wait their turn, first failed first repaired."""

    @model_validator(mode="after")
    def _time_passes(self) -> CrashRepairSpec:
        if self.time_to_failure.mean() == 0:
            raise located_error(
                ".time_to_failure",
                "a time to failure that is always zero fails a component again the instant it"
                " is repaired; give it a positive mean",
            )
        return self


@FAILURE_MODELS.register("crash")
class CrashSpec(FailureSpec):
    """Scheduled chaos: crash at ``at``, repaired after ``duration`` or a random
    ``time_to_repair``; with neither, the component stays down to the end of the run."""

    kind: Literal["crash"] = "crash"
    at: NonNegativeDuration
    duration: PositiveDuration | None = None
    time_to_repair: DistributionSpec | None = None

    @model_validator(mode="after")
    def _one_repair(self) -> CrashSpec:
        return _repair_once(self)

    def starts_at(self) -> float | None:
        return self.at


@FAILURE_MODELS.register("slowdown")
class SlowdownSpec(FailureSpec):
    """Gray failure: alive, answering heartbeats, but ``factor`` times slower for a while."""

    kind: Literal["slowdown"] = "slowdown"
    at: NonNegativeDuration
    duration: PositiveDuration
    factor: float = Field(gt=1.0, le=1_000_000)

    def starts_at(self) -> float | None:
        return self.at


@FAILURE_MODELS.register("pause")
class PauseSpec(FailureSpec):
    """Stop-the-world pauses (a garbage collector, a VM freeze): the target stays alive and
    reachable but does nothing for ``duration``; attempts, answers, heartbeats and health
    probes wait and are served late, nothing is refused. One pause at ``at``; with
    ``time_between``, each server pauses again and again, ``time_between`` after the end of
    its last pause, from ``at`` on."""

    kind: Literal["pause"] = "pause"
    at: NonNegativeDuration = 0.0
    duration: DelaySpec
    time_between: DistributionSpec | None = None

    @model_validator(mode="after")
    def _not_the_balancer(self) -> PauseSpec:
        if self.target.balancer:
            raise located_error(".target", "pauses apply to servers, not to the balancer")
        return self

    def starts_at(self) -> float | None:
        return self.at


class PeerSpec(TargetSpec):
    """The other side of a partition: ``balancer``, ``failover_manager`` (the data tier's
    detectors and the manager that promotes), or servers (a server, a group, a zone)."""

    failover_manager: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if data in ("balancer", "failover_manager"):
            return {data: True}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> PeerSpec:
        given = [self.server, self.group, self.zone, self.balancer or None]
        given.append(self.failover_manager or None)
        if sum(item is not None for item in given) != 1:
            raise ValueError(
                "give exactly one of server, group, zone, or write: balancer or failover_manager"
            )
        return self

    def describe(self) -> str:
        return "failover_manager" if self.failover_manager else super().describe()


@FAILURE_MODELS.register("partition")
class PartitionSpec(FailureSpec):
    """The network between ``target`` and ``peer`` fails for a while; the components on both
    sides stay alive. With the default ``peer: balancer``, the balancer cannot reach the
    target. Other peers make partial partitions: ``failover_manager`` (the data tier's
    detectors lose a node that clients still reach: split brain), a database node (a replica
    cut off from its master), another zone. ``direction``: ``both`` ways, or only the
    messages ``from_target`` (to the peer) or ``to_target`` (from the peer) are lost; an
    exchange that needs both ways (a probe, a request) fails either way."""

    kind: Literal["partition"] = "partition"
    at: NonNegativeDuration
    duration: PositiveDuration
    peer: PeerSpec = PeerSpec(balancer=True)
    direction: Literal["both", "from_target", "to_target"] = "both"

    @model_validator(mode="after")
    def _a_network_between(self) -> PartitionSpec:
        if self.target.balancer:
            raise located_error(
                ".target", "give the balancer as the peer, and the servers as the target"
            )
        if self.peer.balancer and self.direction != "both":
            raise located_error(
                ".direction",
                "the balancer exchanges requests and probes with its servers, which need both"
                " ways: a one-way partition there is a two-way one",
            )
        return self

    def starts_at(self) -> float | None:
        return self.at


@FAILURE_MODELS.register("zone_outage")
class ZoneOutageSpec(Spec):
    """A correlated outage: every server of ``zone`` crashes at once, and all come back together."""

    kind: Literal["zone_outage"] = "zone_outage"
    zone: Name
    at: NonNegativeDuration
    duration: PositiveDuration | None = None
    time_to_repair: DistributionSpec | None = None

    @model_validator(mode="after")
    def _one_repair(self) -> ZoneOutageSpec:
        return _repair_once(self)

    @property
    def target(self) -> TargetSpec:
        return TargetSpec(zone=self.zone)

    def starts_at(self) -> float | None:
        return self.at


FailureSpecField = registered(FAILURE_MODELS, Spec)
"""Field type of one entry of ``failures``: ``{kind: <failure model>, ...}``."""
