"""The root of a scenario: horizon, seed, and the parts that make up one simulated world."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from sim.registry import did_you_mean
from sim.scenario.cluster import BalancerSpec, ServerGroupSpec
from sim.scenario.workload import WorkloadSpec
from sim.spec import Name, NonNegativeDuration, PositiveDuration, Spec, located_error

__all__ = ["MetricsSpec", "Scenario"]


class MetricsSpec(Spec):
    """``step`` is the width of one row of the time series."""

    step: PositiveDuration = 10.0


class Scenario(Spec):
    """One simulated world: workload, balancer, servers, horizon and seed."""

    name: Name = "scenario"
    description: str = ""
    seed: int = Field(1, ge=0)
    duration: PositiveDuration
    warmup: NonNegativeDuration = 0.0
    workload: WorkloadSpec
    balancer: BalancerSpec = BalancerSpec()
    servers: list[ServerGroupSpec] = Field(min_length=1)
    metrics: MetricsSpec = MetricsSpec()

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        if self.warmup >= self.duration:
            raise located_error(
                ".warmup",
                f"warm-up ({self.warmup:g}s) must be shorter than the duration"
                f" ({self.duration:g}s)",
            )
        groups = [group.name for group in self.servers]
        for index, name in enumerate(groups):
            if name in groups[:index]:
                raise located_error(f".servers[{index}].name", f"duplicate group {name!r}")
        for index, name in enumerate(self.balancer.backends or []):
            if name not in groups:
                raise located_error(
                    f".balancer.backends[{index}]",
                    f"unknown server group {name!r}{did_you_mean(name, groups)}; known: "
                    + ", ".join(groups),
                )
        return self

    def backend_groups(self) -> list[ServerGroupSpec]:
        """The server groups behind the balancer, in declared order."""
        if self.balancer.backends is None:
            return list(self.servers)
        return [group for group in self.servers if group.name in self.balancer.backends]

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved scenario, every default filled in, in SI units."""
        return self.model_dump(mode="json", by_alias=True)
