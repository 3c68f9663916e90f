"""Failures as real systems live them: the truth changes at once, the balancer learns later.

Exact micro-scenarios with deterministic times, then the detectors against their closed forms.
"""

from __future__ import annotations

import pytest
from test_model import Trace

from sim import parse_scenario, run


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


def test_every_failure_carries_the_cause_that_made_it():
    """Refused by a crashed server and lost in its crash: server_crash; cut off or never
    connected through a partition: unreachable; the balancer down: balancer_down."""
    trace = Trace([{"name": "web", "count": 2, "workers": 1}])
    web1, web2 = trace.cluster.servers
    balancer = trace.cluster.balancer
    trace.send("lost in the crash", at=0.0, work=5.0)  # web-1
    trace.send("cut off", at=0.1, work=5.0)  # web-2
    trace.env.timeout(1.0).callbacks.append(lambda _: web1.crash())
    trace.env.timeout(1.0).callbacks.append(lambda _: web2.disconnect())
    trace.send("refused", at=1.5, work=1.0)  # web-1: crashed, not yet detected
    trace.send("unanswered", at=1.6, work=1.0)  # web-2: unreachable, connect timeout 1 s
    trace.env.timeout(2.0).callbacks.append(lambda _: balancer.crash())
    trace.send("no balancer", at=2.5, work=1.0)
    trace.run(until=5.0)
    assert {name: cause.label for name, cause in trace.causes.items()} == {
        "lost in the crash": "server_crash",
        "cut off": "unreachable",
        "refused": "server_crash",
        "unanswered": "balancer_down",  # the balancer died at 2.0, before the timeout at 2.6
        "no balancer": "balancer_down",
    }
    assert all(cause.outcome.label == "error" for cause in trace.causes.values())


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
    # The first probe refused starts within one interval of the crash; the third, two
    # intervals later, is refused at once.
    assert 2 * 2 <= detect <= 3 * 2
    assert incident.failover_time_s == pytest.approx(detect + promotion_s, abs=1e-9)
    # Repaired at 70, back after two passing probes, within two intervals plus the probe time.
    assert 40 < incident.time_to_recover_s <= 40 + 2 * 2 + 0.005 + 1e-9


def test_a_hot_spare_down_when_needed_is_passed_over_then_promoted_when_repaired():
    """The only hot spare is down from 20 s to 100 s; web-1 dies for good at 30 s. Detected
    at about 35 s, web-1 leaves a gap the spare cannot fill; its repair at 100 s is what
    starts its promotion (no detection of the spare's return is needed), so it serves from
    107 s, after its 7 s promotion delay."""
    scenario = parse_scenario(
        {
            "duration": 200,
            "workload": one_class(),
            "balancer": {
                "detection": {"kind": "health_check", "interval": 2, "timeout": 1, "fall": 3}
            },
            "servers": [
                {
                    "name": "web",
                    "count": 2,
                    "standby": {"count": 1, "mode": "hot", "promotion_delay": 7},
                }
            ],
            "failures": [
                {"kind": "crash", "target": {"server": "web-standby-1"}, "at": 20, "duration": 80},
                {"kind": "crash", "target": {"server": "web-1"}, "at": 30},
            ],
        }
    )
    events = run(scenario).events
    spare = events[events.component == "web-standby-1"]
    assert list(zip(spare.time_s, spare.event, strict=True)) == [
        (20, "crash"),
        (100, "promotion started"),
        (100, "repaired"),
        (107, "in rotation"),
    ]


def test_a_spare_replaces_an_ejected_member_when_its_health_check_fails():
    """Outlier ejection takes crashed web-3 out within a second (its next 3 requests, at
    200/s, are refused at once); the health checks judge it down 3 probes later, 4 to 6 s
    after the crash (interval 2 s, fall 3, refused at once). That verdict, though it changes
    no routing, is what the spares' controller counts: the promotion starts then, not at the
    repair 2 minutes on."""
    scenario = parse_scenario(
        {
            "duration": 360,
            "workload": {
                "arrivals": {"rate": 200},
                "classes": [
                    {
                        "name": "browse",
                        "share": 1,
                        "service_time": {"kind": "exponential", "mean": 0.05},
                        "timeout": 3,
                    }
                ],
            },
            "balancer": {
                "detection": {"kind": "health_check", "interval": 2, "timeout": 1, "fall": 3},
                "outlier_ejection": {"consecutive_errors": 3, "ejection_time": 30},
            },
            "servers": [
                {
                    "name": "web",
                    "count": 4,
                    "workers": 8,
                    "standby": {"count": 1, "mode": "hot", "promotion_delay": 1},
                }
            ],
            "failures": [
                {"kind": "crash", "target": {"server": "web-3"}, "at": 60, "duration": 120}
            ],
        }
    )
    events = run(scenario).events
    ejected = events[(events.component == "web-3") & (events.event == "out of rotation")]
    assert list(ejected.detail)[:1] == ["ejected"] and 60 <= ejected.time_s.iloc[0] < 61
    promoted = events[events.event == "promotion started"].time_s
    assert len(promoted) == 1 and 60 + 4 <= promoted.iloc[0] <= 60 + 6


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


