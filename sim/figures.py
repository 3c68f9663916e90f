"""Drawing the figures that fit a results folder, and writing them next to it (atomically).

A run folder gets its latency CDF, its time series and, when something failed, its incident
timeline; a comparison folder its comparison chart; a sweep folder its availability curve
against the first swept parameter.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures go to files: no window, whatever the machine has

import matplotlib.pyplot as plt
import pandas as pd
import yaml

from sim import plots
from sim.results import atomic_write_bytes, read_run

__all__ = ["FORMATS", "draw_folder"]

FORMATS = ("png", "svg", "pdf")


class NothingToDraw(ValueError):
    """The folder holds no results ecsim knows how to draw."""


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lstrip("."), dpi=110)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def draw_folder(
    folder: Path, out: Path | None = None, fmt: str = "png", metric: str | None = None
) -> list[Path]:
    """Draw what fits the results in ``folder`` into ``out`` (default: the folder itself).

    ``metric``: what a comparison chart leads with (default: the metric the comparison was
    ranked by) or a sweep's availability curve shows (default: request-based availability).
    Raises :class:`NothingToDraw` for a folder with no results ecsim knows.
    """
    folder = Path(folder)
    out = Path(out) if out is not None else folder
    scenario = (
        yaml.safe_load((folder / "scenario.yaml").read_text(encoding="utf-8"))
        if (folder / "scenario.yaml").exists()
        else {}
    )
    slo = scenario.get("slo") or {}
    written: list[Path] = []
    if (folder / "timeseries.csv").exists():
        run = read_run(folder)
        name = run["summary"]["scenario"]
        written.append(
            _save(
                plots.latency_cdf(
                    run["latency"], slo.get("latency"), f"{name}: latency of successful requests"
                ),
                out / f"latency_cdf.{fmt}",
            )
        )
        written.append(
            _save(
                plots.time_series(
                    run["timeseries"],
                    run["events"],
                    f"{name}: traffic, errors and latency",
                    end_s=run["summary"]["duration_s"],
                ),
                out / f"timeseries.{fmt}",
            )
        )
        if "cache.hit_ratio" in run["timeseries"].columns:
            written.append(
                _save(
                    plots.cache_and_database_load(
                        run["timeseries"],
                        run["events"],
                        f"{name}: cache hit ratio and database load",
                        end_s=run["summary"]["duration_s"],
                    ),
                    out / f"cache.{fmt}",
                )
            )
        if len(run["events"]):
            written.append(
                _save(
                    plots.incident_timeline(
                        run["events"], run["summary"]["duration_s"], f"{name}: incident timeline"
                    ),
                    out / f"incidents.{fmt}",
                )
            )
    elif (folder / "comparison.csv").exists():
        comparison = pd.read_csv(folder / "comparison.csv")
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        lead = metric or summary.get("metric") or "availability.request_based_within_latency"
        if lead not in set(comparison.metric):
            raise NothingToDraw(f"{folder}: the comparison has no metric {lead!r}")
        others = ("latency_s.p99", "availability.request_based", "throughput_per_s")
        metrics = [lead, *(m for m in others if m != lead and m in set(comparison.metric))]
        written.append(
            _save(
                plots.comparison_chart(
                    comparison, metrics, f"{summary['scenario']}: {summary['parameter']} compared"
                ),
                out / f"comparison.{fmt}",
            )
        )
    elif (folder / "summary.json").exists() and _availability_summary(folder) is not None:
        summary = _availability_summary(folder)
        designs = summary.get("designs", [summary])
        labels = [_design_label(design, index) for index, design in enumerate(designs)]
        written.append(
            _save(
                plots.downtime_by_cause(
                    [
                        (label, design["downtime_by_cause"])
                        for label, design in zip(labels, designs, strict=True)
                    ],
                    f"{designs[0]['scenario']}: where the minutes go",
                ),
                out / f"downtime_by_cause.{fmt}",
            )
        )
    if (folder / "sweep.parquet").exists() and not (folder / "timeseries.csv").exists():
        table = pd.read_parquet(folder / "sweep.parquet")
        parameters = [
            c
            for c in table.columns
            if c not in {"point", "replication", "error"} and c in _swept(table)
        ]
        if not parameters:
            raise NothingToDraw(f"{folder}: the sweep has no parameter column")
        group_by = parameters[1] if len(parameters) > 1 else None
        default = (
            "availability.request_based"
            if "availability.request_based" in table.columns
            else "availability.time_based"  # a long-horizon sweep: no request, no request_based
        )
        shown = metric or default
        if shown not in table.columns:
            raise NothingToDraw(f"{folder}: the sweep has no metric {shown!r}")
        if not plots.is_availability(shown):
            raise NothingToDraw(
                f"{shown} is not an availability (a fraction where higher is better): the"
                " availability curve draws those on a nines scale; plot others from"
                " sweep.parquet in a notebook"
            )
        # The chain's value is the time-based availability: beside another metric it would
        # compare different things.
        theory = (
            _markov_line(table, parameters[0])
            if group_by is None and shown == "availability.time_based"
            else None
        )
        written.append(
            _save(
                plots.availability_curve(
                    table,
                    parameters[0],
                    shown,
                    slo.get("availability"),
                    theory=theory,
                    group_by=group_by,
                ),
                out / f"availability_curve.{fmt}",
            )
        )
    if not written:
        raise NothingToDraw(f"{folder}: no run, comparison or sweep results here (nothing to draw)")
    return written


def _availability_summary(folder: Path) -> dict | None:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return summary if summary.get("mode") == "availability" else None


def _design_label(design: dict, index: int) -> str:
    point = design.get("point") or {}
    return ", ".join(f"{key}={value}" for key, value in point.items()) or f"design {index}"


def _swept(table: pd.DataFrame) -> list[str]:
    """The parameter columns of a sweep table: those before 'replication'."""
    columns = list(table.columns)
    return columns[columns.index("point") + 1 : columns.index("replication")]


def _markov_line(table: pd.DataFrame, parameter: str) -> pd.DataFrame | None:
    """The Markov chain's value at each point of a sweep, where the design has one."""
    column = "availability.markov.value"
    if column not in table.columns or table[column].isna().all():
        return None
    values = table.groupby(parameter, sort=True)[column].first().dropna()
    return pd.DataFrame({"parameter": values.index, "value": values.to_numpy()})
