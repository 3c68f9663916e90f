"""Long-horizon availability against reliability theory and the Markov chain.

Each estimate comes from independent replications over centuries of simulated time; the theory
must lie inside the 99.9% Student-t interval, and each test asserts that the interval is
narrow, so that it cannot pass by being vague.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from scipy import stats

from sim import parse_scenario
from sim.analysis import slo_verdict
from sim.cli import main
from sim.reliability import estimate_availability, markov_availability
from sim.theory import (
    erlang_stages,
    parallel_availability,
    redundant_balancer_availability,
    replica_group_availability,
    single_component_availability,
    standby_group_availability,
)

# Detection in the long-horizon mode is a sampled delay; a 1 ms heartbeat makes it negligible
# next to repair times of hours, so that the closed forms (which have no detection) apply.
INSTANT_DETECTION = {"kind": "heartbeat", "interval": 0.001, "misses": 1}


def design(servers: dict, failures: list, min_servers: int = 1) -> dict:
    return {
        "duration": 60,
        "workload": {
            "arrivals": {"rate": 1},
            "classes": [
                {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.01}}
            ],
        },
        "balancer": {"detection": INSTANT_DETECTION},
        "servers": [{"name": "web", **servers}],
        "failures": failures,
        "slo": {"min_servers": min_servers},
    }


def crash_repair(time_to_failure: dict, time_to_repair: dict, **extra) -> dict:
    return {
        "kind": "crash_repair",
        "target": {"group": "web"},
        "time_to_failure": time_to_failure,
        "time_to_repair": time_to_repair,
        **extra,
    }


def assert_inside(estimate: dict, expected: float, max_half_width: float) -> None:
    values = estimate["per_replication"]
    mean = sum(values) / len(values)
    spread = stats.t.ppf(0.9995, len(values) - 1) * stats.tstd(values) / math.sqrt(len(values))
    assert spread < max_half_width, f"interval too wide to test anything: +-{spread:.2g}"
    assert abs(mean - expected) <= spread, f"{expected:.6f} outside {mean:.6f} +- {spread:.2g}"


def test_a_single_component_is_up_mttf_over_mttf_plus_mttr_whatever_the_distributions():
    """Renewal-reward: A = E[TTF] / (E[TTF] + E[TTR]) for any distributions (here Weibull
    wear-out failures and lognormal repairs)."""
    scenario = parse_scenario(
        design(
            {"count": 1},
            [
                crash_repair(
                    {"kind": "weibull", "shape": 2.0, "mean": "10d"},
                    {"kind": "lognormal", "mean": "12h", "cv": 1.5},
                )
            ],
        )
    )
    estimate = estimate_availability(scenario, years=1500, replications=10)
    expected = single_component_availability(10 * 86400, 12 * 3600)
    assert_inside(estimate, expected, max_half_width=0.002)


def test_a_balancer_that_fails_and_is_repaired_is_a_component_in_series():
    """Servers that never fail behind a balancer that does, with Weibull failures and
    lognormal repairs: the service is up MTTF / (MTTF + MTTR) of the time, the balancer's."""
    scenario = parse_scenario(
        design(
            {"count": 2},
            [
                {
                    "kind": "crash_repair",
                    "target": "balancer",
                    "time_to_failure": {"kind": "weibull", "shape": 1.5, "mean": "5d"},
                    "time_to_repair": {"kind": "lognormal", "mean": "6h", "cv": 1.0},
                }
            ],
        )
    )
    estimate = estimate_availability(scenario, years=1000, replications=10)
    assert_inside(estimate, single_component_availability(5 * 24, 6), max_half_width=0.002)


