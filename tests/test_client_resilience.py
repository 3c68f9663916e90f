"""Client resilience, as a spec: circuit breakers, retry budgets and hedged requests.

Exact micro-scenarios (requests sent by hand, deterministic work, every time asserted), the
bounds the mechanisms promise (a budget's cap on amplification), and hedging held to a direct
calculation on the service-time distribution that nobody here wrote a simulation of.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats
from test_model import Trace as ModelTrace

from sim import parse_scenario, run
from sim.metrics import LatencyHistogram
from sim.model.cluster import Cluster
from sim.request import Cause
from sim.streams import Streams

QUIET_DETECTION = {"kind": "heartbeat", "interval": 1000, "misses": 1}
"""A detector so slow that no backend is taken out during a micro-scenario: failures reach
the client as refusals, exactly when they happen."""


class Trace(ModelTrace):
    """A cluster fed by hand with one request class, behind :data:`QUIET_DETECTION`; records
    (outcome, end time) and the cause per name."""

    def __init__(
        self,
        request_class: dict[str, Any],
        servers: list[dict[str, Any]],
        failures: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            servers, request_class, balancer={"detection": QUIET_DETECTION}, failures=failures
        )

    def server_attempts(self) -> int:
        return sum(server.attempts for server in self.cluster.servers)

    def client(self) -> dict[str, Any]:
        return self.cluster.client.summary()["request"]

    def breaker_events(self) -> list[tuple[float, str]]:
        return [
            (round(event["time_s"], 9), event["event"])
            for event in self.cluster.monitor.events
            if event["component"] == "client/request"
        ]


# -- circuit breaker ---------------------------------------------------------------------------


def test_a_breaker_opens_after_exactly_n_failures_sends_nothing_for_the_cool_down_then_probes():
    # Two workers and no queue: two hogs hold both until 10 s, so every attempt in between is
    # rejected at once. Requests come every 0.5 s from 0.25 s.
    breaker = {"consecutive_failures": 3, "cool_down": 5.1, "probes": 2}
    trace = Trace(
        {"circuit_breaker": breaker},
        [{"name": "web", "workers": 2, "queue_capacity": 0}],
    )
    trace.send("hog-1", at=0.0, work=10.0)
    trace.send("hog-2", at=0.01, work=10.0)
    times = [0.25 + 0.5 * k for k in range(28)]  # 0.25 ... 13.75
    for k, at in enumerate(times):
        trace.send(f"r{k}", at=at, work=0.9)
    reached: list[tuple[float, int]] = []
    trace.env.process(_watch_server_attempts(trace, reached))
    ends = trace.run(until=20.0)
    outcome = {k: (ends[f"r{k}"][0], trace.causes[f"r{k}"]) for k in range(len(times))}
    rejected, open_, ok = (
        ("rejected", Cause.QUEUE_FULL),
        ("error", Cause.CIRCUIT_OPEN),
        ("ok", Cause.OK),
    )
    # Failures 1 to 3 (0.25, 0.75, 1.25 s) reach the server; the third opens the breaker.
    assert [outcome[k] for k in range(3)] == [rejected] * 3
    # Open from 1.25 to 6.35 s: the ten requests of 1.75 ... 6.25 s fail fast, unsent.
    assert [outcome[k] for k in range(3, 13)] == [open_] * 10
    # Half-open at 6.35 s: the first probe (6.75 s) is rejected, so it opens again until 11.85 s;
    # everything from 7.25 to 11.75 s fails fast.
    assert outcome[13] == rejected
    assert [outcome[k] for k in range(14, 24)] == [open_] * 10
    # Half-open at 11.85 s (the hogs left at 10 s): exactly two probes, 12.25 and 12.75 s; the
    # request of 13.25 s finds both out and fails fast; the second probe's answer (13.65 s)
    # closes the breaker, and 13.75 s is sent again.
    assert [outcome[k] for k in (24, 25, 26, 27)] == [ok, ok, open_, ok]
    assert ends["r24"][1] == pytest.approx(13.15) and ends["r25"][1] == pytest.approx(13.65)
    # What reached the server, counted when it arrived: 2 hogs + 3 failures + 1 probe + 2
    # probes + the request after closing; nothing during either cool-down.
    assert trace.server_attempts() == 2 + 3 + 1 + 2 + 1
    assert all(count == 5 for at, count in reached if 1.25 < at < 6.35)
    assert all(count == 6 for at, count in reached if 6.75 < at < 11.85)
    assert trace.breaker_events() == [
        (1.25, "circuit open"),
        (6.35, "circuit half-open"),
        (6.75, "circuit open"),
        (11.85, "circuit half-open"),
        (13.65, "circuit closed"),
    ]
    client = trace.client()
    assert client["circuit_opens"] == 2
    assert client["circuit_open_s"] == pytest.approx(13.65 - 1.25)
    # A request refused by an open breaker is no attempt: only sent ones count.
    recorder = trace.cluster.recorder
    assert recorder.attempts == trace.server_attempts()
    assert recorder.arrivals == 2 + len(times)


def _watch_server_attempts(trace: Trace, seen: list[tuple[float, int]]):
    while True:
        yield trace.env.timeout(0.05)
        seen.append((trace.env.now, trace.server_attempts()))


def test_a_success_resets_the_count_of_consecutive_failures():
    trace = Trace(
        {"circuit_breaker": {"consecutive_failures": 3}},
        [{"name": "web", "workers": 1, "queue_capacity": 0}],
    )
    # A 1 s hog holds the only worker: f1 and f2 are rejected, then the hog's own answer (ok,
    # at 1 s) resets the count. hog2 holds the worker again from 1.1 s: f3, f4, f5 rejected.
    trace.send("hog", at=0.0, work=1.0)
    trace.send("f1", at=0.1, work=0.1)
    trace.send("f2", at=0.2, work=0.1)
    trace.send("hog2", at=1.1, work=1.0)
    for name, at in [("f3", 1.2), ("f4", 1.3), ("f5", 1.4), ("after", 1.5)]:
        trace.send(name, at=at, work=0.1)
    ends = trace.run(until=5.0)
    assert [ends[name][0] for name in ("f1", "f2", "f3", "f4", "f5")] == ["rejected"] * 5
    # Without the reset, f3 would have been the third failure in a row (open at 1.2 s).
    assert trace.breaker_events() == [(1.4, "circuit open")]
    assert ends["after"] == ("error", 1.5) and trace.causes["after"] == Cause.CIRCUIT_OPEN


def test_an_error_ratio_opens_the_breaker_once_the_window_holds_enough_attempts():
    # 50% over a 10 s window, judged from 4 results on, after every result (resilience4j).
    breaker = {"error_ratio": {"threshold": "50%", "window": 10, "min_requests": 4}}
    trace = Trace(
        {"circuit_breaker": breaker}, [{"name": "web", "workers": 1, "queue_capacity": 0}]
    )
    trace.send("ok-1", at=0.0, work=0.5)
    trace.send("fail-1", at=0.1, work=0.1)  # the worker is busy: rejected
    trace.send("ok-2", at=1.0, work=0.5)
    trace.send("fail-2", at=1.1, work=0.1)
    trace.send("after", at=1.6, work=0.1)
    ends = trace.run(until=5.0)
    # Results: fail (0.1 s), ok (0.5 s), fail (1.1 s): 2 of 3, too few to judge; ok-2's answer
    # at 1.5 s makes 2 failures of 4: 50%, at the threshold.
    assert trace.breaker_events() == [(1.5, "circuit open")]
    assert _details(trace) == ["error ratio 50.0% of 4 attempts in 10s"]
    assert ends["after"] == ("error", 1.6)


def _details(trace: Trace) -> list[str]:
    return [e["detail"] for e in trace.cluster.monitor.events if e["component"] == "client/request"]


# -- retry budget ------------------------------------------------------------------------------


def test_a_retry_the_budget_refuses_ends_the_request_with_its_last_failure_at_once():
    # 50% of first tries: the first failure finds half a token, the second a whole one.
    retries = {"max": 3, "backoff": 1.0, "jitter": "none", "budget": {"ratio": "50%"}}
    trace = Trace({"retries": retries}, [{"name": "web", "workers": 1, "queue_capacity": 0}])
    trace.send("hog", at=0.0, work=10.0)  # deposits 0.5
    trace.send("a", at=1.0, work=1.0)  # deposits 0.5: a whole token; rejected, retried at 2 s
    trace.send("b", at=1.5, work=1.0)  # deposits 0.5, rejected: 1.5 - 1 spent < 1 left
    ends = trace.run(until=30)
    assert ends["b"] == ("rejected", 1.5)
    # a's retry at 2 s is rejected too; its second retry finds 0.5 left and is refused.
    assert ends["a"] == ("rejected", 2.0)
    assert trace.client()["budget_denied"] == 2
    assert trace.cluster.recorder.retries == 1


@pytest.mark.parametrize("min_per_second", [0.0, 5.0])
def test_a_retry_budget_of_10_percent_keeps_attempts_per_request_within_1_1_in_an_outage(
    min_per_second,
):
    """Every server is down for the whole run, and every failure wants up to 3 retries.

    The bound is exact, not statistical (proof in ``sim/model/retry_budget.py``): over disjoint
    windows, retries <= 10% of first tries + min_per_second x (duration + window). Without the
    budget the same outage costs 4 attempts per request.
    """
    duration, window, rate = 100.0, 10.0, 200.0
    scenario = parse_scenario(
        {
            "duration": duration,
            "workload": {
                "arrivals": {"rate": rate},
                "classes": [
                    {
                        "name": "browse",
                        "share": 1,
                        "service_time": {"kind": "exponential", "mean": 0.01},
                        "retries": {
                            "max": 3,
                            "backoff": 0.01,
                            "budget": {
                                "ratio": "10%",
                                "min_per_second": min_per_second,
                                "window": window,
                            },
                        },
                    }
                ],
            },
            "servers": [{"name": "web", "count": 2, "workers": 4}],
            "failures": [{"kind": "crash", "target": {"group": "web"}, "at": 0}],
            "metrics": {"step": duration},
        }
    )
    summary = run(scenario).summary
    arrived = summary["requests"]["arrived"]
    assert summary["requests"]["ok"] == 0
    # Upper bound: windows of 10 slices reach back at least 0.9 window, hence at most
    # duration / (0.9 window) + 1 disjoint ones, each with at most min_per_second x window.
    assert summary["retries"] <= 0.1 * arrived + min_per_second * (duration / 0.9 + window)
    if min_per_second == 0:
        assert summary["attempts_per_request"] <= 1.1
    # Lower bound: the budget, not the retry policy, binds. Every failure is instant and asks
    # for a retry, so at the end of each of the duration / window aligned windows less than
    # one token is left: at most that many go unspent, plus the few retries decided in the
    # last backoff (at most 40 ms of them, at 20 a second) and not yet sent.
    assert summary["retries"] >= 0.1 * arrived + min_per_second * duration - duration / window - 1
    # Refused retries end with the failure they followed, never as circuit_open.
    requests = summary["requests"]
    assert requests["error_by_cause"]["circuit_open"] == 0
    assert requests["error_by_cause"]["server_crash"] + requests["no_backend"] == requests["ended"]
    assert summary["client"]["browse"]["budget_denied"] > 0.8 * arrived


# -- hedging: exact traces ---------------------------------------------------------------------

HEDGED = {"service_time": {"kind": "deterministic", "value": 0.5}, "hedging": {"delay": 1.0}}
"""Hedges draw their own work from the class's distribution: 0.5 s here."""


