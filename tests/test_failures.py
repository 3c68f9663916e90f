"""Failures as real systems live them: the truth changes at once, the balancer learns later.

Exact micro-scenarios with deterministic times, then the detectors against their closed forms.
"""

from __future__ import annotations

import math

import pytest
from test_model import Trace

from sim import parse_scenario, run
from sim.analysis import mean_confidence_interval


def one_class(rate: float = 0.0, service: float = 1.0, **extra) -> dict:
    return {
        "arrivals": {"rate": rate},
        "classes": [
            {
                "name": "r",
                "share": 1,
                "service_time": {"kind": "deterministic", "value": service},
                **extra,
            }
        ],
    }


def test_a_crash_fails_work_in_flight_at_once_and_refuses_new_work_until_detected():
    trace = Trace([{"name": "web", "count": 2, "workers": 1}])  # health checks: 2 s, fall 3
    server = trace.cluster.servers[0]
    trace.send("running", at=0.0, work=5.0)  # web-1
    trace.send("elsewhere", at=0.1, work=1.0)  # web-2
    trace.env.timeout(1.0).callbacks.append(lambda _: server.crash())
    trace.send("refused", at=1.5, work=1.0)  # round-robin's turn: web-1, dead but not known
    ends = trace.run(until=3.0)
    assert ends["running"] == ("error", 1.0)
    assert ends["refused"] == ("error", 1.5)
    assert ends["elsewhere"] == ("ok", 1.1)


def test_a_partitioned_server_fails_attempts_after_the_connect_timeout():
    trace = Trace([{"name": "web", "workers": 1}])
    server = trace.cluster.servers[0]
    trace.env.timeout(0.5).callbacks.append(lambda _: server.disconnect())
    trace.send("in flight", at=0.0, work=2.0)
    trace.send("cut off", at=1.0, work=1.0)
    ends = trace.run(until=5.0)
    assert ends["in flight"] == ("error", 0.5)  # its connection is cut
    assert ends["cut off"] == ("error", 2.0)  # the connect timeout is 1 s
    assert server.alive


def test_a_slow_server_serves_what_starts_during_the_slowdown_slower():
    trace = Trace([{"name": "web", "workers": 1}])
    server = trace.cluster.servers[0]
    trace.env.timeout(0.5).callbacks.append(lambda _: server.slow_down(4.0))
    trace.send("before", at=0.0, work=1.0)
    trace.send("during", at=0.6, work=1.0)
    ends = trace.run()
    assert ends == {"before": ("ok", 1.0), "during": ("ok", 5.0)}


def test_hot_migration_moves_work_from_a_crashed_server_to_a_healthy_one():
    trace = Trace([{"name": "web", "count": 2, "workers": 1}], balancer={"hot_migration": True})
    server = trace.cluster.servers[0]
    trace.send("moved", at=0.0, work=2.0)  # web-1, which crashes at 1.0
    trace.env.timeout(1.0).callbacks.append(lambda _: server.crash())
    ends = trace.run()
    assert ends["moved"] == ("ok", 3.0)  # started again on web-2 at 1.0


def test_a_crashed_balancer_fails_everything_until_it_is_repaired():
    trace = Trace([{"name": "web", "workers": 2}])
    balancer = trace.cluster.balancer
    trace.send("in flight", at=0.0, work=2.0)
    trace.env.timeout(1.0).callbacks.append(lambda _: balancer.crash())
    trace.send("refused", at=1.5, work=1.0)
    trace.env.timeout(3.0).callbacks.append(lambda _: balancer.repair())
    trace.send("served", at=3.5, work=1.0)
    ends = trace.run()
    assert ends == {
        "in flight": ("error", 1.0),
        "refused": ("error", 1.5),
        "served": ("ok", 4.5),
    }


def test_outlier_ejection_takes_a_failing_backend_out_after_consecutive_errors():
    scenario = parse_scenario(
        {
            "duration": 60,
            "workload": one_class(rate=20, service=0.01),
            "balancer": {
                "detection": {"kind": "health_check", "interval": 1000, "timeout": 1},
                "outlier_ejection": {"consecutive_errors": 3, "ejection_time": 100},
            },
            "servers": [{"name": "web", "count": 2}],
            "failures": [{"kind": "crash", "target": {"server": "web-1"}, "at": 10}],
        }
    )
    result = run(scenario)
    events = result.events
    ejected = events[(events.component == "web-1") & (events.detail == "ejected")]
    assert len(ejected) == 1
    # Round-robin sends web-1 every other request at 20/s: the third error comes about 0.3 s in.
    assert 10 < ejected.time_s.iloc[0] < 11
    assert result.summary["requests"]["error"] <= 4


def test_a_slow_server_failing_its_health_checks_is_a_false_suspicion():
    scenario = parse_scenario(
        {
            "duration": 100,
            "workload": one_class(),
            "balancer": {
                "detection": {
                    "kind": "health_check",
                    "interval": 2,
                    "timeout": 0.5,
                    "fall": 2,
                    "probe_time": 0.01,
                }
            },
            "servers": [{"name": "web", "count": 2}],
            "failures": [
                {
                    "kind": "slowdown",
                    "target": {"server": "web-1"},
                    "at": 10,
                    "duration": 30,
                    "factor": 100,
                }
            ],
        }
    )
    result = run(scenario)
    assert result.summary["incidents"]["false_suspicions"] == 1
    incident = result.incidents.iloc[0]
    assert incident.kind == "slowdown"
    assert 10 + 2 <= incident.detected_at_s <= 10 + 4 + 0.5


