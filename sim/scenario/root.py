"""The root of a scenario: horizon, seed, and the parts that make up one simulated world."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from sim.registry import did_you_mean
from sim.scenario.cluster import BalancerSpec, ServerGroupSpec
from sim.scenario.database import DatabaseSpec
from sim.scenario.failures import FailureSpecField, ZoneOutageSpec
from sim.scenario.maintenance import MaintenanceSpec
from sim.scenario.workload import WorkloadSpec
from sim.spec import (
    Count,
    Fraction,
    Name,
    NonNegativeDuration,
    PositiveDuration,
    Spec,
    located_error,
)

__all__ = ["MAX_ROWS", "MetricsSpec", "Scenario", "SloSpec"]

MAX_ROWS = 1_000_000
"""The most time-series rows a run may have: each costs a few hundred bytes and some work."""


class MetricsSpec(Spec):
    """``step`` is the width of one row of the time series; ``per_server`` adds a time series
    with one row per server and step (``servers.csv``), which grows with the number of servers
    times steps."""

    step: PositiveDuration = 10.0
    per_server: bool = False


class SloSpec(Spec):
    """Service level objectives, and what counts as the service being up.

    ``availability`` is the target the error budget is measured against. A request is *good*
    when it ends ``ok`` within ``latency``; the latency objective holds when the
    ``latency_percentile`` of ok requests is within ``latency``. A request class is *up* while
    the balancer is up, at least ``min_servers`` working servers are in its rotation, and the
    database shards it needs can serve it (:mod:`sim.model.service`).
    """

    availability: Fraction = 0.999
    latency: PositiveDuration | None = None
    latency_percentile: Fraction = 0.99
    min_servers: Count = Field(1, ge=1, le=100_000)
    window: PositiveDuration = 60.0

    """Windowed availability ("good minutes"): the measurement window is cut into windows of
    this length, and a window is good when at least ``window_good`` of the requests that
    ended in it were good (a window where none ended is good)."""
    window_good: Fraction = 0.99

    @property
    def availability_is_default(self) -> bool:
        """The scenario sets no ``availability`` target: reports say the 99.9% is the default,
        so that nobody reads a verdict against it as one against their own objective."""
        return "availability" not in self.model_fields_set


class Scenario(Spec):
    """One simulated world: workload, balancer, servers, horizon and seed."""

    name: Name = "scenario"
    description: str = Field("", max_length=10_000)
    seed: Count = Field(1, ge=0, le=2**63 - 1)
    replications: Count = Field(1, ge=1, le=100_000)
    """Independent replications `ecsim run` makes (each metric then gets a confidence interval)."""
    duration: PositiveDuration
    warmup: NonNegativeDuration = 0.0
    workload: WorkloadSpec
    balancer: BalancerSpec = BalancerSpec()
    servers: list[ServerGroupSpec] = Field(min_length=1)
    database: DatabaseSpec | None = None
    failures: list[FailureSpecField] = Field(default_factory=list)
    maintenance: list[MaintenanceSpec] = Field(default_factory=list, max_length=1000)
    """Planned work (rolling deploys, maintenance windows): :mod:`sim.scenario.maintenance`."""
    slo: SloSpec = SloSpec()
    metrics: MetricsSpec = MetricsSpec()

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        if self.duration / self.metrics.step > MAX_ROWS:
            raise located_error(
                ".metrics.step",
                f"a {self.metrics.step:g}s step over {self.duration:g}s makes more than"
                f" {MAX_ROWS:,} time-series rows; use a longer step",
            )
        if self.duration / self.slo.window > MAX_ROWS:
            raise located_error(
                ".slo.window",
                f"{self.slo.window:g}s windows over {self.duration:g}s make more than"
                f" {MAX_ROWS:,} windows; use longer windows",
            )
        if self.metrics.per_server:
            servers = sum(len(group.server_names()) for group in self.servers)
            if servers * self.duration / self.metrics.step > MAX_ROWS:
                raise located_error(
                    ".metrics.per_server",
                    f"{servers:,} servers over {self.duration / self.metrics.step:,.0f} steps make"
                    f" more than {MAX_ROWS:,} per-server rows; use a longer step, or no"
                    " per_server",
                )
        if self.warmup >= self.duration:
            raise located_error(
                ".warmup",
                f"warm-up ({self.warmup:g}s) must be shorter than the duration"
                f" ({self.duration:g}s); on the command line, --warmup sets it",
            )
        groups = [group.name for group in self.servers]
        for index, name in enumerate(groups):
            if name in groups[:index]:
                raise located_error(f".servers[{index}].name", f"duplicate group {name!r}")
        for index, name in enumerate(self.balancer.backends or []):
            _check_name(f".balancer.backends[{index}]", "server group", name, groups)
        behind = {group.name for group in self.backend_groups()}
        for index, group in enumerate(self.servers):
            if group.autoscaling is not None and group.name not in behind:
                raise located_error(
                    f".servers[{index}].autoscaling",
                    f"group {group.name!r} is not behind the balancer (balancer.backends), so"
                    " servers launched there would never take traffic",
                )
        for index, request_class in enumerate(self.workload.classes):
            uses = request_class.database
            if uses is not None and (uses.reads or uses.writes) and self.database is None:
                raise located_error(
                    f".workload.classes[{index}].database",
                    "this class reads or writes data, but the scenario has no 'database'",
                )
            cache = self.database.cache if self.database is not None else None
            if uses is not None and uses.cacheable and cache is None:
                raise located_error(
                    f".workload.classes[{index}].database.cacheable",
                    "this class's reads are cacheable, but the database has no 'cache'; add"
                    " database.cache: {nodes, capacity}",
                )
        servers = [name for group in self.servers for name in group.server_names()]
        zones = sorted({group.zone for group in self.servers})
        self._check_maintenance()
        if self.database is not None:
            if "db" in groups:
                raise located_error(".servers", "the group name 'db' is kept for the database")
            groups = [*groups, "db"]
            servers += self.database.node_names()
            zones = sorted({*zones, *self.database.zones})
            if self.database.cache is not None:
                if "cache" in groups:
                    raise located_error(
                        ".servers", "the group name 'cache' is kept for the database's cache"
                    )
                groups = [*groups, "cache"]
                servers += self.database.cache.node_names()
        for index, failure in enumerate(self.failures):
            target = failure.target
            if isinstance(failure, ZoneOutageSpec):
                _check_name(f".failures[{index}].zone", "zone", failure.zone, zones)
            elif target.server is not None:
                _check_name(f".failures[{index}].target.server", "server", target.server, servers)
            elif target.group is not None:
                _check_name(
                    f".failures[{index}].target.group", "server group", target.group, groups
                )
            elif target.zone is not None:
                _check_name(f".failures[{index}].target.zone", "zone", target.zone, zones)
        return self

    def _check_maintenance(self) -> None:
        """Maintenance names servers behind the balancer: a database node's planned
        switchover is not a drain."""
        groups = self.backend_groups()
        names = {
            "server": [name for group in groups for name in group.server_names()],
            "group": [group.name for group in groups],
            "zone": sorted({group.zone for group in groups}),
        }
        for index, entry in enumerate(self.maintenance):
            for key, known in names.items():
                name = getattr(entry.target, key)
                if name is not None:
                    what = "server group" if key == "group" else key
                    _check_name(
                        f".maintenance[{index}].target.{key}",
                        f"{what} behind the balancer",
                        name,
                        known,
                    )

    @model_validator(mode="after")
    def _time_can_pass(self) -> Scenario:
        """A closed-loop user with no think time whose request can fail at once (a refused
        connection, no backend, a full queue) asks again at the same instant forever."""
        sessions = self.workload.sessions
        if sessions is None or sessions.think_time.mean() > 0:
            return self
        causes = [
            f"server group {group.name!r} has a bounded queue"
            for group in self.servers
            if group.queue_capacity is not None
        ]
        if self.database is not None and self.database.queue_capacity is not None:
            causes.append("the database has a bounded queue")
        if self.failures:
            causes.append("failures are injected")
        if self.balancer.outlier_ejection is not None:
            causes.append("outlier ejection can empty the pool")
        if self.balancer.detection.suspects_healthy_backends():
            causes.append("the detector can suspect every healthy backend at once")
        if causes:
            raise located_error(
                ".workload.sessions.think_time",
                "a think time that is always zero lets a user whose request fails at once ask"
                " again at the same instant forever, and simulated time would stop; requests"
                f" can fail at once here ({'; '.join(causes)}): give users a think time, even"
                " a small one such as {kind: exponential, mean: 1ms}",
            )
        return self

    def server_count(self) -> int:
        """Servers behind the balancer, spares included."""
        return sum(len(group.server_names()) for group in self.backend_groups())

    def backend_groups(self) -> list[ServerGroupSpec]:
        """The server groups behind the balancer, in declared order."""
        if self.balancer.backends is None:
            return list(self.servers)
        return [group for group in self.servers if group.name in self.balancer.backends]

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved scenario, every default filled in, in SI units."""
        return self.model_dump(mode="json", by_alias=True)


def _check_name(path: str, what: str, name: str, known: list[str]) -> None:
    if name not in known:
        raise located_error(
            path, f"unknown {what} {name!r}{did_you_mean(name, known)}; known: " + ", ".join(known)
        )
