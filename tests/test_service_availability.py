"""End-to-end availability: each request class up or down over its whole path, and the causes.

A class is up while the balancer works, enough servers serve, and every shard it writes
(reads) can take a write (serve a read). The micro-scenarios below fail one component at a
known time, with detection and promotion delays whose bounds are known, so each class's down
time is known to within the detector's phase.
"""

from __future__ import annotations

import pytest

from sim import parse_scenario, run
from sim.reliability import simulate_years

HEARTBEAT = {"kind": "heartbeat", "interval": 1.0, "misses": 3}
"""A crash is detected after a delay uniform on [2 s, 3 s] (the heartbeat's phase)."""
PROMOTION_S = 5.0
DURATION_S = 400.0


def shop(read_from: str = "replicas", failures: list | None = None, **extra) -> dict:
    """Browse reads from the replicas, checkout writes; one shard with one replica."""
    return {
        "name": "shop",
        "duration": DURATION_S,
        "workload": {
            "arrivals": {"rate": 20},
            "classes": [
                {
                    "name": "browse",
                    "share": 0.75,
                    "service_time": {"kind": "exponential", "mean": 0.01},
                    "database": {"reads": 1},
                },
                {
                    "name": "checkout",
                    "share": 0.25,
                    "service_time": {"kind": "exponential", "mean": 0.01},
                    "database": {"writes": 1},
                },
            ],
        },
        "balancer": {"detection": {"kind": "health_check", "interval": 1.0}},
        "servers": [{"name": "web", "count": 2, "zone": "zone-a"}],
        "database": {
            "shards": 1,
            "zones": ["zone-b"],
            "replication": {
                "replicas": 1,
                "read_from": read_from,
                "promotion_delay": PROMOTION_S,
            },
            "detection": HEARTBEAT,
        },
        "failures": failures or [],
        **extra,
    }


MASTER_CRASH = {"kind": "crash", "target": {"server": "db-0-1"}, "at": 100, "duration": 200}


def test_a_class_that_reads_from_replicas_rides_out_a_master_failover_a_writer_does_not():
    summary = run(parse_scenario(shop(failures=[MASTER_CRASH]))).summary
    browse = summary["classes"]["browse"]["availability"]["time_based"]
    checkout = summary["classes"]["checkout"]["availability"]["time_based"]
    assert browse == 1.0
    # Checkout is down from the master's death to the replica's promotion.
    down_s = DURATION_S * (1 - checkout)
    assert 2.0 + PROMOTION_S <= down_s <= 3.0 + PROMOTION_S
    availability = summary["availability"]
    assert availability["time_based"] == pytest.approx(1 - 0.25 * down_s / DURATION_S, rel=1e-12)
    assert availability["time_based_all_classes"] == pytest.approx(checkout, rel=1e-12)
    assert availability["downtime_by_cause_s"]["shard_0"] == pytest.approx(0.25 * down_s)
    assert sum(availability["downtime_by_cause_s"].values()) == pytest.approx(
        availability["downtime_s"], rel=1e-9
    )


def test_a_class_that_reads_from_the_master_is_down_through_the_failover_too():
    summary = run(parse_scenario(shop(read_from="master", failures=[MASTER_CRASH]))).summary
    browse = summary["classes"]["browse"]["availability"]["time_based"]
    checkout = summary["classes"]["checkout"]["availability"]["time_based"]
    assert browse == checkout < 1.0
    assert summary["availability"]["downtime_by_cause_s"]["shard_0"] == pytest.approx(
        summary["availability"]["downtime_s"], rel=1e-9
    )


def test_a_zone_outage_that_takes_every_web_server_is_charged_to_the_zone():
    outage = {"kind": "zone_outage", "zone": "zone-a", "at": 100, "duration": 50}
    summary = run(parse_scenario(shop(failures=[outage]))).summary
    causes = summary["availability"]["downtime_by_cause_s"]
    down_s = summary["availability"]["downtime_s"]
    # Down from the crash until a server is seen back: at least the outage's 50 s.
    assert 50.0 <= down_s <= 50.0 + 2.0
    assert causes["zone_zone-a"] == pytest.approx(down_s, rel=1e-9)
    assert causes["servers"] == 0.0


def test_downtime_with_two_tiers_down_at_once_is_combined_and_the_causes_sum_to_the_total():
    failures = [
        MASTER_CRASH,
        {"kind": "crash", "target": {"balancer": True}, "at": 103, "duration": 20},
        {"kind": "crash", "target": {"balancer": True}, "at": 200, "duration": 10},
    ]
    summary = run(parse_scenario(shop(failures=failures))).summary
    causes = summary["availability"]["downtime_by_cause_s"]
    # 100 to 103: checkout (a quarter of requests) down for the shard alone; then every class
    # for both tiers until the promotion (at 107 to 108); then the balancer alone until 123.
    assert causes["shard_0"] == pytest.approx(0.25 * 3.0, rel=1e-9)
    assert 4.0 <= causes["combined"] <= 5.0
    assert causes["balancer"] == pytest.approx((123 - 103) + 10 - causes["combined"], rel=1e-9)
    assert sum(causes.values()) == pytest.approx(summary["availability"]["downtime_s"], rel=1e-9)


