"""Health checks and heartbeats rest while a server is steady, and their verdicts stay those of
probing (or beating) every interval: same instants, same verdicts, same runs to the last bit."""

from __future__ import annotations

import json

import pytest

from sim import parse_scenario, run
from sim.model.detection import HealthChecks, _HeartbeatEmitter

HEALTH_CHECKS = {"kind": "health_check", "interval": 2, "rise": 2, "fall": 3}
HEARTBEATS = {"kind": "heartbeat", "interval": 1, "misses": 3}


def scenario(
    failures: list,
    duration: float = 1800.0,
    maintenance: list | None = None,
    detection: dict | None = None,
):
    data = {
        "name": "resting",
        "seed": 11,
        "duration": duration,
        "workload": {
            "arrivals": {"rate": 40},
            "classes": [
                {
                    "name": "r",
                    "share": 1,
                    "service_time": {"kind": "exponential", "mean": 0.05},
                    "timeout": 2,
                    "retries": {"max": 1},
                }
            ],
        },
        "balancer": {"detection": detection or HEALTH_CHECKS},
        "servers": [{"name": "web", "count": 6, "workers": 4}],
        "failures": failures,
    }
    if maintenance:
        data["maintenance"] = maintenance
    return parse_scenario(data)


EVERY_CHANGE = [
    {
        "kind": "crash_repair",
        "target": {"group": "web"},
        "time_to_failure": {"kind": "exponential", "mean": "10m"},
        "time_to_repair": {"kind": "exponential", "mean": "40s"},
    },
    {"kind": "partition", "target": {"server": "web-1"}, "at": 200, "duration": 30},
    {"kind": "pause", "target": {"server": "web-2"}, "at": 300, "duration": 7},
    {"kind": "pause", "target": {"server": "web-3"}, "at": 310, "duration": 0.4},
    {"kind": "slowdown", "target": {"server": "web-4"}, "at": 400, "duration": 60, "factor": 300},
    {"kind": "slowdown", "target": {"server": "web-5"}, "at": 500, "duration": 60, "factor": 3},
]
ROLLING = [{"target": {"group": "web"}, "at": 900, "batch": 2, "deploy_time": 20}]


def everything(result) -> str:
    """The summary, the incidents and the event log: every verdict and its instant."""
    return json.dumps(
        {
            "summary": {k: v for k, v in result.summary.items() if k != "wall_time_s"},
            "incidents": result.incidents.to_dict("list"),
            "events": result.events.to_dict("list"),
        },
        sort_keys=True,
        default=str,
    )


def counting(monkeypatch, detector: type, method: str) -> list[int]:
    """Count the calls of ``detector.method`` (a probe, a heartbeat) from now on."""
    calls = [0]
    original = getattr(detector, method)

    def counted(self, event):
        calls[0] += 1
        original(self, event)

    monkeypatch.setattr(detector, method, counted)
    return calls


def counting_probes(monkeypatch) -> list[int]:
    return counting(monkeypatch, HealthChecks, "_probe")


def test_a_steady_server_costs_rise_plus_one_probes_however_long_the_run(monkeypatch):
    probes = counting_probes(monkeypatch)
    run(scenario([], duration=3600))
    # Each of the 6 servers: `rise` (2) passes to count, then one probe that finds it steady.
    # Probing every 2 s would have taken 6 x 1,800.
    assert probes[0] == 6 * 3


def test_resting_checks_give_the_run_of_checks_that_never_rest(monkeypatch):
    """Crashes, a partition, a long and a short pause, a slowdown past the probe timeout and
    one within it, a rolling deploy: every change a probe can see, against checks that probe
    every interval whatever happens (the periodic definition of a health check)."""
    resting = run(scenario(EVERY_CHANGE, maintenance=ROLLING))
    probes = counting_probes(monkeypatch)
    monkeypatch.setattr(HealthChecks, "_steady", lambda self, server: False)
    periodic = run(scenario(EVERY_CHANGE, maintenance=ROLLING))
    assert probes[0] > 6 * 900 * 0.9  # it did probe every interval (1,800 s / 2 s)
    assert resting.summary["incidents"]["count"] > 5
    assert everything(resting) == everything(periodic)


@pytest.mark.parametrize("probe_time", [0.0, 0.5, 1.0])
def test_answers_in_flight_when_a_server_changes_arrive_as_they_would(monkeypatch, probe_time):
    """An answer on its way when the server crashes still counts (the probe was answered
    before the crash), whatever the answer time up to the timeout."""
    failures = EVERY_CHANGE[:1]
    data = scenario(failures, duration=900).to_dict()
    data["balancer"]["detection"]["probe_time"] = probe_time
    resting = run(parse_scenario(data))
    monkeypatch.setattr(HealthChecks, "_steady", lambda self, server: False)
    periodic = run(parse_scenario(data))
    assert everything(resting) == everything(periodic)


def test_a_steady_server_costs_one_heartbeat_however_long_the_run(monkeypatch):
    beats = counting(monkeypatch, _HeartbeatEmitter, "_beat")
    run(scenario([], duration=3600, detection=HEARTBEATS))
    assert beats[0] == 6  # one each, where beating every second would take 6 x 3,600


def test_resting_heartbeats_give_the_run_of_heartbeats_that_never_rest(monkeypatch):
    """The same changes as for health checks, against heartbeats sent every interval whatever
    happens: the timeout (3 s) is longer than the short pause, shorter than the long one."""
    resting = run(scenario(EVERY_CHANGE, maintenance=ROLLING, detection=HEARTBEATS))
    monkeypatch.setattr(_HeartbeatEmitter, "_steady", lambda self, server: False)
    beating = run(scenario(EVERY_CHANGE, maintenance=ROLLING, detection=HEARTBEATS))
    assert resting.summary["incidents"]["count"] > 5
    assert everything(resting) == everything(beating)
