"""Failure detectors at work: the only way the balancer learns that a backend died or came back.

Three detectors probe or listen the way real ones do, with SimPy callbacks per backend: active
health checks, heartbeats (possibly lost on the way) judged by a deadline timer or by a monitor
polling their age, and the phi-accrual detector. A fourth,
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
from simpy.events import Timeout

from sim.model.balancer import Balancer
from sim.model.balancing import Backend
from sim.model.timing import at_deadline, delay_until
from sim.registry import Registry
from sim.scenario import (
    DETECTORS,
    DetectorSpec,
    HealthCheckSpec,
    HeartbeatSpec,
    PhiAccrualSpec,
)
from sim.streams import substream, uniform_below, uniforms

__all__ = ["DETECTOR_PROCESSES", "SampledDetection", "start_detector"]

DETECTOR_PROCESSES: Registry[Callable] = Registry("detector process")
"""Detector kind -> callable(env, spec, backend, balancer, rng) that starts watching."""


def start_detector(
    env: simpy.Environment,
    spec: DetectorSpec,
    backend: Backend,
    balancer: Balancer,
    rng: np.random.Generator,
) -> None:
    DETECTOR_PROCESSES.get(spec.kind)(env, spec, backend, balancer, rng)


@DETECTOR_PROCESSES.register("health_check")
class HealthChecks:
    """Probes one backend every ``interval`` and counts consecutive failures and successes.

    A probe looks at its backend once everything else due at that instant has happened (see
    :mod:`sim.model.timing`): refused at once by a crashed process, unanswered until the
    timeout by an unreachable host, answered after ``probe_time`` (times the slowdown) by a
    live one, which fails the probe when that is longer than the timeout.

    **Resting.** A probe of a steady server (alive, reachable, not paused, answering in time,
    believed up with ``rise`` passes counted) can only pass, and nothing follows from a pass.
    So the checks rest there and schedule nothing until the server changes (it tells its
    ``state_watchers``). Then they replay what they skipped: the probes at the instants
    periodic probing would have used (the same running sums of the interval, to the last
    bit), their passes, and the answer still on its way. Verdicts, and whole runs, are those
    of probing all along; a run in which nothing fails pays one probe per server.
    """

    def __init__(self, env, spec: HealthCheckSpec, backend: Backend, balancer: Balancer, rng):
        self.env = env
        self.spec = spec
        self.backend = backend
        self.balancer = balancer
        self.failures = 0
        self.successes = 0
        self._believed_up = True
        """The balancer's verdict as of the last probe."""
        self._rested_at = 0.0
        """When resting: the instant of the probe that found the server steady."""
        self._rest_answer_s = 0.0
        at_deadline(env, uniform_below(rng, spec.interval), self._probe)

    def _probe(self, _) -> None:
        spec, server = self.spec, self.backend.server
        if not server.reachable:
            at_deadline(self.env, spec.timeout, self._failed)
        elif not server.alive:
            self._failed(None)
        elif server.paused:
            self._probe_paused(server)
        else:
            answer_s = spec.probe_time * server.slowdown
            if answer_s <= spec.timeout:
                if self._steady(server):
                    self._rest(server, answer_s)
                    return
                Timeout(self.env, answer_s).callbacks.append(self._passed)
            else:
                at_deadline(self.env, spec.timeout, self._failed)
        at_deadline(self.env, spec.interval, self._probe)

    def _steady(self, server) -> bool:
        """This passing probe changes nothing, nor will the next ones until the server
        changes. (Checks of a server seen through a network link never rest: links have no
        watchers.)"""
        return (
            self.backend.detected_up
            and self._believed_up
            and self.failures == 0
            and self.successes >= self.spec.rise
            and server.state_watchers is not None
        )

    def _rest(self, server, answer_s: float) -> None:
        self._rested_at = self.env.now
        self._rest_answer_s = answer_s
        server.state_watchers.append(self._wake)

    def _wake(self) -> None:
        """The server changed now: pass the probes skipped since resting, put the answer
        still on its way back on its way, and probe again from the next probe's instant."""
        now, interval, answer_s = self.env.now, self.spec.interval, self._rest_answer_s
        probe = self._rested_at
        while True:
            answered = probe + answer_s  # where Timeout(answer_s) from the probe would fall
            if answered <= now:
                self.successes += 1  # a pass of a steady server: nothing else follows
            else:
                Timeout(self.env, delay_until(self.env, answered)).callbacks.append(self._passed)
            following = probe + interval  # where at_deadline(interval) would put it
            if following >= now:
                break
            probe = following
        at_deadline(self.env, delay_until(self.env, following), self._probe)

    def _probe_paused(self, server) -> None:
        """A paused process answers once it resumes: a pass if that is within the timeout."""
        sent, answered = self.env.now, []

        def resumed() -> None:
            answer_s = self.spec.probe_time * server.slowdown
            if self.env.now + answer_s - sent <= self.spec.timeout:
                answered.append(True)
                Timeout(self.env, answer_s).callbacks.append(self._passed)

        server.on_resume.append(resumed)
        at_deadline(self.env, self.spec.timeout, lambda _: answered or self._failed(None))

    def _passed(self, _) -> None:
        if self._believed_up and not self.backend.detected_up:
            # The balancer took it down meanwhile (planned maintenance): rise counts afresh.
            self.successes = 0
        self.successes, self.failures = self.successes + 1, 0
        if not self.backend.detected_up and self.successes >= self.spec.rise:
            self.balancer.mark_up(self.backend)
        self._believed_up = self.backend.detected_up

    def _failed(self, _) -> None:
        self.failures, self.successes = self.failures + 1, 0
        if self.backend.detected_up and self.failures >= self.spec.fall:
            self.balancer.mark_down(self.backend)
        self._believed_up = self.backend.detected_up


