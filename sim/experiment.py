"""Running scenarios: one run now; replications, comparisons and sweeps build on it.

A run is a pure function of (scenario, seed, replication): the same three give the same summary
and time series, bit for bit, on any machine and in any process.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sim.analysis import mean_confidence_interval, summarize, wait_summary
from sim.catalogue import check_summary, direction, flatten
from sim.executors import SerialExecutor
from sim.model.cluster import Cluster
from sim.model.monitor import EVENT_COLUMNS, INCIDENT_COLUMNS
from sim.model.tallies import SERVER_COLUMNS
from sim.overrides import set_path
from sim.reliability import markov_availability
from sim.results import atomic_write_text
from sim.scenario import Problem, Scenario, ScenarioError, parse_scenario
from sim.streams import Streams

__all__ = [
    "RunResult",
    "compare",
    "confidence_intervals",
    "grid",
    "paired_differences",
    "replicate",
    "replicate_to_precision",
    "run",
    "sweep",
    "with_overrides",
]


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
    latency: pd.DataFrame
    """Latency distribution of ok requests in the window: class, latency_s (a histogram
    bucket, within 1%), count."""
    servers: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per server and time step (``metrics.per_server``), else empty."""
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
    measurement = cluster.recorder.measurement()
    waits = cluster.tallies.measured_waits()
    summary = {
        "scenario": scenario.name,
        "seed": seed,
        "replication": replication,
        "duration_s": scenario.duration,
        "warmup_s": scenario.warmup,
        **summarize(
            measurement,
            measured_s,
            cluster.tallies.measured_groups(),
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
            waits=waits,
        ),
    }
    summary["availability"]["markov"] = markov_availability(scenario)
    latency_rows = []
    for name, histogram in zip(measurement.class_names, measurement.latency, strict=True):
        for value, count in zip(*histogram.distribution(), strict=True):
            latency_rows.append({"class": name, "latency_s": value, "count": count})
    summary["servers"] = cluster.tallies.measured_servers(measured_s)
    if cluster.data_tier is not None:
        summary["data"] = cluster.data_tier.summary(measured_s)
        summary["data"]["wait_s"] = wait_summary(waits["db"])
    check_summary(summary, scenario)
    return RunResult(
        scenario,
        seed,
        replication,
        summary,
        pd.DataFrame(cluster.recorder.rows),
        pd.DataFrame(incidents, columns=INCIDENT_COLUMNS),
        pd.DataFrame(cluster.monitor.events, columns=EVENT_COLUMNS),
        pd.DataFrame(latency_rows, columns=["class", "latency_s", "count"]),
        pd.DataFrame(cluster.tallies.per_server_rows, columns=SERVER_COLUMNS),
        time.perf_counter() - started,
    )


# -- batches of runs ------------------------------------------------------------------------


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """One run for a batch: the scenario as data (it travels to other processes and machines
    as plain data), a seed and a replication; the flat summary back."""
    scenario = parse_scenario(task["scenario"], task.get("source", "<task>"))
    result = run(scenario, seed=task["seed"], replication=task["replication"])
    return flatten(result.summary)


def with_overrides(scenario: Scenario, values: dict[str, Any]) -> Scenario:
    """The scenario with ``key.path -> value`` set (Python values), validated again."""
    data = scenario.to_dict()
    source = f"{scenario.name} with {values}"
    for path, value in values.items():
        try:
            set_path(data, path, value)
        except ValueError as error:
            raise ScenarioError(source, [Problem(path, str(error))]) from None
    return parse_scenario(data, source)


def _tasks(
    scenario: Scenario, seed: int, replications: range, label: Any = None
) -> list[tuple[Any, dict[str, Any]]]:
    data = scenario.to_dict()
    return [
        ((label, replication), {"scenario": data, "seed": seed, "replication": replication})
        for replication in replications
    ]


def _collect(results, progress: Callable[[int], None] | None) -> list[tuple[Any, dict]]:
    collected = []
    for key, outcome in results:
        collected.append((key, outcome))
        if progress is not None:
            progress(1)
    return collected


