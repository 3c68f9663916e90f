"""The streaming latency histogram: bounded memory, every quantile within 1% of the exact one,
and interpolated far closer than the sampling error of a long run."""

from __future__ import annotations

import numpy as np
import pytest

from sim.metrics import LatencyHistogram


@pytest.mark.parametrize(
    "samples",
    [
        np.random.default_rng(1).lognormal(-3, 1.5, 100_000),
        np.random.default_rng(2).exponential(0.2, 100_000),
        np.random.default_rng(3).uniform(0.001, 0.002, 10_000),
        np.random.default_rng(4).pareto(1.5, 50_000) + 1e-3,
    ],
    ids=["lognormal", "exponential", "narrow uniform", "pareto"],
)
def test_quantiles_are_within_a_bucket_of_the_exact_sample_quantiles(samples):
    histogram = LatencyHistogram()
    for value in samples:
        histogram.add(float(value))
    for q in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        exact = np.quantile(samples, q, method="inverted_cdf")
        assert histogram.quantile(q) == pytest.approx(
            exact, rel=LatencyHistogram.WORST_RELATIVE_ERROR
        )
    assert histogram.mean() == pytest.approx(samples.mean(), rel=1e-9)
    assert histogram.count == len(samples)


@pytest.mark.parametrize(
    "samples",
    [
        np.random.default_rng(7).exponential(0.7, 1_000_000),
        np.random.default_rng(8).lognormal(-3, 1.0, 1_000_000),
        np.random.default_rng(9).pareto(1.5, 1_000_000) + 1e-3,
    ],
    ids=["exponential", "lognormal", "pareto"],
)
def test_quantiles_of_a_million_values_err_far_less_than_their_sampling_error(samples):
    """A sample quantile's own standard error is sqrt(q (1 - q) / n) / f(x_q), about 0.1% of
    the median at 10^6 values; the density f is estimated from the sorted sample's spacing.
    The histogram's error must be under a quarter of that, from p1 to p99.9."""
    histogram = LatencyHistogram()
    for value in samples.tolist():
        histogram.add(value)
    ordered, n = np.sort(samples), len(samples)
    for q in (0.01, 0.1, 0.5, 0.9, 0.99, 0.999):
        exact = np.quantile(samples, q, method="inverted_cdf")
        half = min(0.005, q / 2, (1 - q) / 2)
        spacing = ordered[int((q + half) * n)] - ordered[int((q - half) * n)]
        standard_error = np.sqrt(q * (1 - q) / n) * spacing / (2 * half)
        assert abs(histogram.quantile(q) - exact) <= 0.25 * standard_error, q


def test_exact_zeros_are_kept_apart_and_reported_as_zero():
    histogram = LatencyHistogram()
    for value in [0.0] * 60 + [0.5] * 40:
        histogram.add(value)
    assert histogram.quantile(0.6) == 0.0
    assert histogram.quantile(0.61) == pytest.approx(0.5, rel=0.01)
    assert histogram.mean() == pytest.approx(0.2)


def test_memory_is_a_fixed_number_of_buckets_whatever_the_count():
    histogram = LatencyHistogram()
    size = len(histogram.counts)
    for value in np.random.default_rng(5).lognormal(0, 3, 200_000):
        histogram.add(float(value))
    assert len(histogram.counts) == size < 3000


def test_merging_two_histograms_is_the_histogram_of_all_values():
    values = np.random.default_rng(6).exponential(1.0, 2000)
    together, left, right = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for index, value in enumerate(values):
        together.add(float(value))
        (left if index % 2 else right).add(float(value))
    left.merge(right)
    assert left.counts.tolist() == together.counts.tolist()
    assert left.quantile(0.99) == together.quantile(0.99)


def test_an_empty_histogram_reports_not_a_number():
    histogram = LatencyHistogram()
    assert np.isnan(histogram.quantile(0.5)) and np.isnan(histogram.mean())
