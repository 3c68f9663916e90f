"""The metric catalogue is the summary's contract: every key a run reports is declared once,
with its unit and which way is better, and nothing guesses that from the words in a key."""

from __future__ import annotations

import pytest

from sim import parse_scenario, run
from sim.catalogue import (
    HIGHER,
    LOWER,
    METRICS,
    UNITS,
    UnknownMetricError,
    check_summary,
    direction,
    flatten,
    keys_for,
    metric,
)

EVERY_FEATURE = {
    "duration": 120,
    "warmup": 10,
    "metrics": {"step": 30, "per_server": True},
    "workload": {
        "arrivals": {"rate": 40},
        "classes": [
            {
                "name": "browse",
                "share": 0.8,
                "service_time": {"kind": "exponential", "mean": 0.02},
                "timeout": 2,
                "retries": {"max": 1, "budget": {"ratio": "20%"}},
                "circuit_breaker": {"consecutive_failures": 5},
                "hedging": {"delay": 0.1},
                "database": {"reads": 1, "cacheable": True},
            },
            {
                "name": "check.out",  # a dotted name: keys must still resolve
                "share": 0.2,
                "kind": "write",
                "service_time": {"kind": "exponential", "mean": 0.05},
                "database": {"writes": 1},
            },
        ],
    },
    "balancer": {
        "policy": "least_response_time",
        "outlier_ejection": {"consecutive_errors": 3},
        "hot_migration": True,
    },
    "servers": [
        {
            "name": "web",
            "count": 3,
            "workers": 4,
            "queue_capacity": 20,
            "standby": {"count": 1, "promotion_delay": 5},
        },
        {"name": "api", "count": 2, "workers": 2, "zone": "b"},
    ],
    "database": {
        "shards": 2,
        "replication": {"mode": "semi_sync", "replicas": 1, "read_from": "replicas"},
        "cache": {"nodes": 2, "capacity": 100},
    },
    "failures": [
        {"kind": "crash", "target": {"server": "web-1"}, "at": 30, "duration": 30},
        {"kind": "slowdown", "target": {"server": "api-1"}, "at": 20, "duration": 40, "factor": 4},
        {"kind": "partition", "target": {"server": "db-0-1"}, "at": 50, "duration": 5},
        {"kind": "crash", "target": {"group": "cache"}, "at": 40, "duration": 10},
        {
            "kind": "crash_repair",
            "target": "balancer",
            "time_to_failure": {"kind": "exponential", "mean": 100},
            "time_to_repair": {"kind": "exponential", "mean": 2},
        },
    ],
    "slo": {"availability": "99%", "latency": "200ms"},
}


def test_a_run_with_every_feature_on_reports_exactly_the_catalogue():
    scenario = parse_scenario(EVERY_FEATURE)
    summary = run(scenario).summary  # run() itself checks; this says so out loud
    reported = list(flatten(summary))
    declared = keys_for(scenario)
    assert sorted(reported) == sorted(declared)
    assert len(declared) == len(set(declared))
    assert "classes.check.out.latency_s.p99" in declared
    assert "servers.web-standby-1.time_in_rotation" in declared
    assert "data.shards.1.time_writable" in declared
    assert "data.cache.hit_ratio" in declared
    assert "client.check.out.hedges" in declared


def test_every_catalogued_metric_has_a_unit_a_direction_and_a_definition():
    keys = [entry.key for entry in METRICS]
    assert len(keys) == len(set(keys))
    for entry in METRICS:
        assert entry.direction in (-1, 0, 1)
        assert entry.unit in UNITS, entry.key
        assert len(entry.definition) >= 10, entry.key


def test_a_metric_reported_but_not_declared_is_caught():
    scenario = parse_scenario(EVERY_FEATURE)
    summary = run(scenario).summary
    summary["latency_s"]["p42"] = 0.1
    with pytest.raises(RuntimeError, match=r"undeclared.*latency_s\.p42"):
        check_summary(summary, scenario)
    del summary["latency_s"]["p42"]
    del summary["throughput_per_s"]
    with pytest.raises(RuntimeError, match=r"missing.*throughput_per_s"):
        check_summary(summary, scenario)


def test_directions_come_from_the_catalogue_not_from_words_in_the_key():
    # "latency" in the key, yet more good requests within the latency objective is better:
    # the key a word-guesser ranked backwards.
    assert direction("availability.request_based_within_latency") == HIGHER
    assert direction("classes.checkout.availability.request_based_within_latency") == HIGHER
    assert direction("latency_s.p99") == LOWER
    assert direction("availability.downtime_s") == LOWER
    assert direction("slo.latency_met") == HIGHER
    assert direction("data.shards.0.time_writable") == HIGHER
    assert direction("incidents.false_suspicions") == LOWER
    assert direction("requests.ok") == HIGHER
    assert direction("groups.web.wait_s.p99") == LOWER
    assert direction("servers.web-2.time_in_rotation") == HIGHER
    assert metric("latency_s.p99").ok_only
    assert not metric("availability.request_based_within_latency").ok_only


def test_an_unknown_metric_is_answered_with_a_did_you_mean():
    with pytest.raises(UnknownMetricError, match=r"did you mean 'latency_s.p99'"):
        metric("latncy_s.p99")
