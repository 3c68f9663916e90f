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
from scipy import stats

from sim.analysis import SECONDS_PER_YEAR, interval_figures
from sim.distributions import Exponential
from sim.model.biasing import FailureBiasing
from sim.model.cluster import Cluster
from sim.scenario import CrashRepairSpec, Scenario
from sim.streams import Streams

__all__ = [
    "BIAS",
    "BiasingUnsupported",
    "biasing_applies",
    "estimate_by_failure_biasing",
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


def estimate_by_failure_biasing(
    scenario: Scenario,
    cycles: int = 20_000,
    seed: int | None = None,
    replication: int = 0,
    bias: float = BIAS,
    confidence: float = 0.95,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Unavailability by balanced failure biasing over ``cycles`` regenerative cycles.

    Returns the service's availability (classes weighted by share), all classes' and each
    class's, each with ``value``, ``low``, ``high`` (the ``confidence`` interval) and
    ``relative_half_width`` of the unavailability; the downtime per year by cause; and the
    diagnostics: ``cycles``, ``cycles_with_downtime``, ``mean_likelihood_ratio`` (1 in
    expectation) and ``largest_cycle_share`` of the estimate, with ``reliable`` False and a
    ``warning`` when the variance estimate should not be trusted. Raises
    :class:`BiasingUnsupported` for a design outside the method.
    """
    reason = biasing_applies(scenario)
    if reason:
        raise BiasingUnsupported(reason)
    if cycles < 30:
        raise ValueError("a regenerative interval needs at least 30 cycles")
    started = time.perf_counter()
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
    lengths = data[:, 0] * data[:, 1]
    z = stats.norm.ppf(0.5 + confidence / 2)

    def unavailability(column: int) -> dict[str, Any]:
        estimate, half = _ratio(data, column, lengths, z)
        return {
            **interval_figures(1 - estimate, half),
            "unavailability": estimate,
            "relative_half_width": half / estimate if estimate > 0 else math.inf,
        }

    service_column = 2
    weighted = data[:, service_column] * data[:, 1]
    largest = float(weighted.max() / weighted.sum()) if weighted.sum() > 0 else 1.0
    ratios = data[:, 1]
    # Checked at 99.9%, so that a sound run is flagged once in a thousand, not once in twenty.
    ratio_half = stats.norm.ppf(0.9995) * ratios.std(ddof=1) / math.sqrt(len(ratios))
    with_downtime = int((data[:, service_column] > 0).sum())
    warnings = []
    if largest > DOMINANT_SHARE:
        warnings.append(f"one cycle carries {largest:.0%} of the estimate")
    if abs(ratios.mean() - 1) > ratio_half:
        warnings.append(
            f"the likelihood ratios average {ratios.mean():.3f}, not 1 within their interval"
        )
    if with_downtime < 30:
        warnings.append(f"only {with_downtime} cycles saw downtime")
    first_cause = 4 + len(classes)
    return {
        "scenario": scenario.name,
        "seed": seed,
        "mode": "availability",
        "method": "biased",
        "bias": bias,
        "confidence": confidence,
        "cycles": len(data),
        "simulated_years": float(data[:, 0].sum() / SECONDS_PER_YEAR),
        "availability": unavailability(service_column),
        "all_classes": unavailability(3),
        "classes": {name: unavailability(4 + i) for i, name in enumerate(classes)},
        "downtime_by_cause": {
            cause: _per_year(data, first_cause + i, lengths, z) for i, cause in enumerate(causes)
        },
        "cycles_with_downtime": with_downtime,
        "mean_likelihood_ratio": float(ratios.mean()),
        "largest_cycle_share": largest,
        "reliable": not warnings,
        "warning": "; ".join(warnings),
        "wall_time_s": time.perf_counter() - started,
    }


def _ratio(data: np.ndarray, column: int, lengths: np.ndarray, z: float) -> tuple[float, float]:
    """E'[X L] / E'[T L] for the cycles' column X, and the half-width of its interval by the
    regenerative central limit theorem (the delta method on the ratio)."""
    weighted = data[:, column] * data[:, 1]
    denominator = lengths.mean()
    estimate = weighted.mean() / denominator
    residual = weighted - estimate * lengths
    return estimate, z * residual.std(ddof=1) / math.sqrt(len(data)) / denominator


def _per_year(data: np.ndarray, column: int, lengths: np.ndarray, z: float) -> dict[str, float]:
    """A cause's downtime per year with its interval."""
    fraction, half = _ratio(data, column, lengths, z)
    return {
        "per_year_s": fraction * SECONDS_PER_YEAR,
        "low": max(0.0, fraction - half) * SECONDS_PER_YEAR,
        "high": (fraction + half) * SECONDS_PER_YEAR,
    }
