"""Process pauses (stop-the-world GC, a VM freeze): a paused server does nothing, refuses
nothing, and answers everything late."""

from __future__ import annotations

import pytest
from test_model import Trace

from sim import parse_scenario, run


def paused_trace(*spells: tuple[float, float]) -> Trace:
    """One single-worker server, paused during each (start, end) spell."""
    trace = Trace([{"name": "web", "count": 1, "workers": 1}])
    server = trace.cluster.servers[0]
    for start, end in spells:
        trace.env.timeout(start).callbacks.append(lambda _: server.pause())
        trace.env.timeout(end).callbacks.append(lambda _: server.resume())
    return trace


def test_a_pause_delays_every_service_by_its_length_and_refuses_nothing():
    trace = paused_trace((10.0, 12.0))
    trace.send("running", at=9.5, work=1.0)  # half done when the pause begins
    trace.send("queued", at=9.8, work=1.0)  # waits for the one worker
    trace.send("during", at=11.0, work=0.5)  # arrives while nothing answers
    trace.send("after", at=20.0, work=1.0)
    ends = trace.run(until=30.0)
    assert ends["running"] == ("ok", pytest.approx(12.5))
    assert ends["queued"] == ("ok", pytest.approx(13.5))
    assert ends["during"] == ("ok", pytest.approx(14.0))
    assert ends["after"] == ("ok", pytest.approx(21.0))
    assert trace.cluster.servers[0].refused == 0


def test_a_service_whose_end_falls_in_a_pause_takes_what_it_had_left_after_it():
    trace = paused_trace((40.2, 41.0), (50.5, 51.0), (52.0, 53.5))
    trace.send("short", at=40.0, work=0.5)  # 0.3 left at 40.2: ends at 41.3
    trace.send("twice", at=50.0, work=3.0)  # 0.5 done, then 1.0, then 1.5: ends at 54.5
    ends = trace.run(until=60.0)
    assert ends["short"] == ("ok", pytest.approx(41.3))
    assert ends["twice"] == ("ok", pytest.approx(55.0))


def test_a_crash_during_a_pause_fails_what_waited_as_a_crash_does():
    trace = paused_trace((10.0, 20.0))
    server = trace.cluster.servers[0]
    trace.send("running", at=9.5, work=1.0)
    trace.send("during", at=11.0, work=1.0)
    trace.env.timeout(15.0).callbacks.append(lambda _: server.crash())
    ends = trace.run(until=30.0)
    assert ends["running"] == ("error", 15.0)
    assert ends["during"] == ("error", 15.0)
    assert not server.paused  # the resume at 20 s finds nothing to resume


def test_a_balancer_crash_during_a_pause_fails_what_waits_for_the_pause_as_well():
    """An attempt that reached a paused server waits, its connection open through the balancer:
    when the balancer dies, that connection dies with it, as for the attempts queued or in
    service (it used to be answered ok through the dead balancer when the pause ended)."""
    trace = paused_trace((10.0, 20.0))
    trace.send("running", at=9.5, work=1.0)
    trace.send("during", at=11.0, work=1.0)
    trace.env.timeout(15.0).callbacks.append(lambda _: trace.cluster.balancer.crash())
    ends = trace.run(until=30.0)
    assert ends["running"] == ("error", 15.0)
    assert ends["during"] == ("error", 15.0)


def test_health_checks_suspect_a_paused_server_as_often_as_the_probe_grid_predicts():
    """Probes every I = 2 s, timeout 1 s, fall 3, a pause of d = 5.5 s at a random phase: a
    probe fails when it waits past its timeout for the pause to end, i.e. when it is sent in
    the first d - 1 s + 5 ms of the pause. Three failures in a row need three probes there:
    probability (d - 1 + 0.005 - 2 I) / I = 0.2525 per pause. Over 200 pauses that is 50.5
    false suspicions, with a binomial standard deviation of 6.1: held to 4 of them."""
    scenario = parse_scenario(
        {
            "duration": 200 * 60,
            "seed": 5,
            "workload": {
                "arrivals": {"rate": 0},
                "classes": [
                    {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 1}}
                ],
            },
            "balancer": {
                "detection": {"kind": "health_check", "interval": 2, "timeout": 1, "fall": 3}
            },
            "servers": [{"name": "web", "count": 1}],
            "failures": [
                {
                    "kind": "pause",
                    "target": {"server": "web-1"},
                    "duration": 5.5,
                    "time_between": {"kind": "exponential", "mean": 54.5},
                }
            ],
        }
    )
    summary = run(scenario).summary
    pauses = summary["incidents"]["count"]
    expected = pauses * 0.2525
    spread = (pauses * 0.2525 * 0.7475) ** 0.5
    assert abs(summary["incidents"]["false_suspicions"] - expected) < 4 * spread