class _HeartbeatListener:
    """Receives a backend's heartbeats and suspects it after a silence; shared by the two
    heartbeat detectors, which differ only in how long a silence is too long. The silence
    alarm is a deadline: a heartbeat arriving at that very instant resets it."""

    def __init__(self, env, backend: Backend, balancer: Balancer, silence_limit) -> None:
        self.env = env
        self.backend = backend
        self.balancer = balancer
        self.silence_limit = silence_limit
        self.generation = 0

    def heard(self, _=None) -> None:
        self.generation += 1
        rejoined = not self.backend.detected_up
        if rejoined:
            self.balancer.mark_up(self.backend)
        at_deadline(self.env, self.silence_limit(rejoined), self._silence, self.generation)

    def _silence(self, alarm) -> None:
        if alarm.value == self.generation and self.backend.detected_up:
            self.balancer.mark_down(self.backend)


class _HeartbeatEmitter:
    """A backend's heartbeats: every ``interval`` while it serves, each delayed on the network
    by up to ``jitter``, and lost on the way with probability ``loss`` (drawn from
    ``loss_rng``, a stream of its own, so that losses leave the phases' draws as they were).

    **Resting** (``rests``: plain heartbeats, judged by a fixed deadline, none lost or late).
    A heartbeat of a steady server (serving, not paused, believed up) only pushes the deadline
    on, so the heartbeats rest there, as health checks do: nothing is scheduled until the
    server changes. Then the beats skipped are counted (each would have renewed the deadline),
    the last one's deadline is set where it would have fallen, and beats go on from the next
    beat's instant, to the last bit: verdicts and runs are those of beating all along."""

    def __init__(
        self,
        env,
        interval,
        jitter,
        backend: Backend,
        rng,
        listener,
        loss=0.0,
        loss_rng=None,
        rests=False,
    ):
        self.env = env
        self.interval = interval
        self.jitter = jitter
        self.backend = backend
        self.rng = rng
        self.listener = listener
        self.loss = loss
        self._draws = uniforms(loss_rng, block=256) if loss > 0 else None
        self.rests = rests
        self._rested_at = 0.0
        Timeout(env, uniform_below(rng, interval)).callbacks.append(self._beat)

    def _beat(self, _) -> None:
        server = self.backend.server
        if self.rests and self._steady(server):
            self._rested_at = self.env.now
            self.listener.generation += 1  # this beat, heard: the deadline set before is void
            server.state_watchers.append(self._wake)
            return
        if server.paused:
            # A frozen process sends nothing; its heartbeat goes out late, when it resumes.
            if self._send not in server.on_resume:
                server.on_resume.append(self._send)
        elif server.serving:
            self._send()
        Timeout(self.env, self.interval).callbacks.append(self._beat)

    def _steady(self, server) -> bool:
        return (
            server.serving
            and not server.paused
            and self.backend.detected_up
            and server.state_watchers is not None
        )

    def _wake(self) -> None:
        """The server changed now: count the beats heard since resting, set the last one's
        deadline, and beat again from the next beat's instant."""
        now, listener = self.env.now, self.listener
        beat = self._rested_at
        while True:
            following = beat + self.interval  # where Timeout(interval) would put it
            if following >= now:
                break
            listener.generation += 1
            beat = following
        deadline = beat + listener.silence_limit(False)  # where at_deadline would put it
        at_deadline(
            self.env, delay_until(self.env, deadline), listener._silence, listener.generation
        )
        Timeout(self.env, delay_until(self.env, following)).callbacks.append(self._beat)

    def _send(self) -> None:
        if self._draws is None or next(self._draws) >= self.loss:
            delay = uniform_below(self.rng, self.jitter) if self.jitter > 0 else 0.0
            if delay:
                Timeout(self.env, delay).callbacks.append(self.listener.heard)
            else:
                self.listener.heard()


