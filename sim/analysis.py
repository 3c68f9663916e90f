"""Summaries of what a run observed: availability, nines, latency percentiles, utilization.

Pure functions of recorded data: no simulation here. The summary is a plain nested dict with SI
units in its key names, written as ``summary.json`` and documented in the README.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sim.metrics import (
    ERROR_CAUSES,
    OUTCOMES,
    SHED_CAUSES,
    LatencyHistogram,
    Measurement,
    outcome_counts,
)
from sim.request import Outcome
from sim.scenario.paths import MAINTENANCE

__all__ = [
    "LATENCY_QUANTILES",
    "IncidentTally",
    "availability_figures",
    "downtime_per_year_s",
    "finite_or_none",
    "interval_figures",
    "latency_summary",
    "nines",
    "slo_summary",
    "slo_verdict",
    "slo_verdicts",
    "summarize",
    "time_based_figures",
    "wait_summary",
]

LATENCY_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
SECONDS_PER_YEAR = 365.25 * 86400


def nines(availability: float) -> float:
    """Availability as a number of nines: 0.999 is 3, 0.9995 is about 3.3; inf when perfect."""
    if math.isnan(availability):
        return math.nan
    if availability >= 1.0:
        return math.inf
    return 0.0 - math.log10(1.0 - availability)  # 0.0 - x: never the -0.0 of -log10(1)


def downtime_per_year_s(availability: float) -> float:
    """Seconds of downtime a year at this availability: 99.99% is about 52.6 minutes."""
    return (1.0 - availability) * SECONDS_PER_YEAR


def finite_or_none(value: Any) -> Any:
    """NaN and infinities as None, recursively, so summaries are valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(item) for item in value]
    return value


def latency_summary(histogram: LatencyHistogram, maximum: bool = True) -> dict[str, float]:
    """Mean, percentiles and (unless told not to) maximum of the values in ``histogram``
    (NaN when empty)."""
    summary = {"mean": histogram.mean()}
    for label, q in LATENCY_QUANTILES.items():
        summary[label] = histogram.quantile(q)
    if maximum:
        summary["max"] = histogram.maximum if histogram.count else math.nan
    return summary


def wait_summary(histograms: Sequence[LatencyHistogram]) -> dict[str, float]:
    """Mean and percentiles of the queueing delay in ``histograms`` (merged), zeros included;
    no maximum: the window's largest wait is not kept."""
    merged = LatencyHistogram()
    for histogram in histograms:
        merged.merge(histogram)
    return latency_summary(merged, maximum=False)


def interval_figures(availability: float, half_width: float) -> dict[str, float]:
    """An estimated availability with the interval ``availability`` +- ``half_width`` (clipped
    to [0, 1]), in nines and in downtime per year at both ends."""
    low, high = max(0.0, availability - half_width), min(1.0, availability + half_width)
    return {
        **availability_figures(availability),
        "half_width": half_width,
        "low": low,
        "high": high,
        "nines_low": nines(low),
        "nines_high": nines(high),
        "downtime_per_year_s_low": downtime_per_year_s(high),
        "downtime_per_year_s_high": downtime_per_year_s(low),
    }


def availability_figures(availability: float) -> dict[str, float]:
    """An availability with its nines and the downtime a year it amounts to."""
    return {
        "value": availability,
        "nines": nines(availability),
        "downtime_per_year_s": downtime_per_year_s(availability),
    }


def _outcome_summary(causes: Sequence[int], good: int) -> dict[str, Any]:
    counts = outcome_counts(causes)
    ended = sum(counts)
    availability = counts[Outcome.OK] / ended if ended else math.nan
    return {
        "requests": {
            "ended": ended,
            **dict(zip(OUTCOMES, counts, strict=True)),
            "error_by_cause": {cause.label: causes[cause] for cause in ERROR_CAUSES},
            "shed_by_cause": {cause.label: causes[cause] for cause in SHED_CAUSES},
            "good": good,
        },
        "availability": {
            "request_based": availability,
            "nines": nines(availability),
            "request_based_within_latency": good / ended if ended else math.nan,
        },
    }


