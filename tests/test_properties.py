"""Invariants that hold for any scenario, checked on many random small ones (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import parse_scenario
from sim.model.balancing import BALANCING_POLICIES
from sim.model.cluster import Cluster
from sim.streams import Streams

distributions = st.sampled_from(
    [
        {"kind": "exponential", "mean": 0.05},
        {"kind": "deterministic", "value": 0.04},
        {"kind": "lognormal", "mean": 0.05, "cv": 2.0},
        {"kind": "uniform", "low": 0.0, "high": 0.1},
    ]
)


@st.composite
def scenarios(draw):
    classes = []
    count = draw(st.integers(1, 3))
    for index in range(count):
        request_class = {
            "name": f"class{index}",
            "share": 1 / count,
            "service_time": draw(distributions),
        }
        if draw(st.booleans()):
            request_class["timeout"] = draw(st.sampled_from([0.02, 0.1, 0.5]))
        if draw(st.booleans()):
            request_class["retries"] = {
                "max": draw(st.integers(0, 3)),
                "backoff": draw(st.sampled_from([0.0, 0.01, 0.1])),
                "jitter": draw(st.sampled_from(["none", "full", "equal"])),
            }
        classes.append(request_class)
    groups = [
        {
            "name": f"g{index}",
            "count": draw(st.integers(1, 3)),
            "workers": draw(st.integers(1, 4)),
            "queue_capacity": draw(st.sampled_from([None, 0, 1, 5])),
            "speed": draw(st.sampled_from([0.5, 1.0, 2.0])),
            "weight": draw(st.sampled_from([1, 2, 3])),
        }
        for index in range(draw(st.integers(1, 2)))
    ]
    rate = draw(st.sampled_from([20, 100, 400]))
    return parse_scenario(
        {
            "duration": 2000,
            "workload": {
                # Arrivals stop at 10 s; the longest backlog drains well before 2000 s.
                "arrivals": {"rate": rate, "profile": [{"at": 10, "rate": 0}]},
                "classes": classes,
            },
            "balancer": {"policy": draw(st.sampled_from(BALANCING_POLICIES.names()))},
            "servers": groups,
            "metrics": {"step": 50},
        }
    )


def run_to_the_end(scenario):
    cluster = Cluster.build(scenario, Streams(seed=5))
    cluster.start()
    cluster.run(scenario.duration)
    return cluster


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_request_ends_exactly_once_and_nothing_is_left_behind(scenario):
    cluster = run_to_the_end(scenario)
    recorder = cluster.recorder
    # A request ending twice raises inside the model; here: none lost, none invented.
    assert cluster.client.in_flight == 0
    assert sum(sum(counts) for counts in recorder.outcomes) == recorder.arrivals
    assert recorder.attempts == recorder.arrivals + recorder.retries
    # The time series accounts for the same requests as the summary.
    rows = recorder.rows
    assert sum(row["arrivals"] for row in rows) == recorder.arrivals
    assert (
        sum(
            row["ok"] + row["timeout"] + row["rejected"] + row["no_backend"] + row["error"]
            for row in rows
        )
        == recorder.arrivals
    )
    # Every server drained, and the balancer's connection counts came back to zero.
    for server in cluster.servers:
        assert server.busy == 0 and not server.queue
    assert all(backend.active == 0 for backend in cluster.balancer.backends)
    # Work accepted is work served: busy time is the demand of every accepted attempt.
    assert all(server.accepted <= recorder.attempts for server in cluster.servers)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_same_scenario_and_seed_give_identical_results(scenario):
    first, second = run_to_the_end(scenario), run_to_the_end(scenario)
    assert first.recorder.outcomes == second.recorder.outcomes
    assert first.recorder.rows == second.recorder.rows or _same_with_nan(
        first.recorder.rows, second.recorder.rows
    )


def _same_with_nan(rows_a, rows_b) -> bool:
    import math

    def same(a, b):
        return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))

    return all(
        row_a.keys() == row_b.keys() and all(same(row_a[k], row_b[k]) for k in row_a)
        for row_a, row_b in zip(rows_a, rows_b, strict=True)
    )
