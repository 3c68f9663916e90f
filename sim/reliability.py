"""Long-horizon availability: centuries of failures and repairs, without a single request.

Estimating 99.99% takes years of simulated time: at that level the service is down about an
hour a year, a few incidents at most. Request-level simulation cannot cover that, so this mode
runs only the failure, detection and failover processes (detection as a delay drawn from the
detector's own distribution, see :class:`sim.model.detection.SampledDetection`) and integrates
the time the service is up. Independent replications give a Student-t confidence interval.

Where the design is Markovian enough (one server group behind the balancer, exponential times
to failure and repair), the steady-state availability of the equivalent continuous-time Markov
chain is computed beside it, as a cross-check.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from sim.analysis import (
    availability_figures,
    downtime_per_year_s,
    incident_summary,
    mean_confidence_interval,
    nines,
    time_based_figures,
)
from sim.distributions import Exponential
from sim.model.cluster import Cluster
from sim.scenario import CrashRepairSpec, Scenario
from sim.streams import Streams
from sim.theory import single_component_availability, standby_group_availability

__all__ = ["YEAR_S", "estimate_availability", "markov_availability", "simulate_years"]

YEAR_S = 365.25 * 86400


def simulate_years(scenario: Scenario, years: float, seed: int, replication: int) -> dict[str, Any]:
    """One replication of ``years``: the time-based figures of the service
    (:func:`sim.analysis.time_based_figures`), each class's, and the incidents."""
    cluster = Cluster.build(scenario, Streams(seed, replication), requests=False)
    cluster.start()
    cluster.run(years * YEAR_S)
    totals = cluster.monitor.service_totals()
    elapsed_s = totals["elapsed_s"]
    records = [incident.record() for incident in cluster.monitor.incidents]
    figures = time_based_figures(totals, elapsed_s)
    return {
        "replication": replication,
        "availability": figures["time_based"],
        "all_classes": figures["time_based_all_classes"],
        "classes": {name: up_s / elapsed_s for name, up_s in totals["class_up_s"].items()},
        "downtime_s": figures["downtime_s"],
        "downtime_by_cause_s": figures["downtime_by_cause_s"],
        "incidents": incident_summary(records, cluster.monitor.false_suspicions),
    }


def _interval(values: list[float], confidence: float) -> dict[str, float]:
    """An availability's mean over replications, its Student-t interval, nines and downtime."""
    mean, half_width = mean_confidence_interval(values, confidence)
    low, high = max(0.0, mean - half_width), min(1.0, mean + half_width)
    return {
        **availability_figures(mean),
        "half_width": half_width,
        "low": low,
        "high": high,
        "nines_low": nines(low),
        "nines_high": nines(high),
        "downtime_per_year_s_low": downtime_per_year_s(high),
        "downtime_per_year_s_high": downtime_per_year_s(low),
    }


