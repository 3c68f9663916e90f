"""How the balancer learns that a backend failed or came back: detectors, never magic.

A detector is the only way a failure reaches the balancer. Each kind knows, besides its
parameters, the distribution of its own delays for a crash that happens at a uniformly random
moment of its cycle: the long-horizon availability mode samples those delays instead of
simulating every probe, and the Markov-chain cross-check uses their means.

    balancer:
      detection: {kind: health_check, interval: 2s, timeout: 1s, fall: 3, rise: 2}
      detection: {kind: heartbeat, interval: 1s, misses: 3}
      detection: {kind: heartbeat, interval: 10s, misses: 4, loss: 1%, monitor: polling,
                  poll_interval: 5s}
      detection: {kind: phi_accrual, interval: 1s, threshold: 8}
      outlier_ejection: {consecutive_errors: 5, ejection_time: 30s}
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from statistics import NormalDist
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from sim.registry import Registry
from sim.spec import (
    Count,
    Fraction,
    NonNegativeDuration,
    PositiveDuration,
    Spec,
    located_error,
    registered,
)
from sim.streams import UniformBlocks, uniform_below

__all__ = [
    "DETECTORS",
    "DetectorSpec",
    "DetectorSpecField",
    "HealthCheckSpec",
    "HeartbeatSpec",
    "OutlierEjectionSpec",
    "PhiAccrualSpec",
]

DETECTORS: Registry[type[DetectorSpec]] = Registry("failure detector")

MIN_INTERVAL_S = 0.001
"""The shortest probe or heartbeat interval: a millisecond (real ones are 100 ms and more)."""


class DetectorSpec(Spec, ABC):
    """A failure detector's parameters and the distribution of its delays."""

    kind: str

    @abstractmethod
    def detection_delay(self, rng: np.random.Generator, refused: bool) -> float:
        """Time from a failure, at a uniformly random phase of the cycle, to its detection.

        ``refused``: the backend's host is up and refuses connections at once (a crashed
        process); otherwise it is silent (a dead or unreachable host) and a probe waits for
        its timeout.
        """

    @abstractmethod
    def mean_detection_delay(self, refused: bool) -> float:
        """Expected value of :meth:`detection_delay`."""

    def draws_only_uniforms(self) -> bool:
        """Whether :meth:`detection_delay` and :meth:`rejoin_delay` draw nothing from their
        ``rng`` but ``random()`` (through :func:`sim.streams.uniform_below`)."""
        return False

    def delay_stream(self, rng: np.random.Generator) -> np.random.Generator | UniformBlocks:
        """What to give :meth:`detection_delay` and :meth:`rejoin_delay` to draw from ``rng``,
        a stream of their own: its uniforms a block at a time where those are all they draw
        (the same delays, at a fraction of the cost), else ``rng`` itself."""
        return UniformBlocks(rng) if self.draws_only_uniforms() else rng

    def detection_delay_variance(self, refused: bool) -> float | None:
        """Variance of :meth:`detection_delay`, seconds squared, where a closed form gives it
        (None where none does: the Markov chain then estimates it from draws)."""
        return None

    def suspects_healthy_backends(self) -> bool:
        """Whether it can take a healthy, full-speed backend out (a false suspicion)."""
        return False

    def false_suspicion_rate(self) -> float | None:
        """False suspicions per second of a healthy backend's time, where a closed form
        gives it (None where none does)."""
        return 0.0 if not self.suspects_healthy_backends() else None

    def false_suspicion_share(self) -> float | None:
        """Long-run share of a healthy backend's time out of rotation on false suspicions,
        where a closed form gives it (None where none does)."""
        return 0.0 if not self.suspects_healthy_backends() else None

    @abstractmethod
    def rejoin_delay(self, rng: np.random.Generator) -> float:
        """Time from a repair to the backend being judged healthy again."""

    @abstractmethod
    def mean_rejoin_delay(self) -> float:
        """Expected value of :meth:`rejoin_delay`."""


