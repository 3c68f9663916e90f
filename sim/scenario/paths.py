"""What each request class needs from the cluster, and the causes its downtime is charged to.

Both are facts of the scenario, read by the model (:mod:`sim.model.service`), the Markov
cross-check and the metric catalogue alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["COMBINED", "MAINTENANCE", "ClassPath", "class_paths", "downtime_causes"]

COMBINED = "combined"
"""The cause of downtime while more than one tier is down at once."""
MAINTENANCE = "maintenance"
"""The cause of planned downtime: servers held by maintenance (:mod:`sim.scenario.maintenance`)."""


@dataclass(frozen=True)
class ClassPath:
    """What one request class needs to be served: its weight in the mix, and the data tier."""

    name: str
    weight: float
    """The class's share of requests: of arrivals (open loop), else of the session steps."""
    reads: bool
    writes: bool


def class_paths(scenario: Any) -> list[ClassPath]:
    """The path of every request class of ``scenario`` (a :class:`sim.scenario.Scenario`)."""
    workload = scenario.workload
    classes = workload.classes
    if workload.arrivals is not None:
        weights = workload.arrival_mix(scenario.duration)
    else:
        steps = workload.sessions.steps
        weights = [steps.count(request_class.name) / len(steps) for request_class in classes]
    total = sum(weights) or 1.0
    paths = []
    for request_class, weight in zip(classes, weights, strict=True):
        use = request_class.database if scenario.database is not None else None
        reads, writes = (use.reads > 0, use.writes > 0) if use is not None else (False, False)
        paths.append(ClassPath(request_class.name, float(weight / total), reads, writes))
    return paths


def downtime_causes(scenario: Any) -> list[str]:
    """Every cause downtime can be charged to in ``scenario``, in report order: ``balancer``,
    ``servers``, ``shard_<k>`` per database shard, ``zone_<zone>`` per zone some failure
    targets as a whole, ``maintenance`` where the scenario plans any, and ``combined``."""
    causes = ["balancer", "servers"]
    if scenario.database is not None:
        causes += [f"shard_{index}" for index in range(scenario.database.shards)]
    zones = [failure.target.zone for failure in scenario.failures if failure.target.zone]
    causes += [f"zone_{zone}" for zone in dict.fromkeys(zones)]
    if scenario.maintenance:
        causes.append(MAINTENANCE)
    return [*causes, COMBINED]