class IncidentTally:
    """Counts and sums over incidents, added one by one: a run of a million incidents keeps a
    few numbers, not a million records."""

    def __init__(self) -> None:
        self.count = 0
        self.detected = 0
        self.moved = 0
        self.recovered = 0
        self._detect_s = 0.0
        self._failover_s = 0.0
        self._recover_s = 0.0
        self.max_failover_time_s = math.nan

    def add(
        self,
        time_to_detect_s: float | None,
        failover_time_s: float | None,
        time_to_recover_s: float | None,
    ) -> None:
        """One incident's durations, seconds; None for a moment it never reached (left out of
        that mean). Taken as numbers, not as a record: a long-horizon run adds one per
        failure, and a dict each would cost more than the rest of the bookkeeping."""
        self.count += 1
        if time_to_detect_s is not None:
            self._detect_s += time_to_detect_s
            self.detected += 1
        if failover_time_s is not None:
            self._failover_s += failover_time_s
            self.moved += 1
            if not failover_time_s <= self.max_failover_time_s:
                self.max_failover_time_s = failover_time_s
        if time_to_recover_s is not None:
            self._recover_s += time_to_recover_s
            self.recovered += 1

    def summary(self, false_suspicions: int) -> dict[str, Any]:
        def mean(total: float, count: int) -> float:
            return total / count if count else math.nan

        return {
            "count": self.count,
            "detected": self.detected,
            "recovered": self.recovered,
            "mean_time_to_detect_s": mean(self._detect_s, self.detected),
            "mean_failover_time_s": mean(self._failover_s, self.moved),
            "max_failover_time_s": self.max_failover_time_s,
            "mean_time_to_recover_s": mean(self._recover_s, self.recovered),
            "false_suspicions": false_suspicions,
        }


def slo_summary(
    target: float,
    request_availability: float,
    latency_s: float | None,
    latency_percentile: float,
    latency: LatencyHistogram,
) -> dict[str, Any]:
    """Whether the objectives were met, and how much of the error budget the run consumed.

    The error budget is the unavailability the target allows, 1 - target; a run that fails
    twice that fraction of requests has consumed 200% of it.
    """
    observed = latency.quantile(latency_percentile) if latency.count else math.nan
    return {
        "availability_target": target,
        "availability_met": request_availability >= target,
        "error_budget_consumed": (
            (1 - request_availability) / (1 - target) if target < 1 else math.nan
        ),
        "latency_s": latency_s,
        "latency_percentile": latency_percentile,
        "latency_observed_s": observed,
        "latency_met": None if latency_s is None else bool(observed <= latency_s),
    }


def summarize(
    measurement: Measurement,
    measured_s: float,
    groups: Sequence[dict[str, Any]],
    in_flight: int,
    service: dict[str, Any] | None = None,
    slo: dict[str, Any] | None = None,
    waits: dict[str, list[LatencyHistogram]] | None = None,
) -> dict[str, Any]:
    """The metrics of one run over its measurement window (after warm-up).

    ``groups`` holds, per server group, its ``name``, ``servers``, ``workers`` and the totals of
    the window: ``busy_time_s``, ``wait_time_s``, ``accepted``, ``queued``, ``rejected``.
    ``waits`` holds per group, per class, the histogram of queueing delays in the window.
    ``service`` holds the seconds of :func:`time_based_figures` and ``class_up_s`` per class,
    and ``incident_figures`` (:meth:`IncidentTally.summary`); ``slo`` the ``availability``
    target, ``latency`` and ``latency_percentile``.
    """
    totals = [sum(column) for column in zip(*measurement.causes, strict=True)]
    overall = _outcome_summary(totals, sum(measurement.good))
    latency = LatencyHistogram()
    for histogram in measurement.latency:
        latency.merge(histogram)
    classes = {}
    waits = waits or {}
    for index, (name, counts, histogram, good) in enumerate(
        zip(
            measurement.class_names,
            measurement.causes,
            measurement.latency,
            measurement.good,
            strict=True,
        )
    ):
        classes[name] = {**_outcome_summary(counts, good), "latency_s": latency_summary(histogram)}
        if waits:
            classes[name]["wait_s"] = wait_summary(
                [rows[index] for group, rows in waits.items() if group != "db"]
            )
    group_summaries = {}
    for group in groups:
        accepted = group["accepted"]
        offered = accepted + group["rejected"]
        group_summaries[group["name"]] = {
            "servers": group["servers"],
            "workers": group["workers"],
            "utilization": group["busy_time_s"] / (group["workers"] * measured_s),
            "mean_queue_length": group["wait_time_s"] / measured_s,
            "attempts": int(offered),
            "waited_fraction": group["queued"] / accepted if accepted else math.nan,
            "rejected_fraction": group["rejected"] / offered if offered else math.nan,
        }
        if waits:
            group_summaries[group["name"]]["wait_s"] = wait_summary(waits[group["name"]])
    arrived = measurement.arrivals
    availability = overall["availability"]
    summary = {
        "measured_s": measured_s,
        "requests": {"arrived": arrived, **overall["requests"], "in_flight_at_end": in_flight},
        "attempts": measurement.attempts,
        "retries": measurement.retries,
        "attempts_per_request": measurement.attempts / arrived if arrived else math.nan,
        "availability": availability,
        "arrival_rate_per_s": arrived / measured_s,
        "throughput_per_s": overall["requests"]["ok"] / measured_s,
        "latency_s": latency_summary(latency),
        "classes": classes,
        "groups": group_summaries,
    }
    if service is not None:
        availability.update(time_based_figures(service, measured_s))
        for name, up_s in service["class_up_s"].items():
            classes[name]["availability"]["time_based"] = _fraction_of(up_s, measured_s)
        summary["incidents"] = service["incident_figures"]
    if slo is not None:
        summary["slo"] = slo_summary(
            slo["availability"],
            availability["request_based"],
            slo["latency"],
            slo["latency_percentile"],
            latency,
        )
    return summary


