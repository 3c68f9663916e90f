"""Figures: each plot function draws from a small real run and holds the artists it promises;
the plot command writes the files."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import yaml
from builders import exponential, queue_scenario
from click.testing import CliRunner
from matplotlib.collections import PolyCollection

from sim import figures, parse_scenario, plots, run
from sim.cli import main
from sim.experiment import compare, grid, sweep


@pytest.fixture(scope="module")
def crash_run():
    scenario = parse_scenario(
        {
            "duration": 240,
            "warmup": 10,
            "workload": {
                "arrivals": {"rate": 50, "profile": [{"at": 60, "rate": 100, "ramp": 20}]},
                "classes": [
                    {"name": "browse", "share": 0.8, "service_time": exponential(0.05)},
                    {"name": "checkout", "share": 0.2, "service_time": exponential(0.15)},
                ],
            },
            "servers": [
                {
                    "name": "web",
                    "count": 3,
                    "workers": 4,
                    "standby": {"count": 1, "promotion_delay": 5},
                }
            ],
            "failures": [
                {"kind": "crash", "target": {"server": "web-2"}, "at": 100, "duration": 60}
            ],
            "slo": {"latency": 0.5},
        }
    )
    return run(scenario)


def labels(figure) -> list[str]:
    legends = [axes.get_legend() for axes in figure.axes if axes.get_legend()]
    return [
        text.get_text() for legend in [*legends, *figure.legends] for text in legend.get_texts()
    ]


def test_latency_cdf_has_a_curve_per_class_on_a_log_axis_and_the_slo_line(crash_run):
    figure = plots.latency_cdf(crash_run.latency, slo_latency_s=0.5)
    axes = figure.axes[0]
    assert axes.get_xscale() == "log"
    assert {"browse", "checkout", "SLO 500 ms", "p50 of the class", "p99 of the class"} <= set(
        labels(figure)
    )
    assert axes.get_xlabel() and axes.get_ylabel() and axes.get_title()


def test_time_series_shades_the_failure_and_shows_the_offered_rate(crash_run):
    figure = plots.time_series(crash_run.timeseries, crash_run.events)
    assert len(figure.axes) == 3
    shaded = [
        p
        for p in figure.axes[0].patches
        if isinstance(p, matplotlib.patches.Polygon | matplotlib.patches.Rectangle)
    ]
    assert shaded, "the crash is shaded"
    assert {
        "ok answers",
        "offered arrival rate",
        "failure (shaded)",
        "detected (taken out)",
    } <= set(labels(figure))
    assert any("crash" in text.get_text() for text in figure.axes[0].texts)
    assert all(axes.get_ylabel() for axes in figure.axes)


def test_incident_timeline_has_a_row_per_component_with_down_and_out_of_rotation_spans(
    crash_run,
):
    figure = plots.incident_timeline(crash_run.events, 240)
    axes = figure.axes[0]
    rows = [label.get_text() for label in axes.get_yticklabels()]
    assert "web-2" in rows
    assert {"down", "out of rotation"} <= set(labels(figure))
    assert any(isinstance(c, PolyCollection) for c in axes.collections)


def test_availability_curve_puts_nines_evenly_and_draws_band_theory_and_target():
    scenario = queue_scenario(
        arrival_rate=30,
        service=exponential(0.1),
        servers=2,
        workers=2,
        queue_capacity=2,
        duration=120,
        step=120,
    )
    table = sweep(scenario, grid({"servers[0].count": [2, 3, 4]}), replications=3)
    theory = pd.DataFrame({"parameter": [2, 3, 4], "value": [0.9, 0.99, 0.999]})
    figure = plots.availability_curve(
        table, "servers[0].count", "availability.request_based", target=0.999, theory=theory
    )
    axes = figure.axes[0]
    ticks = [t.get_text() for t in axes.get_yticklabels()]
    assert "99.9%" in ticks and "99%" in ticks
    assert {"simulated", "95% confidence band", "Markov chain", "SLO target 99.9%"} <= set(
        labels(figure)
    )


def test_comparison_chart_highlights_the_best_alternative():
    scenario = queue_scenario(
        arrival_rate=28, service=exponential(0.1), servers=4, duration=120, step=120
    )
    _, comparison = compare(
        scenario,
        {
            "random": {"balancer.policy": "random"},
            "least_connections": {"balancer.policy": "least_connections"},
        },
        replications=3,
    )
    figure = plots.comparison_chart(comparison, ["latency_s.mean", "throughput_per_s"])
    assert len(figure.axes) == 2
    bars = figure.axes[0].patches
    assert bars[1].get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb("0.15"))
    assert {"best", "others"} <= set(labels(figure))


def test_the_plot_command_and_the_plot_flag_write_the_figures(tmp_path, crash_run):
    import yaml

    source = tmp_path / "crash.yaml"
    source.write_text(yaml.safe_dump(crash_run.scenario.to_dict()))
    result = CliRunner().invoke(
        main,
        ["run", str(source), "--out", str(tmp_path / "run"), "--plot", "--quiet"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for name in ("latency_cdf.png", "timeseries.png", "incidents.png"):
        assert (tmp_path / "run" / name).stat().st_size > 10_000
    again = CliRunner().invoke(
        main,
        ["plot", str(tmp_path / "run"), "--format", "svg", "--out", str(tmp_path / "svg")],
        catch_exceptions=False,
    )
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in (tmp_path / "svg").iterdir()) == [
        "incidents.svg",
        "latency_cdf.svg",
        "timeseries.svg",
    ]
    empty = CliRunner().invoke(main, ["plot", str(tmp_path / "svg")])
    assert empty.exit_code == 2 and "nothing to draw" in empty.output


def test_a_run_where_nothing_succeeded_still_draws(tmp_path):
    scenario = parse_scenario(
        {
            "duration": 60,
            "workload": {
                "arrivals": {"rate": 5},
                "classes": [{"name": "r", "share": 1, "service_time": exponential(0.1)}],
            },
            "servers": [{"name": "web"}],
            "failures": [{"kind": "crash", "target": {"server": "web-1"}, "at": 0}],
        }
    )
    result = run(scenario)
    assert result.summary["requests"]["ok"] == 0
    figure = plots.time_series(result.timeseries, result.events)
    figure.savefig(tmp_path / "dead.png")
    with pytest.raises(ValueError, match="none of the metrics has a value"):
        plots.comparison_chart(
            pd.DataFrame(
                {
                    "alternative": ["a"],
                    "metric": ["latency_s.p99"],
                    "mean": [float("nan")],
                    "half_width": [float("nan")],
                }
            ),
            ["latency_s.p99"],
        )


def test_the_time_series_draws_each_row_as_a_step_so_errors_start_at_the_crash(crash_run):
    """web-2 crashes at 100 s; rows are 10 s wide. Drawn as steps, the error rate is zero over
    the whole row before the crash and rises in the row that holds it, not on a slope that
    starts earlier."""
    figure = plots.time_series(crash_run.timeseries, crash_run.events, end_s=240)
    errors = next(line for line in figure.axes[1].lines if line.get_label() == "failed requests")
    assert errors.get_drawstyle() == "steps-post"
    x, y = errors.get_xdata(), errors.get_ydata()
    assert x[-1] == pytest.approx(4.0)  # the last step reaches the end of the run
    before = [value for start, value in zip(x, y, strict=False) if start < 90 / 60]
    assert max(before) == 0
    assert y[list(x).index(100 / 60)] > 0


def test_the_incident_timeline_tells_slow_from_down_and_shows_the_failover():
    scenario = parse_scenario(
        {
            "duration": 300,
            "workload": {
                "arrivals": {"rate": 20},
                "classes": [{"name": "r", "share": 1, "service_time": exponential(0.05)}],
            },
            "balancer": {"detection": {"kind": "heartbeat", "interval": 1, "misses": 2}},
            "servers": [
                {
                    "name": "web",
                    "count": 2,
                    "workers": 4,
                    "zone": "a",
                    "standby": {"count": 1, "promotion_delay": 10},
                },
                {"name": "api", "count": 2, "workers": 4, "zone": "b"},
            ],
            "failures": [
                {
                    "kind": "slowdown",
                    "target": {"server": "api-1"},
                    "at": 20,
                    "duration": 40,
                    "factor": 3,
                },
                {"kind": "crash", "target": {"server": "web-1"}, "at": 60, "duration": 60},
                {"kind": "zone_outage", "zone": "b", "at": 150, "duration": 30},
                {"kind": "crash", "target": "balancer", "at": 200, "duration": 5},
            ],
        }
    )
    result = run(scenario)
    figure = plots.incident_timeline(result.events, 300)
    axes = figure.axes[0]
    rows = [label.get_text() for label in axes.get_yticklabels()]
    assert rows[0] == "service" and {"api-1", "web-1", "zone b", "balancer"} <= set(rows)
    legend = set(labels(figure))
    assert {"degraded", "down", "service down"} <= legend
    assert {"spare promotion started", "spare in rotation (failover)"} <= legend

    def spans(row: str, kind: str) -> list[tuple[float, float]]:
        colour = matplotlib.colors.to_rgba(plots.SPANS[kind]["color"])
        found = []
        for collection in axes.collections:
            for path in collection.get_paths():
                (x0, y0), (x1, _) = path.vertices.min(axis=0), path.vertices.max(axis=0)
                if rows[round(y0 + 0.35)] == row and tuple(collection.get_facecolor()[0]) == colour:
                    found.append((x0 * 60, x1 * 60))
        return found

    assert spans("api-1", "degraded") == [pytest.approx((20, 60))]
    assert spans("api-1", "down") == []
    assert spans("zone b", "down") == [pytest.approx((150, 180))]
    # A zone and the balancer are over when repaired: nothing "recovering" to the end.
    assert spans("zone b", "recovering") == spans("balancer", "recovering") == []
    assert spans("balancer", "down") == [pytest.approx((200, 205))]


def test_the_comparison_chart_leads_with_the_ranking_metric_on_a_nines_axis():
    comparison = pd.DataFrame(
        {
            "alternative": ["a", "b", "a", "b"],
            "metric": ["availability.request_based_within_latency"] * 2 + ["latency_s.p99"] * 2,
            "mean": [0.999, 0.9999, 0.2, 0.3],
            "half_width": [float("nan"), 0.00001, float("nan"), 0.01],
        }
    )
    figure = plots.comparison_chart(
        comparison, ["availability.request_based_within_latency", "latency_s.p99"]
    )
    first = figure.axes[0]
    assert first.get_title().startswith("availability.request_based_within_latency")
    assert "nines" in first.get_ylabel()
    heights = [bar.get_height() for bar in first.patches]
    assert heights == pytest.approx([3.0, 4.0])  # 99.9% and 99.99% look different
    assert {"99.9%", "99.99%"} <= {t.get_text() for t in first.get_yticklabels()}
    best = first.patches[1].get_facecolor()[:3]
    assert best == pytest.approx(matplotlib.colors.to_rgb("0.15"))


def test_a_point_with_no_failure_is_an_arrow_at_the_top_never_a_value():
    table = pd.DataFrame(
        {
            "point": [0, 0, 1, 1],
            "spares": [1, 1, 2, 2],
            "replication": [0, 1, 0, 1],
            "error": [None] * 4,
            "availability.time_based": [0.999, 0.998, 1.0, 1.0],
        }
    )
    figure = plots.availability_curve(table, "spares", target=0.9999)
    axes = figure.axes[0]
    simulated = next(line for line in axes.lines if line.get_label() == "simulated")
    assert np.isnan(simulated.get_ydata()[1])
    arrow = next(line for line in axes.lines if line.get_label() == plots.NO_FAILURE)
    assert arrow.get_marker() == "^" and arrow.get_ydata()[0] > 4  # above the 99.99% target


def test_plot_chooses_the_metric_and_draws_the_markov_line_of_a_sweep(tmp_path):
    scenario = parse_scenario(
        {
            "duration": 3600,
            "metrics": {"step": 3600},
            "workload": {
                "arrivals": {"rate": 1},
                "classes": [{"name": "r", "share": 1, "service_time": exponential(0.05)}],
            },
            "servers": [{"name": "web", "count": 2}],
            "failures": [
                {
                    "kind": "crash_repair",
                    "target": {"group": "web"},
                    "time_to_failure": exponential(600),
                    "time_to_repair": exponential(60),
                }
            ],
        }
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario.to_dict()))
    swept = CliRunner().invoke(
        main,
        [
            "sweep",
            str(path),
            "--param",
            "servers[0].count=1,2",
            "--replications",
            "2",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "sweep"),
        ],
    )
    assert swept.exit_code == 0, swept.output
    drawn = CliRunner().invoke(
        main, ["plot", str(tmp_path / "sweep"), "--metric", "availability.time_based"]
    )
    assert drawn.exit_code == 0, drawn.output
    figure = plots.availability_curve(
        pd.read_parquet(tmp_path / "sweep" / "sweep.parquet"),
        "servers[0].count",
        "availability.time_based",
        theory=figures._markov_line(
            pd.read_parquet(tmp_path / "sweep" / "sweep.parquet"), "servers[0].count"
        ),
    )
    assert "Markov chain" in labels(figure)
    assert (tmp_path / "sweep" / "availability_curve.png").exists()


def test_a_perfect_alternative_is_an_arrow_on_top_of_the_comparison_chart():
    comparison = pd.DataFrame(
        {
            "alternative": ["two servers", "eight servers"],
            "metric": ["availability.request_based"] * 2,
            "mean": [0.99, 1.0],
            "half_width": [0.001, 0.0],
        }
    )
    figure = plots.comparison_chart(comparison, ["availability.request_based"])
    axes = figure.axes[0]
    arrow = next(line for line in axes.lines if line.get_label() == plots.NO_FAILURE)
    assert list(arrow.get_xdata()) == [1]
    assert arrow.get_ydata()[0] > axes.patches[0].get_height()  # above the 99% bar


def test_a_sweep_curve_is_only_for_availabilities(tmp_path, crash_run):
    table = pd.DataFrame(
        {
            "point": [0, 1],
            "count": [2, 3],
            "replication": [0, 0],
            "error": [None, None],
            "latency_s.p99": [0.2, 0.1],
            "availability.request_based": [0.99, 0.999],
        }
    )
    folder = tmp_path / "sweep"
    folder.mkdir()
    table.to_parquet(folder / "sweep.parquet")
    with pytest.raises(figures.NothingToDraw, match="not an availability"):
        figures.draw_folder(folder, metric="latency_s.p99")
    assert figures.draw_folder(folder, metric="availability.request_based")


def test_a_whisker_never_reaches_below_what_the_metric_can_be():
    """A wide interval of a difference drawn around a small latency would reach below zero:
    the whisker stops at zero, the unit's floor; above, it keeps its length."""
    comparison = pd.DataFrame(
        [
            {
                "alternative": "a",
                "metric": "latency_s.p99",
                "mean": 0.5,
                "half_width": 0.0,
                "verdict": "baseline",
            },
            {
                "alternative": "b",
                "metric": "latency_s.p99",
                "mean": 0.2,
                "half_width": 0.6,
                "verdict": "no significant difference",
            },
        ]
    )
    figure = plots.comparison_chart(comparison, ["latency_s.p99"])
    whiskers = [
        segment
        for collection in figure.axes[0].collections
        for segment in collection.get_segments()
    ]
    lows = [min(point[1] for point in segment) for segment in whiskers]
    highs = [max(point[1] for point in segment) for segment in whiskers]
    assert min(lows) == pytest.approx(0.0)
    assert max(highs) == pytest.approx(0.8)
