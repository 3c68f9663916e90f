"""Five and six nines: unavailability estimated by failure biasing on regenerative cycles.

Crude simulation pins an unavailability U to +-20% only after about 100 / U failures' worth
of time, because at 99.9999% the service goes down only when failures coincide. This
estimator runs the same model as ``ecsim availability`` (the same cluster, detection,
failover and repair), but with balanced failure biasing (:mod:`sim.model.biasing`): while a
component is down, the others fail fast enough that coincidences are common, and every path
is weighted by its likelihood ratio.

The run is cut into regenerative cycles at the instants the cluster is back as it started
(:meth:`sim.model.cluster.Cluster.quiescent`): only memoryless failure clocks carry over, so
cycles are independent and alike, and each cycle's likelihood ratio starts from 1. With
per-cycle downtime D, length T and ratio L, U = E[D] / E[T] = E'[D L] / E'[T L] under the
biased law, estimated by the ratio of sums; its 95% interval comes from the regenerative
central limit theorem (Asmussen and Glynn, *Stochastic Simulation*, 2007, IV.4 and V.1): the
variance of D L - U T L over the cycles, divided by the mean of T L squared.

It needs exponential times to failure for every failure entry (the only clocks it may
redraw), ``crash_repair`` entries only, and a law of the future that does not depend on which
replica of a shard is master: no per-node or zone failure entries where a database exists.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sim.analysis import SECONDS_PER_YEAR, interval_figures, slo_verdicts
from sim.catalogue import CYCLE_METRICS
from sim.distributions import Exponential
from sim.model.biasing import FailureBiasing
from sim.model.cluster import Cluster
from sim.reliability import MARKOV_METRICS, markov_availability
from sim.scenario import CrashRepairSpec, Scenario
from sim.streams import Streams

__all__ = [
    "BIAS",
    "BIASED_METRICS",
    "BiasingUnsupported",
    "biased_replication",
    "biased_report",
    "biasing_applies",
    "cycle_statistics",
    "cycles_from_row",
    "estimate_by_failure_biasing",
    "estimate_from_cycles",
    "pool_cycles",
    "single_failure_outage",
]

BIAS = 0.3
"""The share of failure-or-repair races a failure wins while something is down (balanced
failure biasing commonly uses 0.3 to 0.5)."""
DOMINANT_SHARE = 0.1
"""A cycle carrying more of the estimate than this makes its variance estimate unreliable."""


class BiasingUnsupported(ValueError):
    """The design is outside what the biased estimator handles; the message says why."""


def biasing_applies(scenario: Scenario) -> str:
    """Why failure biasing cannot estimate ``scenario``, or an empty string when it can."""
    if not scenario.failures:
        return "nothing fails: there is nothing to estimate"
    if scenario.maintenance:
        return "planned maintenance runs on a schedule: the run would have no regeneration point"
    for index, failure in enumerate(scenario.failures):
        where = f"failures[{index}] ({failure.kind} on {failure.target.describe()})"
        if not isinstance(failure, CrashRepairSpec):
            return f"{where}: only crash_repair entries run in steady state"
        if not isinstance(failure.time_to_failure, Exponential):
            return f"{where}: failure biasing redraws only exponential times to failure"
        target = failure.target
        if scenario.database is not None and (
            target.zone is not None or (target.server or "").startswith("db-")
        ):
            return (
                f"{where}: a failure of some database nodes only makes the master's placement"
                " matter, and the run would have no regeneration point"
            )
    return ""


def single_failure_outage(scenario: Scenario) -> str:
    """What lets one failure alone take a request class down, or an empty string when only
    coinciding failures can: there, crude simulation sees the outages often enough and
    failure biasing gains nothing (its weights only add variance)."""
    targets = [failure.target for failure in scenario.failures]
    redundancy = scenario.balancer.redundancy
    if any(target.balancer for target in targets):
        if redundancy is None:
            return "a single balancer fails"
        if redundancy.kind == "dns":
            return "a balancer instance behind DNS fails its share of requests until withdrawn"
    database = scenario.database
    if (
        database is not None
        and database.replication.kind == "master_slave"
        and any(target.group == "db" or target.zone for target in targets)
    ):
        return "a database master's failure stops writes until a replica is promoted"
    serving = sum(group.count for group in scenario.backend_groups())
    if serving - 1 < scenario.slo.min_servers and any(
        target.group or target.server or target.zone for target in targets
    ):
        return "losing one server leaves fewer than slo.min_servers until a spare takes over"
    return ""


def _repair_scale_s(scenario: Scenario) -> float:
    repairs = [failure.time_to_repair.mean() for failure in scenario.failures]
    return float(np.mean(repairs))


def cycle_statistics(
    scenario: Scenario,
    cycles: int,
    seed: int | None = None,
    replication: int = 0,
    bias: float = BIAS,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run ``cycles`` regenerative cycles under failure biasing and return their sums.

    The sums are sufficient for the estimate and its regenerative interval, so runs of the
    same design on other streams (``replication``) pool exactly, as if they were one run:
    :func:`pool_cycles` adds them and :func:`estimate_from_cycles` turns them into figures.
    Per cycle, with length T, likelihood ratio L and a downtime X (of the service, of all
    classes at once, of each class, charged to each cause): ``count`` (cycles),
    ``simulated_s`` (sum of T), ``with_downtime`` (cycles with service downtime),
    ``largest`` (the largest service X L), ``length`` and ``ratio`` (``sum`` and ``sum2`` of
    T L and of L), and ``service``, ``all_classes``, ``classes`` and ``causes`` (per name),
    each with ``sum`` (of X L), ``sum2`` and ``cross`` (of X L x T L). Raises
    :class:`BiasingUnsupported` for a design outside the method, ``ValueError`` for fewer
    than one cycle.
    """
    reason = biasing_applies(scenario)
    if reason:
        raise BiasingUnsupported(reason)
    if cycles < 1:
        raise ValueError("run at least one cycle")
    seed = scenario.seed if seed is None else seed
    streams = Streams(seed, replication)
    cluster = Cluster.build(scenario, streams, requests=False)
    biasing = FailureBiasing(
        cluster.env, streams.generator("failure biasing"), bias, _repair_scale_s(scenario)
    )
    cluster.injector.biasing = biasing
    service = cluster.monitor.service
    classes = [path.name for path in service.paths]
    causes = list(service.downtime_s)
    rows: list[list[float]] = []
    """Per cycle: T, L, then downtime (weighted), all-classes down, each class down, causes."""
    state = {"start": cluster.env.now, "totals": service.totals(0.0), "away": False}
    done = cluster.env.event()

    def regenerate() -> None:
        if biasing.down:
            state["away"] = True
            return
        if not state["away"] or not cluster.quiescent():
            return
        now = cluster.env.now
        totals = service.totals(now)
        before = state["totals"]
        length = now - state["start"]
        ratio = math.exp(biasing.log_ratio)
        row = [length, ratio]
        row.append(length - (totals["up_s"] - before["up_s"]))
        row.append(length - (totals["all_up_s"] - before["all_up_s"]))
        row += [length - (totals["class_up_s"][c] - before["class_up_s"][c]) for c in classes]
        row += [totals["downtime_by_cause_s"][c] - before["downtime_by_cause_s"][c] for c in causes]
        rows.append(row)
        biasing.restart()
        state.update(start=now, totals=totals, away=False)
        if progress is not None and len(rows) % 100 == 0:
            progress(len(rows) / cycles)
        if len(rows) >= cycles and not done.triggered:
            done.succeed()

    cluster.monitor.listeners.append(regenerate)
    cluster.start()
    cluster.env.run(until=done)
    if progress is not None:
        progress(1.0)
    data = np.array(rows)
    ratios = data[:, 1]
    lengths = data[:, 0] * ratios

    def sums(index: int) -> dict[str, float]:
        weighted = data[:, 2 + index] * ratios
        return {
            "sum": float(weighted.sum()),
            "sum2": float((weighted * weighted).sum()),
            "cross": float((weighted * lengths).sum()),
        }

    first_cause = 2 + len(classes)
    return {
        "count": len(data),
        "simulated_s": float(data[:, 0].sum()),
        "with_downtime": int((data[:, 2] > 0).sum()),
        "largest": float((data[:, 2] * ratios).max()),
        "length": {"sum": float(lengths.sum()), "sum2": float((lengths * lengths).sum())},
        "ratio": {"sum": float(ratios.sum()), "sum2": float((ratios * ratios).sum())},
        "service": sums(0),
        "all_classes": sums(1),
        "classes": {name: sums(2 + i) for i, name in enumerate(classes)},
        "causes": {cause: sums(first_cause + i) for i, cause in enumerate(causes)},
    }


