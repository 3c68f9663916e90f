"""The streaming latency histogram: bounded memory, every quantile within 1% of the exact one."""

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
def test_quantiles_are_within_one_percent_of_the_exact_sample_quantiles(samples):
    histogram = LatencyHistogram()
    for value in samples:
        histogram.add(float(value))
    for q in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        exact = np.quantile(samples, q, method="inverted_cdf")
        assert histogram.quantile(q) == pytest.approx(exact, rel=LatencyHistogram.RELATIVE_ACCURACY)
    assert histogram.mean() == pytest.approx(samples.mean(), rel=1e-9)
    assert histogram.count == len(samples)


def test_memory_is_a_fixed_number_of_buckets_whatever_the_count():
    histogram = LatencyHistogram()
    size = len(histogram.counts)
    for value in np.random.default_rng(5).lognormal(0, 3, 200_000):
        histogram.add(float(value))
    assert len(histogram.counts) == size < 1500


def test_merging_two_histograms_is_the_histogram_of_all_values():
    values = np.random.default_rng(6).exponential(1.0, 2000)
    together, left, right = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for index, value in enumerate(values):
        together.add(float(value))
        (left if index % 2 else right).add(float(value))
    left.merge(right)
    assert left.counts == together.counts
    assert left.quantile(0.99) == together.quantile(0.99)


def test_an_empty_histogram_reports_not_a_number():
    histogram = LatencyHistogram()
    assert np.isnan(histogram.quantile(0.5)) and np.isnan(histogram.mean())