@DETECTORS.register("health_check")
class HealthCheckSpec(DetectorSpec):
    """Active health checks, as HAProxy does them.

    Every ``interval`` the balancer probes each backend. A healthy backend answers after
    ``probe_time`` (stretched by a slowdown). A probe fails at once when the connection is
    refused (a crashed process: HAProxy's L4CON), and after ``timeout`` when nothing answers
    (an unreachable host, L4TOUT, or an answer slower than the timeout). ``fall`` consecutive
    failures mark a backend down, ``rise`` consecutive successes mark it up again.

    A crash at a uniformly random moment is detected after U + (fall - 1) interval, U uniform on
    [0, interval); a silent failure after that plus the timeout.
    """

    kind: Literal["health_check"] = "health_check"
    interval: PositiveDuration = Field(2.0, ge=MIN_INTERVAL_S)
    timeout: PositiveDuration = 1.0
    fall: Count = Field(3, ge=1, le=1_000)
    rise: Count = Field(2, ge=1, le=1_000)
    probe_time: NonNegativeDuration = 0.005

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> HealthCheckSpec:
        if self.timeout > self.interval:
            raise ValueError(
                f"timeout ({self.timeout:g}s) must not exceed the interval ({self.interval:g}s)"
            )
        return self

    def detection_delay(self, rng: np.random.Generator, refused: bool) -> float:
        # The first failing probe starts U ~ Uniform(0, interval) after the failure; the fall-th
        # consecutive failure starts fall - 1 intervals later and fails at once when refused,
        # a timeout later when silent.
        wait = 0.0 if refused else self.timeout
        return uniform_below(rng, self.interval) + (self.fall - 1) * self.interval + wait

    def mean_detection_delay(self, refused: bool) -> float:
        wait = 0.0 if refused else self.timeout
        return self.interval / 2 + (self.fall - 1) * self.interval + wait

    def detection_delay_variance(self, refused: bool) -> float:
        return self.interval**2 / 12  # a constant plus U: that of a uniform

    def draws_only_uniforms(self) -> bool:
        return True

    def rejoin_delay(self, rng: np.random.Generator) -> float:
        return uniform_below(rng, self.interval) + (self.rise - 1) * self.interval + self.probe_time

    def mean_rejoin_delay(self) -> float:
        return self.interval / 2 + (self.rise - 1) * self.interval + self.probe_time