class _PollingMonitor:
    """Looks at the age of a backend's last heartbeat every ``poll_interval``, from a phase of
    its own: a heartbeat ``timeout`` old or older makes it suspect the backend, a fresher one
    trust it again. Until the first heartbeat it has nothing to judge. A poll comes after
    everything else due at its instant, so it sees a heartbeat that arrives then."""

    def __init__(self, env, spec: HeartbeatSpec, backend: Backend, balancer: Balancer, rng):
        self.env = env
        self.backend = backend
        self.balancer = balancer
        self.timeout = spec.timeout
        self.poll_interval = spec.poll_interval
        self.last_heard: float | None = None
        at_deadline(env, uniform_below(rng, spec.poll_interval), self._poll)

    def heard(self, _=None) -> None:
        self.last_heard = self.env.now

    def _poll(self, _) -> None:
        if self.last_heard is not None:
            fresh = self.env.now - self.last_heard < self.timeout
            if fresh and not self.backend.detected_up:
                self.balancer.mark_up(self.backend)
            elif not fresh and self.backend.detected_up:
                self.balancer.mark_down(self.backend)
        at_deadline(self.env, self.poll_interval, self._poll)


@DETECTOR_PROCESSES.register("heartbeat")
def _heartbeats(env, spec: HeartbeatSpec, backend: Backend, balancer: Balancer, rng):
    # The poll's phase and the losses come from child streams of the detector's own, which
    # they leave untouched: without them, every draw is as it was.
    if spec.polling:
        listener = _PollingMonitor(env, spec, backend, balancer, substream(rng, "poll"))
    else:
        listener = _HeartbeatListener(env, backend, balancer, lambda rejoined: spec.timeout)
    loss_rng = substream(rng, "loss") if spec.loss > 0 else None
    _HeartbeatEmitter(
        env,
        spec.interval,
        0.0,
        backend,
        rng,
        listener,
        spec.loss,
        loss_rng,
        rests=not spec.polling and spec.loss == 0,
    )


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
    _HeartbeatEmitter(env, spec.interval, spec.jitter, backend, rng, listener)


DETECTOR_PROCESSES.check_covers(DETECTORS)


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
        self.rng = spec.delay_stream(rng)
        self._generation: dict[int, int] = {}

    def changed(self, backend: Backend) -> None:
        """The truth about ``backend`` changed: schedule the verdict it will lead to."""
        generation = self._generation.get(backend.index, 0) + 1
        self._generation[backend.index] = generation
        server = backend.server
        if server.serving == backend.detected_up:
            return
        delay = (
            self.spec.rejoin_delay(self.rng)
            if server.serving
            else self.spec.detection_delay(self.rng, refused=server.refuses_connections)
        )
        timer = self.env.timeout(delay)
        timer.callbacks.append(lambda _: self._verdict(backend, generation))

    def _verdict(self, backend: Backend, generation: int) -> None:
        if self._generation[backend.index] != generation:
            return
        if backend.server.serving:
            self.balancer.mark_up(backend)
        else:
            self.balancer.mark_down(backend)
