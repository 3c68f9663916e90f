"""Failure detectors against the laws they declare, and the order of events at one instant.

A crashed process refuses connections at once; an unreachable host is silent until a timeout.
Each detector's simulated delays (probes and heartbeats really exchanged) are checked against
the closed form its spec declares, which is also what the long-horizon mode samples.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats
from test_model import Trace

from sim import parse_scenario, run
from sim.analysis import mean_confidence_interval
from sim.scenario import DETECTORS


def _scenario(detection: dict, failures: list[dict], horizon_s: float):
    return parse_scenario(
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
            "servers": [{"name": "web"}],
            "failures": failures,
        }
    )


def crash_delays(detection: dict, horizon_s: float = 100_000) -> list[float]:
    """Detection delays of crashes (refused connections) at random moments."""
    failures = [
        {
            "kind": "crash_repair",
            "target": {"group": "web"},
            "time_to_failure": {"kind": "exponential", "mean": 60},
            "time_to_repair": {"kind": "deterministic", "value": 20},
        }
    ]
    delays = run(_scenario(detection, failures, horizon_s)).incidents.time_to_detect_s
    delays = delays.dropna().tolist()
    assert len(delays) > 1000
    return delays


def partition_delays(detection: dict, count: int = 1200) -> list[float]:
    """Detection delays of partitions (a silent host) starting at random moments."""
    starts = 100.0 * np.arange(1, count + 1) + np.random.default_rng(7).uniform(0, 50, count)
    failures = [
        {"kind": "partition", "target": {"server": "web-1"}, "at": float(at), "duration": 30}
        for at in starts
    ]
    result = run(_scenario(detection, failures, 100.0 * (count + 2)))
    delays = result.incidents.time_to_detect_s.dropna().tolist()
    assert len(delays) == count
    return delays


def assert_uniform(delays: list[float], low: float, high: float) -> None:
    """All within [low, high], and a quarter in each quarter of it (within 4 sigma)."""
    assert min(delays) >= low - 1e-9
    assert max(delays) <= high + 1e-9
    quarters = [0, 0, 0, 0]
    for delay in delays:
        quarters[min(3, int((delay - low) / (high - low) * 4))] += 1
    for count in quarters:
        assert abs(count - len(delays) / 4) <= 4 * math.sqrt(len(delays) * 3 / 16)


HEALTH_CHECK = {"kind": "health_check", "interval": 2.0, "timeout": 1.0, "fall": 3}


def test_a_health_check_detects_a_crash_when_its_third_probe_is_refused():
    """HAProxy's L4CON: a refused probe fails at once, so with fall 3 and a 2 s interval a
    crash at a random moment is detected uniformly between 4 and 6 s later."""
    delays = crash_delays(HEALTH_CHECK)
    assert_uniform(delays, 4.0, 6.0)
    mean, half_width = mean_confidence_interval(delays, 0.999)
    # The 99.9% interval of over 1,000 uniform delays of sd 2/sqrt(12) is within +-0.061 s.
    assert abs(mean - 5.0) <= half_width < 0.061


def test_a_health_check_detects_a_partition_a_probe_timeout_later():
    """L4TOUT: an unreachable host leaves each probe waiting its 1 s timeout: 5 to 7 s."""
    assert_uniform(partition_delays(HEALTH_CHECK), 5.0, 7.0)


def test_heartbeat_detection_delay_is_uniform_between_its_closed_form_bounds():
    """A crash at a uniform phase of a heartbeat interval i with m misses allowed is detected
    after a delay uniform on [(m - 1) i, m i]: mean (m - 1/2) i."""
    delays = crash_delays({"kind": "heartbeat", "interval": 1.0, "misses": 3})
    assert_uniform(delays, 2.0, 3.0)
    mean, half_width = mean_confidence_interval(delays, 0.999)
    assert abs(mean - 2.5) <= half_width < 0.031  # sd 1/sqrt(12), over 1,000 delays


def test_phi_accrual_suspects_after_the_silence_its_threshold_allows():
    """Steady heartbeats every second, sd floored at 100 ms: phi reaches 8 after
    1 + 0.1 * z(1 - 1e-8) = 1.561 s of silence, so a crash is detected 0.561 to 1.561 s later."""
    silence = 1.0 + 0.1 * NormalDist().inv_cdf(1 - 1e-8)
    delays = crash_delays({"kind": "phi_accrual", "interval": 1.0, "threshold": 8})
    assert_uniform(delays, silence - 1.0, silence)


@pytest.mark.parametrize("failure", ["crash", "partition"])
@pytest.mark.parametrize("kind", DETECTORS.names())
def test_every_detector_detects_as_its_declared_law_says(kind, failure):
    """The contract of a detector: its simulated delays follow the law its spec declares (and
    the long-horizon mode samples). Two-sample Kolmogorov-Smirnov at the 0.1% level."""
    spec = DETECTORS.get(kind)()
    simulated = (
        crash_delays({"kind": kind}) if failure == "crash" else partition_delays({"kind": kind})
    )
    rng = np.random.default_rng(11)
    declared = [spec.detection_delay(rng, refused=failure == "crash") for _ in range(20_000)]
    assert stats.ks_2samp(simulated, declared).pvalue > 0.001


DETECTOR_VARIANTS = [
    *({"kind": kind} for kind in DETECTORS.names()),
    {"kind": "heartbeat", "interval": 1.0, "misses": 3, "monitor": "polling"},
    {"kind": "heartbeat", "interval": 1.0, "misses": 3, "loss": 0.2},
    {"kind": "heartbeat", "interval": 1.0, "misses": 3, "loss": 0.2, "monitor": "polling"},
    {"kind": "phi_accrual", "interval": 1.0, "jitter": 0.2},
]


class _OnlyUniforms:
    """A stream that gives ``random()`` and nothing else: any other draw raises."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def random(self) -> float:
        return self._rng.random()