@pytest.mark.slow
def test_n_independent_servers_of_which_one_suffices_follow_one_minus_q_to_the_n():
    scenario = parse_scenario(
        design(
            {"count": 3},
            [
                crash_repair(
                    {"kind": "exponential", "mean": "4d"}, {"kind": "exponential", "mean": "1d"}
                )
            ],
        )
    )
    estimate = estimate_availability(scenario, years=500, replications=10)
    expected = parallel_availability(single_component_availability(4, 1), 3)  # 0.992
    assert_inside(estimate, expected, max_half_width=0.001)


@pytest.mark.slow
def test_spares_repair_crews_and_failover_agree_with_the_markov_chain():
    """Three servers needed, one hot spare promoted after an exponential delay, one crew."""
    scenario = parse_scenario(
        design(
            {
                "count": 3,
                "standby": {
                    "count": 1,
                    "mode": "hot",
                    "promotion_delay": {"kind": "exponential", "mean": "30m"},
                },
            },
            [
                crash_repair(
                    {"kind": "exponential", "mean": "10d"},
                    {"kind": "exponential", "mean": "12h"},
                    repair_crews=1,
                )
            ],
            min_servers=3,
        )
    )
    estimate = estimate_availability(scenario, years=500, replications=10)
    markov = markov_availability(scenario)
    assert markov["reason"] == ""
    assert_inside(estimate, markov["value"], max_half_width=0.002)
    assert estimate["markov"]["value"] == markov["value"]


@pytest.mark.slow
def test_a_cold_spare_with_a_long_boot_agrees_with_the_chain_of_its_fixed_delays():
    """Two servers needed of two, one cold spare that boots for 10 minutes after a 30 s
    promotion, failures every hour and repairs in an hour (exponential). The failover is a
    near-fixed 10.5 minutes: as one exponential of that mean the chain came out 0.8
    percentage points above the simulation (3.6 half-widths), because a repair that ends
    before the boot does calls it off (the mean of min(failover, repair) depends on the
    failover's law, not only its mean). In Erlang stages the chain agrees."""
    scenario = parse_scenario(
        design(
            {
                "count": 2,
                "standby": {
                    "count": 1,
                    "mode": "cold",
                    "promotion_delay": "30s",
                    "boot_time": "10m",
                },
            },
            [
                crash_repair(
                    {"kind": "exponential", "mean": "1h"}, {"kind": "exponential", "mean": "1h"}
                )
            ],
            min_servers=2,
        )
    )
    markov = markov_availability(scenario)
    assert markov["reason"] == "" and markov["phase_error"] < 0.001
    estimate = estimate_availability(scenario, years=20, replications=10)
    assert_inside(estimate, markov["value"], max_half_width=0.005)


@pytest.mark.slow
def test_the_four_nines_example_holds_its_target_and_agrees_with_its_markov_chain():
    from test_cli import ROOT

    from sim import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "four_nines.yaml")
    estimate = estimate_availability(scenario, years=1000, replications=10)
    assert estimate["availability"]["low"] >= 0.9999
    # Its balancer fails about once a year for two minutes: two of its 31 minutes a year of
    # downtime, which the simulation once left out (and fell outside the chain's value).
    assert_inside(estimate, estimate["markov"]["value"], max_half_width=1e-5)


def test_the_markov_chain_reduces_to_textbook_closed_forms():
    failure, repair = 1 / 100.0, 1 / 5.0
    single = single_component_availability(100, 5)
    # k-out-of-n with a crew per server: binomial.
    for required in (1, 2, 3):
        binomial = sum(
            math.comb(3, up) * single**up * (1 - single) ** (3 - up) for up in range(required, 4)
        )
        chain = standby_group_availability(3, required, 0, failure, repair, failover_rate=1.0)
        assert chain == pytest.approx(binomial, rel=1e-9)
    # Two servers, one needed, one repair crew: the machine-repair birth-death chain.
    ratio = failure / repair
    weights = [1, 2 * ratio, 2 * ratio * ratio]
    expected = 1 - weights[2] / sum(weights)
    assert standby_group_availability(
        2, 1, 0, failure, repair, failover_rate=1.0, repair_crews=1
    ) == pytest.approx(expected, rel=1e-9)


