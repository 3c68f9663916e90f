"""The benchmarks time models in a stable regime: a saturated model would time a retry storm (a
cost that grows with the run), not the cost of a request. Checked at a small size, where an
overload already shows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import throughput


@pytest.mark.parametrize(
    "model",
    [
        lambda n: throughput.standard(n, 0.01),
        lambda n: throughput.every_feature(n),
        lambda n: throughput.every_feature(n, database=False),
    ],
    ids=["plain", "every feature", "every feature but the database"],
)
def test_every_benchmark_model_serves_its_load_without_retries(model):
    summary = throughput.run_ecsim(model(20_000))
    requests = summary["requests"]
    assert requests["ok"] / requests["ended"] > 0.995
    assert summary["attempts_per_request"] < 1.01  # retries follow only the rare crash
    assert summary["groups"]["web"]["utilization"] < 0.85
