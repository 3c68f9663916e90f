"""The simulator against queueing theory it did not write.

Each check runs R independent replications and builds a Student-t confidence interval for the
metric from them; the theoretical value must fall inside the 99.9% interval. Percentiles get no
allowance for the latency histogram: interpolated within its buckets, its error is a small
fraction of the sampling error (tests/test_metrics.py). The interval's width comes from the run
length: each test also asserts the interval is narrow (a few percent), so it cannot pass by
being vague. Seeds are fixed, so every run of the suite sees the same numbers.
"""

from __future__ import annotations

import pytest
from builders import exponential, queue_scenario, replicate

from sim.analysis import mean_confidence_interval
from sim.distributions import parse_distribution
from sim.theory import (
    erlang_c,
    mg1_mean_wait,
    mm1_mean_response,
    mm1_response_quantile,
    mmc_mean_wait,
    mmc_response_quantile,
    mmc_wait_quantile,
    mmck_blocking,
)

CONFIDENCE = 0.999


def assert_covers(
    values: list[float],
    expected: float,
    max_relative_half_width: float,
    extra_relative: float = 0.0,
) -> None:
    mean, half_width = mean_confidence_interval(values, CONFIDENCE)
    assert half_width <= max_relative_half_width * abs(expected), (
        f"interval too wide to be a test: {mean:.5g} +- {half_width:.3g}"
    )
    allowed = half_width + extra_relative * abs(expected)
    assert abs(mean - expected) <= allowed, (
        f"theory {expected:.5g} outside {mean:.5g} +- {allowed:.3g} ({CONFIDENCE:.1%} CI)"
    )


def test_mm1_mean_and_percentiles_of_response_time():
    lam, mu = 5.0, 10.0  # utilization 0.5
    scenario = queue_scenario(
        arrival_rate=lam, service=exponential(1 / mu), duration=4100, warmup=100
    )
    summaries = replicate(scenario, replications=10)
    latency = [s["latency_s"] for s in summaries]
    assert_covers([x["mean"] for x in latency], mm1_mean_response(lam, mu), 0.05)
    assert_covers(
        [x["p50"] for x in latency],
        mm1_response_quantile(lam, mu, 0.5),
        0.05,
    )
    assert_covers(
        [x["p99"] for x in latency],
        mm1_response_quantile(lam, mu, 0.99),
        0.06,
    )
    assert_covers([s["groups"]["web"]["utilization"] for s in summaries], lam / mu, 0.02)


def test_mmc_probability_of_waiting_and_mean_wait_follow_erlang_c():
    c, lam, mu = 4, 3.0, 1.0  # offered load 3 erlangs, utilization 0.75
    scenario = queue_scenario(
        arrival_rate=lam, service=exponential(1 / mu), workers=c, duration=5100, warmup=100
    )
    summaries = replicate(scenario, replications=10)
    assert_covers(
        [s["groups"]["web"]["waited_fraction"] for s in summaries], erlang_c(c, lam, mu), 0.05
    )
    assert_covers(
        [s["latency_s"]["mean"] for s in summaries], mmc_mean_wait(c, lam, mu) + 1 / mu, 0.05
    )
    # Little's law on the queue: mean queue length = arrival rate x mean wait.
    assert_covers(
        [s["groups"]["web"]["mean_queue_length"] for s in summaries],
        lam * mmc_mean_wait(c, lam, mu),
        0.12,
    )
    # The time in queue itself: P(W > t) = C exp(-(c mu - lam) t).
    waits = [s["groups"]["web"]["wait_s"] for s in summaries]
    assert_covers([w["mean"] for w in waits], mmc_mean_wait(c, lam, mu), 0.12)
    assert_covers([w["p90"] for w in waits], mmc_wait_quantile(c, lam, mu, 0.9), 0.12)
    assert_covers([w["p99"] for w in waits], mmc_wait_quantile(c, lam, mu, 0.99), 0.12)


@pytest.mark.slow
def test_mmc_median_response_time_is_exact_at_a_million_requests():
    """M/M/8 at utilization 0.5 (lam 4/s, mu 1/s): the median response time is 0.71034 s. Over
    10^6 requests (20 replications of 50,000) the 99.9% interval must be within +-0.7%, finer
    than the 2%-wide buckets the histogram once reported midpoints of."""
    c, lam, mu = 8, 4.0, 1.0
    scenario = queue_scenario(
        arrival_rate=lam,
        service=exponential(1 / mu),
        workers=c,
        duration=12_600,
        warmup=100,
        step=1000,
    )
    medians = [s["latency_s"]["p50"] for s in replicate(scenario, replications=20)]
    assert mmc_response_quantile(c, lam, mu, 0.5) == pytest.approx(0.71034, abs=1e-5)
    assert_covers(medians, mmc_response_quantile(c, lam, mu, 0.5), 0.007)


def test_mmck_rejected_fraction_is_the_blocking_probability():
    c, capacity, lam, mu = 2, 5, 2.0, 1.0  # full load: blocking is frequent
    scenario = queue_scenario(
        arrival_rate=lam,
        service=exponential(1 / mu),
        workers=c,
        queue_capacity=capacity - c,
        duration=4100,
        warmup=100,
    )
    summaries = replicate(scenario, replications=10)
    rejected = [s["requests"]["rejected"] / s["requests"]["ended"] for s in summaries]
    assert_covers(rejected, mmck_blocking(c, capacity, lam, mu), 0.06)


@pytest.mark.parametrize(
    "service",
    [
        {"kind": "deterministic", "value": 0.1},
        {"kind": "gamma", "mean": 0.1, "cv": 1.5},
        {"kind": "uniform", "low": 0.0, "high": 0.2},
    ],
    ids=["M/D/1", "M/G/1 gamma cv 1.5", "M/G/1 uniform"],
)
def test_mg1_mean_wait_follows_pollaczek_khinchine(service):
    distribution = parse_distribution(service)
    lam = 5.0  # utilization 0.5
    second_moment = distribution.variance() + distribution.mean() ** 2
    expected = mg1_mean_wait(lam, distribution.mean(), second_moment) + distribution.mean()
    scenario = queue_scenario(arrival_rate=lam, service=service, duration=4100, warmup=100)
    summaries = replicate(scenario, replications=10)
    assert_covers([s["latency_s"]["mean"] for s in summaries], expected, 0.06)
