"""Planned maintenance: rolling deploys drain, stop and restart servers a batch at a time, and
their downtime is kept apart from the failures'."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim import load_scenario, parse_scenario, run
from sim.reliability import YEAR_S, markov_availability, simulate_years


def rolling_deploy(rate: float, duration: float, **extra) -> dict:
    """Eight servers of ten workers, 100 ms exponential services: ``rate`` / 800 busy; a
    rolling deploy of the group, two at a time, from t = 60 s."""
    return {
        "name": "rolling",
        "duration": duration,
        "seed": 11,
        "workload": {
            "arrivals": {"rate": rate},
            "classes": [
                {"name": "page", "share": 1, "service_time": {"kind": "exponential", "mean": 0.1}}
            ],
        },
        "balancer": {"policy": "least_connections"},  # health checks every 2 s, rise 2
        "servers": [{"name": "web", "count": 8, "workers": 10}],
        "maintenance": [
            {
                "target": {"group": "web"},
                "at": 60,
                "batch": 2,
                "drain_timeout": 10,
                "deploy_time": 60,
                **extra,
            }
        ],
        "metrics": {"step": 5},
    }


def out_of_rotation_spells(events) -> list[tuple[str, float, float]]:
    """(server, left, came back) for every spell out of rotation in the timeline."""
    spells, left = [], {}
    for row in events.itertuples():
        if row.event == "out of rotation":
            left[row.component] = row.time_s
        elif row.event == "in rotation":
            spells.append((row.component, left.pop(row.component), row.time_s))
    return spells


def test_a_rolling_deploy_at_30_percent_fails_nothing_and_takes_one_batch_at_a_time():
    result = run(parse_scenario(rolling_deploy(rate=240, duration=360)))
    summary = result.summary
    assert summary["requests"]["ok"] == summary["requests"]["ended"]
    maintenance = summary["maintenance"]
    assert maintenance["servers_maintained"] == 8
    assert maintenance["attempts_cut"] == 0 and maintenance["failed_requests"] == 0
    spells = out_of_rotation_spells(result.events)
    assert sorted(name for name, _, _ in spells) == [f"web-{i}" for i in range(1, 9)]
    # Each server is out for the drain (its last 100 ms services), the 60 s deploy and the
    # health checks' rejoin: at most an interval to the first probe, then rise - 1 more.
    for _, left, back in spells:
        assert 60 < back - left < 60 + 10 + 2 * 2.0 + 0.1
    assert maintenance["capacity_lost_s"] == pytest.approx(sum(b - a for _, a, b in spells))
    # One batch at a time: never more than two servers out at once, and the next batch
    # leaves only once the previous one is back.
    for _, left, _ in spells:
        assert sum(a <= left < b for _, a, b in spells) <= 2
    batches = sorted({left for _, left, _ in spells})
    assert len(batches) == 4
    for earlier, later in itertools.pairwise(batches):
        assert later >= max(b for _, a, b in spells if a == earlier)
    # Back through detection: every return to rotation is the detector's verdict.
    returns = result.events[result.events.event == "in rotation"]
    assert set(returns.detail) == {"detected up"}
    assert summary["availability"]["excluding_planned"] == 1.0


def test_at_90_percent_the_lost_capacity_shows_as_a_queue_growing_at_the_fluid_rate():
    """With two of eight servers stopped, 720/s meet 60 workers serving 600/s: the queue grows
    at 120/s (the fluid limit of an overloaded queue). Over 40 s its random part has a standard
    deviation of about sqrt((720 + 600) x 40) = 230 requests, 5% of the 4,800 it grows by:
    the slope is held to 15%."""
    result = run(parse_scenario(rolling_deploy(rate=720, duration=130)))
    rows = result.timeseries
    queue_at = dict(zip(rows.time_s + 5, rows["web.queue_length"], strict=True))  # row ends
    stopped = result.events[result.events.event == "stopped for maintenance"].time_s.max()
    start, end = np.ceil(stopped / 5) * 5 + 5, np.ceil(stopped / 5) * 5 + 45
    slope = (queue_at[end] - queue_at[start]) / (end - start)
    assert slope == pytest.approx(120, rel=0.15)
    maintenance = result.summary["maintenance"]
    assert maintenance["capacity_lost_fraction"] > 0


def test_attempts_cut_at_the_drain_timeout_are_the_requests_lost_to_it():
    """A zero drain timeout stops each server with its work in flight: without retries or
    other failures, every attempt cut is a request failed with a crashed server's cause."""
    result = run(parse_scenario(rolling_deploy(rate=480, duration=200, drain_timeout=0)))
    summary = result.summary
    cut = summary["maintenance"]["attempts_cut"]
    assert cut > 0
    assert summary["requests"]["error_by_cause"]["server_crash"] == cut


