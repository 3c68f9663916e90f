"""Autoscaling: target tracking launches servers when the metric is above its target and
retires them when below, at the instants its evaluation period, cooldowns and provisioning
delay say, and new servers take traffic only once detection sees them healthy."""

from __future__ import annotations

import math

import pytest

from sim import parse_scenario, run
from sim.reliability import simulate_years


def autoscaled(rate: float | list, duration: float, **scaling) -> dict:
    """One worker per server, 100 ms exponential services (10/s each), a group of two that may
    grow to six, evaluated every minute against a 60% utilization target; ``rate`` is a rate,
    or a profile as ``[rate, (at, rate), ...]``."""
    if isinstance(rate, list):
        arrivals = {"rate": rate[0], "profile": [{"at": at, "rate": r} for at, r in rate[1:]]}
    else:
        arrivals = {"rate": rate}
    return {
        "name": "autoscaled",
        "duration": duration,
        "seed": 3,
        "workload": {
            "arrivals": arrivals,
            "classes": [
                {
                    "name": "page",
                    "share": 1,
                    "service_time": {"kind": "exponential", "mean": 0.1},
                    "timeout": 5,
                }
            ],
        },
        "servers": [
            {
                "name": "web",
                "count": 2,
                "autoscaling": {
                    "target": 0.6,
                    "min": 2,
                    "max": 6,
                    "evaluation_period": 60,
                    "scale_out_cooldown": 120,
                    "scale_in_cooldown": 180,
                    "provisioning_delay": 30,
                    **scaling,
                },
            }
        ],
        "metrics": {"step": 30},
    }


# A quiet shop (6/s: 30% of two servers) hit by a sale at 30/s from t = 300 s to 900 s.
SALE = [6, (300, 30), (900, 6)]


def timeline(result, name: str) -> list[tuple[str, float]]:
    """(component, time) of the events whose name starts with ``name``."""
    events = result.events
    rows = events[events.event.str.startswith(name)]
    return list(zip(rows.component, rows.time_s, strict=True))


def test_scale_outs_fall_at_the_evaluations_the_period_and_cooldown_allow():
    """Evaluations fall every 60 s. The one at 300 s averages the quiet minute before the sale
    (30% < 60%: no change); the one at 360 s sees two saturated servers (100%) and wants
    ceil(2 x 1 / 0.6) = 4; the 120 s scale-out cooldown forbids the next at 420 s, so the
    second scale-out (to the max of 6) comes at 480 s. Launched servers start after exactly
    the 30 s provisioning delay and take traffic after the health check's rise (2 passes,
    2 s apart: between 2 and 4 s + the 5 ms probe after the start)."""
    result = run(parse_scenario(autoscaled(SALE, 1200)))
    decisions = timeline(result, "scale out")
    assert [time for _, time in decisions] == [360.0, 480.0]
    launched = dict(timeline(result, "launched"))
    assert launched == {"web-3": 390.0, "web-4": 390.0, "web-5": 510.0, "web-6": 510.0}
    for server, at in timeline(result, "in service"):
        assert launched[server] + 2.0 <= at <= launched[server] + 4.005
    # Without the cooldown, the minute after the first scale-out already asks for more.
    eager = run(parse_scenario(autoscaled(SALE, 1200, scale_out_cooldown=0)))
    assert [time for _, time in timeline(eager, "scale out")][:2] == [360.0, 420.0]


def test_scale_ins_wait_for_their_cooldown_and_drain_before_the_stop():
    """After the sale the group shrinks back to its minimum, each scale-in at an evaluation at
    least 180 s after the last scaling, the newest server first, and the drain lets every
    attempt on a retired server finish (none is cut)."""
    result = run(parse_scenario(autoscaled(SALE, 1500)))
    events = result.events
    scalings = events[events.event.str.startswith("scale ")]
    last = -math.inf
    for row in scalings.itertuples():
        assert row.time_s % 60 == 0
        if row.event.startswith("scale in"):
            assert row.time_s - last >= 180
        last = row.time_s
    retired = events[events.event == "retired"]
    assert list(retired.detail) == ["0 attempts cut"] * len(retired)
    summary = result.summary["autoscaling"]["web"]
    assert summary["launched"] == summary["retired"] == 4
    assert result.timeseries["web.servers"].iloc[-1] == 2


def test_the_group_settles_where_the_offered_work_meets_the_target():
    """At a steady 30/s of 100 ms services the work needs 3 busy workers: at a 60% target that
    is 3 / 0.6 = 5 servers exactly, and at 24/s, 2.4 / 0.6 = 4. From two servers the group
    grows to that size and stays there; its measured utilization is then the target (within
    0.02: about 4 sd of a 50-minute mean of 5 M/M/1-like servers)."""
    for rate, servers in ((30, 5), (24, 4)):
        scenario = autoscaled(rate, 3600, scale_out_cooldown=60, scale_in_cooldown=60)
        scenario["warmup"] = 600
        summary = run(parse_scenario(scenario)).summary
        assert summary["autoscaling"]["web"]["mean_servers"] == servers
        assert summary["groups"]["web"]["utilization"] == pytest.approx(0.6, abs=0.02)