def phi_pauses(seconds: float, acceptable_pause: float, pauses: int) -> dict:
    """One server watched by phi-accrual (interval 1 s, threshold 8, min_std 0.1 s), paused
    for ``seconds`` every 120-180 s: a window of 100 heartbeats holds at most one pause, so
    the history's spread stays under min_std and the silence limit is fixed."""
    scenario = parse_scenario(
        {
            "duration": pauses * 150,
            "seed": 9,
            "workload": {
                "arrivals": {"rate": 0},
                "classes": [
                    {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 1}}
                ],
            },
            "balancer": {
                "detection": {
                    "kind": "phi_accrual",
                    "interval": 1,
                    "threshold": 8,
                    "acceptable_pause": acceptable_pause,
                }
            },
            "servers": [{"name": "web", "count": 1}],
            "failures": [
                {
                    "kind": "pause",
                    "target": {"server": "web-1"},
                    "duration": seconds,
                    "time_between": {"kind": "uniform", "low": 120, "high": 180},
                }
            ],
        }
    )
    return run(scenario).summary["incidents"]


@pytest.mark.parametrize(
    ("seconds", "acceptable_pause"), [(0.5, 1.0), (0.5, 0.0), (1.0, 1.0), (1.0, 0.0)]
)
def test_phi_accrual_suspects_a_paused_server_as_the_closed_form_says(seconds, acceptable_pause):
    """The silence limit is L = 1 s + acceptable_pause + 0.1 s x z(1e-8) = 1.561 s +
    acceptable_pause. A pause of d beginning A ~ U(0, 1 s) after the last heartbeat makes
    the monitor wait A + d for the next (sent late, at the resume): a false suspicion when
    A + d > L, with probability clip(1 - (L - d), 0, 1): 0 for a 0.5 s pause with or
    without the allowance (the issue's 20 pauses), 0.439 for a 1 s pause without it, 0 with
    it. Counts are held to 4 binomial standard deviations."""
    pauses = 20 if seconds == 0.5 else 200
    incidents = phi_pauses(seconds, acceptable_pause, pauses)
    limit = 1.0 + acceptable_pause + 0.1 * 5.612
    chance = min(1.0, max(0.0, 1.0 - (limit - seconds)))
    count = incidents["count"]
    spread = (count * chance * (1 - chance)) ** 0.5
    assert abs(incidents["false_suspicions"] - count * chance) <= 4 * spread
    assert count >= 0.9 * pauses


@pytest.mark.parametrize("pause_s", [20.0, 0.5])
def test_a_paused_servers_traffic_moves_only_when_detection_takes_it_out(pause_s):
    """A paused server refuses nothing: its requests wait on it until health checks (2 s,
    timeout 1 s, fall 3) take it out, between 5 and 7 s into a 20 s pause. So the failover
    time is the time to detect, never 0. A 0.5 s pause is over before any probe times out:
    nothing is detected and no traffic moves."""
    data = {
        "name": "pause",
        "seed": 3,
        "duration": 60,
        "workload": {
            "arrivals": {"rate": 50},
            "classes": [
                {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.01}}
            ],
        },
        "servers": [{"name": "web", "count": 3}],
        "failures": [
            {"kind": "pause", "target": {"server": "web-1"}, "at": 20, "duration": pause_s}
        ],
    }
    incidents = run(parse_scenario(data)).incidents
    (incident,) = incidents.itertuples()
    if pause_s > 7:
        assert 5.0 <= incident.time_to_detect_s <= 7.0
        assert incident.failover_time_s == incident.time_to_detect_s
    else:
        assert incident.time_to_detect_s != incident.time_to_detect_s  # NaN: never detected
        assert incident.failover_time_s != incident.failover_time_s
