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

import copy
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sim.analysis import (
    SECONDS_PER_YEAR,
    availability_figures,
    interval_figures,
    mean_confidence_interval,
    slo_verdicts,
    time_based_figures,
)
from sim.catalogue import flatten
from sim.distributions import Exponential
from sim.model.cluster import Cluster
from sim.scenario import CrashRepairSpec, DnsSpec, Scenario
from sim.scenario.paths import class_paths
from sim.streams import Streams
from sim.theory import (
    dns_balancer_reach,
    erlang_stages,
    redundant_balancer_availability,
    replica_group_availability,
    single_component_availability,
    standby_group_serving,
    standby_states,
)

__all__ = [
    "AVAILABILITY_METRICS",
    "MARKOV_METRICS",
    "YEAR_S",
    "availability_estimate",
    "availability_report",
    "estimate_availability",
    "markov_availability",
    "simulate_years",
]

YEAR_S = SECONDS_PER_YEAR


MARKOV_METRICS = frozenset(
    {
        "availability.markov.value",
        "availability.markov.nines",
        "availability.markov.downtime_per_year_s",
        "availability.markov.all_classes",
        "availability.markov.classes.<class>",
        "availability.markov.phase_error",
    }
)
"""The catalogue keys of the Markov cross-check, which every long-horizon run reports."""

AVAILABILITY_METRICS = frozenset(
    {
        "seed",
        "replication",
        "measured_s",
        "availability.time_based",
        "availability.time_based_nines",
        "availability.time_based_all_classes",
        "availability.downtime_s",
        "availability.downtime_per_year_s",
        "availability.downtime_by_cause_s.<component>",
        "availability.excluding_planned",
        *MARKOV_METRICS,
        "classes.<class>.availability.time_based",
        "incidents.count",
        "incidents.detected",
        "incidents.recovered",
        "incidents.mean_time_to_detect_s",
        "incidents.mean_failover_time_s",
        "incidents.max_failover_time_s",
        "incidents.mean_time_to_recover_s",
        "incidents.failed_requests",
        "incidents.false_suspicions",
    }
)
"""The catalogue metrics a long-horizon replication reports (no request, so no latency)."""


