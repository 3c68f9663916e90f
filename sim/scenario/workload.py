"""The workload of a scenario: request classes, open-loop arrivals and closed-loop sessions."""

from __future__ import annotations

import bisect
import math
from typing import Literal

from pydantic import Field, model_validator

from sim.distributions import DistributionSpec
from sim.registry import did_you_mean
from sim.scenario.database import DatabaseUseSpec
from sim.scenario.resilience import (
    FAILURE_OUTCOMES,
    CircuitBreakerSpec,
    FailureOutcome,
    HedgingSpec,
    RetryBudgetSpec,
)
from sim.spec import (
    Fraction,
    Name,
    NonNegativeDuration,
    PositiveDuration,
    Rate,
    Spec,
    located_error,
)

__all__ = [
    "MAX_RATE_PER_S",
    "ArrivalsSpec",
    "RateChange",
    "RateProfile",
    "RequestClassSpec",
    "RetrySpec",
    "SessionsSpec",
    "WorkloadSpec",
]


class RetrySpec(Spec):
    """How a client retries a failed attempt: capped exponential backoff with jitter.

    The n-th retry waits ``min(max_backoff, backoff * multiplier**(n-1))``, scaled by jitter:
    ``full`` draws uniformly in [0, that], ``equal`` in [that/2, that], ``none`` waits exactly that.
    With a ``budget``, a retry it refuses is not sent: the request ends with its last failure.
    """

    max_retries: int = Field(0, alias="max", ge=0, le=100)
    backoff: NonNegativeDuration = 0.1
    multiplier: float = Field(2.0, ge=1.0, le=1000)
    max_backoff: NonNegativeDuration = 10.0
    jitter: Literal["none", "full", "equal"] = "full"
    retry_on: list[FailureOutcome] = Field(default_factory=lambda: list(FAILURE_OUTCOMES))
    budget: RetryBudgetSpec | None = None


class RequestClassSpec(Spec):
    """A kind of request (browse, cart, checkout) with its own work and client behaviour."""

    name: Name
    share: Fraction | None = None
    kind: Literal["read", "write"] = "read"
    service_time: DistributionSpec
    timeout: PositiveDuration | None = None
    retries: RetrySpec = RetrySpec()
    circuit_breaker: CircuitBreakerSpec | None = None
    hedging: HedgingSpec | None = None
    database: DatabaseUseSpec | None = None

    @property
    def resilient(self) -> bool:
        """Whether its client uses a retry budget, a circuit breaker or hedging."""
        return (
            self.retries.budget is not None
            or self.circuit_breaker is not None
            or self.hedging is not None
        )


MAX_RATE_PER_S = 10_000_000
"""The highest arrival rate: ten million requests a second, far beyond any shop's peak."""


class RateChange(Spec):
    """From time ``at``, arrivals come at ``rate``; reached linearly over ``ramp`` when given."""

    at: NonNegativeDuration
    rate: Rate = Field(le=MAX_RATE_PER_S)
    ramp: NonNegativeDuration = 0.0


class ArrivalsSpec(Spec):
    """Open-loop Poisson arrivals: users who come regardless of how the site is doing."""

    rate: Rate = Field(le=MAX_RATE_PER_S)
    profile: list[RateChange] = Field(default_factory=list)

    @model_validator(mode="after")
    def _changes_in_order(self) -> ArrivalsSpec:
        previous_end = 0.0
        for index, change in enumerate(self.profile):
            if change.at < previous_end:
                raise located_error(
                    f".profile[{index}].at",
                    f"changes must be in time order without overlapping ramps: {change.at:g}s"
                    f" starts before the previous change ends at {previous_end:g}s",
                )
            previous_end = change.at + change.ramp
        return self


class SessionsSpec(Spec):
    """Closed-loop shoppers: each waits for an answer, thinks, then sends the next request."""

    users: int = Field(ge=1, le=100_000)
    think_time: DistributionSpec
    steps: list[Name] = Field(min_length=1)


