"""Exact micro-scenarios: a handful of requests at chosen times with chosen work, and the exact
trace of what happens to each. No randomness is involved, so every time is asserted exactly."""

from __future__ import annotations

from typing import Any

import pytest

from sim import parse_scenario, run
from sim.model.cluster import Cluster
from sim.request import Cause, Request
from sim.streams import Streams


class Trace:
    """A cluster with no random arrivals, fed by hand; records (name, outcome, end time)."""

    def __init__(
        self,
        servers: list[dict[str, Any]],
        request_class: dict[str, Any] | None = None,
        policy: str = "round_robin",
        balancer: dict[str, Any] | None = None,
        failures: list[dict[str, Any]] | None = None,
    ) -> None:
        request_class = {
            "name": "request",
            "share": 1,
            "service_time": {"kind": "deterministic", "value": 1},
            **(request_class or {}),
        }
        scenario = parse_scenario(
            {
                "duration": 1000,
                "workload": {"arrivals": {"rate": 0}, "classes": [request_class]},
                "balancer": {"policy": policy, **(balancer or {})},
                "servers": servers,
                "failures": failures or [],
            }
        )
        self.cluster = Cluster.build(scenario, Streams(1))
        self.cluster.start()
        self.env = self.cluster.env
        self.ends: dict[str, tuple[str, float]] = {}
        self.causes: dict[str, Cause] = {}

    def send(self, name: str, at: float, work: float) -> None:
        def arrive(_):
            def ended(cause: Cause) -> None:
                assert name not in self.ends, f"{name} ended twice"
                self.ends[name] = (cause.outcome.label, self.env.now)
                self.causes[name] = cause

            self.cluster.client.send(Request(0, self.env.now, work, ended))

        self.env.timeout(at).callbacks.append(arrive)

    def run(self, until: float = 100.0) -> dict[str, tuple[str, float]]:
        self.env.run(until=until)
        return self.ends


def test_a_single_worker_serves_in_arrival_order_and_rejects_when_the_queue_is_full():
    trace = Trace([{"name": "web", "workers": 1, "queue_capacity": 1}])
    trace.send("first", at=0.0, work=1.0)
    trace.send("second", at=0.1, work=2.0)
    trace.send("third", at=0.2, work=1.0)  # one in service, one queued: no room
    trace.send("fourth", at=1.5, work=0.5)  # the queue has room again
    assert trace.run() == {
        "third": ("rejected", 0.2),
        "first": ("ok", 1.0),
        "second": ("ok", 3.0),
        "fourth": ("ok", 3.5),
    }


def test_workers_serve_in_parallel_and_speed_divides_the_work():
    trace = Trace([{"name": "web", "workers": 2, "speed": 2.0}])
    trace.send("a", at=0.0, work=2.0)
    trace.send("b", at=0.0, work=2.0)
    trace.send("c", at=0.0, work=2.0)
    assert trace.run() == {"a": ("ok", 1.0), "b": ("ok", 1.0), "c": ("ok", 2.0)}


def test_round_robin_alternates_between_servers():
    trace = Trace([{"name": "web", "count": 2, "workers": 1}])
    for index, name in enumerate("abcd"):
        trace.send(name, at=0.0 + index * 0.001, work=1.0)
    ends = trace.run()
    assert ends["a"] == ("ok", 1.0)
    assert ends["b"] == ("ok", 1.001)
    assert ends["c"] == ("ok", 2.0)  # queued behind a on web-1
    assert ends["d"] == ("ok", 2.001)


def test_a_client_timeout_ends_the_request_at_its_deadline_while_the_server_keeps_working():
    trace = Trace([{"name": "web", "workers": 1}], {"timeout": 1.5})
    trace.send("slow", at=0.0, work=2.0)
    trace.send("next", at=0.0, work=0.5)
    ends = trace.run()
    assert ends["slow"] == ("timeout", 1.5)
    # The server does not know the client left: "next" waits for the whole of "slow".
    assert ends["next"] == ("timeout", 1.5)
    server = trace.cluster.servers[0]
    assert server.busy == 0 and server.busy_time_s == pytest.approx(2.5)


