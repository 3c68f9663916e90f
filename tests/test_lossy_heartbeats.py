"""Lossy heartbeats and polling monitors against the closed forms they must follow.

Each detection sample is one server of a fleet crashing at a common instant: every server's
heartbeats and polls run at phases of their own, so the delays are independent draws at a
uniformly random phase, as the laws assume. Laws and rates are derived in
:class:`sim.scenario.HeartbeatSpec` (in the terms of Chen, Toueg & Aguilera, "On the quality of
service of failure detectors", 2002); the tests restate each from first principles.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from scipy import stats

from sim import parse_scenario, run
from sim.cli import main
from sim.scenario import HealthCheckSpec, HeartbeatSpec
from sim.scenario.advice import advise

CRASH_AT = 12.0
"""Past the timeout plus a poll and the first heartbeat heard: the verdict at the crash is the
steady state's (it depends only on the heartbeats due within the last timeout and poll)."""
REPAIR_AT = 18.0
LOSSY = {"kind": "heartbeat", "interval": 1.0, "misses": 3, "loss": 0.3}


def _fleet(detection: dict, servers: int, horizon_s: float, crash: bool, seed: int):
    down_s = REPAIR_AT - CRASH_AT
    failures = [{"kind": "crash", "target": {"group": "web"}, "at": CRASH_AT, "duration": down_s}]
    scenario = parse_scenario(
        {
            "duration": horizon_s,
            "metrics": {"step": 3600},
            "workload": {
                "arrivals": {"rate": 0},
                "classes": [
                    {
                        "name": "r",
                        "share": 1,
                        "service_time": {"kind": "deterministic", "value": 1},
                    }
                ],
            },
            "balancer": {"detection": detection},
            "servers": [{"name": "web", "count": servers}],
            "failures": failures if crash else [],
        }
    )
    return run(scenario, seed=seed)


def _rotation_changes(result) -> dict[str, list[tuple[float, str]]]:
    """Each server's (time, "out of rotation" or "in rotation"), in order."""
    changes: dict[str, list[tuple[float, str]]] = {}
    events = result.events
    for time_s, component, event in zip(
        events.time_s.tolist(), events.component.tolist(), events.event.tolist(), strict=True
    ):
        if event in ("out of rotation", "in rotation"):
            changes.setdefault(component, []).append((time_s, event))
    return changes


def crash_and_rejoin_delays(detection: dict, runs: int = 10) -> tuple[list[float], list[float]]:
    """Detection delays of the servers in rotation when their group crashed (one already
    suspected needs no detection), and every server's rejoin delay after the repair; 100
    servers a run (the balancer's bookkeeping grows with the square of the fleet)."""
    detections, rejoins = [], []
    for seed in range(runs):
        for changes in _rotation_changes(_fleet(detection, 100, 36.0, True, seed)).values():
            before = [event for time_s, event in changes if time_s <= CRASH_AT]
            if not before or before[-1] == "in rotation":
                detections.append(
                    next(t for t, event in changes if t > CRASH_AT and event == "out of rotation")
                    - CRASH_AT
                )
            rejoins.append(
                next(t for t, event in changes if t >= REPAIR_AT and event == "in rotation")
                - REPAIR_AT
            )
    return detections, rejoins


