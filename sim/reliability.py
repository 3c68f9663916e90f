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

import numpy as np

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
from sim.model.service import class_paths
from sim.scenario import CrashRepairSpec, Scenario
from sim.streams import Streams
from sim.theory import (
    erlang_stages,
    redundant_balancer_availability,
    replica_group_availability,
    single_component_availability,
    standby_group_availability,
)

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


def _interval(values: list[float], confidence: float) -> dict[str, Any]:
    """An availability's mean over replications, its Student-t interval, nines and downtime."""
    mean, half_width = mean_confidence_interval(values, confidence)
    low, high = max(0.0, mean - half_width), min(1.0, mean + half_width)
    return {
        "per_replication": values,
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


def _no_chain(scenario: Scenario, reason: str) -> dict[str, Any]:
    return {
        "value": None,
        "nines": None,
        "downtime_per_year_s": None,
        "all_classes": None,
        "classes": {request_class.name: None for request_class in scenario.workload.classes},
        "phase_error": None,
        "reason": reason,
    }


class _OutsideChain(Exception):
    """The design breaks an assumption of the chain; the message says which."""


def _exponential_entry(failures: list[CrashRepairSpec], what: str) -> CrashRepairSpec | None:
    if not failures:
        return None
    if len(failures) > 1:
        raise _OutsideChain(f"the chain needs at most one crash_repair entry on {what}")
    failure = failures[0]
    if not (
        isinstance(failure.time_to_failure, Exponential)
        and isinstance(failure.time_to_repair, Exponential)
    ):
        raise _OutsideChain(f"times to failure and repair of {what} must be exponential")
    return failure


def _delay_moments(sample: Callable[[np.random.Generator], float]) -> tuple[float, float]:
    """Mean and variance of a delay, from 20,000 draws of a fixed stream (a detector's delay
    has no closed-form variance in general)."""
    rng = np.random.default_rng(20_000)
    draws = np.array([sample(rng) for _ in range(20_000)])
    return float(draws.mean()), float(draws.var())


def _balancer_tier(scenario: Scenario, failures: list[CrashRepairSpec]) -> float:
    """A single balancer is an alternating component whatever its distributions; redundant
    ones are the chain of :func:`sim.theory.redundant_balancer_availability`, the takeover in
    Erlang stages matched to its law (that of the first backup)."""
    redundancy = scenario.balancer.redundancy
    if not failures:
        return 1.0
    if len(failures) > 1:
        raise _OutsideChain("the chain needs at most one crash_repair entry on the balancer")
    spec = failures[0]
    if redundancy is None:
        return single_component_availability(
            spec.time_to_failure.mean(), spec.time_to_repair.mean()
        )
    _exponential_entry(failures, "the balancers")
    mean, variance = _delay_moments(lambda rng: redundancy.takeover_delay(rng, 1))
    return redundant_balancer_availability(
        redundancy.count,
        failure_rate=1 / spec.time_to_failure.mean(),
        repair_rate=1 / spec.time_to_repair.mean(),
        takeover_rate=1 / max(mean, 1e-9),
        takeover_stages=erlang_stages(mean, variance),
        repair_crews=spec.repair_crews,
    )


def _servers_tier(scenario: Scenario, group, failure: CrashRepairSpec | None) -> float:
    if failure is None:
        return 1.0
    detection = scenario.balancer.detection
    standby = group.standby
    failover_s = detection.mean_detection_delay(refused=True)  # crashes refuse connections
    if standby is not None:
        failover_s += standby.promotion_delay.mean()
        if standby.mode == "cold":
            failover_s += standby.boot_time.mean()
    # The rejoin after a repair is folded into the repair time, of the same mean.
    repair_s = failure.time_to_repair.mean() + detection.mean_rejoin_delay()
    return standby_group_availability(
        active=group.count,
        required=min(scenario.slo.min_servers, group.count),
        spares=standby.count if standby else 0,
        failure_rate=1 / failure.time_to_failure.mean(),
        repair_rate=1 / repair_s,
        failover_rate=1 / max(failover_s, 1e-9),
        hot_spares=standby is None or standby.mode == "hot",
        repair_crews=failure.repair_crews,
    )


def _shard_tier(
    scenario: Scenario, failure: CrashRepairSpec | None, stages_scale: int
) -> tuple[float, float]:
    """(writable, readable) of one shard, with ``stages_scale`` times the matched stages."""
    database = scenario.database
    if failure is None:
        return 1.0, 1.0
    detection = database.detection
    replication = database.replication
    detect_mean, detect_variance = _delay_moments(
        lambda rng: detection.detection_delay(rng, refused=True)
    )
    promotion = replication.promotion_delay
    promote_mean, promote_variance = promotion.mean(), promotion.variance()
    writable, readable = replica_group_availability(
        database.nodes_per_shard(),
        failure_rate=1 / failure.time_to_failure.mean(),
        repair_rate=1 / (failure.time_to_repair.mean() + detection.mean_rejoin_delay()),
        detection_rate=1 / max(detect_mean, 1e-9),
        promotion_rate=1 / max(promote_mean, 1e-9),
        detection_stages=stages_scale * erlang_stages(detect_mean, detect_variance, 8),
        promotion_stages=stages_scale * erlang_stages(promote_mean, promote_variance, 8),
        repair_crews=failure.repair_crews,
        multi_master=replication.kind == "multi_master",
    )
    if replication.kind == "master_slave" and replication.read_from == "master":
        readable = writable
    return writable, readable


def markov_availability(scenario: Scenario) -> dict[str, Any]:
    """The design's availability from Markov chains, per request class and for the service.

    The tiers on a class's path fail independently, so the class is up with the product of
    their availabilities (a series system of redundant blocks: a reliability block diagram;
    Trivedi, *Probability and Statistics with Reliability, Queuing and Computer Science
    Applications*, ch. 8): a single balancer, an alternating component (MTTF / (MTTF + MTTR),
    for any distributions: renewal-reward), redundant ones the chain of
    :func:`sim.theory.redundant_balancer_availability`; the server group, the standby chain of
    :func:`sim.theory.standby_group_availability`; every shard the class writes (reads), the
    chain of :func:`sim.theory.replica_group_availability`, solved once since shards are alike.
    The service's value is the share-weighted mean of the classes, as the simulation defines
    it. Each tier may fail by at most one ``crash_repair`` entry with exponential times (on the
    group, ``balancer``, or the ``db`` group); anything else is outside the chain and the
    reason is returned instead of a value.

    The server group's detection and promotion enter as one exponential failover delay of the
    same mean, its rejoin delay folded into the repair; a shard's detection and promotion are
    Erlang stages matched to each delay's variance (up to 8, fixed delays included), solved
    again with twice the stages: ``phase_error`` is the difference, an estimate of what the
    stages leave (the error of Erlang-k for a fixed delay falls like 1/k).
    """
    groups = scenario.backend_groups()
    if len(groups) != 1:
        return _no_chain(scenario, "the chain covers a single server group")
    group = groups[0]
    on_group, on_balancer, on_database = [], [], []
    for failure in scenario.failures:
        if isinstance(failure, CrashRepairSpec) and failure.target.group == group.name:
            on_group.append(failure)
        elif isinstance(failure, CrashRepairSpec) and failure.target.balancer:
            on_balancer.append(failure)
        elif (
            isinstance(failure, CrashRepairSpec)
            and failure.target.group == "db"
            and scenario.database is not None
        ):
            on_database.append(failure)
        else:
            return _no_chain(
                scenario, f"{failure.kind} on {failure.target.describe()} is outside the chain"
            )
    if not (on_group or on_balancer or on_database):
        return _no_chain(scenario, "no crash_repair entry: nothing fails in the long run")
    try:
        servers = _servers_tier(scenario, group, _exponential_entry(on_group, "the group"))
        database_failure = _exponential_entry(on_database, "the database")
    except _OutsideChain as error:
        return _no_chain(scenario, str(error))
    try:
        balancer = _balancer_tier(scenario, on_balancer)
    except _OutsideChain as error:
        return _no_chain(scenario, str(error))
    shards = scenario.database.shards if scenario.database is not None else 0
    front = balancer * servers
    values = {}
    for stages_scale in (1, 2):
        writable, readable = _shard_tier(scenario, database_failure, stages_scale)
        per_class = {}
        for path in class_paths(scenario):
            shard = writable if path.writes else readable if path.reads else 1.0
            per_class[path.name] = (path.weight, front * shard**shards)
        writes = any(path.writes for path in class_paths(scenario))
        reads = any(path.reads for path in class_paths(scenario))
        every = writable if writes else readable if reads else 1.0
        values[stages_scale] = (per_class, front * every**shards)
    per_class, all_classes = values[2]
    service = sum(weight * value for weight, value in per_class.values())
    coarse = sum(weight * value for weight, value in values[1][0].values())
    return {
        **availability_figures(service),
        "all_classes": all_classes,
        "classes": {name: value for name, (_, value) in per_class.items()},
        "phase_error": abs(service - coarse),
        "reason": "",
    }
