"""Experiments: intervals that cover the truth, common random numbers that pay, executors that
agree to the bit, and sweeps that resume."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from builders import exponential, queue_scenario
from click.testing import CliRunner

from sim import parse_scenario
from sim.catalogue import metric
from sim.cli import main
from sim.executors import DaskExecutor, ProcessExecutor, SerialExecutor
from sim.experiment import (
    compare,
    confidence_intervals,
    grid,
    paired_differences,
    replicate,
    replicate_to_precision,
    sweep,
)
from sim.theory import mm1_mean_response


@pytest.mark.slow
def test_the_95_percent_interval_of_mm1_mean_latency_covers_the_truth_about_95_percent_of_times():
    """150 intervals, each from 5 replications of an M/M/1 at utilization 0.5 (a 50 s warm-up,
    then 400 s). Coverage is binomial: with 150 intervals its standard deviation is
    sqrt(0.95 * 0.05 / 150) = 0.018, so it must lie within 3 of them of 0.95."""
    scenario = queue_scenario(
        arrival_rate=10, service=exponential(0.05), duration=450, warmup=50, step=450
    )
    truth = mm1_mean_response(10, 20)
    intervals, replications = 150, 5
    executor = ProcessExecutor(2)
    try:
        frame = replicate(scenario, intervals * replications, executor=executor)
    finally:
        executor.close()
    covered = 0
    for index in range(intervals):
        batch = frame.iloc[index * replications : (index + 1) * replications]
        interval = confidence_intervals(batch[["replication", "latency_s.mean"]]).iloc[0]
        covered += interval["low"] <= truth <= interval["high"]
    coverage = covered / intervals
    assert abs(coverage - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / intervals), coverage


def test_common_random_numbers_give_a_narrower_interval_for_a_difference():
    """Least-connections against two random choices, 12 replications each, same budget: paired
    on the same arrivals and work, the difference's interval is much narrower than with
    independent streams for each alternative (here about a quarter)."""
    scenario = queue_scenario(
        arrival_rate=28, service=exponential(0.1), servers=4, duration=300, warmup=30, step=300
    )
    alternatives = {
        "least_connections": {"balancer.policy": "least_connections"},
        "power_of_two_choices": {"balancer.policy": "power_of_two_choices"},
    }

    def half_width(common: bool) -> float:
        _, comparison = compare(
            scenario, alternatives, replications=12, common_random_numbers=common
        )
        row = comparison[
            (comparison.alternative == "power_of_two_choices")
            & (comparison.metric == "latency_s.mean")
        ].iloc[0]
        return row["half_width"]

    paired, independent = half_width(True), half_width(False)
    assert paired < 0.5 * independent, (paired, independent)


def test_a_comparison_reports_a_verdict_per_metric():
    scenario = queue_scenario(
        arrival_rate=28, service=exponential(0.1), servers=4, duration=300, warmup=30, step=300
    )
    runs, comparison = compare(
        scenario,
        {
            "random": {"balancer.policy": "random"},
            "least_connections": {"balancer.policy": "least_connections"},
        },
        replications=5,
    )
    assert len(runs) == 10 and set(runs.alternative) == {"random", "least_connections"}
    row = comparison[
        (comparison.alternative == "least_connections") & (comparison.metric == "latency_s.mean")
    ].iloc[0]
    assert row["verdict"] == "better" and row["high"] < 0
    baseline = comparison[comparison.alternative == "random"]
    assert set(baseline.verdict) == {"baseline"}


def test_sequential_replication_stops_once_the_precision_is_reached():
    scenario = queue_scenario(arrival_rate=5, service=exponential(0.1), duration=300, step=300)
    frame = replicate_to_precision(scenario, "latency_s.mean", 0.05, start=3, cap=60)
    interval = confidence_intervals(frame[["replication", "latency_s.mean"]]).iloc[0]
    assert 3 < len(frame) < 60
    assert interval["half_width"] <= 0.05 * interval["mean"]
    assert list(frame.replication) == list(range(len(frame)))


SWEEP_SCENARIO = dict(arrival_rate=8, service=exponential(0.1), duration=60, step=60)
POINTS = grid({"servers[0].workers": [1, 2], "balancer.policy": ["round_robin", "random"]})


@pytest.fixture(scope="module")
def serial_table() -> pd.DataFrame:
    return sweep(queue_scenario(**SWEEP_SCENARIO), POINTS, replications=2)


def test_a_sweep_is_a_tidy_table_one_row_per_point_and_replication(serial_table):
    assert len(serial_table) == 4 * 2
    assert {"servers[0].workers", "balancer.policy", "replication", "latency_s.p99"} <= set(
        serial_table.columns
    )
    assert serial_table.error.isna().all()
    one_worker = serial_table[serial_table["servers[0].workers"] == 1]["latency_s.mean"].mean()
    two_workers = serial_table[serial_table["servers[0].workers"] == 2]["latency_s.mean"].mean()
    assert one_worker > two_workers


def test_serial_process_pool_and_dask_cluster_give_identical_tables(serial_table):
    from distributed import LocalCluster

    executor = ProcessExecutor(2)
    try:
        pooled = sweep(queue_scenario(**SWEEP_SCENARIO), POINTS, replications=2, executor=executor)
    finally:
        executor.close()
    pd.testing.assert_frame_equal(serial_table, pooled)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        dask = DaskExecutor(cluster.scheduler_address)
        try:
            distributed = sweep(
                queue_scenario(**SWEEP_SCENARIO), POINTS, replications=2, executor=dask
            )
        finally:
            dask.close()
    pd.testing.assert_frame_equal(serial_table, distributed)


class CountingExecutor(SerialExecutor):
    def __init__(self) -> None:
        self.tasks = 0

    def map(self, function, tasks):
        for key, task in tasks:
            self.tasks += 1
            yield key, {"ok": True, "value": function(task)}


def test_a_resumed_sweep_runs_only_what_is_missing(tmp_path, serial_table):
    store = tmp_path / "runs"
    first = CountingExecutor()
    sweep(queue_scenario(**SWEEP_SCENARIO), POINTS, 2, executor=first, store=store)
    assert first.tasks == 8 and len(list(store.glob("*.json"))) == 8
    sorted(store.glob("*.json"))[3].unlink()  # as if the sweep had been interrupted
    again = CountingExecutor()
    resumed = sweep(queue_scenario(**SWEEP_SCENARIO), POINTS, 2, executor=again, store=store)
    assert again.tasks == 1
    pd.testing.assert_frame_equal(resumed, serial_table)


def test_a_failing_point_is_reported_with_its_parameters_and_the_others_kept():
    points = grid({"servers[0].workers": [1, 0, 2]})
    table = sweep(queue_scenario(**SWEEP_SCENARIO), points, replications=1)
    assert len(table) == 3
    failed = table[table.error.notna()]
    assert list(failed["servers[0].workers"]) == [0]
    assert "servers[0].workers" in failed.error.iloc[0]
    assert table[table.error.isna()]["latency_s.mean"].notna().all()


def _write(tmp_path, scenario) -> str:
    import yaml

    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario.to_dict()))
    return str(path)


def test_the_compare_command_prints_a_ranked_table_and_writes_its_files(tmp_path):
    path = _write(
        tmp_path,
        queue_scenario(
            arrival_rate=28, service=exponential(0.1), servers=4, duration=200, warmup=20, step=200
        ),
    )
    result = CliRunner().invoke(
        main,
        [
            "compare",
            path,
            "--balancers",
            "random,least_connections,round_robin",
            "--replications",
            "4",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "cmp"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "rank" in result.output and "least_connections" in result.output
    comparison = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert set(comparison.alternative) == {"random", "least_connections", "round_robin"}
    assert (tmp_path / "cmp" / "runs.csv").exists()


def test_the_sweep_command_runs_a_two_parameter_grid_on_a_local_dask_cluster(tmp_path):
    from distributed import LocalCluster

    path = _write(tmp_path, queue_scenario(**SWEEP_SCENARIO))
    arguments = [
        "sweep",
        path,
        "--param",
        "servers[0].workers=1,2",
        "--param",
        "balancer.policy=round_robin,random",
        "--replications",
        "2",
    ]
    local = CliRunner().invoke(
        main,
        [*arguments, "--workers", "2", "--out", str(tmp_path / "local")],
        catch_exceptions=False,
    )
    assert local.exit_code == 0, local.output
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        remote = CliRunner().invoke(
            main,
            [*arguments, "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "dask")],
            catch_exceptions=False,
        )
    assert remote.exit_code == 0, remote.output
    local_table = pd.read_parquet(tmp_path / "local" / "sweep.parquet")
    dask_table = pd.read_parquet(tmp_path / "dask" / "sweep.parquet")
    assert len(local_table) == 8
    pd.testing.assert_frame_equal(local_table, dask_table)
    assert (tmp_path / "local" / "sweep.csv").exists()


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    path = _write(tmp_path, queue_scenario(**SWEEP_SCENARIO))
    result = CliRunner().invoke(
        main,
        ["sweep", path, "--param", "servers[0].workers=1,2", "--scheduler", "tcp://127.0.0.1:1"],
    )
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler" in result.output


def test_replications_in_the_run_command_give_intervals(tmp_path):
    path = _write(
        tmp_path, queue_scenario(arrival_rate=5, service=exponential(0.1), duration=100, step=100)
    )
    result = CliRunner().invoke(
        main,
        ["run", path, "--replications", "3", "--workers", "1", "--out", str(tmp_path / "reps")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "3 replications" in result.output
    assert len(pd.read_csv(tmp_path / "reps" / "replications.csv")) == 3


def test_a_scenario_can_ask_for_replications_itself():
    scenario = parse_scenario(
        {
            "duration": 10,
            "replications": 3,
            "workload": {
                "arrivals": {"rate": 1},
                "classes": [
                    {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.1}}
                ],
            },
            "servers": [{"name": "web"}],
        }
    )
    assert scenario.replications == 3


def test_the_sweep_command_takes_listed_points_instead_of_a_grid(tmp_path):
    path = _write(tmp_path, queue_scenario(**SWEEP_SCENARIO))
    points = tmp_path / "points.csv"
    points.write_text("servers[0].workers,balancer.policy\n1,random\n3,round_robin\n")
    result = CliRunner().invoke(
        main,
        ["sweep", path, "--points", str(points), "--workers", "1", "--out", str(tmp_path / "s")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "s" / "sweep.csv")
    assert list(table["servers[0].workers"]) == [1, 3]
    assert list(table["balancer.policy"]) == ["random", "round_robin"]


def test_a_resumed_sweep_does_not_reuse_runs_of_another_seed_or_scenario(tmp_path):
    store = tmp_path / "runs"
    scenario = queue_scenario(**SWEEP_SCENARIO)
    first = sweep(scenario, POINTS[:2], 1, store=store)
    counting = CountingExecutor()
    other_seed = sweep(scenario, POINTS[:2], 1, seed=999, store=store, executor=counting)
    assert counting.tasks == 2
    assert not other_seed["latency_s.mean"].equals(first["latency_s.mean"])
    reordered = sweep(
        scenario, list(reversed(POINTS[:2])), 1, store=store, executor=CountingExecutor()
    )
    assert list(reordered["servers[0].workers"]) == [
        POINTS[1]["servers[0].workers"],
        POINTS[0]["servers[0].workers"],
    ]
    assert list(reordered.point) == [0, 1]


def test_a_bad_key_path_in_an_alternative_is_a_scenario_error():
    from sim.experiment import with_overrides
    from sim.scenario import ScenarioError

    with pytest.raises(ScenarioError, match=r"servers\[5\]"):
        with_overrides(queue_scenario(**SWEEP_SCENARIO), {"servers[5].count": 2})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["compare", "--balancers", "random,round_robin", "--metric", "latency_s.p999"],
            "did you mean 'latency_s.p99.9'",
        ),
        (["compare", "--vary", "servers[0].workers=2,2"], "distinct alternatives"),
        (["compare", "--vary", "servers[5].workers=1,2"], "index out of range"),
        (["run", "--precision", "5%", "--precision-metric", "nope"], "no metric 'nope'"),
    ],
)
def test_batch_commands_refuse_mistakes_before_running(tmp_path, arguments, message):
    path = _write(tmp_path, queue_scenario(**SWEEP_SCENARIO))
    command, *rest = arguments
    result = CliRunner().invoke(main, [command, path, *rest, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_ragged_points_file_is_refused_with_its_line(tmp_path):
    path = _write(tmp_path, queue_scenario(**SWEEP_SCENARIO))
    points = tmp_path / "points.csv"
    points.write_text("servers[0].workers\n1\n2,3\n")
    result = CliRunner().invoke(main, ["sweep", path, "--points", str(points)])
    assert result.exit_code == 2
    assert "line 3" in result.output


def _comparison(alternatives: dict[str, tuple[float, float, float]]):
    """Paired differences of made-up runs: per alternative, its fraction ok, its good fraction
    and its p99 (identical in each of 5 replications but for a little paired noise)."""
    rows = []
    for label, (ok, good, p99) in alternatives.items():
        for replication in range(5):
            noise = 1e-4 * (replication - 2)
            rows.append(
                {
                    "alternative": label,
                    "replication": replication,
                    "availability.request_based": ok + noise,
                    "availability.request_based_within_latency": good + noise,
                    "latency_s.p99": p99 + noise,
                }
            )
    runs = pd.DataFrame(rows)
    return paired_differences(runs, list(alternatives)), runs


def test_the_default_ranking_never_rewards_failing_requests():
    """Round-robin fails 8% of requests and answers the rest fast; least-connections fails
    none. Ranked by p99 of ok requests round-robin would win: the default ranks by good
    requests, and a ranking by p99 says out loud that its winner failed more."""
    from sim.cli import compare as compare_command
    from sim.report import format_comparison

    default = next(p for p in compare_command.params if p.name == "metric").default
    assert not metric(default).ok_only
    comparison, runs = _comparison(
        {"round_robin": (0.92, 0.92, 0.10), "least_connections": (1.0, 0.999, 0.20)}
    )
    by_default = format_comparison(comparison, default, "balancer.policy", 5, runs).splitlines()
    assert by_default[4].split()[:2] == ["1", "least_connections"]
    assert "% (more)" not in "\n".join(by_default)  # the baseline is round_robin
    assert "0% (fewer)" in by_default[4]
    assert not any(line.startswith("warning") for line in by_default)
    by_p99 = format_comparison(comparison, "latency_s.p99", "balancer.policy", 5, runs).splitlines()
    assert by_p99[4].split()[:2] == ["1", "round_robin"]
    assert any(
        line.startswith("warning: round_robin ranked above") and "ok requests only" in line
        for line in by_p99
    )


def test_equal_rankings_are_broken_by_p99_latency():
    from sim.report import format_comparison

    comparison, _ = _comparison(
        {"a": (1.0, 1.0, 0.30), "b": (1.0, 1.0, 0.10), "c": (1.0, 1.0, 0.2)}
    )
    table = format_comparison(
        comparison, "availability.request_based_within_latency", "x", 5
    ).splitlines()
    assert [line.split()[1] for line in table[4:7]] == ["b", "c", "a"]


def test_two_alternatives_failing_alike_are_not_called_different():
    """round_robin and random both fail about 8.3% (more than the baseline), but not
    significantly differently from each other: ranking one above the other by p50 deserves no
    warning, whatever each did against the baseline."""
    from sim.report import format_comparison

    noise = {"round_robin": [1, -2, 3, -1, 0], "random": [-1, 2, 0, 1, -3]}
    rows = []
    for label, (ok, p50) in {
        "least_connections": (1.0, 0.30),
        "round_robin": (0.9171, 0.10),
        "random": (0.9172, 0.20),
    }.items():
        for replication in range(5):
            jitter = 1e-3 * noise.get(label, [0] * 5)[replication]
            rows.append(
                {
                    "alternative": label,
                    "replication": replication,
                    "availability.request_based": ok + jitter,
                    "latency_s.p50": p50,
                    "latency_s.p99": p50,
                }
            )
    runs = pd.DataFrame(rows)
    comparison = paired_differences(runs, ["least_connections", "round_robin", "random"])
    table = format_comparison(comparison, "latency_s.p50", "balancer.policy", 5, runs)
    warning = next(line for line in table.splitlines() if line.startswith("warning"))
    assert "round_robin, random ranked above" in warning  # both above least_connections
    ranked = table.splitlines()[4:7]
    assert [line.split()[1] for line in ranked] == ["round_robin", "random", "least_connections"]
    only_two = format_comparison(
        paired_differences(
            runs[runs.alternative != "least_connections"], ["round_robin", "random"]
        ),
        "latency_s.p50",
        "balancer.policy",
        5,
        runs[runs.alternative != "least_connections"],
    )
    assert "warning" not in only_two


def _blas_threads(task):
    import scipy.linalg  # noqa: F401  (its own BLAS, loaded after the worker started, if not before)
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def _markov_in_a_process(blas_threads: str | None) -> str:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"}
    }
    if blas_threads is not None:
        environment["OPENBLAS_NUM_THREADS"] = blas_threads
    code = (
        "from sim import load_scenario; from sim.reliability import markov_availability;"
        " print(repr(markov_availability(load_scenario('scenarios/four_nines.yaml'))))"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="BLAS runs one thread on one core anyway")
def test_the_markov_chain_has_the_same_digits_whatever_the_processs_blas_threads():
    """A notebook's BLAS runs a thread per core, the ecsim command's one thread: the chain must
    give the same digits in both. four_nines's chain solved on threads moved its phase error
    by parts per million (3.62724573e-09 against 3.62725827e-09)."""
    assert _markov_in_a_process(None) == _markov_in_a_process("1")


def test_pool_workers_keep_blas_to_one_thread():
    """A run is one thread: BLAS threads (the Markov chain's solve) would spin on the cores the
    other workers need."""
    executor = ProcessExecutor(2)
    try:
        answers = [answer for _, answer in executor.map(_blas_threads, [(0, 0), (1, 1)])]
    finally:
        executor.close()
    # numpy's BLAS, and scipy's too once something imported it: every one at one thread.
    assert [answer["ok"] and answer["value"] and set(answer["value"]) for answer in answers] == [
        {1},
        {1},
    ]