def _delays(spec, stream, count: int = 300) -> list[float]:
    return [
        delay
        for index in range(count)
        for delay in (
            spec.detection_delay(stream, refused=index % 2 == 0),
            spec.rejoin_delay(stream),
        )
    ]


@pytest.mark.parametrize("detection", DETECTOR_VARIANTS, ids=str)
def test_a_detector_that_draws_only_uniforms_says_so_and_its_delay_stream_keeps_its_delays(
    detection,
):
    """The sampled detections (the long-horizon mode, the data tier) draw a detector's delays
    from its delay stream, which hands out a stream's uniforms a block at a time when the
    detector says they are all it draws: that must be true (a stream with nothing but
    ``random()`` serves it), and the delays must be those of the stream drawn one number at a
    time, across several blocks. A lossy heartbeat draws geometric numbers and keeps its
    stream."""
    spec = DETECTORS.get(detection["kind"]).model_validate(detection)
    if spec.draws_only_uniforms():
        assert _delays(spec, _OnlyUniforms(5)) == _delays(spec, np.random.default_rng(5))
    else:
        with pytest.raises(AttributeError):
            _delays(spec, _OnlyUniforms(5))
    blocks = spec.delay_stream(np.random.default_rng(7))
    assert _delays(spec, blocks) == _delays(spec, np.random.default_rng(7))


def test_a_heartbeat_arriving_at_its_deadline_resets_it():
    """misses: 1 puts the silence alarm exactly on the next heartbeat: the beat wins, so a
    healthy backend is never suspected."""
    scenario = _scenario({"kind": "heartbeat", "interval": 1.0, "misses": 1}, [], 3600)
    result = run(scenario)
    assert result.summary["incidents"]["false_suspicions"] == 0
    assert not (result.events.event == "out of rotation").any()


def test_a_probe_at_the_instant_of_a_repair_sees_the_repaired_server():
    """Probes every second, fall 1, rise 2. The crash is detected at a probe instant d; the
    repair is scheduled for d + 2, another probe instant, *after* that probe was scheduled, so
    plain first-come order would have the probe fail. Truth comes first: that probe passes
    and the next one (rise 2) brings the server back at d + 3, not d + 4."""
    detection = {
        "kind": "health_check",
        "interval": 1.0,
        "timeout": 0.5,
        "fall": 1,
        "rise": 2,
        "probe_time": 0.0,
    }
    trace = Trace([{"name": "web"}], balancer={"detection": detection})
    env, server = trace.env, trace.cluster.servers[0]
    changes = []

    def changed(backend):
        changes.append((env.now, backend.routable))
        if not backend.routable:  # at d: repair at d + 2, scheduled at d + 1.5
            env.timeout(1.5).callbacks.append(
                lambda _: env.timeout(0.5).callbacks.append(lambda _: server.repair())
            )

    trace.cluster.balancer.listeners.append(changed)
    env.timeout(10.25).callbacks.append(lambda _: server.crash())
    trace.run(until=30)
    (down_at, down), (up_at, up) = changes
    assert not down and up
    assert 10.25 < down_at <= 11.25
    assert up_at == pytest.approx(down_at + 3.0)
