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
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

from sim.catalogue import UNITS, direction
from sim.catalogue import metric as metric_of
from sim.metrics import OUTCOMES

__all__ = [
    "availability_curve",
    "cache_and_database_load",
    "comparison_chart",
    "downtime_by_cause",
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


def _shade_incidents(
    panels: Sequence[Any], events: pd.DataFrame | None, end_min: float
) -> list[tuple[str, float, float | None]]:
    """Shade each incident's span on every panel, labelled on the first; return the spans."""
    spans = _incident_spans(events) if events is not None and len(events) else []
    for index, (label, start, stop) in enumerate(spans):
        right = stop / 60 if stop is not None else end_min
        for axes in panels:
            axes.axvspan(
                start / 60,
                right,
                color="0.85",
                hatch="//" if index % 2 else "\\\\",
                alpha=0.6,
                zorder=0,
            )
        panels[0].annotate(
            label,
            (start / 60, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            fontsize=8,
            va="top",
            rotation=90,
        )
    return spans


def _steps(axes, starts_min: Any, end_min: float, y: Any, index: int, label: str) -> None:
    """A per-step series as steps: each row's value holds over its whole step, so a change
    shows where it happened, not as a slope from the step before."""
    values = np.asarray(y, dtype=float)
    x = np.append(np.asarray(starts_min, dtype=float), end_min)
    style = _style(index)
    style["marker"] = None
    axes.plot(x, np.append(values, values[-1:]), drawstyle="steps-post", label=label, **style)


def time_series(
    timeseries: pd.DataFrame,
    events: pd.DataFrame | None = None,
    title: str = "Traffic, errors and latency over time",
    end_s: float | None = None,
) -> Figure:
    """Throughput, error rate and p99 over time, each row of the time series drawn as a step
    over its interval, with failures shaded and labelled, and the offered arrival rate (the
    flash-sale profile) beside the throughput; below them, when a group autoscales, its mean
    number of servers per row. ``end_s``: the end of the run (default: one step after the
    last row)."""
    starts = timeseries["time_s"].to_numpy(dtype=float)
    widths = np.diff(starts)
    step = float(np.median(widths)) if len(widths) else 1.0
    end = end_s if end_s is not None else float(starts[-1] + step)
    width = np.append(widths, end - starts[-1])
    minutes, end_min = starts / 60, end / 60
    # Every way to fail (a run folder written before an outcome existed lacks its column).
    failed = timeseries[[c for c in OUTCOMES if c != "ok" and c in timeseries]].sum(axis=1)
    ended = failed + timeseries["ok"]
    scaled = [column for column in timeseries.columns if column.endswith(".servers")]
    figure, panels = plt.subplots(
        3 + bool(scaled), 1, figsize=(12, 8 + 2 * bool(scaled)), sharex=True
    )
    top, middle, bottom = panels[:3]
    _steps(top, minutes, end_min, timeseries["ok"] / width, 0, "ok answers")
    if timeseries["offered_rate_per_s"].notna().any():
        _steps(top, minutes, end_min, timeseries["offered_rate_per_s"], 1, "offered arrival rate")
    top.set_ylabel("requests per second")
    rate = 100 * failed / ended.where(ended > 0)
    _steps(middle, minutes, end_min, rate, 2, "failed requests")
    middle.set_ylabel("error rate (%)")
    _steps(bottom, minutes, end_min, timeseries["p99_latency_s"] * 1000, 3, "p99 latency (ok)")
    bottom.set_ylabel("p99 latency (ms)")
    if scaled:
        for index, column in enumerate(scaled):
            group = column.removesuffix(".servers")
            _steps(panels[3], minutes, end_min, timeseries[column], index, f"{group} (autoscaled)")
        panels[3].set_ylabel("servers provisioned")
    panels[-1].set_xlabel("simulated time (minutes)")
    spans = _shade_incidents(panels, events, end_min)
    if events is not None and len(events):
        detected = events[events.detail.fillna("").str.startswith("detected down")]
        for _, row in detected.iterrows():
            for axes in panels:
                axes.axvline(row.time_s / 60, color="black", linestyle=":", linewidth=0.8)
    if spans:
        top.plot([], [], color="0.85", linewidth=8, label="failure (shaded)")
        top.plot([], [], color="black", linestyle=":", label="detected (taken out)")
    for axes in panels:
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    top.set_title(title)
    figure.tight_layout()
    return figure


def cache_and_database_load(
    timeseries: pd.DataFrame,
    events: pd.DataFrame | None = None,
    title: str = "Cache hit ratio and database load",
    end_s: float | None = None,
) -> Figure:
    """The cache's hit ratio per row above the database's reads and writes per second, failures
    shaded: a cache node that crashes shows as a fall of the hit ratio and a rise of the
    database's reads, and its restart as the cold-cache spike that decays while it fills."""
    starts = timeseries["time_s"].to_numpy(dtype=float)
    widths = np.diff(starts)
    step = float(np.median(widths)) if len(widths) else 1.0
    end = end_s if end_s is not None else float(starts[-1] + step)
    minutes, end_min = starts / 60, end / 60
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    _steps(top, minutes, end_min, timeseries["cache.hit_ratio"] * 100, 0, "cache hit ratio")
    top.set_ylabel("hit ratio (%)")
    top.set_ylim(0, 100)
    _steps(bottom, minutes, end_min, timeseries["db.reads_per_s"], 1, "database reads")
    _steps(bottom, minutes, end_min, timeseries["db.writes_per_s"], 2, "database writes")
    bottom.set_ylabel("operations per second")
    bottom.set_xlabel("simulated time (minutes)")
    spans = _shade_incidents((top, bottom), events, end_min)
    if spans:
        top.plot([], [], color="0.85", linewidth=8, label="failure (shaded)")
    for axes in (top, bottom):
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    top.set_title(title)
    figure.tight_layout()
    return figure


FAULTS = {"crash": "down", "partition": "down", "zone outage": "down", "slowdown": "degraded"}
"""Events that start a fault, and how the timeline draws it."""
MENDS = {"repaired", "reconnected", "back to speed"}
SPANS = {
    "down": {"color": "0.1", "hatch": ""},
    "degraded": {"color": "0.75", "hatch": "xx"},
    "out of rotation": {"color": "0.55", "hatch": "//"},
    "recovering": {"color": "0.88", "hatch": ".."},
    "service down": {"color": "0.3", "hatch": "\\\\"},
}
MARKS = {
    "promotion started": {"marker": ">", "label": "spare promotion started"},
    "promoted": {"marker": "*", "label": "spare in rotation (failover)"},
    "promoted to master": {"marker": "*", "label": "replica promoted to master (failover)"},
}


def _component_spans(mine: pd.DataFrame, end_s: float) -> list[tuple[str, float, float]]:
    """(kind, start, end) spans of one component's events. "Recovering" (repaired, not yet
    back in rotation) only applies to what the balancer routes to: a zone or the balancer
    itself is over when it is repaired."""
    routed = bool(mine.event.isin(["in rotation", "out of rotation"]).any())
    spans: list[tuple[str, float, float]] = []
    fault = fault_since = out_since = repaired_at = None
    for event in mine.itertuples():
        t = event.time_s
        if event.event in FAULTS:
            fault, fault_since = FAULTS[event.event], t
        elif event.event in MENDS and fault_since is not None:
            spans.append((fault, fault_since, t))
            if fault == "down" and routed:
                repaired_at = t
            fault = fault_since = None
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
    for kind, since in ((fault, fault_since), ("out of rotation", out_since)):
        if since is not None:
            spans.append((kind, since, end_s))
    if repaired_at is not None:
        spans.append(("recovering", repaired_at, end_s))
    return spans


def _service_spans(events: pd.DataFrame, end_s: float) -> list[tuple[str, float, float]]:
    spans, since = [], None
    for event in events[events.component == "service"].itertuples():
        if event.event == "down":
            since = event.time_s
        elif event.event == "up" and since is not None:
            spans.append(("service down", since, event.time_s))
            since = None
    if since is not None:
        spans.append(("service down", since, end_s))
    return spans


def incident_timeline(
    events: pd.DataFrame, end_s: float, title: str = "Incident timeline"
) -> Figure:
    """One row per component: down (crashed, cut off), degraded (a slowdown), out of rotation
    (detection took it out), recovering (repaired, not yet back); failovers marked (a spare's
    promotion started and done, a replica promoted to master); and on top, when the service
    as a whole was down."""
    components = [c for c in dict.fromkeys(events.component) if c != "service"]
    service = _service_spans(events, end_s)
    rows = (["service"] if service else []) + components
    figure, axes = plt.subplots(figsize=(12, 1.4 + 0.5 * max(1, len(rows))))
    drawn: set[str] = set()
    for row, component in enumerate(rows):
        mine = events[events.component == component].sort_values("time_s", kind="stable")
        spans = service if component == "service" else _component_spans(mine, end_s)
        for kind, start, stop in spans:
            offset = 0.0 if kind in {"down", "degraded", "service down"} else 0.25
            axes.broken_barh(
                [(start / 60, (stop - start) / 60)],
                (row - 0.35 + offset, 0.45),
                facecolor=SPANS[kind]["color"],
                hatch=SPANS[kind]["hatch"],
                edgecolor="black",
                linewidth=0.5,
                label=kind if kind not in drawn else None,
            )
            drawn.add(kind)
        for event in mine.itertuples():
            name = "promoted" if str(event.detail) == "promoted" else event.event
            if name in MARKS:
                mark = MARKS[name]
                axes.plot(
                    [event.time_s / 60],
                    [row],
                    marker=mark["marker"],
                    markersize=11,
                    markerfacecolor="white",
                    markeredgecolor="black",
                    linestyle="none",
                    label=mark["label"] if mark["label"] not in drawn else None,
                    zorder=5,
                )
                drawn.add(mark["label"])
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels(rows)
    axes.set_ylim(len(rows) - 0.5, -0.6)
    axes.set_xlim(0, end_s / 60)
    axes.set_xlabel("simulated time (minutes)")
    axes.set_ylabel("component")
    axes.set_title(title)
    if drawn:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
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


NO_FAILURE = "no failure observed (more nines than shown)"


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
    and the SLO target. A point where no replication saw a failure has no finite number of
    nines: it is drawn as an upward arrow at the top of the chart, never as a value."""
    from sim.analysis import mean_confidence_interval

    figure, axes = plt.subplots(figsize=(8, 5))
    groups = [(None, sweep)] if group_by is None else list(sweep.groupby(group_by, sort=False))
    observed = [a for a in sweep[metric].dropna() if a < 1]
    if target is not None:
        observed.append(target)
    if theory is not None and len(theory):
        observed += [a for a in theory["value"] if a < 1]
    top = math.ceil(max((float(nines(a)) for a in observed), default=3.0)) + 1

    def _n(values):
        return nines(values, top)

    lows, highs, perfect = [], [], []
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
        means = np.array([r[1] for r in rows], dtype=float)
        shown = np.where(means < 1, _n(means), np.nan)
        name = "simulated" if label is None else f"simulated ({group_by}={label})"
        _line(axes, x, shown, index, name, every=1)
        axes.fill_between(
            x,
            _n([r[2] for r in rows]),
            _n([r[3] for r in rows]),
            color=GREYS[index % len(GREYS)],
            alpha=0.2,
            label="95% confidence band" if index == 0 else None,
        )
        perfect += [value for value, mean in zip(x, means, strict=True) if mean >= 1]
        lows += list(_n([r[2] for r in rows]))
        highs += [h for h in _n([r[3] for r in rows]) if h < top]
    if perfect:
        axes.plot(
            perfect,
            [top] * len(perfect),
            marker="^",
            markersize=10,
            markerfacecolor="white",
            markeredgecolor="black",
            linestyle="none",
            label=NO_FAILURE,
            clip_on=False,
        )
        highs.append(top)
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
    values = pd.to_numeric(sweep[parameter], errors="coerce").dropna()
    if len(values) and (values == values.round()).all():  # counts: no tick at 0.25 spares
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(f"{metric} (nines scale)")
    axes.set_title(title or f"Availability against {parameter}")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def _short(label: str, width: int = 24) -> str:
    """A tick label that fits: long alternatives (a YAML mapping, say) are cut with an ellipsis."""
    return label if len(label) <= width else label[: width - 1] + "…"


def is_availability(metric: str) -> bool:
    """Availability-like metrics (fractions where higher is better) read best on a nines
    axis: on 0 to 1, 99.9% and 99.99% are one bar."""
    entry = metric_of(metric)
    return entry.unit == "fraction" and entry.direction > 0


def comparison_chart(
    comparison: pd.DataFrame, metrics: Sequence[str], title: str = "Alternatives compared"
) -> Figure:
    """Each alternative's mean for each metric (the first is the one the comparison was ranked
    by), with the 95% interval of its paired difference from the baseline as error bars; the
    best alternative of each metric is drawn solid. Availability-like fractions are drawn in
    nines, so 99.9% and 99.99% do not look alike."""
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
        if is_availability(metric):
            imperfect = [float(nines(m)) for m in means if m < 1]
            top = math.ceil(max(imperfect, default=3.0)) + 1
            heights = nines(means, top)
            below = heights - nines(np.clip(means - errors, 0, 1), top)
            above = nines(np.clip(means + errors, 0, 1), top) - heights
            bars = axes.bar(
                range(len(labels)),
                heights,
                yerr=[below, above],
                color=colors,
                edgecolor="black",
                capsize=4,
            )
            perfect = [i for i, mean in enumerate(means) if mean >= 1]
            if perfect:  # no failure at all: infinitely many nines, drawn as an arrow on top
                axes.plot(
                    perfect,
                    [top] * len(perfect),
                    marker="^",
                    markersize=10,
                    markerfacecolor="white",
                    markeredgecolor="black",
                    linestyle="none",
                    label=NO_FAILURE,
                    clip_on=False,
                )
            nines_axis(axes, 0, top)
            axes.set_ylabel(f"{metric} (nines scale)")
        else:
            # An interval of a difference can reach below what the metric can be (a latency
            # under zero): the bar's whisker stops at the unit's floor.
            bounds = UNITS.get(metric_of(metric).unit)
            below = errors if bounds is None else np.minimum(errors, means - bounds[0])
            bars = axes.bar(
                range(len(labels)),
                means,
                yerr=[np.maximum(below, 0.0), errors],
                color=colors,
                edgecolor="black",
                capsize=4,
            )
            axes.set_ylabel(f"{metric} ({metric_of(metric).unit})")
        for bar, hatch in zip(bars, hatches, strict=True):
            bar.set_hatch(hatch)
        axes.set_xticks(range(len(labels)))
        axes.set_xticklabels([_short(str(label)) for label in labels], rotation=30, ha="right")
        axes.set_title(f"{metric}\n({'higher' if sign > 0 else 'lower'} is better)", fontsize=9)
        axes.grid(True, axis="y", alpha=0.3)
    handles = [
        Patch(facecolor="0.15", edgecolor="black", label="best"),
        Patch(facecolor="0.75", edgecolor="black", hatch="//", label="others"),
        *{
            line.get_label(): line
            for axes in axes_list[0]
            for line in axes.lines
            if line.get_label() == NO_FAILURE
        }.values(),
    ]
    figure.legend(handles=handles, fontsize=8, loc="lower center", ncol=len(handles))
    figure.suptitle(title + " (error bars: 95% interval of the paired difference)")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure


def downtime_by_cause(
    designs: Sequence[tuple[str, dict[str, dict[str, float]]]],
    title: str = "Where the minutes go",
) -> Figure:
    """Minutes of downtime per year by cause, for one design or several side by side.

    ``designs`` holds (label, causes) pairs, ``causes`` mapping a cause to its ``per_year_s``
    with the ``low`` and ``high`` ends of its 95% interval (as ``ecsim availability``
    reports them). Each cause is a bar with its interval as an error bar; several designs
    are grouped per cause in greyscale with hatches. Causes that cost nothing anywhere are
    left out."""
    causes = [
        cause
        for cause in designs[0][1]
        if any(figures[cause]["per_year_s"] > 0 for _, figures in designs)
    ]
    figure, axes = plt.subplots(figsize=(8, 0.6 * max(len(causes), 2) * len(designs) + 1.5))
    if not causes:
        axes.text(0.5, 0.5, "no downtime in any replication", ha="center", va="center")
        axes.set_axis_off()
        axes.set_title(title)
        return figure
    height = 0.8 / len(designs)
    hatches = ["", "//", "..", "xx", "\\\\"]
    for index, (label, figures) in enumerate(designs):
        minutes = np.array([figures[c]["per_year_s"] / 60 for c in causes])
        # A log scale has no zero: an interval reaching it is drawn down to a hundredth.
        low = np.maximum([figures[c]["low"] / 60 for c in causes], minutes / 100)
        high = np.array([figures[c]["high"] / 60 for c in causes])
        positions = np.arange(len(causes)) + index * height
        axes.barh(
            positions,
            minutes,
            height=height,
            xerr=[minutes - low, high - minutes],
            color=GREYS[index % len(GREYS)] if len(designs) > 1 else "0.45",
            hatch=hatches[index % len(hatches)],
            edgecolor="black",
            capsize=3,
            label=label,
        )
    shown = [
        figures[c]["per_year_s"] / 60
        for _, figures in designs
        for c in causes
        if figures[c]["per_year_s"] > 0
    ]
    logarithmic = max(shown) > 100 * min(shown)  # causes decades apart: each one readable
    if logarithmic:
        axes.set_xscale("log")
    axes.set_yticks(np.arange(len(causes)) + height * (len(designs) - 1) / 2)
    axes.set_yticklabels(causes)
    axes.invert_yaxis()
    axes.set_xlabel(
        "downtime per year (minutes"
        + (", LOG SCALE: bars a decade apart differ tenfold" if logarithmic else "")
        + ";\nrequests weighted by class share)"  # two lines: one is wider than the figure
    )
    axes.grid(True, axis="x", alpha=0.3)
    if len(designs) > 1:
        axes.legend(fontsize=8)
    axes.set_title(title + " (error bars: 95% intervals)")
    figure.tight_layout()
    return figure
