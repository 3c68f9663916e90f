"""Invariants that hold for any scenario, checked on many random small ones (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import parse_scenario
from sim.metrics import ERROR_CAUSES
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
    rate = draw(st.sampled_from([20, 60, 150]))
    profile = [{"at": 10, "rate": 0}]
    if draw(st.booleans()):
        profile.insert(0, {"at": 2, "rate": 2 * rate, "ramp": 3})
    failures = []
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.sampled_from([1.0, 3.0, 5.5]))
        kind = draw(st.sampled_from(["crash", "partition", "slowdown", "zone_outage"]))
        failure = {"kind": kind, "at": start, "duration": draw(st.sampled_from([0.5, 2.0, 4.0]))}
        if kind == "zone_outage":
            failure["zone"] = "default"
        else:
            failure["target"] = {"server": "g0-1"}
        if kind == "slowdown":
            failure["factor"] = 10
        failures.append(failure)
    if draw(st.booleans()):
        groups[0]["standby"] = {
            "count": 1,
            "mode": draw(st.sampled_from(["hot", "cold"])),
            "promotion_delay": 0.5,
        }
    balancer = {
        "policy": draw(st.sampled_from(BALANCING_POLICIES.names())),
        "hot_migration": draw(st.booleans()),
        "detection": draw(
            st.sampled_from(
                [
                    {"kind": "health_check", "interval": 1.0, "timeout": 0.2, "fall": 2},
                    {"kind": "heartbeat", "interval": 1.0, "misses": 2},
                    {
                        "kind": "heartbeat",
                        "interval": 1.0,
                        "misses": 2,
                        "loss": 0.3,
                        "monitor": "polling",
                        "poll_interval": 0.5,
                    },
                    {"kind": "phi_accrual", "interval": 1.0, "min_std": 0.05},
                ]
            )
        ),
    }
    if draw(st.booleans()):
        balancer["outlier_ejection"] = {"consecutive_errors": 3, "ejection_time": 1.0}
    return parse_scenario(
        {
            "duration": 1000,
            "warmup": draw(st.sampled_from([0, 1, 5])),
            "workload": {
                # Arrivals stop at 10 s; the worst backlog (6,000 tries of 0.1 s) drains by 1000 s.
                "arrivals": {"rate": rate, "profile": profile},
                "classes": classes,
            },
            "balancer": balancer,
            "servers": groups,
            "failures": failures,
            "metrics": {"step": 50},
        }
    )


def run_to_the_end(scenario):
    cluster = Cluster.build(scenario, Streams(seed=5))
    cluster.start()
    cluster.run(scenario.duration)
    return cluster


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_request_ends_exactly_once_and_nothing_is_left_behind(scenario):
    cluster = run_to_the_end(scenario)
    recorder = cluster.recorder
    # A request ending twice raises inside the model; here: none lost, none invented.
    assert cluster.client.in_flight == 0
    assert sum(sum(counts) for counts in recorder.causes) == recorder.arrivals
    window = recorder.measurement()
    assert sum(sum(counts) for counts in window.causes) <= recorder.arrivals
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
    # Errors split into their causes, row by row.
    causes = [f"error.{cause.label}" for cause in ERROR_CAUSES]
    assert all(sum(row[c] for c in causes) == row["error"] for row in rows)
    # Every server drained, and the balancer's connection counts came back to zero.
    for server in cluster.servers:
        assert server.busy == 0 and not server.queue
    assert all(backend.active == 0 for backend in cluster.balancer.backends)
    # Utilization is a fraction of worker time: never above 1 (spares add workers, so only
    # groups without them are checked), in any row.
    for group in scenario.servers:
        if group.standby is None:
            assert all(row[f"{group.name}.utilization"] <= 1 + 1e-9 for row in rows)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_same_scenario_and_seed_give_identical_results(scenario):
    first, second = run_to_the_end(scenario), run_to_the_end(scenario)
    assert first.recorder.causes == second.recorder.causes
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


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_no_attempt_reaches_a_backend_the_balancer_has_taken_out_of_rotation(scenario):
    cluster = Cluster.build(scenario, Streams(seed=5))
    routed_while_out = []
    for backend in cluster.backends:
        submit = backend.server.submit

        def watched(attempt, backend=backend, submit=submit):
            if not backend.routable:
                routed_while_out.append((cluster.env.now, backend.name))
            submit(attempt)

        backend.server.submit = watched
    cluster.start()
    cluster.run(scenario.duration)
    assert routed_while_out == []