@pytest.mark.parametrize("promotion_s", [0.0, 7.0])
def test_failover_time_is_detection_plus_promotion_exactly(promotion_s):
    standby = {"count": 1, "promotion_delay": promotion_s} if promotion_s else None
    group = {"name": "web", "count": 2, **({"standby": standby} if standby else {})}
    scenario = parse_scenario(
        {
            "duration": 120,
            "workload": one_class(),
            "balancer": {
                "detection": {"kind": "health_check", "interval": 2, "timeout": 1, "fall": 3}
            },
            "servers": [group],
            "failures": [
                {"kind": "crash", "target": {"server": "web-1"}, "at": 30, "duration": 40}
            ],
        }
    )
    incident = run(scenario).incidents.iloc[0]
    detect = incident.time_to_detect_s
    # The first failing probe starts within one interval of the crash; the third fails a
    # timeout after it started, two intervals later.
    assert 2 * 2 + 1 <= detect <= 3 * 2 + 1
    assert incident.failover_time_s == pytest.approx(detect + promotion_s, abs=1e-9)
    # Repaired at 70, back after two passing probes, within two intervals plus the probe time.
    assert 40 < incident.time_to_recover_s <= 40 + 2 * 2 + 0.005 + 1e-9


def test_time_based_availability_counts_the_time_no_server_could_serve():
    scenario = parse_scenario(
        {
            "duration": 300,
            "workload": one_class(),
            "balancer": {"detection": {"kind": "heartbeat", "interval": 1, "misses": 3}},
            "servers": [{"name": "web"}],
            "failures": [
                {"kind": "crash", "target": {"server": "web-1"}, "at": 100, "duration": 60}
            ],
        }
    )
    result = run(scenario)
    incident = result.incidents.iloc[0]
    # Down from the crash until the first heartbeat after the repair brings it back.
    assert 60 < incident.time_to_recover_s <= 61
    assert result.summary["availability"]["downtime_s"] == pytest.approx(incident.time_to_recover_s)
    assert result.summary["availability"]["time_based"] == pytest.approx(
        1 - incident.time_to_recover_s / 300
    )


def _detection_delays(detection: dict, horizon_s: float) -> list[float]:
    scenario = parse_scenario(
        {
            "duration": horizon_s,
            "metrics": {"step": 3600},
            "workload": one_class(),
            "balancer": {"detection": detection},
            "servers": [{"name": "web"}],
            "failures": [
                {
                    "kind": "crash_repair",
                    "target": {"group": "web"},
                    "time_to_failure": {"kind": "exponential", "mean": 60},
                    "time_to_repair": {"kind": "deterministic", "value": 20},
                }
            ],
        }
    )
    delays = run(scenario).incidents.time_to_detect_s.dropna().tolist()
    assert len(delays) > 1000
    return delays


def test_heartbeat_detection_delay_is_uniform_between_its_closed_form_bounds():
    """A crash at a uniform phase of a heartbeat interval i with m misses allowed is detected
    after a delay uniform on [(m - 1) i, m i]: mean (m - 1/2) i, variance i^2 / 12."""
    interval, misses = 1.0, 3
    delays = _detection_delays(
        {"kind": "heartbeat", "interval": interval, "misses": misses}, horizon_s=100_000
    )
    assert min(delays) >= (misses - 1) * interval - 1e-9
    assert max(delays) <= misses * interval + 1e-9
    mean, half_width = mean_confidence_interval(delays, 0.999)
    assert abs(mean - (misses - 0.5) * interval) <= half_width
    assert half_width < 0.03
    # Uniform: a quarter of the delays in each quarter of the interval, within 4 sigma.
    quarters = [0, 0, 0, 0]
    for delay in delays:
        quarters[min(3, int((delay - (misses - 1) * interval) / interval * 4))] += 1
    for count in quarters:
        assert abs(count - len(delays) / 4) <= 4 * math.sqrt(len(delays) * 3 / 16)


def test_health_check_detection_delay_matches_its_closed_form_mean():
    spec = {"kind": "health_check", "interval": 2.0, "timeout": 0.5, "fall": 3}
    delays = _detection_delays(spec, horizon_s=100_000)
    expected = 2.0 / 2 + (3 - 1) * 2.0 + 0.5
    mean, half_width = mean_confidence_interval(delays, 0.999)
    assert abs(mean - expected) <= half_width
    assert min(delays) >= 2 * 2.0 + 0.5 - 1e-9 and max(delays) <= 3 * 2.0 + 0.5 + 1e-9


def test_phi_accrual_suspects_after_the_silence_its_threshold_allows():
    """Steady heartbeats every second, sd floored at 100 ms: phi reaches 8 after
    1 + 0.1 * z(1 - 1e-8) = 1.561 s of silence, so a crash is detected 0.561 to 1.561 s later."""
    from statistics import NormalDist

    silence = 1.0 + 0.1 * NormalDist().inv_cdf(1 - 1e-8)
    delays = _detection_delays(
        {"kind": "phi_accrual", "interval": 1.0, "threshold": 8, "min_std": 0.1},
        horizon_s=100_000,
    )
    assert min(delays) >= silence - 1.0 - 1e-9 and max(delays) <= silence + 1e-9
    mean, half_width = mean_confidence_interval(delays, 0.999)
    assert abs(mean - (silence - 0.5)) <= half_width