def test_the_replica_group_chain_reduces_to_closed_forms():
    failure, repair = 1 / 100.0, 1 / 5.0
    down = 1 - single_component_availability(100, 5)
    # Multi-master, or master-slave with instant failover: up while any copy is.
    for nodes in (1, 2, 3):
        parallel = 1 - down**nodes
        assert replica_group_availability(
            nodes, failure, repair, 1.0, 1.0, multi_master=True
        ) == pytest.approx((parallel, parallel), rel=1e-12)
        writable, readable = replica_group_availability(nodes, failure, repair, 1e9, 1e9)
        assert writable == pytest.approx(parallel, abs=1e-6)
        assert readable == pytest.approx(parallel, abs=1e-6)  # rates of 1e9 stiffen the solve
    # Rare failures: each master failure costs detection plus promotion, once per MTTF, to
    # first order; both copies down adds q^2 (q = MTTR / (MTTF + MTTR)).
    mttf, mttr, detect, promote = 30 * 86400.0, 4 * 3600.0, 2.5, 5.0
    q = mttr / (mttf + mttr)
    expected = (detect + promote) / mttf + q * q
    for stages in (1, 16):
        writable, _ = replica_group_availability(
            2, 1 / mttf, 1 / mttr, 1 / detect, 1 / promote, stages, stages
        )
        assert 1 - writable == pytest.approx(expected, rel=0.01)


def test_erlang_stages_match_the_squared_coefficient_of_variation():
    assert erlang_stages(10.0, 100.0) == 1  # exponential: cv = 1
    assert erlang_stages(10.0, 25.0) == 4  # cv^2 = 1/4
    assert erlang_stages(10.0, 0.0, most=8) == 8  # a fixed delay gets the most stages


def shop_design(read_from: str = "replicas") -> dict:
    """Browse reads, checkout writes; two shards of two nodes, a web group of two."""
    scenario = design(
        {"count": 2},
        [
            crash_repair(
                {"kind": "exponential", "mean": "2h"}, {"kind": "exponential", "mean": "30m"}
            ),
            {
                "kind": "crash_repair",
                "target": {"group": "db"},
                "time_to_failure": {"kind": "exponential", "mean": "2h"},
                "time_to_repair": {"kind": "exponential", "mean": "20m"},
            },
        ],
    )
    scenario["workload"]["classes"] = [
        {
            "name": "browse",
            "share": 0.7,
            "service_time": {"kind": "exponential", "mean": 0.01},
            "database": {"reads": 1},
        },
        {
            "name": "checkout",
            "share": 0.3,
            "service_time": {"kind": "exponential", "mean": 0.01},
            "database": {"writes": 1},
        },
    ]
    scenario["database"] = {
        "shards": 2,
        "replication": {"replicas": 1, "read_from": read_from, "promotion_delay": "60s"},
        "detection": {"kind": "heartbeat", "interval": "10s", "misses": 3},
    }
    return scenario


@pytest.mark.slow
def test_a_series_of_a_server_group_and_replicated_shards_is_the_product_of_their_chains():
    """Failures every two hours make each tier's unavailability large enough for a few years
    of simulation to pin it: the classes' simulated availabilities must hold the products of
    the tiers' chains (web group x each shard's writable or readable probability). A half-width
    of 0.6% is half of what a writer loses to detection and promotion alone (85 s every two
    hours: 1.2%), so a chain or a simulation that left those out would fail."""
    scenario = parse_scenario(shop_design())
    estimate = estimate_availability(scenario, years=3, replications=10)
    markov = estimate["markov"]
    assert markov["reason"] == ""
    for name in ("browse", "checkout"):
        values = estimate["classes"][name]
        assert_inside(
            {"per_replication": values["per_replication"]},
            markov["classes"][name],
            max_half_width=0.006,
        )
    # The writer needs a master on both shards: visibly less available than the reader.
    assert markov["classes"]["checkout"] < markov["classes"]["browse"] - 0.01


