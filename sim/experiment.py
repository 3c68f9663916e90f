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
from typing import TYPE_CHECKING, Any

import yaml

from sim.analysis import finite_or_none, mean_confidence_interval, summarize, wait_summary
from sim.catalogue import check_summary, direction, flatten, keys_for
from sim.executors import SerialExecutor
from sim.model.cluster import Cluster
from sim.model.monitor import EVENT_COLUMNS, INCIDENT_COLUMNS
from sim.model.tallies import SERVER_COLUMNS
from sim.overrides import set_path
from sim.rare_events import BIASED_METRICS, biased_replication
from sim.reliability import AVAILABILITY_METRICS, markov_availability, simulate_years
from sim.results import RunStore
from sim.scenario import Problem, Scenario, ScenarioError, parse_scenario
from sim.streams import Streams

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BatchError",
    "RunResult",
    "compare",
    "confidence_intervals",
    "grid",
    "paired_differences",
    "precise_enough",
    "replicate",
    "replicate_to_precision",
    "run",
    "sweep",
    "with_overrides",
]


def _empty_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame()


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
    servers: pd.DataFrame = field(default_factory=_empty_frame)
    """Per server and time step (``metrics.per_server``), else empty."""
    wall_time_s: float = field(default=0.0, compare=False)


def run(
    scenario: Scenario,
    seed: int | None = None,
    replication: int = 0,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Simulate ``scenario`` for its duration; ``seed`` defaults to the scenario's own."""
    import pandas as pd

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
                **cluster.monitor.service_totals(),
                "incident_figures": cluster.monitor.incident_figures(),
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
    windowed, per_class = cluster.good_windows.fractions()
    summary["availability"]["windowed"] = windowed
    for request_class, fraction in zip(scenario.workload.classes, per_class, strict=True):
        summary["classes"][request_class.name]["availability"]["windowed"] = fraction
    latency_rows = []
    for name, histogram in zip(measurement.class_names, measurement.latency, strict=True):
        for value, count in zip(*histogram.distribution(), strict=True):
            latency_rows.append({"class": name, "latency_s": value, "count": count})
    summary["servers"] = cluster.tallies.measured_servers(measured_s)
    client = cluster.client.summary()
    if client is not None:
        summary["client"] = client
    if cluster.maintenance is not None:
        summary["maintenance"] = cluster.maintenance.summary(measured_s)
    if cluster.autoscalers:
        summary["autoscaling"] = {
            name: autoscaler.summary(measured_s) for name, autoscaler in cluster.autoscalers.items()
        }
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
    as plain data), a seed and a replication; the flat summary back. With ``years``, a
    long-horizon replication of that many years (:func:`sim.reliability.simulate_years`); with
    ``cycles``, a failure-biasing run of that many regenerative cycles
    (:func:`sim.rare_events.biased_replication`)."""
    scenario = parse_scenario(task["scenario"], task.get("source", "<task>"))
    if task.get("years") is not None:
        summary = simulate_years(scenario, task["years"], task["seed"], task["replication"])
        return flatten(summary)
    if task.get("cycles") is not None:
        summary = biased_replication(scenario, task["cycles"], task["seed"], task["replication"])
        return flatten(summary)
    result = run(scenario, seed=task["seed"], replication=task["replication"])
    return flatten(result.summary)


def with_overrides(scenario: Scenario, values: dict[str, Any]) -> Scenario:
    """The scenario with ``key.path -> value`` set (Python values), validated again. Only the
    keys the scenario set are carried over (defaults stay defaults), so the variant's
    warnings are about what its author wrote, not about every default spelt out."""
    data = scenario.model_dump(mode="json", by_alias=True, exclude_unset=True)
    source = f"{scenario.name} with {values}"
    for path, value in values.items():
        try:
            set_path(data, path, value)
        except ValueError as error:
            raise ScenarioError(source, [Problem(path, str(error))]) from None
    return parse_scenario(data, source)


class BatchError(RuntimeError):
    """Runs of a replication or comparison batch failed; ``failures`` says which and why."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        shown = "; ".join(failures[:3])
        if len(failures) > 3:
            shown += f"; ... {len(failures) - 3} more"
        super().__init__(f"{len(failures)} run(s) failed: {shown}")


@dataclass(frozen=True)
class _Task:
    key: str
    """What runs (scenario, overrides, seed, years or cycles), hashed: the same key is the
    same run."""
    replication: int
    scenario: dict[str, Any]
    seed: int
    years: float | None = None
    cycles: int | None = None


def _tasks(
    scenario: Scenario,
    seed: int,
    replications: range,
    point: Any = None,
    years: float | None = None,
    cycles: int | None = None,
) -> list[_Task]:
    data = scenario.to_dict()
    # How many replications a batch makes is not part of what one run is: asking for more
    # later keeps the runs already done.
    identity = {key: value for key, value in data.items() if key != "replications"}
    if years is not None:
        identity["years"] = years
    if cycles is not None:
        identity["cycles"] = cycles
    key = point_key(point or {}, {**identity, "seed": seed})
    return [_Task(key, replication, data, seed, years, cycles) for replication in replications]