def test_the_long_horizon_mode_counts_database_failovers_with_the_same_rules():
    """A writer is down for detection plus promotion at every master failure, in both modes;
    without requests the rule is the same code, so ten master crashes cost ten windows."""
    failures = [
        {"kind": "crash", "target": {"server": "db-0-1"}, "at": 100, "duration": 200},
    ]
    scenario = parse_scenario(shop(failures=failures))
    years = simulate_years(scenario, DURATION_S / (365.25 * 86400), seed=1, replication=0)
    classes = years["classes"]
    down_s = DURATION_S * (1 - classes["checkout"]["availability"]["time_based"])
    assert classes["browse"]["availability"]["time_based"] == 1.0
    assert 2.0 + PROMOTION_S <= down_s <= 3.0 + PROMOTION_S


def single_server(failures: list, **workload) -> dict:
    return {
        "name": "windows",
        "duration": 600,
        "workload": {
            "arrivals": {"rate": workload.get("rate", 20)},
            "classes": [
                {
                    "name": "request",
                    "share": 1,
                    "service_time": {"kind": "exponential", "mean": workload.get("mean", 0.01)},
                    "timeout": 2.0,
                }
            ],
        },
        "balancer": {"detection": {"kind": "health_check", "interval": 1.0}},
        "servers": [{"name": "web", "count": 1}],
        "failures": failures,
        "slo": {"window": 60, "window_good": 0.99},
    }


def test_a_window_is_good_when_the_slo_held_in_it_and_an_outage_spoils_every_window_it_touches():
    """An outage from 150 s to 270 s (and the second or so to take the server back) spoils
    the windows [120, 180), [180, 240) and [240, 300): three of ten."""
    crash = {"kind": "crash", "target": {"server": "web-1"}, "at": 150, "duration": 120}
    summary = run(parse_scenario(single_server([crash]))).summary
    assert summary["availability"]["windowed"] == pytest.approx(0.7, rel=1e-12)
    assert summary["classes"]["request"]["availability"]["windowed"] == pytest.approx(0.7)
    assert run(parse_scenario(single_server([]))).summary["availability"]["windowed"] == 1.0


def test_overload_spoils_the_windows_while_every_component_is_up():
    """Offered load 1.5 times capacity: most requests time out, yet nothing is down."""
    summary = run(parse_scenario(single_server([], rate=15, mean=0.1))).summary
    availability = summary["availability"]
    assert availability["time_based"] == 1.0
    assert availability["request_based"] < 0.9
    assert availability["windowed"] < 0.2


@pytest.mark.slow
def test_database_failovers_cost_the_same_in_a_run_and_in_the_long_horizon_mode():
    """Database nodes failing every hour, repaired in a minute: a run with requests (real
    detectors on the nodes) and the long-horizon mode (their delays drawn from the detector's
    law) apply the same failover rules, so both agree with the shard's Markov chain
    (detection and promotion as Erlang stages) inside their 99% intervals, and with each
    other inside the 99% interval of a difference of means."""
    from scipy import stats

    from sim.reliability import estimate_availability, markov_availability

    failures = [
        {
            "kind": "crash_repair",
            "target": {"group": "db"},
            "time_to_failure": {"kind": "exponential", "mean": "1h"},
            "time_to_repair": {"kind": "exponential", "mean": "1m"},
        }
    ]
    data = shop(failures=failures)
    data["duration"] = 86400
    data["workload"]["arrivals"]["rate"] = 0.2
    data["balancer"]["detection"]["interval"] = 10.0  # fewer probes: the web tier never fails
    data["metrics"] = {"step": 600}
    scenario = parse_scenario(data)
    replications = 8
    runs = [
        run(scenario, replication=r).summary["classes"]["checkout"]["availability"]["time_based"]
        for r in range(replications)
    ]
    years = replications * 86400 / (365.25 * 86400)
    horizon = estimate_availability(scenario, years=years, replications=replications)
    sampled = horizon["classes"]["checkout"]["per_replication"]
    chain = markov_availability(scenario)["classes"]["checkout"]
    mean = sum(runs) / len(runs)
    half = stats.t.ppf(0.995, len(runs) - 1) * stats.tstd(runs) / len(runs) ** 0.5
    assert abs(mean - chain) <= half, (mean, half, chain)
    assert stats.ttest_ind(runs, sampled).pvalue > 0.01, (runs, sampled)
    # A master fails about once an hour and costs 2.5 s of detection plus 5 s of promotion:
    # an interval within 40% of that tells a model without the promotion (a third) apart.
    assert half < 0.4 * (1 - chain)