@DETECTORS.register("heartbeat")
class HeartbeatSpec(DetectorSpec):
    """Heartbeats: each backend reports every ``interval``; a silence of ``misses`` intervals
    (the timeout T) makes the monitor declare it dead, and a heartbeat brings it back.

    ``loss``: each heartbeat is lost on the way, independently, with this probability.
    ``monitor``: how the silence is judged. ``deadline``: a timer that every heartbeat resets
    fires T after the last one (a heartbeat arriving exactly at the deadline is in time), and
    the next heartbeat brings the backend back at once. ``polling``: every ``poll_interval``
    the monitor looks at the age of the last heartbeat, suspects the backend when it is T or
    more and trusts it again at the first poll that finds a fresher one, as Kubernetes' node
    lifecycle controller does (node-monitor-period 5 s, node-monitor-grace-period 40 s over
    the kubelet's status every 10 s). A poll sees each heartbeat that arrives at its instant.

    The laws below are for a failure at a uniformly random phase of the heartbeats and of the
    polls, each monitor starting at its own phase; they are derived here (heartbeats due at
    -U - j interval before a crash at 0, U uniform) in the terms of Chen, Toueg & Aguilera,
    "On the quality of service of failure detectors", IEEE Trans. Computers 51(5), 2002:
    detection time, mistake rate (false suspicions) and the share of time in a mistake.

    - Detection, for a backend in rotation when it crashes (one already suspected needs no
      detection), without loss: uniform on [T - interval, T] (deadline); T - U + V with V
      uniform on [0, poll_interval) (polling), triangular on [T - interval, T + interval]
      when the poll interval is the heartbeat interval.
    - With loss p the timer runs from the last heartbeat heard, G intervals before the last
      one due, G geometric (P(G = g) proportional to p^g) and below ``misses`` (else the
      backend would already be suspected): a deadline detects after T - U - G interval, a
      density p^(misses - ceil(d / interval)) up to a constant, so losses *shorten* the
      detection of a crash caught in rotation. Polling detects at the first poll after that
      expiry, G counted at the last poll before the crash (see :meth:`detection_delay`).
    - Rejoin: the first heartbeat heard after the repair, U + G' interval with G' geometric of
      mean p / (1 - p), plus the wait for the next poll (polling).
    - False suspicions: a healthy backend is out of rotation a share p^misses of its time
      (the last ``misses`` heartbeats lost), with either monitor. A deadline suspects once per
      heartbeat heard and followed by at least ``misses`` losses: (1 - p) p^misses / interval
      a second (the mean recurrence of a run pattern, Feller, *An Introduction to Probability
      Theory*, vol. 1, ch. XIII). A poll catches a run of misses - 1 + r losses only if it
      falls in its r intervals of expiry: probability min(1, r interval / poll_interval).
    """

    kind: Literal["heartbeat"] = "heartbeat"
    interval: PositiveDuration = Field(1.0, ge=MIN_INTERVAL_S)
    misses: Count = Field(3, ge=1, le=1_000)
    loss: Fraction = 0.0
    monitor: Literal["deadline", "polling"] = "deadline"
    poll_interval: PositiveDuration = Field(1.0, ge=MIN_INTERVAL_S)

    @model_validator(mode="after")
    def _judged_in_time(self) -> HeartbeatSpec:
        if self.loss == 1.0:
            raise located_error(
                ".loss",
                "loss must be below 100%: a link that loses every heartbeat is cut; model that"
                " as a failure of kind partition",
            )
        if self.monitor == "polling" and self.poll_interval > self.timeout:
            raise located_error(
                ".poll_interval",
                f"poll_interval ({self.poll_interval:g}s) must not exceed the timeout, misses x"
                f" interval ({self.timeout:g}s): a monitor that looks less often sees a silence"
                " late or not at all",
            )
        return self

    @property
    def timeout(self) -> float:
        """The silence that makes the monitor suspect a backend: misses x interval, seconds."""
        return self.misses * self.interval

    @property
    def polling(self) -> bool:
        return self.monitor == "polling"

    def suspects_healthy_backends(self) -> bool:
        return self.loss > 0

    def detection_delay(self, rng: np.random.Generator, refused: bool) -> float:
        # A crashed process and an unreachable host are equally silent. Without loss or
        # polling, T - U (written out: the long-horizon mode asks at every crash).
        if self.loss == 0 and self.monitor == "deadline":
            return self.misses * self.interval - uniform_below(rng, self.interval)
        interval = self.interval
        since_beat = uniform_below(rng, interval)  # U: the last heartbeat was due U ago
        since_poll = uniform_below(rng, self.poll_interval) if self.polling else 0.0
        # In rotation at the crash: the last poll (for a deadline, the crash itself) found one
        # of the `misses` heartbeats due before it heard, the latest a geometric number of
        # losses back, truncated below `misses`. One due after that poll and heard is more
        # recent still: the expiry counts from it.
        after_poll = max(0, math.ceil((since_poll - since_beat) / interval))
        last_heard = after_poll + self._heard_within_misses(rng)
        if after_poll:
            first_heard = int(rng.geometric(1 - self.loss)) - 1 if self.loss > 0 else 0
            if first_heard < after_poll:
                last_heard = first_heard
        expiry = self.timeout - since_beat - last_heard * interval
        if not self.polling:
            return expiry
        polls = max(1, math.ceil((expiry + since_poll) / self.poll_interval))
        return polls * self.poll_interval - since_poll

    def detection_delay_variance(self, refused: bool) -> float | None:
        if self.loss == 0 and not self.polling:
            return self.interval**2 / 12  # T - U: that of a uniform
        return None

    def draws_only_uniforms(self) -> bool:
        return self.loss == 0  # losses draw geometric numbers

    def _heard_within_misses(self, rng: np.random.Generator) -> int:
        """Losses in a row before a heartbeat heard, given that there are fewer than
        ``misses``: geometric truncated, by inversion."""
        if self.loss == 0:
            return 0
        kept = 1 - self.loss**self.misses
        losses = math.floor(math.log1p(-rng.random() * kept) / math.log(self.loss))
        return min(losses, self.misses - 1)

    def mean_detection_delay(self, refused: bool) -> float:
        if not self.polling:
            return self.timeout - self.interval / 2 - self.interval * self._mean_losses()
        return self._mean_polled_detection()

    def _mean_losses(self) -> float:
        """Mean of the truncated geometric of :meth:`_heard_within_misses`."""
        p, misses = self.loss, self.misses
        if p == 0:
            return 0.0
        return p / (1 - p) - misses * p**misses / (1 - p**misses)

    def _mean_polled_detection(self) -> float:
        """The polling monitor's mean delay, exactly: the delay is -W + poll_interval x
        ceil((T - G interval + W - U) / poll_interval), and both the ceiling and the law of G
        (through the heartbeats due after the last poll) depend on W and U only through
        x = W - U, whose density is a trapezoid. So it is -poll_interval / 2 plus a sum over
        the intervals of x where the rest is constant, each weighed by its probability."""
        interval, poll, timeout, misses = (
            self.interval,
            self.poll_interval,
            self.timeout,
            self.misses,
        )
        most_due = math.ceil(poll / interval)
        cuts = [-interval, poll, *(j * interval for j in range(most_due + 1))]
        for heard in range(most_due + misses):
            first = math.floor((timeout - heard * interval - interval) / poll)
            last = math.ceil((timeout - heard * interval + poll) / poll)
            cuts += [n * poll - timeout + heard * interval for n in range(first, last + 1)]
        edges = sorted({cut for cut in cuts if -interval <= cut <= poll})
        total = 0.0
        for low, high in itertools.pairwise(edges):
            middle = (low + high) / 2
            due = max(0, math.ceil(middle / interval))
            ceiling = sum(
                chance * math.ceil((timeout - heard * interval + middle) / poll)
                for heard, chance in self._law_of_last_heard(due)
            )
            total += poll * ceiling * (self._cdf_of_phase_gap(high) - self._cdf_of_phase_gap(low))
        return total - poll / 2

    def _law_of_last_heard(self, due: int) -> list[tuple[int, float]]:
        """(G, probability) when ``due`` heartbeats were due after the last poll."""
        p, misses = self.loss, self.misses
        early = [(g, (1 - p) * p**g) for g in range(due)]
        kept = 1 - p**misses
        late = [(due + h, p**due * (1 - p) * p**h / kept) for h in range(misses)]
        return early + late

    def _cdf_of_phase_gap(self, x: float) -> float:
        """P(W - U <= x), W uniform on [0, poll_interval), U on [0, interval)."""
        poll = self.poll_interval

        def integral(t: float) -> float:  # of min(1, max(0, s / poll)) ds from 0 to t
            if t <= 0:
                return 0.0
            return t * t / (2 * poll) if t <= poll else poll / 2 + (t - poll)

        return (integral(x + self.interval) - integral(x)) / self.interval

    def rejoin_delay(self, rng: np.random.Generator) -> float:
        delay = uniform_below(rng, self.interval)
        if self.loss > 0:
            delay += self.interval * (int(rng.geometric(1 - self.loss)) - 1)
        if self.monitor == "polling":
            delay += uniform_below(rng, self.poll_interval)
        return delay

    def mean_rejoin_delay(self) -> float:
        lost = self.interval * self.loss / (1 - self.loss)
        return self.interval / 2 + lost + (self.poll_interval / 2 if self.polling else 0.0)

    def false_suspicion_rate(self) -> float:
        """Expected false suspicions per second of a healthy backend's time, as above (runs
        of losses that end after the last poll are counted whole)."""
        p, interval, misses = self.loss, self.interval, self.misses
        if p == 0:
            return 0.0
        heard_per_s = (1 - p) / interval
        if not self.polling or self.poll_interval <= interval:
            return heard_per_s * p**misses
        # Runs of misses - 1 + r losses, r >= 1: min(1, r x) with x = interval / poll.
        x, whole = interval / self.poll_interval, math.floor(self.poll_interval / interval)
        short = p * (1 - (whole + 1) * p**whole + whole * p ** (whole + 1)) / (1 - p) ** 2
        long = p ** (whole + 1) / (1 - p)
        return heard_per_s * (1 - p) * p ** (misses - 1) * (x * short + long)

    def false_suspicion_share(self) -> float:
        """Long-run share of a healthy backend's time out of rotation: the last ``misses``
        heartbeats due before the last verdict (the instant itself for a deadline) lost."""
        return self.loss**self.misses


