"""Distributions know their mean and variance, and their samples agree with them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.distributions import DISTRIBUTIONS, parse_distribution

CASES = [
    ({"kind": "exponential", "mean": "40ms"}, 0.04, 0.04**2),
    ({"kind": "deterministic", "value": "2s"}, 2.0, 0.0),
    ({"kind": "uniform", "low": 1, "high": 3}, 2.0, 4 / 12),
    ({"kind": "lognormal", "mean": 0.1, "cv": 1.5}, 0.1, (0.15) ** 2),
    ({"kind": "gamma", "mean": 0.1, "cv": 0.5}, 0.1, (0.05) ** 2),
    ({"kind": "erlang", "k": 4, "mean": 2}, 2.0, 1.0),
    ({"kind": "hyperexponential", "mean": "50ms", "cv": 3}, 0.05, 0.15**2),
    ({"kind": "weibull", "shape": 1.0, "scale": "3h"}, 3 * 3600.0, (3 * 3600.0) ** 2),
    ({"kind": "weibull", "shape": 2.0, "mean": 10}, 10.0, 100 * (4 / math.pi - 1)),
    (
        {"kind": "empirical", "samples": ["10ms", "20ms", "60ms"]},
        0.03,
        (0.0004 + 0.0001 + 0.0009) / 3,
    ),
    # Uniform on [0, 1] written as percentiles: mean 1/2, variance 1/12.
    ({"kind": "empirical", "percentiles": {"p50": 0.5, "100": 1}}, 0.5, 1 / 12),
]


@pytest.mark.parametrize(("data", "mean", "variance"), CASES, ids=[c[0]["kind"] for c in CASES])
def test_mean_and_variance_match_the_closed_form(data, mean, variance):
    distribution = parse_distribution(data)
    assert distribution.mean() == pytest.approx(mean, rel=1e-9)
    assert distribution.variance() == pytest.approx(variance, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(("data", "mean", "variance"), CASES, ids=[c[0]["kind"] for c in CASES])
def test_samples_agree_with_the_stated_mean(data, mean, variance):
    """200,000 samples: the sample mean lies within 5 standard errors of the mean."""
    distribution = parse_distribution(data)
    samples = distribution.draw(np.random.default_rng(11), 200_000)
    assert (samples >= 0).all()
    standard_error = math.sqrt(variance / len(samples))
    assert abs(samples.mean() - mean) <= 5 * standard_error + 1e-12


def test_every_registered_distribution_is_covered_here():
    assert {case[0]["kind"] for case in CASES} == set(DISTRIBUTIONS.names())


def test_a_sampler_gives_the_same_sequence_as_drawing_in_one_go():
    distribution = parse_distribution({"kind": "lognormal", "mean": 1, "cv": 1})
    sampler = distribution.sampler(np.random.default_rng(3), block=7)
    one_by_one = [next(sampler) for _ in range(50)]
    blocks = np.concatenate(
        [distribution.draw(rng, 7) for rng in [np.random.default_rng(3)] for _ in range(8)]
    )
    assert one_by_one == blocks[:50].tolist()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "uniform", "low": 3, "high": 1}, "must be >= low"),
        ({"kind": "weibull", "shape": 2}, "exactly one of 'scale' or 'mean'"),
        ({"kind": "empirical", "percentiles": {"50": 1}}, "need the 100th"),
        ({"kind": "empirical", "percentiles": {"50": 2, "100": 1}}, "must not decrease"),
        ({"kind": "exponential", "mean": "-1s"}, "> 0"),
        ({"kind": "exponentail", "mean": 1}, "did you mean 'exponential'"),
    ],
)
def test_impossible_parameters_are_refused_with_a_reason(data, message):
    with pytest.raises(ValueError, match=message):
        parse_distribution(data)


class _Draws:
    """A stream that returns the given uniforms."""

    def __init__(self, *uniforms: float) -> None:
        self.uniforms = np.array(uniforms)

    def random(self, size: int) -> np.ndarray:
        return self.uniforms[:size]


def test_a_draw_at_a_written_percentile_is_the_time_written_for_it():
    """p99.9: 1s means the uniform 0.999 maps to exactly 1 s (99.9 / 100 in floats is
    0.9990000000000001, which put the knot a hair above the percentile the file wrote)."""
    spec = parse_distribution(
        {"kind": "empirical", "percentiles": {"p50": 0.25, "p99.9": 1.0, "p99.99": 1.5, "100": 2}}
    )
    assert spec.draw(_Draws(0.5, 0.999, 0.9999), 3).tolist() == [0.25, 1.0, 1.5]