def pool_cycles(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics of several :func:`cycle_statistics` runs of one design, as one run's:
    every sum adds up, the largest cycle is the largest of all."""

    def pool(values: list[Any], key: str = "") -> Any:
        if isinstance(values[0], dict):
            return {name: pool([value[name] for value in values], name) for name in values[0]}
        return max(values) if key == "largest" else sum(values)

    return pool(parts)


def cycles_from_row(row: dict[str, Any], classes: list[str], causes: list[str]) -> dict[str, Any]:
    """The statistics of one run back from its flat table row (``cycles.*`` columns)."""

    def sums(prefix: str) -> dict[str, float]:
        return {key: float(row[f"{prefix}.{key}"]) for key in ("sum", "sum2", "cross")}

    return {
        "count": int(row["cycles.count"]),
        "simulated_s": float(row["cycles.simulated_s"]),
        "with_downtime": int(row["cycles.with_downtime"]),
        "largest": float(row["cycles.largest"]),
        "length": {key: float(row[f"cycles.length.{key}"]) for key in ("sum", "sum2")},
        "ratio": {key: float(row[f"cycles.ratio.{key}"]) for key in ("sum", "sum2")},
        "service": sums("cycles.service"),
        "all_classes": sums("cycles.all_classes"),
        "classes": {name: sums(f"cycles.classes.{name}") for name in classes},
        "causes": {cause: sums(f"cycles.causes.{cause}") for cause in causes},
    }


def biased_replication(
    scenario: Scenario,
    cycles: int,
    seed: int,
    replication: int,
    markov: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run of ``cycles`` cycles for a batch, as a summary whose flat keys are the
    catalogue's (:data:`BIASED_METRICS`): the cycle statistics, this run's own estimates
    (their spread over runs is a batch-means interval) and the Markov chain's value."""
    statistics = cycle_statistics(scenario, cycles, seed, replication)
    estimate = estimate_from_cycles(statistics) if cycles >= 30 else None

    def value(figures: dict[str, Any] | None) -> float:
        return figures["value"] if figures is not None else math.nan

    return {
        "seed": seed,
        "replication": replication,
        "availability": {
            "time_based": value(estimate and estimate["availability"]),
            "time_based_all_classes": value(estimate and estimate["all_classes"]),
            "markov": markov if markov is not None else markov_availability(scenario),
        },
        "classes": {
            name: {"availability": {"time_based": value(estimate and estimate["classes"][name])}}
            for name in statistics["classes"]
        },
        "cycles": statistics,
    }


def biased_report(scenario: Scenario, table: Any, confidence: float = 0.95) -> dict[str, Any]:
    """The estimate for one design from the rows of its runs in a batch table (a pandas frame
    of :func:`biased_replication` summaries, flat): their cycles pooled as one run's, as
    :func:`estimate_by_failure_biasing` returns it, with the Markov chain's value."""
    rows = table.to_dict("records")
    classes = [request_class.name for request_class in scenario.workload.classes]
    prefix, suffix = "cycles.causes.", ".sum"
    causes = [
        key.removeprefix(prefix).removesuffix(suffix)
        for key in rows[0]
        if key.startswith(prefix) and key.endswith(suffix)
    ]
    pooled = pool_cycles([cycles_from_row(row, classes, causes) for row in rows])
    estimate = estimate_from_cycles(pooled, confidence)
    return {
        "scenario": scenario.name,
        "seed": int(rows[0]["seed"]),
        "bias": BIAS,
        "replications": len(rows),
        **estimate,
        "markov": markov_availability(scenario),
        "slo": slo_verdicts(estimate, scenario.slo.availability),
    }


BIASED_METRICS = frozenset(
    {
        "seed",
        "replication",
        "availability.time_based",
        "availability.time_based_all_classes",
        *MARKOV_METRICS,
        "classes.<class>.availability.time_based",
        *(metric.key for metric in CYCLE_METRICS),
    }
)
"""The catalogue keys a failure-biasing run reports (:func:`biased_replication`)."""


def estimate_from_cycles(statistics: dict[str, Any], confidence: float = 0.95) -> dict[str, Any]:
    """Unavailability estimates from (pooled) cycle statistics.

    Returns the service's availability (classes weighted by share), all classes' and each
    class's, each with ``value``, ``low``, ``high`` (the ``confidence`` interval) and
    ``relative_half_width`` of the unavailability; the downtime per year by cause; and the
    diagnostics: ``cycles``, ``cycles_with_downtime``, ``mean_likelihood_ratio`` (1 in
    expectation) and ``largest_cycle_share`` of the estimate, with ``reliable`` False and a
    ``warning`` when the variance estimate should not be trusted. Raises ``ValueError`` for
    fewer than 30 cycles.
    """
    n = statistics["count"]
    if n < 30:
        raise ValueError("a regenerative interval needs at least 30 cycles")
    from scipy import stats  # here: importing it costs more than a short run (1.4 s)

    z = stats.norm.ppf(0.5 + confidence / 2)

    def unavailability(column: dict[str, float]) -> dict[str, Any]:
        estimate, half = _ratio(statistics, column, z)
        return {
            **interval_figures(1 - estimate, half),
            "unavailability": estimate,
            "relative_half_width": half / estimate if estimate > 0 else math.inf,
        }

    total = statistics["service"]["sum"]
    largest = statistics["largest"] / total if total > 0 else 1.0
    ratio = statistics["ratio"]
    mean_ratio = ratio["sum"] / n
    ratio_variance = max(0.0, (ratio["sum2"] - n * mean_ratio**2) / (n - 1))
    # Checked at 99.9%, so that a sound run is flagged once in a thousand, not once in twenty.
    ratio_half = stats.norm.ppf(0.9995) * math.sqrt(ratio_variance / n)
    with_downtime = statistics["with_downtime"]
    warnings = []
    if largest > DOMINANT_SHARE:
        warnings.append(f"one cycle carries {largest:.0%} of the estimate")
    if abs(mean_ratio - 1) > ratio_half:
        warnings.append(
            f"the likelihood ratios average {mean_ratio:.3f}, not 1 within their interval"
        )
    if with_downtime < 30:
        warnings.append(f"only {with_downtime} cycles saw downtime")
    return {
        "mode": "availability",
        "method": "biased",
        "confidence": confidence,
        "cycles": n,
        "simulated_years": statistics["simulated_s"] / SECONDS_PER_YEAR,
        "availability": unavailability(statistics["service"]),
        "all_classes": unavailability(statistics["all_classes"]),
        "classes": {name: unavailability(c) for name, c in statistics["classes"].items()},
        "downtime_by_cause": {
            cause: _per_year(statistics, column, z)
            for cause, column in statistics["causes"].items()
        },
        "cycles_with_downtime": with_downtime,
        "mean_likelihood_ratio": mean_ratio,
        "largest_cycle_share": largest,
        "reliable": not warnings,
        "warning": "; ".join(warnings),
    }


def estimate_by_failure_biasing(
    scenario: Scenario,
    cycles: int = 20_000,
    seed: int | None = None,
    replication: int = 0,
    bias: float = BIAS,
    confidence: float = 0.95,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Unavailability by balanced failure biasing over ``cycles`` regenerative cycles, in
    this process: :func:`cycle_statistics` then :func:`estimate_from_cycles`, plus
    ``scenario``, ``seed``, ``bias`` and ``wall_time_s``. Raises :class:`BiasingUnsupported`
    for a design outside the method, ``ValueError`` for fewer than 30 cycles."""
    if cycles < 30:
        raise ValueError("a regenerative interval needs at least 30 cycles")
    started = time.perf_counter()
    seed = scenario.seed if seed is None else seed
    statistics = cycle_statistics(scenario, cycles, seed, replication, bias, progress)
    return {
        "scenario": scenario.name,
        "seed": seed,
        "bias": bias,
        **estimate_from_cycles(statistics, confidence),
        "wall_time_s": time.perf_counter() - started,
    }


def _ratio(statistics: dict[str, Any], column: dict[str, float], z: float) -> tuple[float, float]:
    """E'[X L] / E'[T L] for a column X, and the half-width of its interval by the
    regenerative central limit theorem (the delta method on the ratio): the residuals
    X L - U T L sum to zero at the estimate U, so their variance needs only the sums of
    squares and cross-products."""
    n = statistics["count"]
    sum_length = statistics["length"]["sum"]
    estimate = column["sum"] / sum_length
    squares = (
        column["sum2"] - 2 * estimate * column["cross"] + estimate**2 * statistics["length"]["sum2"]
    )
    deviation = math.sqrt(max(0.0, squares) / (n - 1))
    return estimate, z * deviation / math.sqrt(n) / (sum_length / n)


def _per_year(statistics: dict[str, Any], column: dict[str, float], z: float) -> dict[str, float]:
    """A cause's downtime per year with its interval."""
    fraction, half = _ratio(statistics, column, z)
    return {
        "per_year_s": fraction * SECONDS_PER_YEAR,
        "low": max(0.0, fraction - half) * SECONDS_PER_YEAR,
        "high": (fraction + half) * SECONDS_PER_YEAR,
    }
