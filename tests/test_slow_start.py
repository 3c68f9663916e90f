"""Slow start and cold caches: a backend that rejoins the rotation ramps its weight linearly from
zero, as HAProxy's ``slowstart``, nginx's ``slow_start`` and Envoy's slow start mode (aggression
1) do, whatever the balancing policy; and a restarted server starts slow and warms up."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from sim import parse_scenario, run
from sim.model.balancing import BALANCING_POLICIES, Backend, RoundRobin
from sim.model.server import Server
from sim.model.slow_start import SlowStart
from sim.request import Attempt, Request

ALL_POLICIES = BALANCING_POLICIES.names()
WINDOW_S = 30.0
SERVERS = 4
RATE = 200.0
STEP_S = 5.0


def ramp_share(elapsed_s: np.ndarray, others_weight: float, weight: float = 1.0) -> np.ndarray:
    """The share the published rule gives a backend ``elapsed_s`` into its window: its weight
    ramps linearly (HAProxy, nginx, Envoy), so share = w f / (w f + others), f = elapsed / window.
    Zero before it joins."""
    ramped = weight * np.clip(elapsed_s / WINDOW_S, 0.0, 1.0)
    return np.where(elapsed_s < 0, 0.0, ramped / (ramped + others_weight))


def rejoin(policy: str, **extra) -> dict:
    """Four servers at 200/s; web-1 crashes at 10 s for 5 s and rejoins once health checks
    (every second, rise 2) pass again; per-server rows every 5 s."""
    scenario = {
        "name": "rejoin",
        "duration": 70,
        "warmup": 0,
        "workload": {
            "arrivals": {"rate": RATE},
            "classes": [
                {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.02}}
            ],
        },
        "balancer": {
            "policy": policy,
            "detection": {"kind": "health_check", "interval": 1.0},
            "slow_start": WINDOW_S,
        },
        "servers": [{"name": "web", "count": SERVERS, "workers": 4}],
        "failures": [{"kind": "crash", "target": {"server": "web-1"}, "at": 10, "duration": 5}],
        "metrics": {"step": STEP_S, "per_server": True},
    }
    for key, value in extra.items():
        scenario[key] = value
    return scenario


def event_time(events, component: str, event: str) -> float:
    times = events[(events.component == component) & (events.event == event)].time_s
    assert len(times) == 1, (component, event, events)
    return float(times.iloc[0])


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_a_rejoined_server_ramps_its_weight_linearly_under_every_policy(policy):
    """Per 5 s row while web-1 is in its window, its count C out of the N attempts of the row
    is held to the published ramp: share = f / (f + 3), f = elapsed / 30 s, rising from 0 to
    1/4. Tolerance, derived: the split is smooth weighted round-robin, which keeps C within
    1/2 of the sum of the shares q(t_i) at the attempts' times, so within 1 of it per row;
    Poisson arrivals are uniform in a row given N, so that sum is N q_mean with variance
    N var(q) over the row: |C - N q_mean| <= 1 + 4 sqrt(N var(q)), 2.2 to 2.8 attempts of
    ~1,000 (a binomial 4-sigma bound would be 14 to 52, and would not tell the weight ramp
    from a share ramp f / 4, which is 7 to 17 attempts away past the first row)."""
    result = run(parse_scenario(rejoin(policy)))
    events = result.events
    joined = event_time(events, "web-1", "in rotation")
    left = event_time(events, "web-1", "out of rotation")
    assert event_time(events, "web-1", "slow start over") == pytest.approx(joined + WINDOW_S)
    over = events[events.event == "slow start over"]
    assert list(over.component) == ["web-1"]  # the servers there from the start never ramp

    rows = result.servers
    total = rows.groupby("time_s").attempts.sum()
    mine = rows[rows.server == "web-1"].set_index("time_s").attempts
    checked = 0
    for start in total.index:
        end = start + STEP_S
        if start >= left and end <= joined:
            assert mine[start] == 0  # out of rotation
        if start < left or end <= joined or end > joined + WINDOW_S:
            continue  # not (wholly) in the window, or web-1 there before its crash
        times = np.linspace(start, end, 10_001)
        shares = ramp_share(times - joined, others_weight=SERVERS - 1)
        count, attempts = mine[start], total[start]
        tolerance = 1 + 4 * np.sqrt(attempts * shares.var())
        assert abs(count - attempts * shares.mean()) <= tolerance, (start, count, attempts)
        checked += 1
    assert checked >= 6


def test_the_ramp_follows_the_weights_and_restarts_when_the_backend_rejoins():
    """Exact, at fixed times. Weights 2, 1, 1, 1; the first backend joins at 0 with a 30 s
    window. At 15 s its weight is 2 x 1/2 = 1 of 4: exactly 100 attempts in 400. It leaves at
    20 s and rejoins at 25 s: at 40 s it is 15 s into its new window (the first window's end,
    at 30 s, no longer applies), so again 100 in 400; from 55 s it is in steady state, and the
    policy (round robin) gives it one in four."""
    env = simpy.Environment()
    pool = [Backend(i, f"web-{i + 1}", weight) for i, weight in enumerate((2, 1, 1, 1))]
    slow_start = SlowStart(env, WINDOW_S, RoundRobin().choose)

    def picks(count: int) -> int:
        return sum(slow_start.choose(pool) is pool[0] for _ in range(count))

    def at(time_s: float) -> None:
        env.run(until=time_s)

    assert picks(40) == 10  # no ramp: the policy's own choice
    slow_start.begin(pool[0])
    assert picks(400) == 0  # its weight is zero when it joins
    at(15)
    assert picks(400) == 100
    at(20)
    slow_start.end(pool[0])
    at(25)
    slow_start.begin(pool[0])
    at(40)
    assert slow_start.ramping
    assert picks(400) == 100
    at(56)
    assert not slow_start.ramping
    assert picks(400) == 100


def test_a_promoted_spare_ramps_too():
    """A hot spare admitted when web-1 is detected dead enters the rotation after its
    promotion delay, and starts from zero weight like a repaired server."""
    scenario = rejoin("round_robin")
    scenario["duration"] = 60
    scenario["servers"] = [
        {
            "name": "web",
            "count": SERVERS,
            "workers": 4,
            "standby": {"count": 1, "mode": "hot", "promotion_delay": 2},
        }
    ]
    scenario["failures"] = [{"kind": "crash", "target": {"server": "web-1"}, "at": 10}]
    events = run(parse_scenario(scenario)).events
    admitted = events[(events.component == "web-standby-1") & (events.event == "in rotation")]
    assert list(admitted.detail) == ["promoted"]
    joined = float(admitted.time_s.iloc[0])
    assert event_time(events, "web-standby-1", "slow start over") == pytest.approx(
        joined + WINDOW_S
    )


# -- cold caches ----------------------------------------------------------------------------


def test_a_restarted_server_starts_cold_and_warms_up_linearly_from_its_first_service():
    """Exact times. Factor 3, warm-up 60 s; a demand of 1 s. Warm from the start (1 s); after
    the repair at 10 s, the first service (at 12 s) takes 3 s; 30 s later the factor is
    1 + 2 x 1/2 = 2; from 60 s after the first service, 1 again. A new restart starts over."""
    env = simpy.Environment()
    server = Server(env, "web-1", "web", "default", 8, None, 1.0, cold_factor=3, warm_up_s=60)
    ended: dict[float, float] = {}
    server.respond = lambda attempt, cause: ended.setdefault(attempt.sent_at, env.now)

    def serve_at(time_s: float) -> None:
        env.run(until=time_s)
        server.submit(Attempt(Request(0, time_s, 1.0), time_s, float("inf")))

    serve_at(1)
    env.run(until=5)
    server.crash()
    env.run(until=10)
    server.repair()
    for time_s in (12, 42, 72, 80):
        serve_at(time_s)
    env.run(until=85)
    server.crash()
    server.repair()
    serve_at(90)
    env.run(until=100)
    assert ended == {1: 2, 12: 15, 42: 44, 72: 73, 80: 81, 90: 93}


def test_the_mean_service_time_of_a_restarted_server_follows_the_warm_up_schedule():
    """One server, 100/s of a deterministic 20 ms demand, 64 workers (no queueing, so a
    request's latency is its service time); cold_start factor 3, warm-up 30 s; it crashes at
    10 s for 5 s. Once back, the mean latency of a 5 s row is 20 ms x the mean factor over
    the row, 1 + 2 (1 - t / 30) from its first service (the first arrival after it rejoins).
    Tolerance, derived: demands are exact, so only where the ~500 arrivals fall in the row
    varies: 4 x 20 ms x sd(factor over the row) / sqrt(N), 0.34 ms; plus the factor's slope,
    2/30 per second, over what shifts the schedule: the first arrival after the rejoin
    (within 50 ms but for e^-5 of runs) and the up to 60 ms a service spans a row's edge,
    0.15 ms: 0.5 ms in all, 1% to 2% of means of 25 to 52 ms. Past the warm-up, 20 ms to
    within rounding."""
    scenario = {
        "name": "cold",
        "duration": 70,
        "warmup": 0,
        "workload": {
            "arrivals": {"rate": 100},
            "classes": [
                {"name": "r", "share": 1, "service_time": {"kind": "deterministic", "value": 0.02}}
            ],
        },
        "balancer": {"detection": {"kind": "health_check", "interval": 1.0}},
        "servers": [{"name": "web", "workers": 64, "cold_start": {"factor": 3, "warm_up": "30s"}}],
        "failures": [{"kind": "crash", "target": {"server": "web-1"}, "at": 10, "duration": 5}],
        "metrics": {"step": STEP_S},
    }
    result = run(parse_scenario(scenario))
    joined = event_time(result.events, "web-1", "in rotation")
    rows = result.timeseries.set_index("time_s")
    early = late = 0
    for start, row in rows.iterrows():
        end = start + STEP_S
        if start <= joined or end > result.scenario.duration:
            continue
        times = np.linspace(start, end, 10_001) - joined
        factors = 1 + 2 * np.clip(1 - times / 30.0, 0.0, 1.0)
        expected = 0.02 * factors.mean()
        tolerance = 4 * 0.02 * factors.std() / np.sqrt(row.ok) + 0.02 * (2 / 30) * (0.05 + 0.06)
        if end <= joined + 30:
            early += 1
            assert row.mean_latency_s == pytest.approx(expected, abs=tolerance), start
        elif start >= joined + 30:
            late += 1
            assert row.mean_latency_s == pytest.approx(0.02, rel=1e-9), start
    assert early >= 4 and late >= 3


def test_cold_start_is_off_unless_asked_and_hot_spares_are_warm():
    env = simpy.Environment()
    server = Server(env, "web-1", "web", "default", 1, None, 1.0)
    server.crash()
    server.repair()
    assert not server.warming
    spare = Server(
        env, "web-standby-1", "web", "default", 1, None, 1.0, cold_factor=3.0, warm_up_s=10.0
    )
    assert not spare.warming  # running (hot) from the start
    spare.power_off()
    spare.power_on()  # a cold spare boots
    assert spare.warming