class WorkloadSpec(Spec):
    arrivals: ArrivalsSpec | None = None
    sessions: SessionsSpec | None = None
    classes: list[RequestClassSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSpec:
        if self.arrivals is None and self.sessions is None:
            raise ValueError("give 'arrivals' (open loop), 'sessions' (closed loop), or both")
        names = [request_class.name for request_class in self.classes]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise located_error(f".classes[{index}].name", f"duplicate class {name!r}")
        if self.arrivals is not None:
            for index, request_class in enumerate(self.classes):
                if request_class.share is None:
                    raise located_error(
                        f".classes[{index}].share",
                        "open-loop arrivals need a share for every class",
                    )
            total = sum(request_class.share for request_class in self.classes)
            if not math.isclose(total, 1.0, abs_tol=1e-6):
                raise located_error(
                    ".classes", f"class shares must sum to 1 (100%), they sum to {total:.6g}"
                )
        if self.sessions is not None:
            by_name = {request_class.name: request_class for request_class in self.classes}
            if self.sessions.think_time.mean() == 0 and all(
                step in by_name and by_name[step].service_time.mean() == 0
                for step in self.sessions.steps
            ):
                raise located_error(
                    ".sessions.think_time",
                    "with no think time and no service time, users would loop forever without"
                    " time passing",
                )
            for index, step in enumerate(self.sessions.steps):
                if step not in names:
                    raise located_error(
                        f".sessions.steps[{index}]",
                        f"unknown class {step!r}{did_you_mean(step, names)}; known: "
                        + ", ".join(names),
                    )
        return self


class RateProfile:
    """A piecewise-linear arrival rate over time: steps and ramps, constant after the last change.

    Arrival times of the non-homogeneous Poisson process are found by inverting the cumulative
    rate: from time t, the next arrival is where the integral of the rate since t reaches an
    Exp(1) draw. Unlike thinning this costs one draw per arrival, however spiky the profile.
    """

    def __init__(self, spec: ArrivalsSpec) -> None:
        times = [0.0]
        rates = [spec.rate]
        for change in spec.profile:
            times += [change.at, change.at + change.ramp]
            rates += [rates[-1], change.rate]
        self.times = times
        self.rates = rates

    def rate_at(self, t: float) -> float:
        """The rate at time ``t`` (just after it, at a step)."""
        index = bisect.bisect_right(self.times, t) - 1
        if index >= len(self.times) - 1:
            return self.rates[-1]
        t0, t1 = self.times[index], self.times[index + 1]
        r0, r1 = self.rates[index], self.rates[index + 1]
        return r0 if t1 == t0 else r0 + (r1 - r0) * (t - t0) / (t1 - t0)

    def mean_rate(self, start: float, end: float) -> float:
        """Average rate over [start, end]: expected arrivals there divided by the length."""
        if end <= start:
            return self.rate_at(start)
        return (self.cumulative(end) - self.cumulative(start)) / (end - start)

    def cumulative(self, t: float) -> float:
        """Expected number of arrivals in [0, t]: the integral of the rate."""
        times, rates = self.times, self.rates
        total = 0.0
        for index in range(len(times) - 1):
            t0, t1 = times[index], times[index + 1]
            if t0 >= t:
                break
            if t1 > t0:
                end = min(t1, t)
                r_end = rates[index] + (rates[index + 1] - rates[index]) * (end - t0) / (t1 - t0)
                total += (end - t0) * (rates[index] + r_end) / 2
        if t > times[-1]:
            total += (t - times[-1]) * rates[-1]
        return total

    def next_arrival(self, t: float, exp1: float) -> float:
        """The time after ``t`` where the cumulative rate has grown by ``exp1``; inf if never."""
        times, rates = self.times, self.rates
        index = bisect.bisect_right(times, t) - 1
        remaining = exp1
        while index < len(times) - 1:
            t0, t1 = times[index], times[index + 1]
            if t1 > t:
                slope = (rates[index + 1] - rates[index]) / (t1 - t0)
                rate = rates[index] + slope * (t - t0)
                span = t1 - t
                mass = rate * span + slope * span * span / 2
                if mass >= remaining:
                    # Root of rate*d + slope*d^2/2 = remaining, in a form stable for slope ~ 0.
                    discriminant = max(rate * rate + 2 * slope * remaining, 0.0)
                    return t + 2 * remaining / (rate + math.sqrt(discriminant))
                remaining -= mass
                t = t1
            index += 1
        last = rates[-1]
        return t + remaining / last if last > 0 else math.inf
