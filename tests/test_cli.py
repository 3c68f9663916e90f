"""The ``ecsim`` command line, driven as a user would, through click's CliRunner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from sim import parse_scenario
from sim.cli import main
from sim.scenario.advice import work_of

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "scenarios").glob("*.yaml"))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def invoke(*arguments: str):
    return CliRunner().invoke(main, [str(a) for a in arguments], catch_exceptions=False)


def test_run_prints_a_summary_and_writes_a_complete_run_folder(tmp_path):
    out = tmp_path / "run"
    result = invoke("run", EXAMPLES[0], "--duration", "1m", "--set", "warmup=10s", "--out", out)
    assert result.exit_code == 0, result.output
    assert "availability" in result.output and "p99" in result.output
    # Each class's own time up and good windows: a class can miss its SLO in a healthy service.
    assert re.search(
        r"class +requests +ok +failed +availability +time up +good windows", result.output
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "events.csv",
        "incidents.csv",
        "latency.csv",
        "metadata.json",
        "scenario.yaml",
        "summary.json",
        "timeseries.csv",
    ]
    summary = json.loads((out / "summary.json").read_text())
    metadata = json.loads((out / "metadata.json").read_text())
    resolved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert summary["requests"]["ended"] > 0
    assert metadata["status"] == "completed" and metadata["wall_time_s"] > 0
    assert metadata["versions"]["ecsim"]
    assert resolved["duration"] == 60.0 and resolved["seed"] == summary["seed"]
    assert not list(out.glob(".*.tmp")), "no temporary file may be left behind"


def test_the_same_seed_gives_a_byte_identical_summary_and_time_series(tmp_path):
    for name in ("first", "second"):
        result = invoke(
            "run",
            EXAMPLES[0],
            "--duration",
            "30s",
            "--set",
            "warmup=5s",
            "--seed",
            "4",
            "--out",
            tmp_path / name,
            "--quiet",
        )
        assert result.exit_code == 0, result.output
    for file in ("summary.json", "timeseries.csv", "scenario.yaml"):
        assert (tmp_path / "first" / file).read_bytes() == (tmp_path / "second" / file).read_bytes()
    other = invoke(
        "run",
        EXAMPLES[0],
        "--duration",
        "30s",
        "--set",
        "warmup=5s",
        "--seed",
        "5",
        "--out",
        tmp_path / "third",
        "--quiet",
    )
    assert other.exit_code == 0
    assert (tmp_path / "third" / "summary.json").read_bytes() != (
        tmp_path / "first" / "summary.json"
    ).read_bytes()


def test_the_resolved_scenario_of_a_run_runs_again_to_the_same_result(tmp_path):
    first_run = invoke(
        "run", EXAMPLES[0], "--duration", "20s", "--set", "warmup=0s", "--out", tmp_path / "a"
    )
    assert first_run.exit_code == 0, first_run.output
    invoke("run", tmp_path / "a" / "scenario.yaml", "--out", tmp_path / "b", "--quiet")
    first = json.loads((tmp_path / "a" / "summary.json").read_text())
    again = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert first == again


def test_run_with_a_bad_override_or_duration_exits_2_without_a_traceback(tmp_path):
    for arguments in (
        ["--set", "servers[7].workers=3"],
        ["--set", "servers[0].wrokers=3"],
        ["--duration", "ten minutes"],
    ):
        result = CliRunner().invoke(
            main, ["run", str(EXAMPLES[0]), *arguments, "--out", str(tmp_path / "x")]
        )
        assert result.exit_code == 2, (arguments, result.output)
        assert "Traceback" not in result.output


def test_run_of_a_missing_file_exits_2_and_says_so():
    result = CliRunner().invoke(main, ["run", "no/such/file.yaml"])
    assert result.exit_code == 2
    assert "no/such/file.yaml" in result.output and "cannot read" in result.output


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_scenario_validates_and_runs_on_a_short_horizon(example, tmp_path):
    assert invoke("validate", example).exit_code == 0
    result = invoke(
        "run", example, "--duration", "20s", "--set", "warmup=0s", "--out", tmp_path / example.stem
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / example.stem / "summary.json").read_text())["requests"]["ended"]


def test_validate_reports_every_bad_file_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("duration: 5 minutes\n")
    result = CliRunner().invoke(main, ["validate", str(EXAMPLES[0]), str(bad)])
    assert result.exit_code == 2
    assert f"{EXAMPLES[0]}: ok" in result.output
    assert "bad.yaml: duration" in result.output


def test_list_names_every_policy_and_distribution():
    result = invoke("list")
    assert result.exit_code == 0
    for name in ("round_robin", "power_of_two_choices", "lognormal", "empirical"):
        assert name in result.output


COMMANDS = sorted(main.commands)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_a_readme_entry(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output
    assert re.search(rf"ecsim {command}\b", README), f"README does not document 'ecsim {command}'"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_exercised_by_a_test(command):
    source = "".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py"))
    called = rf'invoke\("{command}"|invoke\(\s*main,\s*\[\s*"{command}"|\[\s*"{command}",'
    assert re.search(called, source), f"no test invokes 'ecsim {command}'"


def test_the_module_entry_point_is_the_same_command():
    assert isinstance(main, click.Group)
    import runpy
    import sys

    argv = sys.argv
    sys.argv = ["ecsim", "--version"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_module("sim", run_name="__main__")
    finally:
        sys.argv = argv
    assert exit_info.value.code == 0


def test_yaml_anchors_and_merge_keys_work_and_overrides_do_not_leak_through_them(tmp_path):
    scenario_file = tmp_path / "anchors.yaml"
    scenario_file.write_text(
        "duration: 1m\n"
        "workload:\n"
        "  arrivals: {rate: 5/s}\n"
        "  classes:\n"
        "    - {name: a, share: 50%, service_time: &svc {kind: exponential, mean: 10ms}}\n"
        "    - {name: b, share: 50%, service_time: *svc}\n"
        "servers:\n"
        "  - {<<: {workers: 4, queue_capacity: 10}, name: web}\n"
    )
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_file, ["workload.classes[0].service_time.mean=1s"])
    assert scenario.servers[0].workers == 4 and scenario.servers[0].queue_capacity == 10
    # The override changes class a only, although b shared its service time by an anchor.
    assert [c.service_time.mean() for c in scenario.workload.classes] == [1.0, 0.01]


def test_a_file_name_that_is_not_a_valid_scenario_name_still_loads(tmp_path):
    source = (ROOT / "scenarios" / "baseline.yaml").read_text()
    source = "\n".join(line for line in source.splitlines() if not line.startswith("name:"))
    unicode_file = tmp_path / ("café-日本-" + "x" * 80 + ".yaml")
    unicode_file.write_text(source)
    result = invoke("validate", unicode_file)
    assert result.exit_code == 0, result.output


def test_an_unwritable_run_folder_is_a_clear_error_not_a_crash(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(EXAMPLES[0]),
            "--duration",
            "5s",
            "--set",
            "warmup=0s",
            "--out",
            str(blocker / "run"),
        ],
    )
    assert result.exit_code == 2
    assert "cannot write the run folder" in result.output and "Traceback" not in result.output


# -- what runs but was probably not meant -----------------------------------------------------

BASE = {
    "duration": 60,
    "metrics": {"step": 60},
    "workload": {
        "arrivals": {"rate": 10},
        "classes": [
            {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.05}}
        ],
    },
    "servers": [{"name": "web", "count": 2, "workers": 2}],
}


def _scenario_file(tmp_path: Path, changes: dict | None = None, name: str = "s.yaml") -> Path:
    data = json.loads(json.dumps(BASE))
    for key, value in (changes or {}).items():
        data[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("changes", "path", "says"),
    [
        (
            {"failures": [{"kind": "crash", "target": {"server": "web-1"}, "at": 90}]},
            "failures[0].at",
            "after the run ends",
        ),
        (
            {
                "workload": {
                    "arrivals": {"rate": 10},
                    "classes": [
                        {
                            "name": "r",
                            "share": 1,
                            "service_time": {"kind": "exponential", "mean": 0.05},
                            "timeout": "50m",
                        }
                    ],
                }
            },
            "workload.classes[0].timeout",
            "no request can time out",
        ),
        (
            {
                "workload": {
                    "arrivals": {"rate": 10},
                    "classes": [
                        {
                            "name": "r",
                            "share": 1,
                            "service_time": {"kind": "exponential", "mean": 0.05},
                            "database": {"writes": 1},
                        }
                    ],
                },
                "database": {"replication": {"mode": "semi_sync", "replicas": 0}},
            },
            "database.replication.mode",
            "no replica acknowledges every write at once",
        ),
        (
            {
                "workload": {
                    "arrivals": {"rate": 10},
                    "classes": [
                        {
                            "name": "r",
                            "share": 1,
                            "service_time": {"kind": "exponential", "mean": 0.05},
                            "database": {"writes": 1},
                        }
                    ],
                },
                "database": {"replication": {"mode": "async", "ack_timeout": "2s"}},
            },
            "database.replication.ack_timeout",
            "has no effect with mode: async",
        ),
        ({"servers": [{"name": "web", "count": 1}]}, "workload.arrivals", "50% of capacity"),
    ],
    ids=[
        "failure after the end",
        "client timeout of 50 minutes",
        "semi-sync alone",
        "ack timeout with async",
        "overload",
    ],
)
def test_legal_but_probably_unintended_input_is_warned_about_in_one_place(
    changes, path, says, tmp_path
):
    if path == "workload.arrivals":  # 10/s x 50 ms = 0.5 busy workers: make it 1.5 on one
        changes = {**changes, "workload": {**BASE["workload"], "arrivals": {"rate": 30}}}
        says = "150% of capacity"
    file = _scenario_file(tmp_path, changes)
    validated = invoke("validate", file)
    assert validated.exit_code == 0
    assert f"warning: {file}: {path}: " in validated.stderr and says in validated.stderr
    ran = invoke("run", file, "--quiet", "--out", tmp_path / "run")
    assert ran.exit_code == 0 and says in ran.stderr


def test_a_run_that_would_take_hours_is_warned_about_with_its_estimate(tmp_path):
    # A million requests a second for an hour, on servers that can take them.
    changes = {
        "duration": 3600,
        "workload": {**BASE["workload"], "arrivals": {"rate": "1e6/s"}},
        "servers": [{"name": "web", "count": 100, "workers": 1000}],
    }
    result = invoke("validate", _scenario_file(tmp_path, changes))
    assert result.exit_code == 0
    assert "duration: this run simulates about 3,600,000,000 requests" in result.stderr
    assert "about 1,200 minutes of work at 50,000 requests and 200,000 other" in result.stderr


def test_probes_and_failures_count_in_the_work_estimate(tmp_path):
    # Almost no request, but a 1 ms heartbeat on 1,000 servers for a day: 8.64e10 heartbeats.
    changes = {
        "duration": "1d",
        "workload": {**BASE["workload"], "arrivals": {"rate": "0.01/s"}},
        "balancer": {"detection": {"kind": "heartbeat", "interval": "1ms"}},
        "servers": [{"name": "web", "count": 1000}],
    }
    result = invoke("validate", _scenario_file(tmp_path, changes))
    assert result.exit_code == 0
    assert "and 86,400,000,000 probes, failures and repairs" in result.stderr


def test_the_work_estimate_integrates_the_rate_profile_and_counts_database_operations():
    scenario = parse_scenario(
        {
            **BASE,
            "duration": 100,
            "workload": {
                "arrivals": {"rate": 100, "profile": [{"at": 50, "rate": 300, "ramp": 10}]},
                "classes": [
                    {
                        "name": "r",
                        "share": 0.5,
                        "service_time": {"kind": "exponential", "mean": 0.01},
                        "database": {"reads": 2, "writes": 1},
                    },
                    {
                        "name": "s",
                        "share": 0.5,
                        "service_time": {"kind": "exponential", "mean": 0.01},
                    },
                ],
            },
            "database": {},
        }
    )
    requests, operations = work_of(scenario)
    # 100/s for 50 s, a ramp averaging 200/s for 10 s, then 300/s for 40 s.
    assert requests == pytest.approx(5_000 + 2_000 + 12_000)
    assert operations == pytest.approx(19_000 * 0.5 * 3)


def test_a_clean_scenario_gets_no_warning(tmp_path):
    result = invoke("validate", _scenario_file(tmp_path))
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_a_short_duration_with_a_long_warmup_is_fixed_with_warmup(tmp_path):
    file = _scenario_file(tmp_path, {"warmup": 30})
    refused = invoke("run", file, "--duration", "20s", "--out", tmp_path / "a")
    assert refused.exit_code == 2 and "--warmup" in refused.stderr
    fixed = invoke("run", file, "--duration", "20s", "--warmup", "5s", "--out", tmp_path / "b")
    assert fixed.exit_code == 0, fixed.stderr
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert (summary["duration_s"], summary["warmup_s"]) == (20, 5)


def test_precision_respects_its_cap_and_says_when_it_missed(tmp_path):
    file = _scenario_file(tmp_path)
    result = invoke(
        "run",
        file,
        "--precision",
        "0.01%",
        "--max-replications",
        "3",
        "--workers",
        "1",
        "--quiet",
        "--out",
        tmp_path / "run",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["replications"] == 3
    assert summary["precision"]["reached"] is False
    assert "not reached" in result.stderr


def test_a_sweep_of_invalid_points_stops_before_running_with_exit_2(tmp_path):
    result = invoke(
        "sweep",
        _scenario_file(tmp_path),
        "--param",
        "servers[0].cnt=2,3",
        "--out",
        tmp_path / "sweep",
    )
    assert result.exit_code == 2
    assert "point 0" in result.stderr and "cnt" in result.stderr
    assert not (tmp_path / "sweep" / "sweep.csv").exists()


def test_nines_of_a_run_where_nothing_succeeded_is_zero_not_minus_zero():
    from sim.analysis import nines

    assert str(nines(0.0)) == "0.0"


# -- folders, resumption, and what a comparison may be ranked by --------------------------------


def test_resume_continues_only_the_same_batch_and_adds_replications(tmp_path):
    file = _scenario_file(tmp_path)
    out = tmp_path / "batch"
    common = ["--quiet", "--workers", "1", "--out", out]
    first = invoke("run", file, "--replications", "3", *common)
    assert first.exit_code == 0, first.stderr
    assert len(list((out / "runs").glob("*.json"))) == 3
    more = invoke("run", file, "--replications", "4", "--resume", *common)
    assert more.exit_code == 0, more.stderr
    assert len(list((out / "runs").glob("*.json"))) == 4  # only replication 3 ran
    other = invoke("run", file, "--replications", "4", "--duration", "30s", "--resume", *common)
    assert other.exit_code == 2 and "another scenario, seed or horizon" in other.stderr
    sweep = invoke("sweep", file, "--param", "servers[0].count=2,3", "--resume", "--out", out)
    assert sweep.exit_code == 2 and "holds the results of `replications`" in sweep.stderr
    nothing = invoke("run", file, "--replications", "2", "--resume", "--out", tmp_path / "none")
    assert nothing.exit_code == 2 and "nothing to resume" in nothing.stderr


def test_a_folder_is_ours_only_if_ecsim_wrote_its_metadata(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "metadata.json").write_text("{}", encoding="utf-8")
    (fake / "summary.json").write_text("my notes", encoding="utf-8")
    result = invoke("run", _scenario_file(tmp_path), "--quiet", "--out", fake, "--overwrite")
    assert result.exit_code == 2 and "holds no ecsim results" in result.stderr
    assert (fake / "summary.json").read_text(encoding="utf-8") == "my notes"


def test_compare_refuses_to_rank_by_a_metric_with_no_better_side(tmp_path):
    result = invoke(
        "compare",
        _scenario_file(tmp_path),
        "--balancers",
        "random,round_robin",
        "--metric",
        "groups.web.utilization",
        "--out",
        tmp_path / "cmp",
    )
    assert result.exit_code == 2 and "no better side" in result.stderr


def test_each_alternative_and_point_gets_its_own_warnings(tmp_path):
    file = _scenario_file(tmp_path)  # 10/s x 50 ms on 2 x 2 workers: fine
    result = invoke(
        "compare",
        file,
        "--vary",
        "workload.arrivals.rate=10,100",
        "--replications",
        "2",
        "--workers",
        "1",
        "--duration",
        "10s",
        "--out",
        tmp_path / "cmp",
    )
    assert result.exit_code == 0, result.stderr
    assert "warning: alternative 100: workload.arrivals:" in result.stderr
    assert "alternative 10:" not in result.stderr
    late = _scenario_file(
        tmp_path,
        {
            "workload": {
                **BASE["workload"],
                "arrivals": {"rate": 10, "profile": [{"at": "10m", "rate": 5000}]},
            }
        },
        name="late.yaml",
    )
    assert "capacity" not in invoke("validate", late).stderr  # the peak comes after the end


def test_a_comparison_with_no_value_in_its_baseline_says_so():
    import pandas as pd

    from sim.experiment import paired_differences

    runs = pd.DataFrame(
        {
            "alternative": ["a"] * 3 + ["b"] * 3,
            "replication": [0, 1, 2] * 2,
            "latency_s.p99": [float("nan")] * 3 + [0.1, 0.2, 0.3],
        }
    )
    row = paired_differences(runs, ["a", "b"]).iloc[1]
    assert row.verdict == "baseline has no value" and np.isnan(row.difference)


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (
            ["--param", f"servers[0].count={','.join(map(str, range(1, 201)))}"] * 1
            + ["--param", f"servers[0].workers={','.join(map(str, range(1, 101)))}"],
            "the grid has 20,000 points, more than 10,000",
        ),
        (
            ["--param", "servers[0].count=1,2", "--param", "servers[0].count=3,4"],
            "servers[0].count is given twice",
        ),
        (
            ["--param", "servers[0].count=1", "--set", "description." + "a." * 40 + "b=1"],
            "is deeper than 32 keys",
        ),
    ],
)
def test_a_sweep_too_large_or_ambiguous_is_refused_before_anything_runs(tmp_path, arguments, says):
    result = invoke("sweep", _scenario_file(tmp_path), *arguments, "--out", tmp_path / "o")
    assert result.exit_code == 2 and says in result.stderr, result.stderr
    assert not (tmp_path / "o" / "sweep.csv").exists()


@pytest.mark.parametrize("summary", ["[]", "{}", "{not json"])
def test_plotting_a_damaged_folder_says_so_with_exit_code_2(tmp_path, summary):
    (tmp_path / "summary.json").write_text(summary)
    (tmp_path / "timeseries.csv").write_text("time_s\n0\n")
    result = invoke("plot", tmp_path)
    assert result.exit_code == 2 and "cannot read the results" in result.stderr, result.stderr


def test_compare_takes_alternatives_from_a_file_each_row_changing_only_its_cells(tmp_path):
    """A row's blank cells keep the scenario's value; the 'alternative' column names the rows,
    and the first row is the baseline."""
    alternatives = tmp_path / "alternatives.csv"
    alternatives.write_text(
        "alternative,servers[0].count,balancer.policy\n"
        "as is,,\n"
        "three servers,3,\n"
        '"three, least connections",3,least_connections\n'
        "no,4,\n",  # a name, not YAML's false
        encoding="utf-8",
    )
    result = invoke(
        "compare",
        _scenario_file(tmp_path),
        "--alternatives",
        alternatives,
        "--replications",
        "2",
        "--duration",
        "10s",
        "--out",
        tmp_path / "cmp",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text(encoding="utf-8"))
    rows = {row["alternative"]: row for row in summary["comparison"]}
    assert set(rows) == {"as is", "three servers", "three, least connections", "no"}
    assert summary["baseline"] == "as is"
    servers = {
        row["alternative"]: row["mean"]
        for row in summary["comparison"]
        if row["metric"] == "groups.web.servers"
    }
    assert servers == {"as is": 2, "three servers": 3, "three, least connections": 3, "no": 4}
    twice = tmp_path / "twice.csv"
    twice.write_text("alternative,servers[0].count\na,2\na,3\n", encoding="utf-8")
    again = invoke("compare", _scenario_file(tmp_path), "--alternatives", twice)
    assert again.exit_code == 2 and "given twice" in again.stderr
