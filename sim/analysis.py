"""Summaries of what a run observed: availability, nines, latency percentiles, utilization.

Pure functions of recorded data: no simulation here. The summary is a plain nested dict with SI
units in its key names, written as ``summary.json`` and documented in the README.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sim.metrics import OK, OUTCOMES, LatencyHistogram, Recorder

__all__ = [
    "LATENCY_QUANTILES",
    "downtime_per_year_s",
    "finite_or_none",
    "latency_summary",
    "nines",
    "summarize",
]

LATENCY_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
SECONDS_PER_YEAR = 365.25 * 86400


def nines(availability: float) -> float:
    """Availability as a number of nines: 0.999 is 3, 0.9995 is about 3.3; inf when perfect."""
    if math.isnan(availability):
        return math.nan
    if availability >= 1.0:
        return math.inf
    return -math.log10(1.0 - availability)


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


def latency_summary(histogram: LatencyHistogram) -> dict[str, float]:
    """Mean, percentiles and maximum of the latencies in ``histogram`` (NaN when empty)."""
    summary = {"mean": histogram.mean()}
    for label, q in LATENCY_QUANTILES.items():
        summary[label] = histogram.quantile(q)
    summary["max"] = histogram.maximum if histogram.count else math.nan
    return summary


def _outcome_summary(counts: Sequence[int]) -> dict[str, Any]:
    ended = sum(counts)
    availability = counts[OK] / ended if ended else math.nan
    return {
        "requests": {"ended": ended, **dict(zip(OUTCOMES, counts, strict=True))},
        "availability": {"request_based": availability, "nines": nines(availability)},
    }


def summarize(
    recorder: Recorder,
    measured_s: float,
    group_totals: Sequence[tuple[float, float]],
    group_servers: Sequence[int],
    group_workers: Sequence[int],
    in_flight: int,
) -> dict[str, Any]:
    """The metrics of one run over its measurement window (after warm-up)."""
    totals = [sum(column) for column in zip(*recorder.outcomes, strict=True)]
    overall = _outcome_summary(totals)
    latency = LatencyHistogram()
    for histogram in recorder.latency:
        latency.merge(histogram)
    classes = {}
    for name, counts, histogram in zip(
        recorder.class_names, recorder.outcomes, recorder.latency, strict=True
    ):
        classes[name] = {**_outcome_summary(counts), "latency_s": latency_summary(histogram)}
    groups = {}
    for name, (busy_s, waited_s), servers, workers in zip(
        recorder.group_names, group_totals, group_servers, group_workers, strict=True
    ):
        groups[name] = {
            "servers": servers,
            "workers": workers,
            "utilization": busy_s / (workers * measured_s),
            "mean_queue_length": waited_s / measured_s,
        }
    arrived = recorder.arrivals
    return {
        "measured_s": measured_s,
        "requests": {"arrived": arrived, **overall["requests"], "in_flight_at_end": in_flight},
        "attempts": recorder.attempts,
        "retries": recorder.retries,
        "attempts_per_request": recorder.attempts / arrived if arrived else math.nan,
        "availability": overall["availability"],
        "arrival_rate_per_s": arrived / measured_s,
        "throughput_per_s": totals[OK] / measured_s,
        "latency_s": latency_summary(latency),
        "classes": classes,
        "groups": groups,
    }
