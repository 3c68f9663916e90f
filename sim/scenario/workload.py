"""The workload of a scenario: request classes, open-loop arrivals and closed-loop sessions."""

from __future__ import annotations

import bisect
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from sim.distributions import DISTRIBUTIONS, DistributionSpec
from sim.registry import did_you_mean
from sim.scenario.database import DatabaseUseSpec
from sim.scenario.resilience import (
    FAILURE_OUTCOMES,
    CircuitBreakerSpec,
    FailureOutcome,
    HedgingSpec,
    RetryBudgetSpec,
)
from sim.scenario.trace import ArrivalTrace, TraceError, read_trace
from sim.spec import (
    Count,
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
    "TraceSpec",
    "WorkloadSpec",
]


class RetrySpec(Spec):
    """How a client retries a failed attempt: capped exponential backoff with jitter.

    The n-th retry waits ``min(max_backoff, backoff * multiplier**(n-1))``, scaled by jitter:
    ``full`` draws uniformly in [0, that], ``equal`` in [that/2, that], ``none`` waits exactly that.
    With a ``budget``, a retry it refuses is not sent: the request ends with its last failure.
    """

    max_retries: Count = Field(0, alias="max", ge=0, le=100)
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
    priority: Count = Field(0, ge=0, le=1_000)
    """Higher is more important: under admission limits and priority queues, lower
    priorities are shed first (:mod:`sim.scenario.admission`)."""

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


SCENARIO_FOLDER = "scenario_folder"
"""Key of the validation context holding the folder of the scenario file: relative file names
in a scenario (a trace) are read from there, as a reader of the file expects."""


class TraceSpec(Spec):
    """Arrivals replayed from a CSV or Parquet file (:mod:`sim.scenario.trace`).

    ``path`` is relative to the scenario file's folder (the resolved scenario holds it
    absolute); ``speed`` divides every time (2 replays the trace twice as fast). The file is
    read and checked when the scenario is validated; :meth:`arrivals` gives what it holds.
    """

    path: str = Field(min_length=1, max_length=4096)
    speed: float = Field(1.0, gt=0, le=1000)
    _arrivals: ArrivalTrace | None = PrivateAttr(None)

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str, info: ValidationInfo) -> str:
        folder = (info.context or {}).get(SCENARIO_FOLDER)
        given = Path(path).expanduser()
        if not given.is_absolute() and folder is not None:
            given = Path(folder) / given
        return os.path.abspath(given)

    @model_validator(mode="after")
    def _read(self) -> TraceSpec:
        try:
            self._arrivals = read_trace(Path(self.path), self.speed)
        except TraceError as error:
            raise located_error(".path", f"{self.path}: {error}") from None
        return self

    def arrivals(self) -> ArrivalTrace:
        """The arrivals of the trace, in seconds of the run."""
        return self._arrivals


_SCALES = ("mean", "value", "scale")
"""The parameters that set a distribution's scale, which an interarrival shape leaves out."""


class ArrivalsSpec(Spec):
    """Open-loop arrivals: users who come regardless of how the site is doing.

    Generated arrivals come at ``rate``, which may follow a ``profile``: a Poisson process, or,
    with an ``interarrival`` shape, a renewal process whose gaps have that shape (deterministic,
    Erlang: more regular than Poisson; hyperexponential, lognormal with cv > 1: burstier).
    Recorded arrivals replay a ``trace`` instead, and exclude the other keys.
    """

    rate: Rate | None = Field(None, le=MAX_RATE_PER_S)
    profile: list[RateChange] = Field(default_factory=list)
    interarrival: DistributionSpec | None = None
    """The shape of the gaps between arrivals; the rate sets their mean (1/rate at every
    instant), so its scale (``mean``, ``value``) is left out and taken as one second of
    operational time. ``uniform`` and ``empirical`` are rescaled to that mean."""
    trace: TraceSpec | None = None

    @field_validator("interarrival", mode="before")
    @classmethod
    def _unit_mean(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"kind": value}
        if not isinstance(value, dict) or value.get("kind") not in DISTRIBUTIONS:
            return value
        for key in _SCALES:
            if key in value:
                raise located_error(
                    f".{key}",
                    f"the arrival rate sets the mean gap (1/rate): leave out {key!r} and give"
                    " the shape only (such as k or cv)",
                )
        keys = {
            field.alias or name
            for name, field in DISTRIBUTIONS.get(value["kind"]).model_fields.items()
        }
        unit = next((key for key in ("mean", "value") if key in keys), None)
        return {**value, unit: 1.0} if unit else value

    @field_validator("trace", mode="before")
    @classmethod
    def _trace_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_source(self) -> ArrivalsSpec:
        if self.trace is not None:
            for key in ("rate", "profile", "interarrival"):
                if getattr(self, key):
                    raise located_error(
                        f".{key}",
                        f"a trace gives the arrival times: leave out {key!r} (the trace's"
                        " 'speed' scales its rate)",
                    )
        elif self.rate is None:
            raise ValueError("give 'rate' (generated arrivals) or 'trace' (recorded arrivals)")
        if self.interarrival is not None and not self.interarrival.mean() > 0:
            raise located_error(".interarrival", "the shape's mean is 0: gaps need a positive mean")
        return self

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

    users: Count = Field(ge=1, le=100_000)
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
        trace = self.arrivals.trace if self.arrivals is not None else None
        if trace is not None and trace.arrivals().class_names is not None:
            self._check_trace_classes(trace.arrivals(), names)
        elif self.arrivals is not None:
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

    def arrival_mix(self, until: float) -> list[float]:
        """Each class's fraction of the open-loop arrivals, in class order: its ``share``, or,
        when a trace names the classes, its fraction of the trace's arrivals before ``until``
        (equal fractions if there are none)."""
        trace = self.arrivals.trace if self.arrivals is not None else None
        if trace is None or trace.arrivals().class_names is None:
            return [request_class.share for request_class in self.classes]
        counts = trace.arrivals().class_counts(until)
        total = sum(counts.values())
        if total == 0:
            return [1 / len(self.classes)] * len(self.classes)
        return [counts.get(request_class.name, 0) / total for request_class in self.classes]

    def _check_trace_classes(self, trace: ArrivalTrace, names: list[str]) -> None:
        """A trace that names each arrival's class gives the mix: no shares, no unknown names."""
        for index, request_class in enumerate(self.classes):
            if request_class.share is not None:
                raise located_error(
                    f".classes[{index}].share",
                    "the trace's 'class' column gives each arrival's class: leave out shares",
                )
        for name in trace.class_names:
            if name not in names:
                raise located_error(
                    ".arrivals.trace.path",
                    f"{self.arrivals.trace.path}: row {trace.first_row_of(name)}: unknown class"
                    f" {name!r}{did_you_mean(name, names)}; known: {', '.join(names)}",
                )


class RateProfile:
    """A piecewise-linear arrival rate over time: steps and ramps, constant after the last change.

    Arrival times of the non-homogeneous Poisson process are found by inverting the cumulative
    rate: from time t, the next arrival is where the integral of the rate since t reaches an
    Exp(1) draw. Unlike thinning this costs one draw per arrival, however spiky the profile.
    """

    def __init__(self, spec: ArrivalsSpec) -> None:
        if spec.rate is None:
            raise ValueError("recorded arrivals (a trace) have no rate profile")
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