def test_a_crash_during_a_deploy_keeps_the_server_down_until_it_is_repaired():
    """Faults and maintenance nest on one server: the deploy ends, but the crash still holds
    it down; it rejoins once repaired and detected, and only then does the rollout go on."""
    scenario = rolling_deploy(rate=50, duration=400, batch=8)
    scenario["failures"] = [
        {"kind": "crash", "target": {"server": "web-1"}, "at": 90, "duration": 200}
    ]
    result = run(parse_scenario(scenario))
    events = result.events[result.events.component == "web-1"]
    restarted = events[events.event == "restarted after maintenance"].time_s.iloc[0]
    over = events[events.event == "maintenance over"].time_s.iloc[0]
    assert restarted == pytest.approx(120, abs=1)
    assert 290 < over < 290 + 2 * 2.0 + 0.1


def test_planned_downtime_over_years_is_the_deploys_plus_the_rejoin_and_is_kept_apart():
    """Four servers, three needed, a weekly deploy two at a time: each batch takes the
    service down from its drain until the first of its two servers is back. A batch costs the
    600 s deploy plus the earlier of two health-check rejoins, U(0, 2 s) + 2 s + 5 ms each:
    the minimum of two U(0, 2) has mean 2/3 s and standard deviation 0.47 s, so over 2 x 105
    batches the total has a standard deviation of 7 s, held to 30 s."""
    scenario = parse_scenario(
        {
            "name": "weekly",
            "duration": 60,
            "workload": {
                "arrivals": {"rate": 1},
                "classes": [
                    {
                        "name": "page",
                        "share": 1,
                        "service_time": {"kind": "exponential", "mean": 0.01},
                    }
                ],
            },
            "servers": [{"name": "web", "count": 4}],
            "maintenance": [
                {
                    "target": {"group": "web"},
                    "at": "1d",
                    "every": "7d",
                    "batch": 2,
                    "deploy_time": "10m",
                }
            ],
            "slo": {"min_servers": 3},
        }
    )
    years = 2.0
    summary = simulate_years(scenario, years, seed=3, replication=0)
    rollouts = int((years * YEAR_S / 86400 - 1) // 7) + 1
    expected = rollouts * 2 * (600 + 2.005 + 2 / 3)
    availability = summary["availability"]
    assert availability["downtime_by_cause_s"]["maintenance"] == pytest.approx(expected, abs=30)
    assert availability["downtime_s"] == pytest.approx(expected, abs=30)
    assert availability["excluding_planned"] == pytest.approx(1.0, abs=1e-12)
    assert "planned maintenance" in markov_availability(scenario)["reason"]


def test_a_deploy_shorter_than_detection_still_comes_back_through_detection():
    """A 1 s deploy is over before health checks (every 2 s, fall 3) could see the server
    down: it still rejoins only when rise (2) probes in a row have passed, as HAProxy waits
    for a server set back to READY to be UP."""
    result = run(parse_scenario(rolling_deploy(rate=50, duration=120, deploy_time=1, batch=8)))
    events = result.events
    for name in [f"web-{i}" for i in range(1, 9)]:
        mine = events[events.component == name]
        restarted = mine[mine.event == "restarted after maintenance"].time_s.iloc[0]
        back = mine[mine.event == "in rotation"]
        assert list(back.detail) == ["detected up"]
        assert restarted + 2.0 <= back.time_s.iloc[0] <= restarted + 2 * 2.0 + 0.1


def test_a_server_stopped_for_maintenance_is_replaced_by_a_hot_spare_at_once():
    """A drained server held down for its deploy is out of the healthy count the moment it is
    stopped, though its routing does not change then (draining took it out already): the
    spare's promotion starts at that instant, not at the next change of the rotation."""
    from test_cli import ROOT

    scenario = load_scenario(
        ROOT / "scenarios" / "rolling_deploy.yaml",
        ["duration=200", "servers[0].standby={count: 1, mode: hot, promotion_delay: 10s}"],
    )
    events = run(scenario).events
    stopped = events[events.event == "stopped for maintenance"].time_s
    promoted = events[events.event == "promotion started"].time_s
    assert len(stopped) >= 1 and len(promoted) >= 1
    assert promoted.iloc[0] == stopped.iloc[0]