def _draws(spec: HeartbeatSpec, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """20,000 detection and rejoin delays from the law the long-horizon mode samples."""
    rng = np.random.default_rng(seed)
    detections = np.array([spec.detection_delay(rng, refused=True) for _ in range(20_000)])
    return detections, np.array([spec.rejoin_delay(rng) for _ in range(20_000)])


def _uniform_mixture_cdf(weights: np.ndarray):
    """CDF of a delay uniform on [j, j + 1) s with probability weights[j]."""
    edges = np.concatenate([[0.0], np.cumsum(weights)])

    def cdf(delay):
        delay = np.clip(np.asarray(delay, dtype=float), 0.0, len(weights))
        whole = np.minimum(np.floor(delay).astype(int), len(weights) - 1)
        return edges[whole] + weights[whole] * (delay - whole)

    return cdf


def test_losses_shorten_the_detection_of_a_crash_caught_in_rotation():
    """A deadline timer runs from the last heartbeat heard. With loss p and m misses, in
    rotation at the crash means it was heard G intervals before the last one due, G < m,
    P(G = g) = (1 - p) p^g / (1 - p^m); the crash is then detected (m - G) intervals after that
    heartbeat, so the delay has the density p^(m - ceil(d)) / sum, piecewise constant on
    [0, 3] s here (p 0.3, m 3, interval 1 s): 6.5% of the mass on [0, 1), 21.6% on [1, 2),
    71.9% on [2, 3], against all of it on [2, 3] without loss. The rejoin waits for the first
    heartbeat heard after the repair: uniform on [g, g + 1) s with probability (1 - p) p^g.
    One-sample Kolmogorov-Smirnov at the 0.1% level, for about 970 simulated crashes, 1,000
    rejoins and the long-horizon law's 20,000 draws; the share below 2 s within 4 binomial sd."""
    p, misses = 0.3, 3
    caught = np.array([(1 - p) * p ** (misses - j) for j in range(1, misses + 1)])
    detection_cdf = _uniform_mixture_cdf(caught / caught.sum())
    rejoin_cdf = _uniform_mixture_cdf(np.array([(1 - p) * p**g for g in range(60)]))
    delays, rejoins = crash_and_rejoin_delays(LOSSY)
    assert len(delays) > 900  # p^m = 2.7% of the 1,000 servers were out already
    declared, declared_rejoins = _draws(HeartbeatSpec(loss=p, misses=misses))
    for sample in (delays, declared):
        assert stats.kstest(sample, detection_cdf).pvalue > 0.001
    for sample in (rejoins, declared_rejoins):
        assert stats.kstest(sample, rejoin_cdf).pvalue > 0.001
    share = detection_cdf(2.0)
    below = sum(delay < 2.0 for delay in delays)
    assert abs(below - len(delays) * share) <= 4 * math.sqrt(len(delays) * share * (1 - share))


def test_a_polling_monitor_detects_after_two_independent_uniform_phases():
    """Without loss, a crash U after the last heartbeat (uniform on [0, 1 s)) leaves its age
    at the timeout T = 3 s at T - U, and the next poll comes V later, V uniform on [0, 1 s)
    independent of U (the monitor's own phase): T - U + V is triangular on [2, 4] s with
    its mode at 3 s. The rejoin is the next heartbeat's phase plus the next poll's:
    triangular on [0, 2] s. One-sample Kolmogorov-Smirnov at the 0.1% level for 1,000
    simulated crashes and rejoins and the long-horizon law's 20,000 draws (the distance of
    the triangle to a uniform on [2, 4], 0.125, is twice the critical 0.062 at 1,000); the
    simulated mean within its 99.9% interval (sd 1/sqrt(6) s: +-0.043 s)."""
    detection = {"kind": "heartbeat", "interval": 1.0, "misses": 3, "monitor": "polling"}
    delays, rejoins = crash_and_rejoin_delays(detection)
    assert len(delays) == 1000
    declared, declared_rejoins = _draws(HeartbeatSpec(monitor="polling"))
    for sample in (delays, declared):
        assert stats.kstest(sample, stats.triang(c=0.5, loc=2.0, scale=2.0).cdf).pvalue > 0.001
    for sample in (rejoins, declared_rejoins):
        assert stats.kstest(sample, stats.triang(c=0.5, loc=0.0, scale=2.0).cdf).pvalue > 0.001
    assert abs(np.mean(delays) - 3.0) <= 3.29 / math.sqrt(6 * len(delays))


def test_polling_every_interval_under_loss_has_the_closed_form_mean():
    """Polling every interval i with loss p: the last poll fell after the last heartbeat due
    (probability 1/2) or before it; G counts back from there, and the next poll after the
    expiry is as far from it as the last poll was from the heartbeat grid. The mean is
    T - i ((1 + p) E[H] / 2 + p / 2), E[H] = p / (1 - p) - m p^m / (1 - p^m) the mean losses
    before the heartbeat heard within m: 2.6255 s at p 0.3, m 3, i 1 s. The law's mean and
    its 20,000 draws' within 4 standard errors."""
    p, misses = 0.3, 3
    spec = HeartbeatSpec(loss=p, misses=misses, monitor="polling", poll_interval=1.0)
    losses = p / (1 - p) - misses * p**misses / (1 - p**misses)
    mean = 3.0 - ((1 + p) * losses + p) / 2
    assert spec.mean_detection_delay(True) == pytest.approx(mean, rel=1e-12)
    declared, _ = _draws(spec)
    assert abs(declared.mean() - mean) <= 4 * declared.std() / math.sqrt(len(declared))


@pytest.mark.parametrize("poll_interval", [2.5, 0.37])
def test_the_long_horizon_mode_samples_the_simulated_polling_monitors_law(poll_interval):
    """Polls slower and faster than the heartbeats, loss 0.3: the delays the long-horizon
    mode and the Markov chain draw (G counted back from the last poll before the crash, the
    heartbeats due after it able to make it a more recent one) are the simulated monitor's.
    Two-sample Kolmogorov-Smirnov at the 0.1% level, 1,000 simulated servers against 20,000
    draws, for detection and rejoin; the draws' means within 4 standard errors of the exact
    ones (the trapezoid integral of :meth:`HeartbeatSpec.mean_detection_delay`; rejoin,
    interval (1/2 + p / (1 - p)) plus half a poll)."""
    detection = {**LOSSY, "monitor": "polling", "poll_interval": poll_interval}
    spec = HeartbeatSpec(loss=0.3, misses=3, monitor="polling", poll_interval=poll_interval)
    simulated, rejoins = crash_and_rejoin_delays(detection)
    declared, declared_rejoins = _draws(spec)
    assert stats.ks_2samp(simulated, declared).pvalue > 0.001
    assert stats.ks_2samp(rejoins, declared_rejoins).pvalue > 0.001
    for draws, mean in (
        (declared, spec.mean_detection_delay(True)),
        (declared_rejoins, 0.5 + 0.3 / 0.7 + poll_interval / 2),
    ):
        assert abs(draws.mean() - mean) <= 4 * draws.std() / math.sqrt(len(draws))


def _suspicions(detection: dict, servers: int, horizon_s: float) -> tuple[int, list[float]]:
    """False suspicions counted by the run, and how long each one that ended lasted."""
    result = _fleet(detection, servers, horizon_s, False, 3)
    episodes = []
    for changes in _rotation_changes(result).values():
        for (start, event), (end, _) in itertools.pairwise(changes):
            if event == "out of rotation":
                episodes.append(end - start)
    return result.summary["incidents"]["false_suspicions"], episodes


def test_lost_heartbeats_suspect_a_healthy_backend_at_the_rate_of_runs_of_losses():
    """A deadline suspects a healthy backend once per heartbeat heard and followed by at
    least m losses: q = (1 - p) p^m per heartbeat slot (Feller's recurrent pattern), so
    100 servers heartbeating every second for 1,000 s (the last m slots' alarms fall past the
    end) expect 100 x 997 x q = 1,884.3 suspicions at p 0.3, m 3. The patterns cannot
    overlap, so the count's variance is n q (1 - (2m + 1) q) (dependent only within m slots),
    sd 40.4: within 4 sd, 8.6%. Each suspicion lasts until the next heartbeat heard, a
    geometric number of intervals of mean 1 / (1 - p) = 1.4286 s, sd sqrt(p) / (1 - p): the
    mean of about 1,880 within 4 standard errors (0.072 s)."""
    p, misses, servers, horizon_s = 0.3, 3, 100, 1000.0
    spec = HeartbeatSpec(loss=p, misses=misses)
    q = (1 - p) * p**misses
    assert spec.false_suspicion_rate() == pytest.approx(q)
    count, episodes = _suspicions(LOSSY, servers, horizon_s)
    expected = servers * (horizon_s - misses) * q
    sd = math.sqrt(servers * horizon_s * q * (1 - (2 * misses + 1) * q))
    assert abs(count - expected) <= 4 * sd
    mean_s, sd_s = 1 / (1 - p), math.sqrt(p) / (1 - p)
    assert abs(np.mean(episodes) - mean_s) <= 4 * sd_s / math.sqrt(len(episodes))


def test_a_polling_monitor_misses_the_runs_of_losses_that_expire_between_its_polls():
    """Polling every 2 s, a run of m - 1 + r losses leaves the heartbeat stale for r
    intervals, seen by a poll with probability min(1, r / 2): the rate is (1 - p)/interval x
    (1 - p) p^(m-1) x sum_r p^r min(1, r / 2) = 0.7 x 0.063 x 0.27857 = 0.012285 a second
    (two thirds of the deadline's 0.0189). 100 servers for 1,000 s expect 1,228.5 less the
    alarms past the end (under 0.3%). Each heartbeat heard opens a run that becomes a
    suspicion with probability s, independently: the count's variance, n (1 - p) s
    (1 - (1 - p) s) over n slots, is below its mean, so 4 Poisson sd (11.4%) bound it."""
    detection = {**LOSSY, "monitor": "polling", "poll_interval": 2.0}
    spec = HeartbeatSpec(loss=0.3, misses=3, monitor="polling", poll_interval=2.0)
    assert spec.false_suspicion_rate() == pytest.approx(0.7 * 0.7 * 0.09 * (0.24 + 0.027 / 0.7))
    count, _ = _suspicions(detection, 100, 1000.0)
    expected = 100 * 1000.0 * spec.false_suspicion_rate()
    assert abs(count - expected) <= 4 * math.sqrt(expected)


def test_the_long_horizon_mode_says_it_does_not_simulate_false_suspicions(tmp_path):
    """`ecsim availability` draws detection delays instead of heartbeats, so a lossy detector's
    false suspicions are missing there: it says so, with the share of time they cost (p^m,
    1% lost and 2 misses: 0.01%) and how often they come ((1 - p) p^m a heartbeat: 3,124 a
    year at one a second)."""
    scenario = {
        "duration": "1h",
        "workload": {
            "arrivals": {"rate": 1},
            "classes": [
                {"name": "r", "share": 1, "service_time": {"kind": "deterministic", "value": 0.01}}
            ],
        },
        "balancer": {"detection": {"kind": "heartbeat", "misses": 2, "loss": "1%"}},
        "servers": [{"name": "web", "count": 2}],
        "failures": [
            {
                "kind": "crash_repair",
                "target": {"group": "web"},
                "time_to_failure": {"kind": "exponential", "mean": "30d"},
                "time_to_repair": {"kind": "deterministic", "value": "1h"},
            }
        ],
    }
    path = tmp_path / "lossy.yaml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    arguments = ["availability", str(path), "--years", "1", "--replications", "2"]
    result = CliRunner().invoke(main, [*arguments, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (
        "warning: balancer.detection: lost or late heartbeats take healthy backends out of"
        " rotation (each about 0.01% of its time, in 3,124 suspicions a year)"
    ) in result.stderr
    assert "simulate no such false suspicion" in result.stderr
    scenario["balancer"]["detection"]["loss"] = 0
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    result = CliRunner().invoke(main, [*arguments, "--out", str(tmp_path / "lossless")])
    assert result.exit_code == 0 and "false suspicion" not in result.stderr


def test_lossy_database_detection_is_said_to_suspect_no_healthy_node():
    scenario = parse_scenario(
        {
            "duration": 60,
            "workload": {
                "arrivals": {"rate": 1},
                "classes": [
                    {
                        "name": "r",
                        "share": 1,
                        "service_time": {"kind": "deterministic", "value": 0.01},
                        "database": {"reads": 1},
                    }
                ],
            },
            "servers": [{"name": "web"}],
            "database": {"detection": {"kind": "heartbeat", "loss": 0.1}},
        }
    )
    assert [advice.path for advice in advise(scenario)] == ["database.detection"]


@pytest.mark.parametrize(
    "detection",
    [
        {"kind": "heartbeat", "interval": 1.0, "misses": 3},
        {"kind": "health_check", "interval": 1.0, "fall": 3, "probe_time": 0.0},
    ],
)
def test_a_uniform_detection_delay_has_the_closed_form_variance_the_chain_uses(detection):
    """Without loss or polling, a heartbeat detects a crash T - U after it and a health check
    U + (fall - 1) interval after it, U uniform on [0, interval): the variance is that of a
    uniform, interval^2 / 12, which the Markov chain takes instead of draws. The real
    detectors' delays over 1,000 crashed servers: the sample variance's standard deviation is
    interval^2 / 12 x sqrt(0.8 / n) for a uniform (fourth central moment 9/5 sigma^4), the
    mean's sigma / sqrt(n); both within 4 of them."""
    kind = HeartbeatSpec if detection["kind"] == "heartbeat" else HealthCheckSpec
    spec = kind(**{key: value for key, value in detection.items() if key != "kind"})
    delays, _ = crash_and_rejoin_delays(detection)
    variance = spec.detection_delay_variance(True)
    assert variance == pytest.approx(1 / 12, rel=1e-12)
    n = len(delays)
    assert n >= 900
    assert abs(np.var(delays) - variance) <= 4 * variance * math.sqrt(0.8 / n)
    assert abs(np.mean(delays) - spec.mean_detection_delay(True)) <= 4 * math.sqrt(variance / n)


def test_lossy_or_polled_heartbeats_leave_the_variance_to_draws():
    assert HeartbeatSpec(loss=0.3).detection_delay_variance(True) is None
    polled = HeartbeatSpec(monitor="polling", poll_interval=0.5)
    assert polled.detection_delay_variance(True) is None
