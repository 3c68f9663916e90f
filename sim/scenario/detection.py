"""How the balancer learns that a backend failed or came back: detectors, never magic.

A detector is the only way a failure reaches the balancer. Each kind knows, besides its
parameters, the distribution of its own delays for a crash that happens at a uniformly random
moment of its cycle: the long-horizon availability mode samples those delays instead of
simulating every probe, and the Markov-chain cross-check uses their means.

    balancer:
      detection: {kind: health_check, interval: 2s, timeout: 1s, fall: 3, rise: 2}
      detection: {kind: heartbeat, interval: 1s, misses: 3}
      detection: {kind: phi_accrual, interval: 1s, threshold: 8}
      outlier_ejection: {consecutive_errors: 5, ejection_time: 30s}
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from statistics import NormalDist
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from sim.registry import Registry
from sim.spec import (
    Fraction,
    NonNegativeDuration,
    PositiveDuration,
    Spec,
    located_error,
    registered,
)

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

    def suspects_healthy_backends(self) -> bool:
        """Whether it can take a healthy, full-speed backend out (a false suspicion)."""
        return False

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
    fall: int = Field(3, ge=1, le=1_000)
    rise: int = Field(2, ge=1, le=1_000)
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
        return rng.uniform(0, self.interval) + (self.fall - 1) * self.interval + wait

    def mean_detection_delay(self, refused: bool) -> float:
        wait = 0.0 if refused else self.timeout
        return self.interval / 2 + (self.fall - 1) * self.interval + wait

    def rejoin_delay(self, rng: np.random.Generator) -> float:
        return rng.uniform(0, self.interval) + (self.rise - 1) * self.interval + self.probe_time

    def mean_rejoin_delay(self) -> float:
        return self.interval / 2 + (self.rise - 1) * self.interval + self.probe_time


@DETECTORS.register("heartbeat")
class HeartbeatSpec(DetectorSpec):
    """Heartbeats: each backend reports every ``interval``; ``misses`` silent intervals in a row
    make the detector declare it dead, and the next heartbeat brings it back. A heartbeat that
    arrives exactly at the deadline is in time.

    A crash at a uniform phase is detected after a delay uniform on
    [(misses - 1) interval, misses interval], of mean (misses - 1/2) interval.
    """

    kind: Literal["heartbeat"] = "heartbeat"
    interval: PositiveDuration = Field(1.0, ge=MIN_INTERVAL_S)
    misses: int = Field(3, ge=1, le=1_000)

    def detection_delay(self, rng: np.random.Generator, refused: bool) -> float:
        # A crashed process and an unreachable host are equally silent.
        return self.misses * self.interval - rng.uniform(0, self.interval)

    def mean_detection_delay(self, refused: bool) -> float:
        return (self.misses - 0.5) * self.interval

    def rejoin_delay(self, rng: np.random.Generator) -> float:
        return rng.uniform(0, self.interval)

    def mean_rejoin_delay(self) -> float:
        return self.interval / 2


@DETECTORS.register("phi_accrual")
class PhiAccrualSpec(DetectorSpec):
    """The phi-accrual detector (Hayashibara et al.), as Cassandra and Akka use it.

    Heartbeats every ``interval``, delayed by up to ``jitter`` on the network. The detector keeps
    the last ``window`` inter-arrival times, models them as normal (standard deviation at least
    ``min_std``) and suspects a backend once phi = -log10 P(a heartbeat is still to come)
    reaches ``threshold``: phi 8 means a one-in-10^8 chance that the backend is merely late.
    """

    kind: Literal["phi_accrual"] = "phi_accrual"
    interval: PositiveDuration = Field(1.0, ge=MIN_INTERVAL_S)
    threshold: float = Field(8.0, ge=0.01, le=100)
    window: int = Field(100, ge=2, le=10_000)
    min_std: PositiveDuration = 0.1
    jitter: NonNegativeDuration = 0.0

    def silence_before_suspicion(self, mean: float, std: float) -> float:
        """Time after the last heartbeat at which phi reaches the threshold."""
        sigma = max(std, self.min_std)
        z = -NormalDist().inv_cdf(10.0 ** (-self.threshold))  # precise for large thresholds
        return mean + sigma * z

    def suspects_healthy_backends(self) -> bool:
        return self.jitter > 0  # late heartbeats look like silence

    def _steady_silence(self) -> float:
        # Uniform jitter on [0, jitter] gives inter-arrival times of standard deviation
        # jitter / sqrt(6) (the difference of two independent uniforms).
        return self.silence_before_suspicion(self.interval, self.jitter / math.sqrt(6))

    def detection_delay(self, rng: np.random.Generator, refused: bool) -> float:
        # Silence counts from the last heartbeat's arrival, itself up to `jitter` late.
        late = rng.uniform(0, self.jitter) if self.jitter > 0 else 0.0
        return self._steady_silence() - rng.uniform(0, self.interval) + late

    def mean_detection_delay(self, refused: bool) -> float:
        return self._steady_silence() - self.interval / 2 + self.jitter / 2

    def rejoin_delay(self, rng: np.random.Generator) -> float:
        return rng.uniform(0, self.interval)

    def mean_rejoin_delay(self) -> float:
        return self.interval / 2


DetectorSpecField = registered(DETECTORS, DetectorSpec)
"""Field type of ``balancer.detection``: a detector kind, or ``{kind: <name>, ...}``."""


class OutlierEjectionSpec(Spec):
    """Passive detection, as Envoy does it: after ``consecutive_errors`` failed answers in a row
    (errors, or rejections by a full queue), a backend is ejected for ``ejection_time`` times
    its ejection multiplier, at most ``max_ejection_time``; at most ``max_ejected`` of the
    backends are out at once.

    The multiplier counts ejections in a row: it grows by one at each ejection and, like
    Envoy's, shrinks by one for every ``interval`` the backend then stays in the pool, so a
    backend that failed once long ago is not punished as a repeat offender forever.
    """

    consecutive_errors: int = Field(5, ge=1, le=10_000)
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