@DETECTORS.register("phi_accrual")
class PhiAccrualSpec(DetectorSpec):
    """The phi-accrual detector (Hayashibara et al.), as Cassandra and Akka use it.

    Heartbeats every ``interval``, delayed by up to ``jitter`` on the network. The detector keeps
    the last ``window`` inter-arrival times, models them as normal (standard deviation at least
    ``min_std``) and suspects a backend once phi = -log10 P(a heartbeat is still to come)
    reaches ``threshold``: phi 8 means a one-in-10^8 chance that the backend is merely late.
    ``acceptable_pause`` is added to the modelled mean, as Akka's acceptable-heartbeat-pause
    is: the allowance for garbage-collection pauses and the like.
    """

    kind: Literal["phi_accrual"] = "phi_accrual"
    interval: PositiveDuration = Field(1.0, ge=MIN_INTERVAL_S)
    threshold: float = Field(8.0, ge=0.01, le=100)
    window: Count = Field(100, ge=2, le=10_000)
    min_std: PositiveDuration = 0.1
    jitter: NonNegativeDuration = 0.0
    acceptable_pause: NonNegativeDuration = 0.0

    def silence_before_suspicion(self, mean: float, std: float) -> float:
        """Time after the last heartbeat at which phi reaches the threshold: the normal
        model's mean moved by ``acceptable_pause`` (Akka's acceptable-heartbeat-pause)."""
        sigma = max(std, self.min_std)
        z = -NormalDist().inv_cdf(10.0 ** (-self.threshold))  # precise for large thresholds
        return mean + self.acceptable_pause + sigma * z

    def suspects_healthy_backends(self) -> bool:
        return self.jitter > 0  # late heartbeats look like silence

    def _steady_silence(self) -> float:
        # Uniform jitter on [0, jitter] gives inter-arrival times of standard deviation
        # jitter / sqrt(6) (the difference of two independent uniforms).
        return self.silence_before_suspicion(self.interval, self.jitter / math.sqrt(6))

    def detection_delay(self, rng: np.random.Generator, refused: bool) -> float:
        # Silence counts from the last heartbeat's arrival, itself up to `jitter` late.
        late = uniform_below(rng, self.jitter) if self.jitter > 0 else 0.0
        return self._steady_silence() - uniform_below(rng, self.interval) + late

    def mean_detection_delay(self, refused: bool) -> float:
        return self._steady_silence() - self.interval / 2 + self.jitter / 2

    def rejoin_delay(self, rng: np.random.Generator) -> float:
        return uniform_below(rng, self.interval)

    def mean_rejoin_delay(self) -> float:
        return self.interval / 2

    def draws_only_uniforms(self) -> bool:
        return True