def _run_all(
    tasks: list[_Task],
    executor,
    store: Path | None,
    progress: Callable[[int], None] | None,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Every task's record (``metrics`` or ``error``), from the store when saved there, else
    run on ``executor``; each success is saved the moment it arrives, so an interrupted batch
    keeps all it finished. Failures are not saved: a resumed batch tries them again.

    Once the first result is in, this process imports pandas, which every caller's table
    needs: on a pool the import (0.3 to 0.5 s) then overlaps the workers' remaining runs,
    where importing it first would have delayed them."""
    saved = RunStore(store).load() if store is not None else {}
    results: dict[tuple[str, int], dict[str, Any]] = {}
    pending = []
    for task in tasks:
        record = saved.get((task.key, task.replication))
        if record is not None and record.get("error") is None:
            results[(task.key, task.replication)] = record
            if progress is not None:
                progress(1)
        else:
            work = {"scenario": task.scenario, "seed": task.seed, "replication": task.replication}
            if task.years is not None:
                work["years"] = task.years
            if task.cycles is not None:
                work["cycles"] = task.cycles
            pending.append(((task.key, task.replication), work))
    keeper = RunStore(store) if store is not None else None
    for (key, replication), outcome in executor.map(run_task, pending):
        record = _plain_record(
            {
                "key": key,
                "replication": replication,
                "metrics": outcome.get("value"),
                "error": outcome.get("error"),
            }
        )
        results[(key, replication)] = record
        if keeper is not None and record["error"] is None:
            keeper.save(record)
        if progress is not None:
            progress(1)
        import pandas  # noqa: F401  (free after the first time)
    return results


def _plain_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record as it reads back from its file (NaN as null), so a resumed batch and an
    uninterrupted one build identical tables."""
    return json.loads(json.dumps(finite_or_none(record)))


def replicate(
    scenario: Scenario,
    replications: int,
    seed: int | None = None,
    executor=None,
    progress: Callable[[int], None] | None = None,
    first: int = 0,
    store: Path | None = None,
) -> pd.DataFrame:
    """Independent replications (streams spawned per replication from the root seed): one row
    each, with the flat summary metrics, sorted by replication.

    With a ``store`` folder, each finished replication is saved there at once and replications
    saved before are not run again. Raises :class:`BatchError` if any replication failed.
    """
    import pandas as pd

    seed = scenario.seed if seed is None else seed
    executor = executor or SerialExecutor()
    tasks = _tasks(scenario, seed, range(first, first + replications))
    results = _run_all(tasks, executor, store, progress)
    failures = [
        f"replication {task.replication}: {results[(task.key, task.replication)]['error']}"
        for task in tasks
        if results[(task.key, task.replication)]["error"] is not None
    ]
    if failures:
        raise BatchError(failures)
    rows = [
        {"replication": task.replication, **results[(task.key, task.replication)]["metrics"]}
        for task in tasks
    ]
    return _numeric(pd.DataFrame(rows))


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Metric columns as numbers: a metric missing (null) in every row reads back as NaN."""
    for column in frame.columns:
        if frame[column].dtype == object and frame[column].map(lambda v: v is None).all():
            frame[column] = math.nan
    return frame


def confidence_intervals(frame: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per metric column: replications, mean, and the Student-t interval's half-width and ends."""
    import pandas as pd

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
    store: Path | None = None,
) -> pd.DataFrame:
    """Add replications until ``metric``'s interval is within ``relative_half_width`` of its
    mean (sequential estimation), or ``cap`` replications have run; ``start`` first (at most
    ``cap``). Whether the target was reached is for the caller to read from the frame."""
    import pandas as pd

    frame = replicate(scenario, min(start, cap), seed, executor, progress, store=store)
    while len(frame) < cap and not precise_enough(frame, metric, relative_half_width, confidence):
        # Grow by half again each round: fewer rounds than one at a time, little overshoot.
        more = min(cap - len(frame), max(2, len(frame) // 2))
        later = replicate(scenario, more, seed, executor, progress, len(frame), store)
        frame = pd.concat([frame, later], ignore_index=True)
    return frame


def precise_enough(
    frame: pd.DataFrame, metric: str, relative_half_width: float, confidence: float = 0.95
) -> bool:
    """Whether ``metric``'s interval over the replications in ``frame`` is within
    ``relative_half_width`` of its mean."""
    interval = confidence_intervals(frame[["replication", metric]], confidence).loc[metric]
    return bool(abs(interval["half_width"]) <= relative_half_width * abs(interval["mean"]))


def compare(
    scenario: Scenario,
    alternatives: dict[str, dict[str, Any]],
    replications: int,
    seed: int | None = None,
    executor=None,
    confidence: float = 0.95,
    progress: Callable[[int], None] | None = None,
    common_random_numbers: bool = True,
    store: Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each alternative (a label and its ``key.path -> value`` overrides) in ``replications``
    replications; the first alternative is the baseline.

    With common random numbers (the default) replication i of every alternative uses the same
    seed and replication index, so all see the same arrivals, work and failures, and the
    differences are paired. Returns the runs (one row per alternative and replication) and the
    comparison (per alternative and metric: mean, paired difference from the baseline with its
    interval, and a verdict). With a ``store`` folder, finished runs are saved as they end and
    not run again. Raises :class:`BatchError` if any run failed.
    """
    import pandas as pd

    seed = scenario.seed if seed is None else seed
    executor = executor or SerialExecutor()
    tasks: dict[str, list[_Task]] = {}
    for position, (label, overrides) in enumerate(alternatives.items()):
        variant = with_overrides(scenario, overrides)
        offset = 0 if common_random_numbers else position * 1_000_003
        tasks[label] = _tasks(variant, seed + offset, range(replications), overrides)
    results = _run_all([t for mine in tasks.values() for t in mine], executor, store, progress)
    rows, failures = [], []
    for label, mine in tasks.items():
        for task in mine:
            record = results[(task.key, task.replication)]
            if record["error"] is not None:
                failures.append(f"{label}, replication {task.replication}: {record['error']}")
            else:
                rows.append(
                    {"alternative": label, "replication": task.replication, **record["metrics"]}
                )
    if failures:
        raise BatchError(failures)
    runs = _numeric(pd.DataFrame(rows))
    return runs, paired_differences(runs, list(alternatives), confidence)


def paired_differences(
    runs: pd.DataFrame, labels: list[str], confidence: float = 0.95
) -> pd.DataFrame:
    """Per alternative and metric: its mean and its paired difference from the first label."""
    import pandas as pd

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
            if label == baseline_label:
                difference, half_width, verdict = 0.0, math.nan, "baseline"
            elif baseline[metric].isna().all() or values.isna().all():
                difference, half_width = math.nan, math.nan
                verdict = "baseline has no value" if baseline[metric].isna().all() else "no value"
            elif len(differences) < 2:
                difference, half_width, verdict = math.nan, math.nan, "too few replications"
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
    years: float | None = None,
    cycles: int | None = None,
) -> pd.DataFrame:
    """Every point (a dict of ``key.path -> value``) in ``replications`` replications: one row
    per point and replication, with a column per parameter and per metric. With ``years``,
    each replication is a long-horizon one of that many years (its metrics are
    :data:`sim.reliability.AVAILABILITY_METRICS`); with ``cycles``, a failure-biasing run of
    that many cycles (:data:`sim.rare_events.BIASED_METRICS`).

    With a ``store`` folder, each finished run is saved there at once (atomically), and runs
    already saved are not run again: an interrupted sweep resumes where it stopped. A point whose
    run fails gets a row with its parameters and the ``error``; the others go on. The metric
    columns are the catalogue's (:func:`sim.catalogue.keys_for`), in its order, whether a run
    succeeded or not.
    """
    import pandas as pd

    seed = scenario.seed if seed is None else seed
    executor = executor or SerialExecutor()
    invalid: dict[int, str] = {}
    tasks: dict[int, list[_Task]] = {}
    metrics: dict[str, None] = {}
    for index, point in enumerate(points):
        try:
            variant = with_overrides(scenario, point)
        except ScenarioError as error:
            invalid[index] = str(error)
            continue
        only = (
            AVAILABILITY_METRICS
            if years is not None
            else BIASED_METRICS
            if cycles is not None
            else None
        )
        metrics.update(dict.fromkeys(keys_for(variant, only)))
        tasks[index] = _tasks(variant, seed, range(replications), point, years, cycles)
    results = _run_all([t for mine in tasks.values() for t in mine], executor, store, progress)
    parameters = list(dict.fromkeys(p for point in points for p in point))
    rows = []
    for index, point in enumerate(points):
        for replication in range(replications):
            row = {
                "point": index,
                **{path: _plain(value) for path, value in point.items()},
                "replication": replication,
            }
            if index in invalid:
                row["error"] = invalid[index]
            else:
                task = tasks[index][replication]
                record = results[(task.key, task.replication)]
                row["error"] = record["error"]
                row.update(record["metrics"] or {})
            rows.append(row)
    leading = ["point", *parameters, "replication", "error"]
    columns = [*leading, *(key for key in metrics if key not in leading)]
    table = _numeric(pd.DataFrame(rows, columns=columns))
    for path in parameters:
        kinds = {type(value) for value in table[path] if value is not None}
        if len(kinds) > 1:  # mixed types (a typo among numbers, say): a column of text
            table[path] = table[path].astype(str)
    return table


def _plain(value: Any) -> Any:
    """A parameter value as it can go in a table cell (mappings and lists as YAML text)."""
    if isinstance(value, dict | list):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return value
