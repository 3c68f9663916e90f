"""Figures: each plot function draws from a small real run and holds the artists it promises;
the plot command writes the files."""

from __future__ import annotations

import matplotlib
import pandas as pd
import pytest
from builders import exponential, queue_scenario
from click.testing import CliRunner
from matplotlib.collections import PolyCollection

from sim import parse_scenario, plots, run
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
    return [
        text.get_text()
        for axes in figure.axes
        for text in (axes.get_legend().get_texts() if axes.get_legend() else [])
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
    assert {"ok answers", "offered arrival rate", "failure (shaded)", "detected"} <= set(
        labels(figure)
    )
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
