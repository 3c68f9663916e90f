"""Failure biasing reaches five and six nines, and its intervals mean what they say.

The designs: two servers of which one suffices, exponential failures and repairs, detection
in a millisecond. The service is down only while both are, so its unavailability is about
q^2 (q = MTTR / (MTTF + MTTR)), and the Markov chain gives it exactly: a design at 99.99%,
one at 99.999% and one at 99.9999%. Crude simulation would need about 100 / U failures'
worth of time for each; failure biasing makes the coincidences common and weighs them back.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from sim import parse_scenario
from sim.cli import main
from sim.rare_events import (
    BiasingUnsupported,
    estimate_by_failure_biasing,
    estimate_from_cycles,
    pool_cycles,
)
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
    biased = estimate_by_failure_biasing(scenario, cycles=10_000, confidence=0.999)["availability"]
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
    assert "method: crude simulation (a single balancer fails" in result.output
    assert "regenerative cycles" not in result.output
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


def test_cycle_sums_are_sufficient_for_the_regenerative_interval_and_pool_exactly():
    """The estimator keeps sums, not cycles, so that runs on several workers pool into one.
    From the sums, the estimate and half-width must be those computed from the cycles
    themselves (the residuals X L - U T L, by the definition of the regenerative interval),
    and the sums of two halves must be those of the whole."""
    rng = np.random.default_rng(7)
    n = 400
    lengths = rng.exponential(1000.0, n)
    ratios = rng.lognormal(0.0, 0.3, n)
    downtime = np.where(rng.random(n) < 0.2, rng.exponential(5.0, n), 0.0)

    def statistics(index: slice) -> dict:
        tl, x = lengths[index] * ratios[index], downtime[index] * ratios[index]
        column = {"sum": x.sum(), "sum2": (x * x).sum(), "cross": (x * tl).sum()}
        return {
            "count": len(tl),
            "simulated_s": lengths[index].sum(),
            "with_downtime": int((x > 0).sum()),
            "largest": x.max(),
            "length": {"sum": tl.sum(), "sum2": (tl * tl).sum()},
            "ratio": {"sum": ratios[index].sum(), "sum2": (ratios[index] ** 2).sum()},
            "service": column,
            "all_classes": column,
            "classes": {"r": column},
            "causes": {"servers": column},
        }

    whole = statistics(slice(None))
    pooled = pool_cycles([statistics(slice(0, 150)), statistics(slice(150, None))])
    assert pooled["count"] == n and pooled["largest"] == whole["largest"]
    for key in ("sum", "sum2", "cross"):
        assert pooled["service"][key] == pytest.approx(whole["service"][key], rel=1e-12)
    estimate = estimate_from_cycles(pooled)["availability"]
    tl, x = lengths * ratios, downtime * ratios
    u = x.mean() / tl.mean()
    half = stats.norm.ppf(0.975) * (x - u * tl).std(ddof=1) / math.sqrt(n) / tl.mean()
    assert estimate["unavailability"] == pytest.approx(u, rel=1e-9)
    assert estimate["half_width"] == pytest.approx(half, rel=1e-6)


def test_a_sweep_of_six_nines_designs_runs_failure_biasing_on_the_executor(tmp_path):
    """Three or four servers of which one suffices: 99.9999% and beyond by the chain, so auto
    picks failure biasing at every point; the cycles are shared by four runs on two workers
    and pooled. The pooled estimate of three servers lies within two of its 95% half-widths
    of the chain's value (a 99.99% interval), and one worker gives the same numbers."""
    path = tmp_path / "six.yaml"
    path.write_text(__import__("yaml").safe_dump(pair(99, count=3)))

    def sweep(workers: str, out: str):
        arguments = ["availability", str(path), "--param", "servers[0].count=3,4"]
        arguments += ["--cycles", "2000", "--replications", "4", "--workers", workers]
        result = CliRunner().invoke(main, [*arguments, "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
        assert "failure biasing on regenerative cycles, chosen because" in result.output
        return json.loads((tmp_path / out / "summary.json").read_text())["designs"]

    designs = sweep("2", "pool")
    three = designs[0]
    assert three["method"] == "biased" and three["cycles"] == 2000
    chain = three["markov"]["value"]
    value = three["availability"]
    assert abs(value["value"] - chain) <= 2 * value["half_width"]
    assert [d["availability"]["value"] for d in sweep("1", "serial")] == [
        d["availability"]["value"] for d in designs
    ]