def slo_verdict(interval: dict[str, Any], target: float) -> str:
    """Whether an availability estimate holds ``target``, by its interval (``low``, ``high``):
    ``met`` when the whole interval lies at or above it, ``missed`` when it lies below,
    ``undecided`` when it straddles the target (a longer run decides)."""
    if interval["low"] is not None and interval["low"] >= target:
        return "met"
    if interval["high"] is not None and interval["high"] < target:
        return "missed"
    return "undecided"


def slo_verdicts(estimate: dict[str, Any], target: float) -> dict[str, Any]:
    """A long-horizon ``estimate``'s verdicts on the SLO ``target`` (:func:`slo_verdict`):
    ``target``, ``verdict`` (the service's) and ``classes`` (name -> verdict)."""
    return {
        "target": target,
        "verdict": slo_verdict(estimate["availability"], target),
        "classes": {
            name: slo_verdict(interval, target) for name, interval in estimate["classes"].items()
        },
    }


def _fraction_of(seconds: float, window_s: float) -> float:
    # Times are integrated from event times: rounding may put them a hair past the window.
    return min(seconds, window_s) / window_s


def time_based_figures(service: dict[str, Any], window_s: float) -> dict[str, Any]:
    """The service's time-based availability over a window of ``window_s`` seconds.

    ``service`` holds seconds within the window: ``up_s`` (each class up, weighted by its
    share), ``all_up_s`` and ``downtime_by_cause_s`` (see :mod:`sim.model.service`).
    Where maintenance is planned, ``excluding_planned`` leaves its downtime out, as SLAs that
    exclude scheduled maintenance windows count.
    """
    time_based = _fraction_of(service["up_s"], window_s)
    by_cause = service["downtime_by_cause_s"]
    planned = (
        {"excluding_planned": min(1.0, time_based + by_cause[MAINTENANCE] / window_s)}
        if MAINTENANCE in by_cause
        else {}
    )
    return {
        "time_based": time_based,
        **planned,
        "time_based_nines": nines(time_based),
        "time_based_all_classes": _fraction_of(service["all_up_s"], window_s),
        "downtime_s": window_s * (1.0 - time_based),
        "downtime_per_year_s": downtime_per_year_s(time_based),
        "downtime_by_cause_s": {
            cause: min(seconds, window_s)
            for cause, seconds in service["downtime_by_cause_s"].items()
        },
    }


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(1.0 - x, b, a)
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


def student_t_cdf(t: float, degrees: float) -> float:
    """P(T <= t) for Student's t with ``degrees`` degrees of freedom."""
    tail = 0.5 * _incomplete_beta(degrees / (degrees + t * t), degrees / 2, 0.5)
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(p: float, degrees: float) -> float:
    """The p-quantile of Student's t, for confidence intervals over few replications."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if degrees <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {degrees}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, degrees)
    low, high = 0.0, 1.0
    while student_t_cdf(high, degrees) < p:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2
        if student_t_cdf(middle, degrees) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def mean_confidence_interval(
    values: Sequence[float], confidence: float = 0.95
) -> tuple[float, float]:
    """Sample mean and the half-width of its Student-t confidence interval."""
    count = len(values)
    if count < 2:
        raise ValueError("a confidence interval needs at least two values")
    mean = math.fsum(values) / count
    variance = math.fsum((value - mean) ** 2 for value in values) / (count - 1)
    quantile = student_t_quantile(0.5 + confidence / 2, count - 1)
    return mean, quantile * math.sqrt(variance / count)