def estimate_availability(
    scenario: Scenario,
    years: float = 1000.0,
    replications: int = 10,
    seed: int | None = None,
    confidence: float = 0.95,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Time-based availability over ``years`` in all, split into independent replications.

    Returns the service's availability (classes weighted by share), that of all classes at
    once and of each class, each with a Student-t interval over the replications, and the
    downtime per year charged to each cause (:mod:`sim.model.service`) with its interval.
    Raises ``ValueError`` for fewer than 2 replications.
    """
    if replications < 2:
        raise ValueError("a confidence interval needs at least 2 replications")
    seed = scenario.seed if seed is None else seed
    started = time.perf_counter()
    per_replication = years / replications
    runs = []
    for replication in range(replications):
        runs.append(simulate_years(scenario, per_replication, seed, replication))
        if progress is not None:
            progress((replication + 1) / replications)
    values = [run["availability"] for run in runs]
    incidents = sum(run["incidents"]["count"] for run in runs)
    markov = markov_availability(scenario)
    by_cause = {}
    for cause in runs[0]["downtime_by_cause_s"]:
        per_year = [run["downtime_by_cause_s"][cause] / per_replication for run in runs]
        mean, half_width = mean_confidence_interval(per_year, confidence)
        by_cause[cause] = {
            "per_year_s": mean,
            "low": max(0.0, mean - half_width),
            "high": mean + half_width,
        }
    return {
        "scenario": scenario.name,
        "seed": seed,
        "mode": "availability",
        "years": years,
        "replications": replications,
        "confidence": confidence,
        "availability": _interval(values, confidence),
        "all_classes": _interval([run["all_classes"] for run in runs], confidence),
        "classes": {
            name: _interval([run["classes"][name] for run in runs], confidence)
            for name in runs[0]["classes"]
        },
        "downtime_by_cause": by_cause,
        "markov": markov,
        "incidents_per_year": incidents / years,
        "mean_time_to_detect_s": _weighted(runs, "mean_time_to_detect_s", "detected"),
        "mean_failover_time_s": _weighted(runs, "mean_failover_time_s", "detected"),
        "mean_time_to_recover_s": _weighted(runs, "mean_time_to_recover_s", "recovered"),
        "per_replication": values,
        "wall_time_s": time.perf_counter() - started,
    }


def _weighted(runs: list[dict[str, Any]], key: str, weight: str) -> float:
    pairs = [
        (run["incidents"][key], run["incidents"][weight])
        for run in runs
        if run["incidents"][weight] and not math.isnan(run["incidents"][key])
    ]
    total = sum(count for _, count in pairs)
    return sum(value * count for value, count in pairs) / total if total else math.nan


def _no_chain(reason: str) -> dict[str, Any]:
    return {"value": None, "nines": None, "downtime_per_year_s": None, "reason": reason}


def markov_availability(scenario: Scenario) -> dict[str, Any]:
    """The CTMC steady-state availability of the design, or why there is none.

    Applies to one server group behind the balancer, failing by one ``crash_repair`` entry on
    the group with exponential times, with or without spares and repair crews, and optionally
    a balancer failing by its own ``crash_repair`` (any distributions: it is in series, and a
    single alternating component's availability is MTTF / (MTTF + MTTR) whatever the
    distributions). Detection and promotion delays enter as one exponential failover delay of
    the same mean: exact when they are negligible or exponential, an approximation otherwise.
    """
    groups = scenario.backend_groups()
    if len(groups) != 1:
        return _no_chain("the chain covers a single server group")
    group = groups[0]
    group_failures, balancer_failures = [], []
    for failure in scenario.failures:
        if isinstance(failure, CrashRepairSpec) and failure.target.group == group.name:
            group_failures.append(failure)
        elif isinstance(failure, CrashRepairSpec) and failure.target.balancer:
            balancer_failures.append(failure)
        else:
            return _no_chain(f"{failure.kind} on {failure.target.describe()} is outside the chain")
    if len(group_failures) != 1 or len(balancer_failures) > 1:
        return _no_chain("the chain needs one crash_repair entry on the group")
    failure = group_failures[0]
    if not (
        isinstance(failure.time_to_failure, Exponential)
        and isinstance(failure.time_to_repair, Exponential)
    ):
        return _no_chain("times to failure and repair must be exponential")
    detection = scenario.balancer.detection
    standby = group.standby
    failover_s = detection.mean_detection_delay(refused=True)  # crashes refuse connections
    if standby is not None:
        failover_s += standby.promotion_delay.mean()
        if standby.mode == "cold":
            failover_s += standby.boot_time.mean()
    # The rejoin after a repair is folded into the repair time, of the same mean.
    repair_s = failure.time_to_repair.mean() + detection.mean_rejoin_delay()
    value = standby_group_availability(
        active=group.count,
        required=min(scenario.slo.min_servers, group.count),
        spares=standby.count if standby else 0,
        failure_rate=1 / failure.time_to_failure.mean(),
        repair_rate=1 / repair_s,
        failover_rate=1 / max(failover_s, 1e-9),
        hot_spares=standby is None or standby.mode == "hot",
        repair_crews=failure.repair_crews,
    )
    if balancer_failures:
        spec = balancer_failures[0]
        value *= single_component_availability(
            spec.time_to_failure.mean(), spec.time_to_repair.mean()
        )
    return {**availability_figures(value), "reason": ""}