def test_the_markov_chain_is_not_claimed_where_it_does_not_apply():
    scenario = parse_scenario(
        design(
            {"count": 2},
            [
                crash_repair(
                    {"kind": "weibull", "shape": 2.0, "mean": "10d"},
                    {"kind": "exponential", "mean": "1h"},
                )
            ],
        )
    )
    assert markov_availability(scenario)["value"] is None
    assert "exponential" in markov_availability(scenario)["reason"]


def test_the_availability_command_prints_the_estimate_and_writes_its_summary(tmp_path):
    from test_cli import ROOT

    result = CliRunner().invoke(
        main,
        [
            "availability",
            str(ROOT / "scenarios" / "four_nines.yaml"),
            "--years",
            "200",
            "--replications",
            "4",
            "--out",
            str(tmp_path / "run"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "nines" in result.output and "markov chain" in result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["mode"] == "availability" and summary["replications"] == 4
    assert 0.999 < summary["availability"]["value"] <= 1
    # four_nines.yaml's SLO: 99.99%, 52.6 min of downtime a year; a verdict for the service
    # and for each class.
    slo = summary["slo"]
    assert slo["target"] == 0.9999
    assert slo["verdict"] == slo_verdict(summary["availability"], 0.9999)
    assert slo["classes"] == {
        name: slo_verdict(interval, 0.9999) for name, interval in summary["classes"].items()
    }
    assert f"slo target     99.99% (52.6 min a year): {slo['verdict']}, " in result.output
    verdicts = ", ".join(f"{name} {verdict}" for name, verdict in slo["classes"].items())
    assert f"by class: {verdicts}" in result.output


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.99991, 0.99995, "met"),
        (0.9999, 0.99995, "met"),
        (0.9998, 0.99989, "missed"),
        (0.99985, 0.99995, "undecided"),
        (0.99985, None, "undecided"),
    ],
)
def test_a_design_holds_its_slo_only_when_its_whole_interval_lies_above_the_target(
    low, high, verdict
):
    """A design review asks "does it hold 99.99%?": yes when the interval's lower end is at the
    target or above, no when its upper end is below, and not yet known when it straddles."""
    assert slo_verdict({"low": low, "high": high}, 0.9999) == verdict


def test_availability_compares_designs_on_common_random_numbers_and_draws_them(tmp_path):
    """One estimate per design, on the executor; the design the file already describes gives
    exactly the estimate of a plain run (same streams), and zero spares is a valid design."""
    from test_cli import ROOT

    four_nines = str(ROOT / "scenarios" / "four_nines.yaml")
    common = ["--years", "40", "--replications", "4", "--workers", "2"]

    def invoke(*arguments):
        result = CliRunner().invoke(main, ["availability", four_nines, *common, *arguments])
        assert result.exit_code == 0, result.output
        return result

    plain = invoke("--out", str(tmp_path / "plain"))
    swept = invoke(
        "--param", "servers[0].standby.count=0,2", "--out", str(tmp_path / "sweep"), "--plot"
    )
    table = pd.read_csv(tmp_path / "sweep" / "sweep.csv")
    assert len(table) == 2 * 4 and table.error.isna().all()
    single = json.loads((tmp_path / "plain" / "summary.json").read_text())
    designs = json.loads((tmp_path / "sweep" / "summary.json").read_text())["designs"]
    assert designs[1]["availability"]["value"] == single["availability"]["value"]
    assert designs[0]["availability"]["value"] < designs[1]["availability"]["value"]
    assert "markov chain" in swept.output and "markov chain" in plain.output
    for figure in ("availability_curve.png", "downtime_by_cause.png"):
        assert (tmp_path / "sweep" / figure).stat().st_size > 10_000
    # The causes of each replication sum to its downtime.
    causes = table.filter(like="availability.downtime_by_cause_s.").sum(axis=1)
    assert causes.to_numpy() == pytest.approx(table["availability.downtime_s"].to_numpy())
    # Each design's SLO verdict is printed beside it, against four_nines.yaml's 99.99%.
    lines = swept.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("servers[0].standby.count"))
    header, _, *rows = lines[at : at + 4]
    assert header.rstrip().endswith("slo 99.99%")
    for row, estimate in zip(rows, designs, strict=True):
        assert row.split()[-1] == estimate["slo"]["verdict"]
    assert designs[0]["slo"]["verdict"] == "missed"  # no spare: 97.9%, far below
    # The table says what each design simulated, and why crude simulation runs: its single
    # balancer is in every design, not only in the first.
    simulated = "40 simulated years in 4 replications, for each of 2 designs"
    assert lines[at - 2] == f"scenario four_nines  seed 2026  {simulated}"
    assert "a single balancer fails at every design" in swept.output