def test_the_first_answer_wins_and_the_others_are_cancelled_queued_or_in_service():
    trace = Trace(HEDGED, [{"name": "web", "count": 2, "workers": 1}])
    trace.send("filler", at=0.0, work=0.8)  # web-1; answered before its hedge is due
    trace.send("slow", at=0.01, work=5.0)  # web-2
    trace.send("waiting", at=0.02, work=0.1)  # web-1, behind filler
    trace.send("behind", at=0.03, work=0.1)  # web-2, behind slow
    ends = trace.run()
    # slow's hedge (1.01 s) goes to web-1, idle: it answers at 1.51 s and wins. slow's own
    # attempt is aborted on web-2, whose worker takes the next in its queue at once: behind.
    assert ends["slow"] == ("ok", pytest.approx(1.51))
    # behind's hedge (1.03 s) went to web-2 and queued behind behind itself; behind's own
    # answer (1.61 s) wins, and its queued hedge leaves the queue unserved.
    assert ends["behind"] == ("ok", pytest.approx(1.61))
    assert ends["filler"] == ("ok", 0.8) and ends["waiting"] == ("ok", pytest.approx(0.9))
    web1, web2 = trace.cluster.servers
    assert web2.busy_time_s == pytest.approx(1.5 + 0.1)  # slow's 5 s cut at 1.51 s; no hedge
    assert web1.busy_time_s == pytest.approx(0.8 + 0.1 + 0.5)
    assert sum(web2.accepted) == 3 and web2.busy == 0 and not web2.queue
    assert all(backend.active == 0 for backend in trace.cluster.backends)
    assert trace.client() == {
        "circuit_opens": 0,
        "circuit_open_s": 0.0,
        "budget_denied": 0,
        "hedges": 2,
        "hedge_wins": 1,
        "cancelled": 2,
    }
    recorder = trace.cluster.recorder
    assert (recorder.arrivals, recorder.attempts, recorder.retries) == (4, 6, 0)