def test_the_per_server_view_says_which_server_was_the_problem():
    """web-1 crashes from 30 s to 60 s: it alone has errors, its time in rotation is the window
    less the span from its detection to its return, and every attempt reached one server."""
    scenario = parse_scenario(
        {
            "duration": 120,
            "metrics": {"step": 10, "per_server": True},
            "workload": one_class(rate=50, service=0.01),
            "servers": [{"name": "web", "count": 3, "workers": 4}],
            "failures": [
                {"kind": "crash", "target": {"server": "web-1"}, "at": 30, "duration": 30}
            ],
        }
    )
    result = run(scenario)
    servers = result.summary["servers"]
    events = result.events[result.events.component == "web-1"]
    out = events[events.event == "out of rotation"].time_s.iloc[0]
    back = events[events.event == "in rotation"].time_s.iloc[0]
    assert servers["web-1"]["time_in_rotation"] == pytest.approx(1 - (back - out) / 120)
    assert servers["web-2"]["time_in_rotation"] == servers["web-3"]["time_in_rotation"] == 1.0
    assert servers["web-1"]["errors"] == result.summary["requests"]["error"] > 0
    assert servers["web-2"]["errors"] == servers["web-3"]["errors"] == 0
    assert sum(s["attempts"] for s in servers.values()) == result.summary["attempts"]
    # The per-server time series adds up to the same, step by step.
    rows = result.servers
    assert len(rows) == 3 * 12
    by_step = rows.groupby("time_s").attempts.sum().tolist()
    assert by_step == result.timeseries.attempts.tolist()
    assert rows[rows.server == "web-1"].in_rotation_s.sum() == pytest.approx(120 - (back - out))


def test_requests_failed_during_overlapping_incidents_are_counted_once():
    """Both servers crash, at 100 s and 110 s, for a minute each: every request of the
    outage fails while both incidents are open; the summary counts each of them once (the
    sum over incidents would count the overlap twice)."""
    crash = {"kind": "crash", "target": {"server": "web-1"}, "at": 100, "duration": 60}
    scenario = parse_scenario(
        {
            "name": "overlap",
            "duration": 300,
            "workload": one_class(rate=20, service=0.01),
            "balancer": {"detection": {"kind": "health_check", "interval": 1.0}},
            "servers": [{"name": "web", "count": 2}],
            "failures": [crash, {**crash, "target": {"server": "web-2"}, "at": 110}],
        }
    )
    result = run(scenario)
    failed = result.summary["requests"]["ended"] - result.summary["requests"]["ok"]
    assert failed > 0
    assert result.summary["incidents"]["failed_requests"] == failed
    assert result.incidents.failed_requests.sum() > failed


@pytest.mark.parametrize(("threshold", "failed_share"), [(0.0, 0.0), (0.5, 0.75)])
def test_below_the_panic_threshold_the_balancer_routes_to_every_member(threshold, failed_share):
    """Envoy's healthy panic threshold. Three of four servers crash at 100 s for 100 s; round
    robin. Without it, the one healthy server takes everything once detection has spoken.
    At 50%, one healthy of four is below it: the balancer routes to all four, so exactly
    three attempts in four go to a dead server and are refused."""
    crashes = [
        {"kind": "crash", "target": {"server": f"web-{n}"}, "at": 100, "duration": 100}
        for n in (1, 2, 3)
    ]
    scenario = parse_scenario(
        {
            "name": "panic",
            "duration": 300,
            "warmup": 0,
            "workload": one_class(rate=40, service=0.01),
            "balancer": {
                "detection": {"kind": "health_check", "interval": 1.0},
                "panic_threshold": threshold,
            },
            "servers": [{"name": "web", "count": 4, "workers": 4}],
            "failures": crashes,
        }
    )
    result = run(scenario)
    events = result.events
    panics = events[events.event.str.startswith("panic")]
    if threshold:
        assert list(panics.event) == ["panic routing: to every member", "panic over"]
        start, end = panics.time_s
        assert 100 < start < 103 and 200 < end < 210  # detected down, then back up
    else:
        assert panics.empty
    requests = result.summary["requests"]
    # Outside the panic, only the few attempts in flight or sent before detection fail.
    assert requests["error"] == pytest.approx(failed_share * 40 * 100, abs=0.1 * 40 * 100)
    assert requests["no_backend"] == 0
