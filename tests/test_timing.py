"""A run always ends: a clock that stops moving is caught and the loop that stopped it named."""

from __future__ import annotations

import pytest
import simpy

import sim.model.timing as timing
from sim import parse_scenario, run
from sim.distributions import Deterministic
from sim.model.timing import StalledClockError, advance


def test_advance_runs_to_the_horizon_like_env_run():
    env = simpy.Environment()
    ticks = []

    def clock():
        while True:
            ticks.append(env.now)
            yield env.timeout(1.0)

    env.process(clock())
    advance(env, 3.5)
    assert env.now == 3.5 and ticks == [0.0, 1.0, 2.0, 3.0]


def test_a_loop_that_never_lets_time_pass_is_stopped_and_named():
    env = simpy.Environment()

    def retry_at_once():
        while True:
            yield env.timeout(0)

    env.process(retry_at_once())
    with pytest.raises(StalledClockError) as raised:
        advance(env, 10.0, stall_events=100_000)
    assert raised.value.now == 0.0
    assert "retry_at_once" in str(raised.value)


def test_the_issue_case_past_validation_is_stopped_by_the_guard(monkeypatch):
    """One closed-loop user with zero think time whose only server crashes at 1 s: validation
    refuses it (see invalid_scenarios/zero_think_time_with_a_crash.yaml); forced past
    validation, the guard stops it at 1 s and names the shoppers' loop."""
    scenario = parse_scenario(
        {
            "duration": 5,
            "workload": {
                "sessions": {
                    "users": 1,
                    "think_time": {"kind": "exponential", "mean": 0.001},
                    "steps": ["browse"],
                },
                "classes": [
                    {"name": "browse", "service_time": {"kind": "exponential", "mean": 0.04}}
                ],
            },
            "servers": [{"name": "web"}],
            "failures": [{"kind": "crash", "target": {"server": "web-1"}, "at": 1}],
        }
    )
    sessions = scenario.workload.sessions.model_copy(
        update={"think_time": Deterministic(value=0.0)}
    )
    workload = scenario.workload.model_copy(update={"sessions": sessions})
    forced = scenario.model_copy(update={"workload": workload})
    monkeypatch.setattr(timing, "STALL_EVENTS", 200_000)
    with pytest.raises(StalledClockError) as raised:
        run(forced)
    assert raised.value.now == pytest.approx(1.0)
    assert "ClosedLoopUsers._shopper" in str(raised.value)