def test_a_timeout_ends_the_whole_round_and_a_retry_opens_a_new_one_with_its_own_hedge():
    request_class = {
        **HEDGED,
        "service_time": {"kind": "deterministic", "value": 10},
        "timeout": 2.0,
        "retries": {"max": 1, "backoff": 0.5, "jitter": "none"},
    }
    trace = Trace(request_class, [{"name": "web", "count": 2, "workers": 4}])
    trace.send("stuck", at=0.0, work=10.0)
    ends = trace.run()
    # Round 1: 0 s, hedge at 1 s, both time out at 2 s (the hedge shares its round's deadline).
    # Round 2 (the retry): 2.5 s, hedge at 3.5 s, both time out at 4.5 s.
    assert ends["stuck"] == ("timeout", 4.5)
    recorder = trace.cluster.recorder
    assert (recorder.attempts, recorder.retries) == (4, 1)
    assert trace.client()["hedges"] == 2
    # Timed-out attempts are not cancelled: the servers do not know the client left, and
    # do the whole 10 s of each of the four.
    assert sum(server.busy_time_s for server in trace.cluster.servers) == pytest.approx(40.0)


def test_a_failed_attempt_waits_for_its_hedge_and_retries_come_only_when_all_have_failed():
    request_class = {**HEDGED, "retries": {"max": 1, "backoff": 0.25, "jitter": "none"}}
    servers = [{"name": "web", "count": 2, "workers": 1}]
    crash_web_1 = {"kind": "crash", "target": {"server": "web-1"}, "at": 1.25}
    one = Trace(request_class, servers, [crash_web_1])
    one.send("a", at=0.0, work=3.0)
    # a on web-1, its hedge at 1 s on web-2; web-1's crash at 1.25 s fails a's attempt, the
    # round waits for the hedge, which answers at 1.5 s: no retry.
    assert one.run() == {"a": ("ok", 1.5)}
    assert one.cluster.recorder.retries == 0 and one.client()["hedge_wins"] == 1

    crash_both = {"kind": "crash", "target": {"group": "web"}, "at": 1.25}
    both = Trace(request_class, servers, [crash_both])
    both.send("a", at=0.0, work=3.0)
    # Both attempts fail at 1.25 s: the round has failed, and the retry (1.5 s) is refused by
    # a crashed server; no retries left.
    assert both.run() == {"a": ("error", 1.5)}
    assert both.causes["a"] == Cause.SERVER_CRASH
    assert both.cluster.recorder.retries == 1


