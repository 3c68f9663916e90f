"""Failure biasing reaches five and six nines, and its intervals mean what they say.

The designs: two servers of which one suffices, exponential failures and repairs, detection
in a millisecond. The service is down only while both are, so its unavailability is about
q^2 (q = MTTR / (MTTF + MTTR)), and the Markov chain gives it exactly: a design at 99.99%,
one at 99.999% and one at 99.9999%. Crude simulation would need about 100 / U failures'
worth of time for each; failure biasing makes the coincidences common and weighs them back.
"""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner
from scipy import stats

from sim import parse_scenario
from sim.cli import main
from sim.rare_events import BiasingUnsupported, estimate_by_failure_biasing
from sim.reliability import estimate_availability, markov_availability


def pair(mttf_hours: float, repair: dict | None = None, count: int = 2, needed: int = 1) -> dict:
    return {
        "name": "pair",
        "duration": 60,
        "workload": {
            "arrivals": {"rate": 1},
            "classes": [
                {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.01}}
            ],
        },
        "balancer": {"detection": {"kind": "heartbeat", "interval": 0.001, "misses": 1}},
        "servers": [{"name": "web", "count": count}],
        "failures": [
            {
                "kind": "crash_repair",
                "target": {"group": "web"},
                "time_to_failure": {"kind": "exponential", "mean": f"{mttf_hours}h"},
                "time_to_repair": repair or {"kind": "exponential", "mean": "1h"},
            }
        ],
        "slo": {"min_servers": needed},
    }


@pytest.mark.parametrize(("mttf_hours", "nines"), [(99, 4), (315, 5), (999, 6)])
def test_failure_biasing_agrees_with_the_markov_chain_at_four_five_and_six_nines(mttf_hours, nines):
    scenario = parse_scenario(pair(mttf_hours))
    chain = markov_availability(scenario)["value"]
    assert round(-math.log10(1 - chain)) == nines
    estimate = estimate_by_failure_biasing(scenario, cycles=3000, confidence=0.999)
    value = estimate["availability"]
    assert value["low"] <= chain <= value["high"], (value, chain)
    # Bounded relative error: the same effort pins every level to about +-25% (99.9%).
    assert value["relative_half_width"] < 0.3
    assert estimate["reliable"], estimate["warning"]


@pytest.mark.slow
def test_its_95_percent_intervals_cover_the_chain_in_about_95_percent_of_runs():
    """100 independent runs of 500 cycles at 99.999%. If the intervals hold 95%, the count
    that covers the chain is binomial(100, 0.95): below 88 with probability 0.2%. Measured:
    90 of 100."""
    scenario = parse_scenario(pair(315))
    chain = markov_availability(scenario)["value"]
    covered = 0
    ratios = []
    for replication in range(100):
        estimate = estimate_by_failure_biasing(scenario, cycles=500, replication=replication)
        value = estimate["availability"]
        covered += value["low"] <= chain <= value["high"]
        ratios.append(estimate["mean_likelihood_ratio"])
    assert stats.binom.cdf(87, 100, 0.95) < 0.003
    assert covered >= 88, covered
    # The likelihood ratio has expectation 1 under the biased law.
    mean = sum(ratios) / len(ratios)
    assert abs(mean - 1) < 3 * stats.tstd(ratios) / math.sqrt(len(ratios))


@pytest.mark.slow
def test_with_lognormal_repairs_failure_biasing_agrees_with_crude_simulation():
    """Repairs of any law: only the exponential failure clocks are biased. Three servers of
    which two are needed, repairs lognormal with cv 1.5, at about 99.9% where crude
    simulation pins the answer too; the two estimates must agree within their intervals."""
    repair = {"kind": "lognormal", "mean": "2h", "cv": 1.5}
    scenario = parse_scenario(pair(100, repair, count=3, needed=2))
    biased = estimate_by_failure_biasing(scenario, cycles=4000, confidence=0.999)["availability"]
    crude = estimate_availability(scenario, years=400, replications=10, confidence=0.999)
    crude_value = crude["availability"]
    gap = abs(biased["value"] - crude_value["value"])
    assert gap <= math.hypot(biased["half_width"], crude_value["half_width"]), (biased, crude)
    # Heavy-tailed repairs make coincidences vary more: still an informative interval.
    assert biased["half_width"] < 0.5 * (1 - biased["value"])


def test_designs_outside_the_method_are_refused_with_the_reason(tmp_path):
    weibull = pair(100)
    weibull["failures"][0]["time_to_failure"] = {"kind": "weibull", "shape": 2, "mean": "100h"}
    with pytest.raises(BiasingUnsupported, match="only exponential times to failure"):
        estimate_by_failure_biasing(parse_scenario(weibull))
    path = tmp_path / "weibull.yaml"
    path.write_text(__import__("yaml").safe_dump(weibull))
    result = CliRunner().invoke(
        main, ["availability", str(path), "--method", "biased", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "--method biased" in result.stderr
    assert "exponential times to failure" in result.stderr


def test_auto_chooses_failure_biasing_below_1e_5_and_says_so(tmp_path):
    path = tmp_path / "six.yaml"
    path.write_text(__import__("yaml").safe_dump(pair(999)))
    result = CliRunner().invoke(
        main, ["availability", str(path), "--cycles", "2000", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "failure biasing on regenerative cycles, chosen because" in result.output
    assert "relative half-width" in result.output


def test_auto_keeps_crude_simulation_where_a_single_failure_takes_a_class_down(tmp_path):
    """A single balancer failing once in ten years: 99.9999% by the chain, but its outages
    come one failure at a time, which crude simulation counts well and biasing cannot help."""
    single = pair(999)
    single["failures"].append(
        {
            "kind": "crash_repair",
            "target": "balancer",
            "time_to_failure": {"kind": "exponential", "mean": "3650d"},
            "time_to_repair": {"kind": "exponential", "mean": "1m"},
        }
    )
    path = tmp_path / "single.yaml"
    path.write_text(__import__("yaml").safe_dump(single))
    result = CliRunner().invoke(
        main, ["availability", str(path), "--years", "20", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "failure biasing" not in result.output
    assert "replications" in result.output


def test_a_one_off_failure_in_the_long_horizon_mode_is_warned_about(tmp_path):
    one_off = pair(999)
    one_off["failures"].append(
        {"kind": "crash", "target": {"server": "web-1"}, "at": "30s", "duration": "1m"}
    )
    path = tmp_path / "one_off.yaml"
    path.write_text(__import__("yaml").safe_dump(one_off))
    result = CliRunner().invoke(
        main,
        [
            "availability",
            str(path),
            "--years",
            "2",
            "--method",
            "crude",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "failures[1] (crash on server web-1) is a one-off" in result.stderr