def sweep_estimate(target, verdict, classes):
    interval = {"value": 0.9999, "low": 0.9998, "high": 0.99995, "nines": 4.0}
    return {
        "scenario": "s",
        "seed": 1,
        "years": 100.0,
        "replications": 4,
        "confidence": 0.95,
        "availability": {**interval, "downtime_per_year_s": 3000.0},
        "all_classes": {**interval, "half_width": 0.0001},
        "markov": {"value": 0.9999},
        "slo": {
            "target": target,
            "verdict": verdict,
            "classes": classes,
        },
    }


def test_an_availability_sweep_prints_each_designs_slo_verdict_and_the_classes_that_differ():
    from sim.report import format_availability_sweep

    points = [{"n": 1}, {"n": 2}]
    same_target = format_availability_sweep(
        [
            sweep_estimate(0.9999, "met", {"browse": "met", "checkout": "undecided"}),
            sweep_estimate(0.9999, "missed", {"browse": "missed", "checkout": "missed"}),
        ],
        points,
        ["n"],
    ).splitlines()[2:]  # under the line saying what each design simulated
    assert same_target[0].rstrip().endswith("slo 99.99%")
    assert same_target[2].endswith("met (checkout undecided)")
    assert same_target[3].endswith("missed")
    # Designs that sweep the target itself name it in each cell; a default one says so.
    targets = format_availability_sweep(
        [sweep_estimate(0.999, "met", {"a": "met"}), sweep_estimate(0.9999, "missed", {})],
        points,
        ["n"],
    ).splitlines()[2:]
    assert targets[0].rstrip().endswith(" slo")
    assert targets[2].endswith("met at 99.9%") and targets[3].endswith("missed at 99.99%")
    default = format_availability_sweep(
        [sweep_estimate(0.999, "met", {})], points[:1], ["n"], default_target=True
    )
    assert "slo 99.9% (default)" in default


def test_a_target_the_scenario_does_not_set_is_reported_as_the_default(tmp_path):
    """A scenario without slo.availability is judged against the default 99.9%, and both
    commands say so; one that sets a target, even 99.9%, is not marked. The results are the
    same either way: the mark is about what the author wrote, so it is printed, not stored."""
    from test_cli import ROOT

    unset = tmp_path / "unset.yaml"
    failures = [
        crash_repair({"kind": "exponential", "mean": "1d"}, {"kind": "exponential", "mean": "1h"})
    ]
    unset.write_text(yaml.safe_dump(design({"count": 2}, failures)))
    baseline = ROOT / "scenarios" / "baseline.yaml"
    explicit = ["--set", "slo.availability=99.9%"]
    marked = "(the default; set slo.availability): "

    def invoke(*arguments):
        result = CliRunner().invoke(main, [*arguments, "--out", str(tmp_path / str(len(seen)))])
        seen.append(result)
        assert result.exit_code == 0, result.output
        return result.output, json.loads(
            (tmp_path / str(len(seen) - 1) / "summary.json").read_text()
        )

    seen: list = []
    for command in (
        ["run", str(baseline), "--duration", "200s"],
        ["availability", str(unset), "--years", "5", "--replications", "2"],
    ):
        default_output, default_summary = invoke(*command)
        set_output, set_summary = invoke(*command, *explicit)
        assert marked in default_output and marked not in set_output
        assert default_summary["slo"] == set_summary["slo"]
    four_nines = invoke("run", str(ROOT / "scenarios" / "four_nines.yaml"), "--duration", "200s")[0]
    assert "target 99.990%: " in four_nines


