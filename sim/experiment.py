"""Running scenarios: one run now; replications, comparisons and sweeps build on it.

A run is a pure function of (scenario, seed, replication): the same three give the same summary
and time series, bit for bit, on any machine and in any process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sim.analysis import summarize
from sim.model.cluster import Cluster
from sim.model.monitor import EVENT_COLUMNS, INCIDENT_COLUMNS
from sim.reliability import markov_availability
from sim.scenario import Scenario
from sim.streams import Streams

__all__ = ["RunResult", "run"]


@dataclass
class RunResult:
    """What one run produced: its summary, its time series, its incidents (one row each), the
    timeline of component events, and how long it took to compute."""

    scenario: Scenario
    seed: int
    replication: int
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    incidents: pd.DataFrame
    events: pd.DataFrame
    wall_time_s: float = field(default=0.0, compare=False)


def run(
    scenario: Scenario,
    seed: int | None = None,
    replication: int = 0,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Simulate ``scenario`` for its duration; ``seed`` defaults to the scenario's own."""
    started = time.perf_counter()
    seed = scenario.seed if seed is None else seed
    cluster = Cluster.build(scenario, Streams(seed, replication))
    cluster.start()
    cluster.run(scenario.duration, progress)
    measured_s = scenario.duration - scenario.warmup
    incidents = [incident.record() for incident in cluster.monitor.incidents]
    summary = {
        "scenario": scenario.name,
        "seed": seed,
        "replication": replication,
        "duration_s": scenario.duration,
        "warmup_s": scenario.warmup,
        **summarize(
            cluster.recorder.measurement(),
            measured_s,
            cluster.measured_groups(),
            cluster.client.in_flight,
            service={
                "up_s": cluster.monitor.window_up_time()[0],
                "incidents": incidents,
                "false_suspicions": cluster.monitor.false_suspicions,
            },
            slo={
                "availability": scenario.slo.availability,
                "latency": scenario.slo.latency,
                "latency_percentile": scenario.slo.latency_percentile,
            },
        ),
    }
    summary["availability"]["markov"] = markov_availability(scenario)
    if cluster.data_tier is not None:
        summary["data"] = cluster.data_tier.summary(measured_s)
    return RunResult(
        scenario,
        seed,
        replication,
        summary,
        pd.DataFrame(cluster.recorder.rows),
        pd.DataFrame(incidents, columns=INCIDENT_COLUMNS),
        pd.DataFrame(cluster.monitor.events, columns=EVENT_COLUMNS),
        time.perf_counter() - started,
    )