def test_the_bill_is_every_server_from_its_launch_to_its_stop():
    """Server-hours: the two first servers for the whole run, and each launched one from its
    scale-out decision (provisioning is billed) to its stop after the drain."""
    result = run(parse_scenario(autoscaled(SALE, 1500)))
    events = result.events
    started: dict[str, float] = {}
    decision = 0.0
    for row in events.itertuples():
        if row.event.startswith("scale out"):
            decision = row.time_s
        elif row.event == "launched":
            started[row.component] = decision
    stopped = {row.component: row.time_s for row in events[events.event == "retired"].itertuples()}
    expected = 2 * 1500 + sum(stopped[name] - at for name, at in started.items())
    summary = result.summary["autoscaling"]["web"]
    assert summary["server_hours"] * 3600 == pytest.approx(expected, rel=1e-12)
    assert summary["peak_servers"] == 6


def test_servers_that_are_not_launched_neither_fail_nor_serve():
    """Crashes every 100 s on average hit the group; the four servers never launched (the
    load stays low) are switched off, so every incident is on web-1 or web-2, and they take
    no attempt."""
    scenario = autoscaled(6, 1200)
    scenario["failures"] = [
        {
            "kind": "crash_repair",
            "target": {"group": "web"},
            "time_to_failure": {"kind": "exponential", "mean": 100},
            "time_to_repair": {"kind": "exponential", "mean": 10},
        }
    ]
    result = run(parse_scenario(scenario))
    assert set(result.incidents.component) == {"web-1", "web-2"}
    servers = result.summary["servers"]
    assert [servers[f"web-{n}"]["attempts"] for n in range(3, 7)] == [0, 0, 0, 0]


def test_the_long_horizon_mode_keeps_an_autoscaled_group_at_its_count():
    """Without requests there is no metric to track: ``ecsim availability`` runs the group at
    its count, and the servers beyond it stay off (no failure of theirs is an incident)."""
    scenario = autoscaled(6, 60)
    scenario["failures"] = [
        {
            "kind": "crash_repair",
            "target": {"group": "web"},
            "time_to_failure": {"kind": "exponential", "mean": "10d"},
            "time_to_repair": {"kind": "exponential", "mean": "1h"},
        }
    ]
    summary = simulate_years(parse_scenario(scenario), 2, seed=1, replication=0)
    # Two servers failing every ten days for two years: about 146 crashes (sd 12), not 438.
    assert 100 < summary["incidents"]["count"] < 200


def test_a_crash_never_makes_the_autoscaler_retire_the_healthy_servers():
    """Two of three servers crash for ten minutes; the survivor runs hot (about 90%) while the
    two crashed ones report nothing. As the HorizontalPodAutoscaler does, the autoscaler counts
    servers that report nothing as idle when the others ask for more and as busy when they ask
    for fewer: here that reverses the direction, so it does nothing, and the run is the run
    without autoscaling (it used to retire the survivor: ten minutes of no_backend)."""
    scenario = autoscaled(30, 1200, min=1, max=10, evaluation_period=30, scale_in_cooldown=60)
    scenario["servers"][0].update(count=3, workers=2, queue_capacity=100)
    scenario["failures"] = [
        {"kind": "crash", "target": {"server": name}, "at": 300, "duration": 600}
        for name in ("web-1", "web-2")
    ]
    summary = run(parse_scenario(scenario)).summary
    assert summary["autoscaling"]["web"]["scale_ins"] == 0
    assert summary["requests"]["no_backend"] == 0
    del scenario["servers"][0]["autoscaling"]
    fixed = run(parse_scenario(scenario)).summary
    assert summary["requests"]["ok"] == fixed["requests"]["ok"]


def test_a_rolling_deploy_skips_the_servers_autoscaling_has_not_launched():
    """A rollout over the group deploys the servers that run and finishes: the ones switched
    off start with the new release when launched (it used to wait forever on the first)."""
    scenario = autoscaled(6, 1800)
    scenario["maintenance"] = [
        {"target": {"group": "web"}, "at": 300, "batch": 1, "drain_timeout": 10, "deploy_time": 60}
    ]
    result = run(parse_scenario(scenario))
    assert result.summary["maintenance"]["servers_maintained"] == 2
    over = result.events[result.events.event == "maintenance over"]
    assert list(over.component) == ["web-1", "web-2"]
