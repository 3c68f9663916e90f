"""The cluster of a scenario: server groups and the load balancer in front of them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from sim.distributions import DelaySpec, Deterministic
from sim.model.balancing import PolicySpecField, RoundRobinSpec
from sim.scenario.admission import AdmissionSpec, QueueSheddingSpecField
from sim.scenario.detection import DetectorSpecField, HealthCheckSpec, OutlierEjectionSpec
from sim.scenario.redundancy import RedundancySpecField
from sim.spec import (
    Count,
    Fraction,
    Name,
    NonNegativeDuration,
    PositiveDuration,
    Spec,
    located_error,
)
from sim.units import parse_fraction

__all__ = ["AutoscalingSpec", "BalancerSpec", "ColdStartSpec", "ServerGroupSpec", "StandbySpec"]


class StandbySpec(Spec):
    """Spare servers that take over when detection declares a server of the group dead.

    ``hot`` spares run all the time and take over after ``promotion_delay``; ``cold`` spares
    are off and need ``boot_time`` first. A spare goes back to standby when the server it
    replaced is repaired and back in rotation. Hot spares can fail while waiting; cold ones
    cannot while they are off.
    """

    count: Count = Field(1, ge=0, le=1_000)
    """Spares; 0 is a group without any (as ``standby: null``), so a sweep can start there."""
    mode: Literal["hot", "cold"] = "hot"
    promotion_delay: DelaySpec = Deterministic(value=0.0)
    boot_time: DelaySpec = Deterministic(value=0.0)


class ColdStartSpec(Spec):
    """Cold caches after a restart: the first service after a server of the group is repaired
    (or a cold spare boots) takes ``factor`` times longer, and the factor falls linearly to 1
    over ``warm_up`` from then (see :class:`sim.model.server.Server`). Linear rather than
    exponential: the server is warm after ``warm_up``, as the name promises (an exponential
    decay never ends, and its time constant is not what operators measure), and the decay
    mirrors the linear weight ramp of ``balancer.slow_start`` that is meant to cover it.
    ``factor`` 1 is a warm restart, so a sweep can start there."""

    factor: float = Field(ge=1.0, le=1_000)
    warm_up: PositiveDuration = Field(le=86_400)


def _percentage(value: Any) -> Any:
    """``60%`` as 0.6; anything else is left for the number check."""
    if isinstance(value, str) and value.strip().endswith("%"):
        return parse_fraction(value)
    return value


class AutoscalingSpec(Spec):
    """Target tracking: keep a metric of the group's servers near ``target`` by launching and
    retiring servers (see :mod:`sim.model.autoscaling`).

    Every ``evaluation_period`` the autoscaler averages ``metric`` over the period across the
    servers in service, and wants ``ceil(in_service * metric / target)`` servers, between
    ``min`` and ``max`` (the Kubernetes HorizontalPodAutoscaler's rule; AWS target tracking
    behaves alike), unless the metric is within ``tolerance`` of the target. A scale-out waits
    ``scale_out_cooldown`` after the last scale-out, a scale-in ``scale_in_cooldown`` after the
    last scaling of either kind. A launched server is provisioned for ``provisioning_delay``,
    then starts (cold, with the group's ``cold_start``) and takes traffic once the balancer's
    detector sees it healthy; a retired one is drained first, for at most ``drain_timeout``.
    """

    metric: Literal["utilization", "queue_length"] = "utilization"
    """``utilization``: busy workers over workers; ``queue_length``: attempts waiting per
    server, both averaged over the evaluation period."""
    target: Annotated[float, BeforeValidator(_percentage)] = Field(gt=0, le=1_000_000)
    """The utilization to keep (``60%``), or the attempts waiting per server."""
    minimum: Count = Field(1, alias="min", ge=1, le=10_000)
    maximum: Count = Field(alias="max", ge=1, le=10_000)
    evaluation_period: PositiveDuration = 60.0
    tolerance: Fraction = 0.1
    """No change while the metric is within this share of the target (above 50% a target
    of 50% or more could never be left)."""
    scale_out_cooldown: NonNegativeDuration = 60.0
    scale_in_cooldown: NonNegativeDuration = 300.0
    provisioning_delay: DelaySpec = Deterministic(value=60.0)
    drain_timeout: NonNegativeDuration = 30.0

    @model_validator(mode="after")
    def _consistent(self) -> AutoscalingSpec:
        if self.minimum > self.maximum:
            raise located_error(".min", f"min ({self.minimum}) is above max ({self.maximum})")
        if self.metric == "utilization" and self.target > 1:
            hint = f" (for {self.target:g} percent, write {self.target:g}%)"
            raise located_error(
                ".target",
                f"a utilization target is a fraction up to 1, not {self.target:g}"
                + (hint if self.target <= 100 else ""),
            )
        if self.tolerance > 0.5:
            raise located_error(
                ".tolerance",
                f"a tolerance of {self.tolerance:.0%} is more than 50%: a target of 50% or more"
                " could then never be left (the HPA's default is 10%)",
            )
        return self


class ServerGroupSpec(Spec):
    """Identical servers: ``count`` of them, each with ``workers`` serving at once.

    A request that finds every worker busy waits in a FIFO queue of ``queue_capacity`` places
    (no limit when omitted); one that finds the queue full is rejected at once. ``speed`` divides
    service times (2.0 is twice as fast); ``weight`` is used by weighted policies.
    ``cold_start`` makes a restarted server slow at first (:class:`ColdStartSpec`).
    """

    name: Name
    count: Count = Field(1, ge=1, le=10_000)
    workers: Count = Field(1, ge=1, le=100_000)
    queue_capacity: Count | None = Field(None, ge=0, le=10_000_000)
    speed: float = Field(1.0, gt=0, le=1_000)
    weight: float = Field(1.0, gt=0, le=1_000_000)
    zone: Name = "default"
    standby: StandbySpec | None = None
    cold_start: ColdStartSpec | None = None
    autoscaling: AutoscalingSpec | None = None
    """Servers launched and retired with the load; ``count`` is how many run at the start."""
    queue_discipline: Literal["fifo", "priority"] = "fifo"
    """``priority``: the queue is served highest class priority first (non-preemptive), in
    arrival order within a priority."""
    shedding: QueueSheddingSpecField | None = None
    """Drop queued attempts that waited too long (:mod:`sim.scenario.admission`)."""

    @field_validator("standby", mode="after")
    @classmethod
    def _no_spares(cls, standby: StandbySpec | None) -> StandbySpec | None:
        return None if standby is not None and standby.count == 0 else standby

    @model_validator(mode="after")
    def _scaling(self) -> ServerGroupSpec:
        scaling = self.autoscaling
        if scaling is None:
            return self
        if not scaling.minimum <= self.count <= scaling.maximum:
            raise located_error(
                ".count",
                f"an autoscaled group starts with count servers, between autoscaling.min"
                f" ({scaling.minimum}) and autoscaling.max ({scaling.maximum}), not {self.count}",
            )
        if self.standby is not None:
            raise located_error(
                ".standby",
                "an autoscaled group replaces lost capacity by launching servers: give it"
                " autoscaling or standby spares, not both",
            )
        return self

    def server_names(self) -> list[str]:
        """Names of the servers running at the start, then of those autoscaling may launch,
        then of the spares: web-1, web-2, (web-3, ...), web-standby-1."""
        spares = self.standby.count if self.standby else 0
        last = self.autoscaling.maximum if self.autoscaling else self.count
        return [f"{self.name}-{n}" for n in range(1, last + 1)] + [
            f"{self.name}-standby-{n}" for n in range(1, spares + 1)
        ]


class BalancerSpec(Spec):
    """The load balancer in front of the servers; ``backends`` lists server groups (default all).

    ``detection`` is how it learns of failures (active health checks by default);
    ``outlier_ejection`` adds passive detection from real traffic. An attempt sent to a backend
    it cannot reach fails after ``connect_timeout``; with ``hot_migration``, an attempt whose
    backend fails under it (connection refused or reset) is sent once to another backend
    instead of failing. ``redundancy`` runs several instances (an active/passive pair).
    ``panic_threshold`` is Envoy's healthy panic threshold: while fewer than that share of the
    pool's members pass detection, the balancer routes to all of them, healthy or not (0, the
    default, never; Envoy's default is 50%). ``slow_start`` is the window over which a backend
    that enters the rotation after the start ramps its weight linearly from zero to its own, as
    HAProxy's ``slowstart``, nginx's ``slow_start`` and Envoy's slow start mode do (0, the
    default, never; see :mod:`sim.model.slow_start`).
    """

    policy: PolicySpecField = RoundRobinSpec()
    backends: list[Name] | None = Field(None, min_length=1)
    detection: DetectorSpecField = HealthCheckSpec()
    outlier_ejection: OutlierEjectionSpec | None = None
    connect_timeout: NonNegativeDuration = 1.0
    hot_migration: bool = False
    panic_threshold: Fraction = 0.0
    slow_start: NonNegativeDuration = Field(0.0, le=86_400)
    admission: AdmissionSpec | None = None
    """Rate and concurrency limits; what they turn away is ``shed``
    (:mod:`sim.scenario.admission`)."""
    redundancy: RedundancySpecField | None = None
    """Several balancer instances and how the address moves between them
    (:mod:`sim.scenario.redundancy`); one instance, a single point of failure, when omitted."""
