"""Every metric stays within its range on any valid scenario: many random small scenarios with
failures in and around the warm-up, detectors at their edges (a probe timeout equal to its
interval), spares, and every replication mode. The ranges come from the metric catalogue's
units, so a new metric is checked the day it is declared."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import parse_scenario, run
from sim.catalogue import UNITS, flatten, metric
from sim.model.balancing import BALANCING_POLICIES

detectors = st.sampled_from(
    [
        {"kind": "health_check", "interval": 1.0, "timeout": 1.0, "fall": 1, "rise": 1},
        {"kind": "health_check", "interval": 0.3, "timeout": 0.1, "fall": 2},
        {"kind": "heartbeat", "interval": 0.5, "misses": 1},
        {"kind": "phi_accrual", "interval": 0.5, "jitter": 0.1, "threshold": 3},
        # False suspicions that come and go at every scale of the run.
        {"kind": "heartbeat", "interval": 0.5, "misses": 2, "loss": 0.4, "monitor": "polling"},
    ]
)


@st.composite
def valid_scenarios(draw, detectors=detectors):
    warmup = draw(st.sampled_from([0.0, 1.0, 2.0]))
    duration = draw(st.sampled_from([3.0, 5.0]))
    around = st.sampled_from([0.0, 0.5, warmup - 0.01 if warmup else 0.0, warmup, warmup + 0.3])
    database = None
    uses = None
    if draw(st.booleans()):
        database = {
            "replication": {
                "kind": draw(st.sampled_from(["master_slave", "multi_master"])),
                "mode": draw(st.sampled_from(["async", "semi_sync", "sync"])),
                "replicas": 1,
                "apply_delay": {"kind": "exponential", "mean": 0.02},
                "promotion_delay": 0.5,
                "writes_during_failover": draw(st.sampled_from(["fail", "wait"])),
                "read_from": draw(st.sampled_from(["master", "replicas", "replicas_within_lag"])),
            },
            "detection": draw(detectors),
            "queue_capacity": draw(st.sampled_from([None, 2])),
        }
        uses = {"reads": draw(st.integers(0, 2)), "writes": draw(st.integers(0, 1))}
    failures = []
    kinds = ["crash", "partition", "slowdown", "zone_outage", *(["db"] if database else [])]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(kinds))
        at = max(0.0, draw(around))
        lasting = draw(st.sampled_from([0.2, 1.0, 3.0]))
        if kind == "zone_outage":
            failures.append({"kind": kind, "zone": "default", "at": at, "duration": lasting})
        elif kind == "db":
            failures.append(
                {"kind": "crash", "target": {"server": "db-0-1"}, "at": at, "duration": lasting}
            )
        else:
            failure = {"kind": kind, "target": {"server": "web-1"}, "at": at, "duration": lasting}
            if kind == "slowdown":
                failure["factor"] = 8
            failures.append(failure)
    if draw(st.booleans()):
        failures.append(
            {
                "kind": "crash_repair",
                "target": draw(st.sampled_from(["balancer", {"group": "web"}])),
                "time_to_failure": {"kind": "exponential", "mean": 2},
                "time_to_repair": {"kind": "exponential", "mean": 0.5},
            }
        )
    group = {
        "name": "web",
        "count": draw(st.integers(1, 3)),
        "workers": draw(st.integers(1, 3)),
        "queue_capacity": draw(st.sampled_from([None, 0, 3])),
    }
    if draw(st.booleans()):
        group["standby"] = {
            "count": 1,
            "mode": draw(st.sampled_from(["hot", "cold"])),
            "promotion_delay": draw(st.sampled_from([0.0, 0.3])),
        }
    request_class = {
        "name": "r",
        "share": 1,
        "service_time": draw(
            st.sampled_from(
                [
                    {"kind": "exponential", "mean": 0.05},
                    {"kind": "deterministic", "value": 0.2},
                    {"kind": "lognormal", "mean": 0.1, "cv": 2},
                ]
            )
        ),
    }
    if draw(st.booleans()):
        request_class["timeout"] = draw(st.sampled_from([0.1, 0.5]))
        request_class["retries"] = {"max": draw(st.integers(0, 2)), "backoff": 0.05}
    if uses is not None and (uses["reads"] or uses["writes"]):
        request_class["database"] = uses
    balancer = {
        "policy": draw(st.sampled_from(BALANCING_POLICIES.names())),
        "detection": draw(detectors),
        "hot_migration": draw(st.booleans()),
    }
    if draw(st.booleans()):
        balancer["outlier_ejection"] = {"consecutive_errors": 2, "ejection_time": 0.5}
    return parse_scenario(
        {
            "duration": duration,
            "warmup": warmup,
            "metrics": {"step": 1, "per_server": True},
            "workload": {
                "arrivals": {"rate": draw(st.sampled_from([5, 30, 80]))},
                "classes": [request_class],
            },
            "balancer": balancer,
            "servers": [group],
            **({"database": database} if database else {}),
            "failures": failures,
            "slo": {"latency": 0.3, "min_servers": 1},
        }
    )


def out_of_range(summary: dict) -> list[str]:
    """The metrics of a run's summary that are outside their ranges."""
    flat = flatten(summary)
    wrong = []
    for key, value in flat.items():
        if isinstance(value, float) and math.isnan(value):
            continue
        bounds = UNITS[metric(key).unit]
        if bounds is not None and not bounds[0] <= value <= bounds[1] * (1 + 1e-9):
            wrong.append(f"{key} = {value} outside [{bounds[0]:g}, {bounds[1]:g}]")
    for prefix in {key.rsplit(".", 1)[0] for key in flat if key.endswith(".p50")}:
        order = ["p50", "p90", "p95", "p99", "p99.9", "max"]
        values = [flat.get(f"{prefix}.{q}") for q in order]
        values = [v for v in values if v is not None and not math.isnan(v)]
        if any(b < a * (1 - 1e-12) for a, b in itertools.pairwise(values)):
            wrong.append(f"{prefix} percentiles out of order: {values}")
    return wrong


@pytest.mark.slow
@settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(valid_scenarios())
def test_every_metric_stays_in_its_range_on_random_valid_scenarios(scenario):
    assert out_of_range(run(scenario).summary) == []