def balancer_pair(interval: str, count: int = 2) -> dict:
    scenario = design(
        {"count": 1},
        [
            {
                "kind": "crash_repair",
                "target": "balancer",
                "time_to_failure": {"kind": "exponential", "mean": "1d"},
                "time_to_repair": {"kind": "exponential", "mean": "2h"},
            }
        ],
    )
    scenario["balancer"]["redundancy"] = {
        "kind": "active_passive",
        "count": count,
        "advertisement_interval": interval,
    }
    return scenario


def test_the_balancer_pair_chain_reduces_to_closed_forms():
    failure, repair = 1 / 100.0, 1 / 5.0
    single = single_component_availability(100, 5)
    for count in (1, 2, 3):
        instant = redundant_balancer_availability(count, failure, repair, 1e9)
        assert instant == pytest.approx(parallel_availability(single, count), abs=1e-7)
    # Rare failures: each death of the holder costs the takeover, once per MTTF.
    mttf, mttr, takeover = 86400.0, 3600.0, 3.0
    q = mttr / (mttf + mttr)
    expected = takeover / mttf + q * q
    unavailable = 1 - redundant_balancer_availability(2, 1 / mttf, 1 / mttr, 1 / takeover, 16)
    assert unavailable == pytest.approx(expected, rel=0.01)


@pytest.mark.slow
def test_a_balancer_pair_with_exponential_failures_agrees_with_its_chain():
    """Advertisements every 10 minutes make each takeover cost about 26 minutes, a day apart:
    2% of the time, beside the 0.6% with both down. The simulated pair must hold the chain's
    value, and visibly beat a single balancer (7.7% down)."""
    scenario = parse_scenario(balancer_pair("10m"))
    estimate = estimate_availability(scenario, years=60, replications=10)
    markov = markov_availability(scenario)
    assert markov["reason"] == ""
    assert_inside(estimate, markov["value"], max_half_width=0.002)
    single = single_component_availability(86400, 7200)
    assert markov["value"] > single + 0.04


def test_a_verdict_the_markov_chain_contradicts_says_so(tmp_path):
    """A short run's interval can lie wholly above the target while the chain, where its
    assumptions hold, puts the design below it: the verdict then says so, and not otherwise."""
    from test_cli import ROOT

    from sim.report import format_availability

    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "availability",
            str(ROOT / "scenarios" / "four_nines.yaml"),
            "--years",
            "20",
            "--replications",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    estimate = json.loads((out / "summary.json").read_text())
    target = estimate["slo"]["target"]
    warning = "but the Markov chain puts the service"
    for verdict, chain, contradicted in (
        ("met", target - 1e-5, True),
        ("met", target + 1e-5, False),
        ("missed", target, True),
        ("missed", target - 1e-5, False),
        ("undecided", target - 1e-5, False),
    ):
        estimate["slo"]["verdict"] = verdict
        estimate["markov"]["value"] = chain
        text = format_availability(estimate)
        assert (warning in text) is contradicted, (verdict, chain)
    assert "below it (99.98" in format_availability(
        {
            **estimate,
            "slo": {**estimate["slo"], "verdict": "met"},
            "markov": {**estimate["markov"], "value": 0.9998},
        }
    )