def simulate_years(
    scenario: Scenario,
    years: float,
    seed: int,
    replication: int,
    markov: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One replication of ``years``, as a summary whose flat keys are the catalogue's
    (:data:`AVAILABILITY_METRICS`): the service's time-based figures, each class's, the
    downtime by cause and the incidents; ``markov`` (computed when not given) rides along."""
    cluster = Cluster.build(scenario, Streams(seed, replication), requests=False)
    cluster.start()
    cluster.run(years * YEAR_S)
    totals = cluster.monitor.service_totals()
    elapsed_s = totals["elapsed_s"]
    return {
        "seed": seed,
        "replication": replication,
        "measured_s": elapsed_s,
        "availability": {
            **time_based_figures(totals, elapsed_s),
            "markov": markov if markov is not None else markov_availability(scenario),
        },
        "classes": {
            name: {"availability": {"time_based": min(up_s, elapsed_s) / elapsed_s}}
            for name, up_s in totals["class_up_s"].items()
        },
        "incidents": cluster.monitor.incident_figures(),
    }


def _interval(values: list[float], confidence: float) -> dict[str, Any]:
    """An availability's mean over replications, its Student-t interval, nines and downtime."""
    mean, half_width = mean_confidence_interval(values, confidence)
    return {"per_replication": values, **interval_figures(mean, half_width)}


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
    markov = markov_availability(scenario)
    runs = []
    for replication in range(replications):
        runs.append(simulate_years(scenario, per_replication, seed, replication, markov))
        if progress is not None:
            progress((replication + 1) / replications)
    return {
        "scenario": scenario.name,
        "seed": seed,
        "mode": "availability",
        "years": years,
        "replications": replications,
        "confidence": confidence,
        **availability_estimate(
            [flatten(run) for run in runs], list(runs[0]["classes"]), confidence
        ),
        "markov": markov,
        "wall_time_s": time.perf_counter() - started,
    }


def availability_report(
    scenario: Scenario,
    years: float,
    replications: int,
    table: Any,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The estimate for one design from the rows of its replications in a batch table (a
    pandas frame of :func:`simulate_years` summaries, flat), as :func:`estimate_availability`
    returns it."""
    rows = table.to_dict("records")
    estimate = availability_estimate(
        rows, [request_class.name for request_class in scenario.workload.classes], confidence
    )
    return {
        "scenario": scenario.name,
        "seed": int(rows[0]["seed"]),
        "mode": "availability",
        "years": years,
        "replications": replications,
        "confidence": confidence,
        **estimate,
        "markov": markov_availability(scenario),
        "slo": slo_verdicts(estimate, scenario.slo.availability),
    }


def availability_estimate(
    rows: list[dict[str, Any]], classes: list[str], confidence: float = 0.95
) -> dict[str, Any]:
    """The estimate from independent replications (flat summaries of :func:`simulate_years`):
    the service's, all classes' and each class's availability with Student-t intervals, the
    downtime per year by cause with intervals, and the incidents per year."""
    years = sum(row["measured_s"] for row in rows) / YEAR_S
    by_cause = {}
    prefix = "availability.downtime_by_cause_s."
    for key in [key for key in rows[0] if key.startswith(prefix)]:
        per_year = [row[key] / (row["measured_s"] / YEAR_S) for row in rows]
        mean, half_width = mean_confidence_interval(per_year, confidence)
        by_cause[key.removeprefix(prefix)] = {
            "per_year_s": mean,
            "low": max(0.0, mean - half_width),
            "high": mean + half_width,
        }

    def values(key: str) -> list[float]:
        return [row[key] for row in rows]

    def weighted(key: str, weight: str) -> float:
        pairs = [
            (row[f"incidents.{key}"], row[f"incidents.{weight}"])
            for row in rows
            if row[f"incidents.{weight}"] and not math.isnan(row[f"incidents.{key}"])
        ]
        total = sum(count for _, count in pairs)
        return sum(value * count for value, count in pairs) / total if total else math.nan

    return {
        "availability": _interval(values("availability.time_based"), confidence),
        "all_classes": _interval(values("availability.time_based_all_classes"), confidence),
        "excluding_planned": (
            _interval(values("availability.excluding_planned"), confidence)
            if "availability.excluding_planned" in rows[0]
            else None
        ),
        "classes": {
            name: _interval(values(f"classes.{name}.availability.time_based"), confidence)
            for name in classes
        },
        "downtime_by_cause": by_cause,
        "incidents_per_year": sum(values("incidents.count")) / years,
        "mean_time_to_detect_s": weighted("mean_time_to_detect_s", "detected"),
        "mean_failover_time_s": weighted("mean_failover_time_s", "detected"),
        "mean_time_to_recover_s": weighted("mean_time_to_recover_s", "recovered"),
        "per_replication": values("availability.time_based"),
    }


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


def _delay_moments(
    spec: Any,
    what: str,
    sample: Callable[[np.random.Generator], float],
    exact: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """Mean and variance of the delay ``what`` of ``spec`` (a detector, a redundancy):
    ``exact`` (mean, variance) when the spec gives both in closed form, else from 20,000 draws
    of a fixed stream (a lossy or polled detector's delay has no closed-form variance); kept
    per spec, since every replication of a design asks again."""
    if exact is not None:
        return exact
    key = (type(spec).__name__, spec.model_dump_json(), what)
    if key not in _MOMENTS:
        rng = np.random.default_rng(20_000)
        draws = np.array([sample(rng) for _ in range(20_000)])
        if len(_MOMENTS) > 256:
            _MOMENTS.clear()
        _MOMENTS[key] = (float(draws.mean()), float(draws.var()))
    return _MOMENTS[key]


_MOMENTS: dict[tuple, tuple[float, float]] = {}


def _crash_detection_moments(detection: Any) -> tuple[float, float] | None:
    """A detector's crash-detection delay's mean and variance where both have a closed form
    (the mean alone, for a polled heartbeat, is a long sum that would go unused)."""
    variance = detection.detection_delay_variance(True)
    return None if variance is None else (detection.mean_detection_delay(True), variance)


def _balancer_tier(scenario: Scenario, failures: list[CrashRepairSpec]) -> float:
    """A single balancer is an alternating component whatever its distributions; an
    active/passive group is the chain of :func:`sim.theory.redundant_balancer_availability`,
    the takeover in Erlang stages matched to its law (that of the first backup); behind DNS,
    the chain of :func:`sim.theory.dns_balancer_reach` (an expected share of requests, which
    multiplies into the composite as an availability does when the tiers are independent)."""
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
    if isinstance(redundancy, DnsSpec):
        return dns_balancer_reach(
            redundancy.count,
            spec.time_to_failure.mean(),
            spec.time_to_repair.mean(),
            redundancy.health_check_interval,
            redundancy.failure_threshold,
            redundancy.ttl,
            spec.repair_crews,
        )
    mean, variance = _delay_moments(
        redundancy,
        "takeover",
        lambda rng: redundancy.takeover_delay(rng, 1),
        redundancy.takeover_moments(1),
    )
    return redundant_balancer_availability(
        redundancy.count,
        failure_rate=1 / spec.time_to_failure.mean(),
        repair_rate=1 / spec.time_to_repair.mean(),
        takeover_rate=1 / max(mean, 1e-9),
        takeover_stages=erlang_stages(mean, variance),
        repair_crews=spec.repair_crews,
    )


def _group_serving(
    scenario: Scenario, group, failure: CrashRepairSpec | None, stages_scale: int = 1
) -> np.ndarray:
    """The distribution of a group's servers up and in rotation (index: how many), its
    failover delay (detection, promotion, boot) in Erlang stages matched to the delay's
    variance, ``stages_scale`` times as many, as many as keep the chain under
    :data:`GROUP_STATES` states."""
    if failure is None:
        serving = np.zeros(group.count + 1)
        serving[group.count] = 1.0
        return serving
    detection = scenario.balancer.detection
    standby = group.standby
    # Crashes refuse connections.
    failover_s, variance = _delay_moments(
        detection,
        "crash",
        lambda rng: detection.detection_delay(rng, refused=True),
        _crash_detection_moments(detection),
    )
    if standby is not None:
        parts = [standby.promotion_delay]
        if standby.mode == "cold":
            parts.append(standby.boot_time)
        failover_s += sum(part.mean() for part in parts)
        variance += sum(part.variance() for part in parts)
    spares = standby.count if standby else 0
    stages = stages_scale * erlang_stages(failover_s, variance, 8)
    while stages > 1 and standby_states(group.count, spares, stages) > GROUP_STATES:
        stages -= 1
    # The rejoin after a repair is folded into the repair time, of the same mean.
    repair_s = failure.time_to_repair.mean() + detection.mean_rejoin_delay()
    return standby_group_serving(
        active=group.count,
        spares=spares,
        failure_rate=1 / failure.time_to_failure.mean(),
        repair_rate=1 / repair_s,
        failover_rate=1 / max(failover_s, 1e-9),
        hot_spares=standby is None or standby.mode == "hot",
        repair_crews=failure.repair_crews,
        failover_stages=stages,
    )


GROUP_STATES = 20_000
"""The most states a server group's chain may have: fewer stages beyond."""


def _servers_tier(scenario: Scenario, serving: list[np.ndarray]) -> float:
    """P(at least slo.min_servers serve) over independent groups: their distributions
    convolved."""
    total = np.ones(1)
    for distribution in serving:
        total = np.convolve(total, distribution)
    return float(total[min(scenario.slo.min_servers, len(total) - 1) :].sum())


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
        detection,
        "crash",
        lambda rng: detection.detection_delay(rng, refused=True),
        _crash_detection_moments(detection),
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
    """The design's availability from Markov chains (see :func:`_markov_availability`), kept
    per design: every replication of a batch reports it, and the chains take a second."""
    key = json.dumps(scenario.to_dict(), sort_keys=True, default=str)
    if key not in _CHAINS:
        if len(_CHAINS) > 64:
            _CHAINS.clear()
        _CHAINS[key] = _markov_availability(scenario)
    return copy.deepcopy(_CHAINS[key])


_CHAINS: dict[str, dict[str, Any]] = {}


def _markov_availability(scenario: Scenario) -> dict[str, Any]:
    """The design's availability from Markov chains, per request class and for the service.

    The tiers on a class's path fail independently, so the class is up with the product of
    their availabilities (a series system of redundant blocks: a reliability block diagram;
    Trivedi, *Probability and Statistics with Reliability, Queuing and Computer Science
    Applications*, ch. 8): a single balancer, an alternating component (MTTF / (MTTF + MTTR),
    for any distributions: renewal-reward), redundant ones the chain of
    :func:`sim.theory.redundant_balancer_availability`; the servers, at least slo.min_servers
    serving over the server groups, each the standby chain of
    :func:`sim.theory.standby_group_serving`, their counts convolved; every shard the class
    writes (reads), the chain of :func:`sim.theory.replica_group_availability`, solved once
    since shards are alike.
    The service's value is the share-weighted mean of the classes, as the simulation defines
    it. Each tier may fail by at most one ``crash_repair`` entry with exponential times (on a
    group behind the balancer, ``balancer``, or the ``db`` group); failures of cache nodes are
    left out (their reads go to the database: load, not downtime); anything else is outside the
    chain and the reason is returned instead of a value.

    A server group's failover (detection, promotion and a cold spare's boot) is one delay in
    Erlang stages matched to its mean and variance, its rejoin delay folded into the repair; a
    shard's detection and promotion are Erlang stages matched to each delay's variance (up to
    8, fixed delays included). Everything is solved again with twice the stages:
    ``phase_error`` is the difference, an estimate of what the stages leave (the error of
    Erlang-k for a fixed delay falls like 1/k).
    """
    if scenario.maintenance:
        return _no_chain(scenario, "planned maintenance runs on a schedule, outside the chain")
    groups = {group.name: group for group in scenario.backend_groups()}
    on_group: dict[str, list[CrashRepairSpec]] = {name: [] for name in groups}
    on_balancer, on_database = [], []
    cache = scenario.database.cache if scenario.database is not None else None
    cache_nodes = set(cache.node_names()) if cache is not None else set()
    for failure in scenario.failures:
        target = failure.target
        if cache is not None and (target.group == "cache" or target.server in cache_nodes):
            continue  # a cache node's outage moves reads to the database and fails no class
        if isinstance(failure, CrashRepairSpec) and failure.target.group in groups:
            on_group[failure.target.group].append(failure)
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
    if not (any(on_group.values()) or on_balancer or on_database):
        return _no_chain(scenario, "no crash_repair entry: nothing fails in the long run")
    try:
        group_failures = {
            name: _exponential_entry(on_group[name], f"group {name}") for name in groups
        }
        database_failure = _exponential_entry(on_database, "the database")
        kind = scenario.database.replication.kind if scenario.database is not None else ""
        if database_failure is not None and kind not in ("master_slave", "multi_master"):
            raise _OutsideChain(f"the shard chain models master_slave and multi_master, not {kind}")
    except _OutsideChain as error:
        return _no_chain(scenario, str(error))
    try:
        balancer = _balancer_tier(scenario, on_balancer)
    except _OutsideChain as error:
        return _no_chain(scenario, str(error))
    shards = scenario.database.shards if scenario.database is not None else 0
    values = {}
    for stages_scale in (1, 2):
        serving = [
            _group_serving(scenario, group, group_failures[name], stages_scale)
            for name, group in groups.items()
        ]
        front = balancer * _servers_tier(scenario, serving)
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