def test_hedges_draw_on_the_retry_budget():
    # A budget of 0% with no floor funds nothing: the hedge due at 1 s is refused.
    trace = Trace(
        {**HEDGED, "retries": {"budget": {"ratio": 0.0}}},
        [{"name": "web", "count": 2, "workers": 1}],
    )
    trace.send("slow", at=0.0, work=3.0)
    assert trace.run() == {"slow": ("ok", 3.0)}
    assert trace.client()["hedges"] == 0 and trace.client()["budget_denied"] == 1


def test_a_half_open_breaker_sends_its_probes_unhedged_and_hedges_again_once_closed():
    breaker = {"consecutive_failures": 1, "cool_down": 1.0, "probes": 1}
    crash = {"kind": "crash", "target": {"server": "web-1"}, "at": 0.0, "duration": 0.5}
    trace = Trace(
        {**HEDGED, "circuit_breaker": breaker},
        [{"name": "web", "count": 2, "workers": 1}],
        [crash],
    )
    trace.send("refused", at=0.1, work=1.0)  # web-1, crashed: opens the breaker until 1.1 s
    trace.send("probe", at=1.2, work=3.0)  # web-2; no hedge at 2.2 s: half-open
    trace.send("later", at=5.0, work=3.0)  # web-1 (back since 0.5 s); hedged at 6 s on web-2
    ends = trace.run()
    assert ends["refused"] == ("error", 0.1)
    assert ends["probe"] == ("ok", pytest.approx(4.2))
    assert ends["later"] == ("ok", 6.5)
    assert trace.breaker_events() == [
        (0.1, "circuit open"),
        (1.1, "circuit half-open"),
        (4.2, "circuit closed"),
    ]
    assert trace.client()["hedges"] == 1