def replicate(
    scenario: Scenario,
    replications: int,
    seed: int | None = None,
    executor=None,
    progress: Callable[[int], None] | None = None,
    first: int = 0,
) -> pd.DataFrame:
    """Independent replications (streams spawned per replication from the root seed): one row
    each, with the flat summary metrics, sorted by replication."""
    seed = scenario.seed if seed is None else seed
    executor = executor or SerialExecutor()
    tasks = _tasks(scenario, seed, range(first, first + replications))
    rows = []
    for (_, replication), outcome in _collect(executor.map(run_task, tasks), progress):
        if not outcome["ok"]:
            raise RuntimeError(f"replication {replication} failed: {outcome['error']}")
        rows.append({"replication": replication, **outcome["value"]})
    return pd.DataFrame(rows).sort_values("replication", ignore_index=True)


def confidence_intervals(frame: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per metric column: replications, mean, and the Student-t interval's half-width and ends."""
    rows = []
    for column in frame.columns:
        if column == "replication" or not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = [v for v in frame[column].astype(float) if not math.isnan(v)]
        if len(values) >= 2:
            mean, half_width = mean_confidence_interval(values, confidence)
        else:
            mean, half_width = (values[0] if values else math.nan), math.nan
        rows.append(
            {
                "metric": column,
                "n": len(values),
                "mean": mean,
                "half_width": half_width,
                "low": mean - half_width,
                "high": mean + half_width,
            }
        )
    return pd.DataFrame(rows).set_index("metric")


def replicate_to_precision(
    scenario: Scenario,
    metric: str,
    relative_half_width: float,
    start: int = 5,
    cap: int = 100,
    seed: int | None = None,
    executor=None,
    confidence: float = 0.95,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Add replications until ``metric``'s interval is within ``relative_half_width`` of its
    mean (sequential estimation), or ``cap`` replications have run."""
    frame = replicate(scenario, start, seed, executor, progress)
    while len(frame) < cap:
        interval = confidence_intervals(frame[["replication", metric]], confidence).loc[metric]
        if abs(interval["half_width"]) <= relative_half_width * abs(interval["mean"]):
            break
        # Grow by half again each round: fewer rounds than one at a time, little overshoot.
        more = min(cap - len(frame), max(2, len(frame) // 2))
        frame = pd.concat(
            [frame, replicate(scenario, more, seed, executor, progress, first=len(frame))],
            ignore_index=True,
        )
    return frame


def compare(
    scenario: Scenario,
    alternatives: dict[str, dict[str, Any]],
    replications: int,
    seed: int | None = None,
    executor=None,
    confidence: float = 0.95,
    progress: Callable[[int], None] | None = None,
    common_random_numbers: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each alternative (a label and its ``key.path -> value`` overrides) in ``replications``
    replications; the first alternative is the baseline.

    With common random numbers (the default) replication i of every alternative uses the same
    seed and replication index, so all see the same arrivals, work and failures, and the
    differences are paired. Returns the runs (one row per alternative and replication) and the
    comparison (per alternative and metric: mean, paired difference from the baseline with its
    interval, and a verdict).
    """
    seed = scenario.seed if seed is None else seed
    executor = executor or SerialExecutor()
    tasks = []
    for position, (label, overrides) in enumerate(alternatives.items()):
        variant = with_overrides(scenario, overrides)
        offset = 0 if common_random_numbers else position * 1_000_003
        tasks += _tasks(variant, seed + offset, range(replications), label)
    rows = []
    for (label, replication), outcome in _collect(executor.map(run_task, tasks), progress):
        if not outcome["ok"]:
            raise RuntimeError(f"{label}, replication {replication}: {outcome['error']}")
        rows.append({"alternative": label, "replication": replication, **outcome["value"]})
    order = {label: i for i, label in enumerate(alternatives)}
    runs = pd.DataFrame(rows)
    runs = runs.sort_values(
        ["alternative", "replication"],
        key=lambda c: c.map(order) if c.name == "alternative" else c,
        ignore_index=True,
    )
    return runs, paired_differences(runs, list(alternatives), confidence)


def paired_differences(
    runs: pd.DataFrame, labels: list[str], confidence: float = 0.95
) -> pd.DataFrame:
    """Per alternative and metric: its mean and its paired difference from the first label."""
    baseline_label = labels[0]
    baseline = runs[runs.alternative == baseline_label].set_index("replication")
    metrics = [
        c
        for c in runs.columns
        if c not in {"alternative", "replication"} and pd.api.types.is_numeric_dtype(runs[c])
    ]
    rows = []
    for label in labels:
        mine = runs[runs.alternative == label].set_index("replication")
        for metric in metrics:
            values = mine[metric].astype(float)
            differences = (values - baseline[metric].astype(float)).dropna().tolist()
            mean = float(values.mean())
            if label == baseline_label or len(differences) < 2:
                difference, half_width, verdict = 0.0, math.nan, "baseline"
                if label != baseline_label:
                    verdict = "too few replications"
            else:
                difference, half_width = mean_confidence_interval(differences, confidence)
                verdict = _verdict(metric, difference, half_width)
            rows.append(
                {
                    "alternative": label,
                    "metric": metric,
                    "mean": mean,
                    "difference": difference,
                    "half_width": half_width,
                    "low": difference - half_width,
                    "high": difference + half_width,
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows)


def _verdict(metric: str, difference: float, half_width: float) -> str:
    if math.isnan(half_width) or abs(difference) <= half_width:
        return "no significant difference"
    sign = direction(metric)
    if sign == 0:
        return "higher" if difference > 0 else "lower"
    return "better" if difference * sign > 0 else "worse"


def grid(params: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values of ``params`` (a full factorial design), in order."""
    points: list[dict[str, Any]] = [{}]
    for path, values in params.items():
        points = [{**point, path: value} for point in points for value in values]
    return points


def point_key(point: dict[str, Any], scenario: dict[str, Any] | None = None) -> str:
    """A stable name for a sweep point: the same parameters of the same scenario (seed
    included) give the same key, and a changed scenario gives another."""
    text = json.dumps([point, scenario], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def sweep(
    scenario: Scenario,
    points: list[dict[str, Any]],
    replications: int,
    seed: int | None = None,
    executor=None,
    store: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Every point (a dict of ``key.path -> value``) in ``replications`` replications: one row
    per point and replication, with a column per parameter and per metric.

    With a ``store`` folder, each finished run is saved there at once (atomically), and runs
    already saved are not run again: an interrupted sweep resumes where it stopped. A point whose
    run fails gets a row with its parameters and the ``error``; the others go on.
    """
    seed = scenario.seed if seed is None else seed
    executor = executor or SerialExecutor()
    saved: dict[tuple[str, int], dict[str, Any]] = {}
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
        for path in sorted(store.glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            saved[(record["point_key"], record["replication"])] = record
    base = {**scenario.to_dict(), "seed": seed}
    keys = [point_key(point, base) for point in points]
    results: dict[tuple[int, int], dict[str, Any]] = {}
    tasks = []
    for index, (point, key) in enumerate(zip(points, keys, strict=True)):
        try:
            variant = with_overrides(scenario, point)
        except ScenarioError as error:
            for replication in range(replications):
                results[(index, replication)] = {"metrics": None, "error": str(error)}
            continue
        data = variant.to_dict()
        for replication in range(replications):
            if (key, replication) in saved:
                results[(index, replication)] = saved[(key, replication)]
            else:
                task = {"scenario": data, "seed": seed, "replication": replication}
                tasks.append(((index, key, replication), task))
    for (index, key, replication), outcome in _collect(executor.map(run_task, tasks), progress):
        record = {
            "point_key": key,
            "params": {path: _plain(value) for path, value in points[index].items()},
            "replication": replication,
            "metrics": outcome.get("value"),
            "error": outcome.get("error"),
        }
        results[(index, replication)] = record
        # Only successes are kept: a failure (a lost worker, say) is tried again on resume.
        if store is not None and record["error"] is None:
            atomic_write_text(
                store / f"{key}-{replication}.json", json.dumps(record, default=_plain) + "\n"
            )
    rows = []
    for (index, replication), record in sorted(results.items()):
        rows.append(
            {
                "point": index,
                **{path: _plain(value) for path, value in points[index].items()},
                "replication": replication,
                "error": record["error"],
                **(record["metrics"] or {}),
            }
        )
    table = pd.DataFrame(rows)
    for path in dict.fromkeys(p for point in points for p in point):
        kinds = {type(value) for value in table[path] if value is not None}
        if len(kinds) > 1:  # mixed types (a typo among numbers, say): a column of text
            table[path] = table[path].astype(str)
    return table


def _plain(value: Any) -> Any:
    """A parameter value as it can go in a table cell (mappings and lists as YAML text)."""
    if isinstance(value, dict | list):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return value