DetectorSpecField = registered(DETECTORS, DetectorSpec)
"""Field type of ``balancer.detection``: a detector kind, or ``{kind: <name>, ...}``."""


class OutlierEjectionSpec(Spec):
    """Passive detection, as Envoy does it: after ``consecutive_errors`` failed answers in a row
    (errors, rejections by a full queue, or attempts its queue shed: Envoy's consecutive-5xx
    rule counts a 503 whatever its reason, so an overloaded backend that sheds gets ejected
    and its load moves to the others), a backend is ejected for ``ejection_time`` times
    its ejection multiplier, at most ``max_ejection_time``; at most ``max_ejected`` of the
    backends are out at once.

    The multiplier counts ejections in a row: it grows by one at each ejection and, like
    Envoy's, shrinks by one for every ``interval`` the backend then stays in the pool, so a
    backend that failed once long ago is not punished as a repeat offender forever.
    """

    consecutive_errors: Count = Field(5, ge=1, le=10_000)
    ejection_time: PositiveDuration = 30.0
    max_ejection_time: PositiveDuration = 300.0
    interval: PositiveDuration = 10.0
    max_ejected: Fraction = 0.5

    @model_validator(mode="after")
    def _ordered(self) -> OutlierEjectionSpec:
        if self.max_ejection_time < self.ejection_time:
            raise located_error(
                ".max_ejection_time",
                f"max_ejection_time ({self.max_ejection_time:g}s) must be at least the"
                f" ejection_time ({self.ejection_time:g}s)",
            )
        return self