# -- hedging against the direct calculation ----------------------------------------------------

MEAN_S, CV = 0.010, 2.0


def _lognormal(mean: float, cv: float):
    sigma2 = math.log(1 + cv * cv)
    return stats.lognorm(s=math.sqrt(sigma2), scale=mean * math.exp(-sigma2 / 2))


def hedged_survival(service, delay: float):
    """P(T > t) for T = S1 if S1 <= d else min(S1, d + S2), S1 and S2 independent draws."""

    def survival(t: float) -> float:
        return service.sf(t) * (service.sf(t - delay) if t >= delay else 1.0)

    return survival


def quantile(survival, p: float, high: float) -> float:
    return optimize.brentq(lambda t: survival(t) - (1 - p), 1e-9, high, xtol=1e-12)


def test_hedging_at_the_p95_cuts_the_p99_of_a_lognormal_cv_2_as_the_direct_calculation_says():
    """Lognormal service, mean 10 ms and cv 2; hedge after d = its p95 (36.04 ms), no queueing.

    Direct calculation: P(T > t) = P(S > t) for t < d, P(S > t) P(S > t - d) after; its 0.99
    quantile is 45.03 ms, against 85.55 ms without hedging: hedging cuts the p99 by 40.5 ms
    (47%), for P(S > d) = 5% more attempts. Cancelling the loser makes the work per request
    *fall*, to 8.89 ms from 10 ms (an attempt slower than d + the hedge is cut short), where
    letting it run would raise it to 10.5 ms.
    """
    service = _lognormal(MEAN_S, CV)
    delay = float(service.ppf(0.95))
    survival = hedged_survival(service, delay)
    p99 = quantile(survival, 0.99, 1.0)
    assert delay == pytest.approx(0.03604, abs=1e-5)
    assert p99 == pytest.approx(0.04503, abs=1e-5)
    assert service.ppf(0.99) == pytest.approx(0.08555, abs=1e-5)

    rate, duration = 1000.0, 100.0
    scenario = parse_scenario(
        {
            "duration": duration,
            "workload": {
                "arrivals": {"rate": rate},
                "classes": [
                    {
                        "name": "search",
                        "share": 1,
                        "service_time": {"kind": "lognormal", "mean": MEAN_S, "cv": CV},
                        "hedging": {"delay": delay},
                    }
                ],
            },
            # Far more workers than the ~10 requests in service: nothing waits, so each
            # attempt's latency is its service time and the calculation applies as stated.
            "servers": [{"name": "web", "count": 2, "workers": 1000}],
            "metrics": {"step": duration},
        }
    )
    summary = run(scenario).summary
    n = summary["requests"]["ok"]
    assert n == summary["requests"]["ended"] and summary["groups"]["web"]["waited_fraction"] == 0

    # The sample p99 is the order statistic of rank 0.99 n: its CDF value is within
    # z sqrt(0.99 x 0.01 / n) of 0.99 (binomial, z = 4: a false alarm once in 16,000 runs);
    # the histogram adds at most its bucket width (1.005%).
    z = 4.0
    spread = z * math.sqrt(0.99 * 0.01 / n)
    error = 1 + LatencyHistogram.WORST_RELATIVE_ERROR
    low = quantile(survival, 0.99 - spread, 1.0) / error
    high = quantile(survival, 0.99 + spread, 1.0) * error
    assert low <= summary["latency_s"]["p99"] <= high
    assert high < 0.6 * service.ppf(0.99)  # the cut is resolved, far beyond the noise

    # Extra attempts: a hedge for each request slower than d, P(S > d) = 5% (binomial).
    hedges = summary["client"]["search"]["hedges"]
    assert hedges / n == pytest.approx(0.05, abs=z * math.sqrt(0.05 * 0.95 / n))
    assert summary["attempts_per_request"] == pytest.approx(
        1 + hedges / summary["requests"]["arrived"]
    )
    # The hedge wins when S1 > d + S2: P = integral of P(S > d + t) f(t) dt.
    wins = integrate.quad(lambda t: service.sf(delay + t) * service.pdf(t), 0, np.inf, limit=200)[0]
    won = summary["client"]["search"]["hedge_wins"]
    assert won / n == pytest.approx(wins, abs=z * math.sqrt(wins * (1 - wins) / n))
    # A hedged request cancels its loser, but for the few still running at the end.
    in_flight = summary["requests"]["in_flight_at_end"]
    assert hedges - in_flight <= summary["client"]["search"]["cancelled"] <= hedges

    # Work per request: S1 below d; above it, d + 2 min(S1 - d, S2) with the loser cancelled.
    work_mean, work_sd = _hedged_work_moments(service, delay)
    assert work_mean == pytest.approx(0.008888, abs=1e-5)
    busy_s = summary["groups"]["web"]["utilization"] * 2 * 1000 * duration
    assert busy_s / n == pytest.approx(work_mean, abs=z * work_sd / math.sqrt(n))


