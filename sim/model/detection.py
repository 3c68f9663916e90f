"""Failure detectors at work: the only way the balancer learns that a backend died or came back.

Three detectors probe or listen the way real ones do, one SimPy process per backend: active
health checks, heartbeats with a timeout, and the phi-accrual detector. A fourth,
:class:`SampledDetection`, is for the long-horizon availability mode, where simulating a probe
every two seconds for a thousand years is out of the question: it reacts to each crash and
repair after a delay drawn from the detector's own delay distribution.

Each detector starts at a random phase of its cycle, drawn from its own stream, so that
backends are not all probed at the same instant.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from statistics import fmean, pstdev

import numpy as np
import simpy

from sim.model.balancer import Balancer
from sim.model.balancing import Backend
from sim.registry import Registry
from sim.scenario import DetectorSpec, HealthCheckSpec, HeartbeatSpec, PhiAccrualSpec

__all__ = ["DETECTOR_PROCESSES", "SampledDetection", "start_detector"]

DETECTOR_PROCESSES: Registry[Callable] = Registry("failure detector")
"""Detector kind -> function(env, spec, backend, balancer, rng) that starts its process."""


def start_detector(
    env: simpy.Environment,
    spec: DetectorSpec,
    backend: Backend,
    balancer: Balancer,
    rng: np.random.Generator,
) -> None:
    DETECTOR_PROCESSES.get(spec.kind)(env, spec, backend, balancer, rng)


@DETECTOR_PROCESSES.register("health_check")
def _health_checks(env, spec: HealthCheckSpec, backend: Backend, balancer: Balancer, rng):
    def probe():
        yield env.timeout(rng.uniform(0, spec.interval))
        failures = successes = 0
        while True:
            started = env.now
            server = backend.server
            answer_s = spec.probe_time * server.slowdown
            passed = server.serving and answer_s <= spec.timeout
            yield env.timeout(answer_s if passed else spec.timeout)
            if passed:
                successes, failures = successes + 1, 0
                if not backend.detected_up and successes >= spec.rise:
                    balancer.mark_up(backend)
            else:
                failures, successes = failures + 1, 0
                if backend.detected_up and failures >= spec.fall:
                    balancer.mark_down(backend)
            yield env.timeout(spec.interval - (env.now - started))

    env.process(probe())


class _HeartbeatListener:
    """Receives a backend's heartbeats and suspects it after a silence; shared by the two
    heartbeat detectors, which differ only in how long a silence is too long."""

    def __init__(self, env, backend: Backend, balancer: Balancer, silence_limit) -> None:
        self.env = env
        self.backend = backend
        self.balancer = balancer
        self.silence_limit = silence_limit
        self.generation = 0

    def heard(self) -> None:
        self.generation += 1
        rejoined = not self.backend.detected_up
        if rejoined:
            self.balancer.mark_up(self.backend)
        generation = self.generation
        alarm = self.env.timeout(self.silence_limit(rejoined))
        alarm.callbacks.append(lambda _: self._silence(generation))

    def _silence(self, generation: int) -> None:
        if generation == self.generation and self.backend.detected_up:
            self.balancer.mark_down(self.backend)


def _emit_heartbeats(env, interval: float, jitter: float, backend: Backend, rng, listener):
    def beat():
        yield env.timeout(rng.uniform(0, interval))
        while True:
            if backend.server.serving:
                delay = rng.uniform(0, jitter) if jitter > 0 else 0.0
                if delay:
                    env.timeout(delay).callbacks.append(lambda _: listener.heard())
                else:
                    listener.heard()
            yield env.timeout(interval)

    env.process(beat())


@DETECTOR_PROCESSES.register("heartbeat")
def _heartbeats(env, spec: HeartbeatSpec, backend: Backend, balancer: Balancer, rng):
    listener = _HeartbeatListener(
        env, backend, balancer, lambda rejoined: spec.misses * spec.interval
    )
    _emit_heartbeats(env, spec.interval, 0.0, backend, rng, listener)


@DETECTOR_PROCESSES.register("phi_accrual")
def _phi_accrual(env, spec: PhiAccrualSpec, backend: Backend, balancer: Balancer, rng):
    gaps: deque[float] = deque(maxlen=spec.window)
    last = [None]

    def silence_limit(rejoined: bool) -> float:
        now = env.now
        if rejoined:
            # The silence of an outage is not a heartbeat interval: start the history afresh.
            gaps.clear()
        elif last[0] is not None:
            gaps.append(now - last[0])
        last[0] = now
        if len(gaps) < 2:
            return spec.silence_before_suspicion(spec.interval, 0.0)
        return spec.silence_before_suspicion(fmean(gaps), pstdev(gaps))

    listener = _HeartbeatListener(env, backend, balancer, silence_limit)
    _emit_heartbeats(env, spec.interval, spec.jitter, backend, rng, listener)


class SampledDetection:
    """Detection as a delay after each crash and repair, drawn from the detector's distribution.

    Used where no probe is simulated: it is told of every change of a backend's truth and
    answers, after the drawn delay, as the real detector would have. Gray failures (slowdowns)
    are invisible to it.
    """

    def __init__(self, env, spec: DetectorSpec, balancer: Balancer, rng: np.random.Generator):
        self.env = env
        self.spec = spec
        self.balancer = balancer
        self.rng = rng
        self._generation: dict[int, int] = {}

    def changed(self, backend: Backend) -> None:
        """The truth about ``backend`` changed: schedule the verdict it will lead to."""
        generation = self._generation.get(backend.index, 0) + 1
        self._generation[backend.index] = generation
        serving = backend.server.serving
        if serving == backend.detected_up:
            return
        delay = self.spec.rejoin_delay(self.rng) if serving else self.spec.detection_delay(self.rng)
        timer = self.env.timeout(delay)
        timer.callbacks.append(lambda _: self._verdict(backend, generation))

    def _verdict(self, backend: Backend, generation: int) -> None:
        if self._generation[backend.index] != generation:
            return
        if backend.server.serving:
            self.balancer.mark_up(backend)
        else:
            self.balancer.mark_down(backend)