def test_retries_back_off_exponentially_and_end_the_request_once():
    retries = {"max": 2, "backoff": 1.0, "multiplier": 2, "jitter": "none"}
    trace = Trace([{"name": "web", "workers": 1, "queue_capacity": 0}], {"retries": retries})
    trace.send("blocker", at=0.0, work=10.0)
    trace.send("retried", at=0.5, work=1.0)
    ends = trace.run()
    # Rejected at 0.5, retried at 1.5 (backoff 1), rejected, retried at 3.5 (backoff 2),
    # rejected again: no retries left.
    assert ends["retried"] == ("rejected", 3.5)
    assert ends["blocker"] == ("ok", 10.0)
    recorder = trace.cluster.recorder
    assert (recorder.arrivals, recorder.attempts, recorder.retries) == (2, 4, 2)


def test_a_retry_after_a_timeout_succeeds_on_a_free_server():
    retries = {"max": 1, "backoff": 0.5, "jitter": "none", "retry_on": ["timeout"]}
    trace = Trace([{"name": "web", "count": 2, "workers": 1}], {"timeout": 1.0, "retries": retries})
    trace.send("first", at=0.0, work=0.9)  # web-1
    trace.send("second", at=0.01, work=0.9)  # web-2
    trace.send("victim", at=0.02, work=0.5)  # web-1, queued behind "first" until 0.9
    ends = trace.run()
    # Times out at 1.02, is retried at 1.52 on web-2 (round-robin's turn, idle), done at 2.02.
    assert ends["victim"] == ("ok", pytest.approx(2.02))
    # Its abandoned first attempt was still served on web-1, from 0.9 to 1.4: wasted work.
    assert trace.cluster.servers[0].busy_time_s == pytest.approx(1.4)


def test_abandoned_attempts_keep_a_server_busy_and_retries_can_land_behind_them():
    retries = {"max": 1, "backoff": 0.5, "jitter": "none", "retry_on": ["timeout"]}
    trace = Trace([{"name": "web", "count": 2, "workers": 1}], {"timeout": 1.0, "retries": retries})
    trace.send("hog", at=0.0, work=5.0)  # web-1 until 5.0, whatever its client does
    trace.send("other", at=0.0, work=0.2)  # web-2
    trace.send("unlucky", at=0.1, work=0.5)  # web-1, behind the hog
    ends = trace.run()
    assert ends["other"] == ("ok", 0.2)
    # hog: times out at 1.0, retried at 1.5 on web-2, times out again at 2.5.
    assert ends["hog"] == ("timeout", 2.5)
    # unlucky: times out at 1.1, retried at 1.6 on web-1, still behind the first hog attempt.
    assert ends["unlucky"] == ("timeout", pytest.approx(2.6))


def test_least_connections_avoids_the_server_with_work_in_flight():
    trace = Trace([{"name": "web", "count": 2, "workers": 4}], policy="least_connections")
    trace.send("long", at=0.0, work=10.0)
    for index in range(4):
        trace.send(f"short-{index}", at=1.0 + index, work=0.5)
    trace.run()
    servers = trace.cluster.servers
    # The long request keeps web-1 at one connection; every short one finds web-2 idle.
    assert servers[0].accepted == [1] and servers[1].accepted == [4]


def test_closed_loop_users_wait_for_an_answer_and_think_before_the_next_request():
    scenario = parse_scenario(
        {
            "duration": 10.6,
            "workload": {
                "sessions": {
                    "users": 1,
                    "think_time": {"kind": "deterministic", "value": 1},
                    "steps": ["browse", "checkout"],
                },
                "classes": [
                    {"name": "browse", "service_time": {"kind": "deterministic", "value": 0.5}},
                    {"name": "checkout", "service_time": {"kind": "deterministic", "value": 1}},
                ],
            },
            "servers": [{"name": "web"}],
        }
    )
    cluster = Cluster.build(scenario, Streams(1))
    cluster.start()
    cluster.run(scenario.duration)
    # One cycle: think 1, browse 0.5, think 1, checkout 1 = 3.5 s; three cycles end by 10.5 s.
    assert [sum(c) for c in cluster.recorder.causes] == [3, 3]
    assert cluster.recorder.measurement().latency[0].mean() == pytest.approx(0.5)