def _hedged_work_moments(service, delay: float) -> tuple[float, float]:
    """Mean and standard deviation of the server work of one hedged request (the loser
    cancelled): W = S1 if S1 <= d, else d + 2M with M = min(S1 - d, S2), whose moments on
    {S1 > d} are E[M^k] = integral of k t^(k-1) P(S1 > d + t) P(S2 > t) dt."""
    below = [integrate.quad(lambda s, k=k: s**k * service.pdf(s), 0, delay)[0] for k in (1, 2)]
    m1, m2 = (
        integrate.quad(
            lambda t, k=k: k * t ** (k - 1) * service.sf(delay + t) * service.sf(t),
            0,
            np.inf,
            limit=200,
        )[0]
        for k in (1, 2)
    )
    tail = service.sf(delay)
    mean = below[0] + delay * tail + 2 * m1
    second = below[1] + delay * delay * tail + 4 * delay * m1 + 4 * m2
    return mean, math.sqrt(second - mean * mean)


# -- invariants --------------------------------------------------------------------------------


@st.composite
def resilient_scenarios(draw):
    request_class: dict[str, Any] = {
        "name": "shop",
        "share": 1,
        "service_time": draw(
            st.sampled_from(
                [
                    {"kind": "exponential", "mean": 0.05},
                    {"kind": "lognormal", "mean": 0.05, "cv": 2},
                ]
            )
        ),
        "timeout": draw(st.sampled_from([None, 0.1, 0.5])),
        "retries": {"max": draw(st.integers(0, 3)), "backoff": 0.01},
    }
    if draw(st.booleans()):
        request_class["retries"]["budget"] = {"ratio": draw(st.sampled_from([0.0, 0.2]))}
    if draw(st.booleans()):
        request_class["circuit_breaker"] = {
            "consecutive_failures": draw(st.sampled_from([1, 3])),
            "error_ratio": {"min_requests": 5, "window": 1},
            "cool_down": 0.5,
            "probes": draw(st.integers(1, 3)),
        }
    if draw(st.booleans()) or not (
        "budget" in request_class["retries"] or "circuit_breaker" in request_class
    ):
        request_class["hedging"] = {
            "delay": draw(st.sampled_from([0.0, 0.03, 0.1])),
            "max_attempts": draw(st.integers(2, 3)),
        }
    failure = draw(
        st.sampled_from(
            [
                {"kind": "crash", "target": {"server": "web-1"}, "at": 1, "duration": 2},
                {"kind": "pause", "target": {"server": "web-1"}, "at": 1, "duration": 1},
                {"kind": "partition", "target": {"server": "web-2"}, "at": 0.5, "duration": 2},
                {"kind": "crash", "target": "balancer", "at": 2, "duration": 1},
            ]
        )
    )
    return parse_scenario(
        {
            # Arrivals stop at 4 s; the worst backlog (hedging at once, 3 attempts a round,
            # retried: 12 attempts of 50 ms per request, 400 requests) drains well before 1000 s.
            "duration": 1000,
            "workload": {
                "arrivals": {
                    "rate": draw(st.sampled_from([30, 100])),
                    "profile": [{"at": 4, "rate": 0}],
                },
                "classes": [request_class],
            },
            "balancer": {"policy": draw(st.sampled_from(["round_robin", "least_connections"]))},
            "servers": [
                {
                    "name": "web",
                    "count": 2,
                    "workers": 2,
                    "queue_capacity": draw(st.sampled_from([None, 3])),
                }
            ],
            "failures": [failure],
            "metrics": {"step": 50},
        }
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resilient_scenarios())
def test_every_request_ends_once_and_cancellations_leave_no_attempt_behind(scenario):
    cluster = Cluster.build(scenario, Streams(seed=3))
    cluster.start()
    cluster.run(scenario.duration)
    recorder = cluster.recorder
    assert cluster.client.in_flight == 0
    assert sum(sum(counts) for counts in recorder.causes) == recorder.arrivals
    client = cluster.client.summary()["shop"]
    refused_first_tries = (
        recorder.arrivals + recorder.retries + client["hedges"] - recorder.attempts
    )
    assert 0 <= refused_first_tries <= recorder.causes[0][Cause.CIRCUIT_OPEN]
    # Every attempt was answered or cancelled: servers empty, the balancer's counts at zero.
    for server in cluster.servers:
        assert server.busy == 0 and not server.queue and not server.in_service
    assert all(backend.active == 0 for backend in cluster.balancer.backends)
    # A round of k hedges has k + 1 attempts, of which at most k are cancelled.
    assert client["cancelled"] <= client["hedges"]


def test_resilience_that_can_never_act_is_warned_about():
    from sim.scenario.advice import advise

    scenario = parse_scenario(
        {
            "duration": 60,
            "workload": {
                "arrivals": {"rate": 10},
                "classes": [
                    {
                        "name": "late",
                        "share": 0.5,
                        "service_time": {"kind": "exponential", "mean": 0.05},
                        "timeout": 0.5,
                        "hedging": {"delay": 0.5},
                    },
                    {
                        "name": "idle",
                        "share": 0.5,
                        "service_time": {"kind": "exponential", "mean": 0.05},
                        "retries": {"budget": {"ratio": "10%"}},
                    },
                ],
            },
            "servers": [{"name": "web", "workers": 4}],
        }
    )
    assert [advice.path for advice in advise(scenario)] == [
        "workload.classes[0].hedging.delay",
        "workload.classes[1].retries.budget",
    ]
