"""The pictures an SRE puts in a design review. Pure functions: data frames in, a Figure out.

Every figure has a title, labelled axes with units and a legend, and stays readable in
greyscale: series differ by line style and marker, not by colour alone. Nothing here runs a
simulation or touches files: :func:`sim.figures.draw_folder` picks the figures that fit a
results folder and writes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter

from sim.catalogue import direction

__all__ = [
    "availability_curve",
    "comparison_chart",
    "incident_timeline",
    "latency_cdf",
    "nines_axis",
    "time_series",
]

STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v")]
GREYS = ["0.0", "0.35", "0.55", "0.2", "0.7"]


def _style(index: int) -> dict[str, Any]:
    line, marker = STYLES[index % len(STYLES)]
    return {
        "linestyle": line,
        "marker": marker,
        "color": GREYS[index % len(GREYS)],
    }


def _line(axes, x: Any, y: Any, index: int, label: str, every: int | None = None) -> None:
    """A series in the greyscale style of ``index``, with about ten markers along it."""
    values = np.asarray(y, dtype=float)
    style = _style(index)
    if np.isfinite(values).any():
        style["markevery"] = every or max(1, len(values) // 10)
    else:
        style["marker"] = None  # nothing to mark (matplotlib fails on markers of no point)
    axes.plot(x, values, label=label, **style)


def latency_cdf(
    latency: pd.DataFrame,
    slo_latency_s: float | None = None,
    title: str = "Latency of successful requests",
) -> Figure:
    """Per request class, the fraction of ok requests answered within x (log scale), with the
    p50 and p99 marked and the SLO latency as a vertical line."""
    figure, axes = plt.subplots(figsize=(8, 5))
    for index, (name, group) in enumerate(latency.groupby("class", sort=False)):
        group = group.sort_values("latency_s")
        fraction = group["count"].cumsum() / group["count"].sum()
        _line(axes, group["latency_s"] * 1000, fraction, index, str(name))
        for q, mark in ((0.5, "o"), (0.99, "X")):
            at = group["latency_s"].iloc[int(np.searchsorted(fraction.to_numpy(), q))] * 1000
            axes.plot(
                [at],
                [q],
                marker=mark,
                markersize=9,
                markerfacecolor="white",
                markeredgecolor="black",
                linestyle="none",
                zorder=5,
            )
    axes.axhline(0.5, color="0.8", linewidth=0.8, zorder=0)
    axes.axhline(0.99, color="0.8", linewidth=0.8, zorder=0)
    axes.plot(
        [],
        [],
        marker="o",
        markerfacecolor="white",
        markeredgecolor="black",
        linestyle="none",
        label="p50 of the class",
    )
    axes.plot(
        [],
        [],
        marker="X",
        markerfacecolor="white",
        markeredgecolor="black",
        linestyle="none",
        label="p99 of the class",
    )
    if slo_latency_s is not None:
        axes.axvline(
            slo_latency_s * 1000,
            color="black",
            linestyle="--",
            linewidth=1.5,
            label=f"SLO {slo_latency_s * 1000:g} ms",
        )
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("fraction of ok requests answered within")
    axes.set_ylim(0, 1.01)
    axes.set_title(title)
    axes.legend(loc="lower right")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    return figure


def _incident_spans(events: pd.DataFrame) -> list[tuple[str, float, float | None]]:
    """(component, start, end) of each fault in the event timeline (end None if never)."""
    starts = {"crash", "partition", "slowdown", "zone outage"}
    ends = {"repaired", "reconnected", "back to speed"}
    open_spans: dict[str, list[float]] = {}
    spans = []
    for _, row in events.iterrows():
        if row.event in starts:
            open_spans.setdefault(row.component, []).append((row.event, row.time_s))
        elif row.event in ends and open_spans.get(row.component):
            kind, start = open_spans[row.component].pop(0)
            spans.append((f"{kind}: {row.component}", start, row.time_s))
    for component, pending in open_spans.items():
        for kind, start in pending:
            spans.append((f"{kind}: {component}", start, None))
    return spans


def time_series(
    timeseries: pd.DataFrame,
    events: pd.DataFrame | None = None,
    title: str = "Traffic, errors and latency over time",
) -> Figure:
    """Throughput, error rate and p99 over time, with failures shaded and labelled, and the
    offered arrival rate (the flash-sale profile) beside the throughput."""
    step = float(timeseries["time_s"].diff().dropna().median()) if len(timeseries) > 1 else 1.0
    minutes = timeseries["time_s"] / 60
    failed = timeseries[["timeout", "rejected", "no_backend", "error"]].sum(axis=1)
    ended = failed + timeseries["ok"]
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    _line(top, minutes, timeseries["ok"] / step, 0, "ok answers")
    if timeseries["offered_rate_per_s"].notna().any():
        _line(top, minutes, timeseries["offered_rate_per_s"], 1, "offered arrival rate")
    top.set_ylabel("requests per second")
    _line(middle, minutes, 100 * failed / ended.where(ended > 0), 2, "failed requests")
    middle.set_ylabel("error rate (%)")
    _line(bottom, minutes, timeseries["p99_latency_s"] * 1000, 3, "p99 latency (ok)")
    bottom.set_ylabel("p99 latency (ms)")
    bottom.set_xlabel("simulated time (minutes)")
    spans = _incident_spans(events) if events is not None and len(events) else []
    end_of_run = float((timeseries["time_s"].iloc[-1] + step) / 60)
    for index, (label, start, end) in enumerate(spans):
        right = end / 60 if end is not None else end_of_run
        for axes in (top, middle, bottom):
            axes.axvspan(
                start / 60,
                right,
                color="0.85",
                hatch="//" if index % 2 else "\\\\",
                alpha=0.6,
                zorder=0,
            )
        top.annotate(
            label,
            (start / 60, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=8,
            va="top",
            rotation=90,
        )
    if events is not None and len(events):
        for _, row in events[events.detail.fillna("").str.startswith("detected")].iterrows():
            for axes in (top, middle, bottom):
                axes.axvline(row.time_s / 60, color="black", linestyle=":", linewidth=0.8)
    for axes in (top, middle, bottom):
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper right", fontsize=8)
    if spans:
        top.plot([], [], color="0.85", linewidth=8, label="failure (shaded)")
        top.plot([], [], color="black", linestyle=":", label="detected")
        top.legend(loc="upper right", fontsize=8)
    top.set_title(title)
    figure.tight_layout()
    return figure


def incident_timeline(
    events: pd.DataFrame, end_s: float, title: str = "Incident timeline"
) -> Figure:
    """One row per component: when it was down, out of rotation (suspected), and recovering
    (repaired but not yet back in rotation)."""
    components = [c for c in dict.fromkeys(events.component) if c != "service"]
    figure, axes = plt.subplots(figsize=(10, 1.2 + 0.5 * max(1, len(components))))
    kinds = {
        "down": {"color": "0.1", "hatch": ""},
        "out of rotation": {"color": "0.6", "hatch": "//"},
        "recovering": {"color": "0.85", "hatch": ".."},
    }
    drawn = set()
    for row, component in enumerate(components):
        mine = events[events.component == component].sort_values("time_s")
        down_since = out_since = repaired_at = None
        spans = []
        for _, event in mine.iterrows():
            t = event.time_s
            if event.event in {"crash", "partition", "zone outage", "slowdown"}:
                down_since = t
            elif (
                event.event in {"repaired", "reconnected", "back to speed"}
                and down_since is not None
            ):
                spans.append(("down", down_since, t))
                down_since, repaired_at = None, t
            elif event.event == "out of rotation" and str(event.detail).startswith(
                ("detected down", "ejected")
            ):
                out_since = t
            elif event.event == "in rotation":
                if out_since is not None:
                    spans.append(("out of rotation", out_since, t))
                    out_since = None
                if repaired_at is not None:
                    spans.append(("recovering", repaired_at, t))
                    repaired_at = None
        for kind, since in (
            ("down", down_since),
            ("out of rotation", out_since),
            ("recovering", repaired_at),
        ):
            if since is not None:
                spans.append((kind, since, end_s))
        for kind, start, end in spans:
            offset = {"down": 0.0, "out of rotation": 0.25, "recovering": 0.25}[kind]
            axes.broken_barh(
                [(start / 60, (end - start) / 60)],
                (row - 0.35 + offset, 0.45),
                facecolor=kinds[kind]["color"],
                hatch=kinds[kind]["hatch"],
                edgecolor="black",
                linewidth=0.5,
                label=kind if kind not in drawn else None,
            )
            drawn.add(kind)
    axes.set_yticks(range(len(components)))
    axes.set_yticklabels(components)
    axes.set_xlim(0, end_s / 60)
    axes.set_xlabel("simulated time (minutes)")
    axes.set_ylabel("component")
    axes.set_title(title)
    if drawn:
        axes.legend(loc="upper right", fontsize=8)
    axes.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def nines(availability: Any, cap: float = 9.0) -> Any:
    """-log10(1 - A), capped so that a perfect run (no failure at all) stays on the chart."""
    unavailability = np.maximum(1 - np.asarray(availability, dtype=float), 10.0**-cap)
    return np.minimum(-np.log10(unavailability), cap)


def nines_axis(axes, low: float, high: float) -> None:
    """An axis on which 99%, 99.9%, 99.99%... are evenly spaced, labelled as percentages."""
    start, stop = max(0, math.floor(low)), max(math.ceil(high), math.floor(low) + 1)
    ticks = list(range(start, stop + 1))
    axes.set_ylim(start - 0.1, stop + 0.1)
    axes.yaxis.set_major_locator(FixedLocator(ticks))
    axes.yaxis.set_major_formatter(
        FuncFormatter(lambda value, _: f"{100 * (1 - 10.0**-value):.{max(0, int(value) - 2)}f}%")
    )


def availability_curve(
    sweep: pd.DataFrame,
    parameter: str,
    metric: str = "availability.time_based",
    target: float | None = None,
    theory: pd.DataFrame | None = None,
    group_by: str | None = None,
    title: str | None = None,
) -> Figure:
    """Availability (as nines) against a swept parameter: the mean over replications with its
    95% band, an optional theory line (``theory`` with columns ``parameter`` and ``value``)
    and the SLO target."""
    from sim.analysis import mean_confidence_interval

    figure, axes = plt.subplots(figsize=(8, 5))
    groups = [(None, sweep)] if group_by is None else list(sweep.groupby(group_by, sort=False))
    # A point without a single failure has infinitely many nines: draw it one nine above the
    # best imperfect value (or the target), at the top of the chart.
    observed = [a for a in sweep[metric].dropna() if a < 1]
    if target is not None:
        observed.append(target)
    if theory is not None and len(theory):
        observed += [a for a in theory["value"] if a < 1]
    cap = math.ceil(max((float(nines(a)) for a in observed), default=3.0)) + 1

    def _n(values):
        return nines(values, cap)

    lows, highs = [], []
    for index, (label, frame) in enumerate(groups):
        frame = frame[frame["error"].isna()] if "error" in frame.columns else frame
        rows = []
        for value, points in frame.groupby(parameter, sort=True):
            values = points[metric].dropna().astype(float).tolist()
            if len(values) >= 2:
                mean, half = mean_confidence_interval(values)
            else:
                mean, half = (values[0] if values else math.nan), 0.0
            rows.append((value, mean, max(mean - half, 0.0), min(mean + half, 1.0)))
        x = [r[0] for r in rows]
        name = "simulated" if label is None else f"simulated ({group_by}={label})"
        _line(axes, x, _n([r[1] for r in rows]), index, name, every=1)
        axes.fill_between(
            x,
            _n([r[2] for r in rows]),
            _n([r[3] for r in rows]),
            color=GREYS[index % len(GREYS)],
            alpha=0.2,
            label="95% confidence band" if index == 0 else None,
        )
        lows += list(_n([r[2] for r in rows]))
        highs += list(_n([r[3] for r in rows]))
    if theory is not None and len(theory):
        axes.plot(
            theory["parameter"],
            _n(theory["value"]),
            color="black",
            linestyle="--",
            marker="x",
            label="Markov chain",
        )
        lows += list(_n(theory["value"]))
        highs += list(_n(theory["value"]))
    if target is not None:
        axes.axhline(
            float(_n(target)),
            color="black",
            linestyle="-.",
            linewidth=1.2,
            label=f"SLO target {target * 100:g}%",
        )
        lows.append(float(_n(target)))
        highs.append(float(_n(target)))
    finite = [v for v in lows + highs if np.isfinite(v)]
    nines_axis(axes, min(finite, default=1), max(finite, default=4))
    axes.set_xlabel(parameter)
    axes.set_ylabel(f"{metric} (nines scale)")
    axes.set_title(title or f"Availability against {parameter}")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def comparison_chart(
    comparison: pd.DataFrame, metrics: Sequence[str], title: str = "Alternatives compared"
) -> Figure:
    """Each alternative's mean for each metric, with the 95% interval of its difference from
    the baseline as error bars; the best alternative of each metric is drawn solid black."""
    metrics = [m for m in metrics if comparison[comparison.metric == m]["mean"].notna().any()]
    if not metrics:
        raise ValueError("none of the metrics has a value to compare")
    figure, axes_list = plt.subplots(
        1, len(metrics), figsize=(4.5 * len(metrics), 4.5), squeeze=False
    )
    for axes, metric in zip(axes_list[0], metrics, strict=True):
        rows = comparison[comparison.metric == metric]
        labels = list(rows.alternative)
        means = rows["mean"].to_numpy(dtype=float)
        errors = np.nan_to_num(rows["half_width"].to_numpy(dtype=float))
        sign = direction(metric) or -1
        best = int(np.nanargmax(means * sign))
        colors = ["0.15" if i == best else "0.75" for i in range(len(labels))]
        hatches = ["" if i == best else "//" for i in range(len(labels))]
        bars = axes.bar(
            range(len(labels)), means, yerr=errors, color=colors, edgecolor="black", capsize=4
        )
        for bar, hatch in zip(bars, hatches, strict=True):
            bar.set_hatch(hatch)
        axes.set_xticks(range(len(labels)))
        axes.set_xticklabels(labels, rotation=30, ha="right")
        axes.set_ylabel(metric)
        axes.set_title(f"{metric}\n({'higher' if sign > 0 else 'lower'} is better)", fontsize=9)
        axes.grid(True, axis="y", alpha=0.3)
        axes.legend(
            handles=[
                Patch(facecolor="0.15", edgecolor="black", label="best"),
                Patch(facecolor="0.75", edgecolor="black", hatch="//", label="others"),
            ],
            fontsize=7,
            loc="best",
        )
    figure.suptitle(title + " (error bars: 95% interval of the paired difference)")
    figure.tight_layout()
    return figure