def test_an_answer_due_at_the_very_deadline_wins_over_the_timeout():
    trace = Trace([{"name": "web", "workers": 10}], {"timeout": 1.0})
    for index, name in enumerate("abc"):
        trace.send(name, at=index * 0.25, work=1.0)
    assert trace.run() == {"a": ("ok", 1.0), "b": ("ok", 1.25), "c": ("ok", 1.5)}


def test_utilization_counts_only_work_done_inside_the_window():
    """One worker busy for the whole run is 100% utilized, even with a service longer than
    the run (work that starts inside the window but ends after it is not counted)."""
    scenario = parse_scenario(
        {
            "duration": 10,
            "metrics": {"step": 5},
            "workload": {
                "sessions": {
                    "users": 1,
                    "think_time": {"kind": "deterministic", "value": 0},
                    "steps": ["slow"],
                },
                "classes": [
                    {"name": "slow", "service_time": {"kind": "deterministic", "value": 25}}
                ],
            },
            "servers": [{"name": "web"}],
        }
    )
    result = run(scenario)
    assert result.summary["groups"]["web"]["utilization"] == pytest.approx(1.0)
    assert list(result.timeseries["web.utilization"]) == pytest.approx([1.0, 1.0])


def test_mean_queue_length_is_the_time_average_of_the_queue():
    """Three users, no think time, one worker, 1 s services: two always wait."""
    scenario = parse_scenario(
        {
            "duration": 10,
            "workload": {
                "sessions": {
                    "users": 3,
                    "think_time": {"kind": "deterministic", "value": 0},
                    "steps": ["page"],
                },
                "classes": [
                    {"name": "page", "service_time": {"kind": "deterministic", "value": 1}}
                ],
            },
            "servers": [{"name": "web"}],
        }
    )
    assert run(scenario).summary["groups"]["web"]["mean_queue_length"] == pytest.approx(2.0)


def test_least_response_time_learns_only_from_answers_not_from_refusals():
    """An instant refusal from a full server is no evidence that it is fast."""
    trace = Trace(
        [{"name": "full", "workers": 1, "queue_capacity": 0}, {"name": "roomy", "workers": 8}],
        policy="least_response_time",
    )
    policy = trace.cluster.balancer.policy
    for index in range(8):
        trace.send(f"r{index}", at=0.01 * index, work=1.0)
    trace.run()
    # Each backend's estimate holds only real answers of about 1 s, never a 0 s refusal.
    assert all(value is None or value >= 0.99 for value in policy._estimate_s)


@pytest.mark.parametrize(
    ("duration", "step"),
    [(10, 0.1), (60, 0.3), pytest.param(3600, 0.2, marks=pytest.mark.slow), (0.7, 0.1)],
)
def test_time_series_rows_fall_on_exact_multiples_of_the_step(duration, step):
    scenario = parse_scenario(
        {
            "duration": duration,
            "metrics": {"step": step},
            "workload": {
                "arrivals": {"rate": 1},
                "classes": [
                    {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.1}}
                ],
            },
            "servers": [{"name": "web"}],
        }
    )
    api = run(scenario)
    with_progress = run(scenario, progress=lambda fraction: None)
    rows = round(duration / step)
    assert len(api.timeseries) == rows == len(with_progress.timeseries)
    assert list(api.timeseries["time_s"]) == [k * step for k in range(rows)]
    assert api.summary == with_progress.summary


def test_a_long_retry_chain_caps_its_backoff_instead_of_overflowing():
    from sim.model.client import Client
    from sim.scenario import RetrySpec

    retries = RetrySpec.model_validate(
        {"max": 100, "backoff": 0.001, "max_backoff": 2, "multiplier": 1000, "jitter": "none"}
    )
    assert Client._backoff_s(retries, 100, iter(())) == 2.0  # 1000^99 ms, capped at 2 s
