"""How a client protects a struggling backend and itself: retry budgets, circuit breakers, hedging.

Each is optional per request class and off by default. They are the tools operators use when a
retry storm or a slow server threatens: a retry budget (Finagle's ``RetryBudget``, gRPC's retry
throttling) caps the load retries add; a circuit breaker (Hystrix, resilience4j, Finagle's
failure accrual) stops sending to a backend that keeps failing and fails fast instead; hedging
(Dean and Barroso, "The Tail at Scale", CACM 2013; gRPC's hedging policy, gRFC A6) sends a second
copy of a slow request and takes the first answer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sim.spec import Count, Fraction, NonNegativeDuration, PositiveDuration, Rate, Spec

__all__ = [
    "FAILURE_OUTCOMES",
    "CircuitBreakerSpec",
    "ErrorRatioSpec",
    "HedgingSpec",
    "RetryBudgetSpec",
]

FailureOutcome = Literal["timeout", "rejected", "no_backend", "error", "shed"]
FAILURE_OUTCOMES: list[FailureOutcome] = ["timeout", "rejected", "no_backend", "error"]
"""The outcomes of a failed attempt a client reacts to by default (a retry, a breaker's
count); ``shed``, a deliberate "not now" from an overloaded service, may be added."""

MAX_WINDOW_S = 86_400
"""The longest sliding window: a day; real budgets and breakers look back seconds to minutes."""


class RetryBudgetSpec(Spec):
    """Retries allowed only while, over the last ``window``, retries stay within ``ratio`` of
    the first tries plus ``min_per_second`` x ``window`` (Finagle's ``RetryBudget``: ttl,
    percentCanRetry, minRetriesPerSec; defaults there 10 s, 20%, 10/s).

    ``min_per_second`` defaults to 0 here, so that ``ratio`` alone bounds the amplification:
    over any run, retries <= ratio x first tries, hence attempts per request <= 1 + ratio under
    a total outage. Give Finagle's floor to let a quiet client retry at all.
    """

    ratio: Fraction = 0.2
    min_per_second: Rate = Field(0.0, le=1_000_000)
    window: PositiveDuration = Field(10.0, le=MAX_WINDOW_S)


class ErrorRatioSpec(Spec):
    """Trip when, over the last ``window``, at least ``min_requests`` attempts ended and at
    least ``threshold`` of them failed (Hystrix: 50% over 10 s with 20 requests at least;
    resilience4j's failureRateThreshold and minimumNumberOfCalls)."""

    threshold: Fraction = Field(0.5, gt=0.0)
    window: PositiveDuration = Field(10.0, le=MAX_WINDOW_S)
    min_requests: Count = Field(20, ge=1, le=1_000_000)


class CircuitBreakerSpec(Spec):
    """A breaker on a class's traffic to its backends: closed (everything sent), open (nothing
    sent, requests fail at once with cause ``circuit_open``) for ``cool_down``, then half-open:
    exactly ``probes`` attempts are let through; all ok closes it, any failure opens it again.

    It opens after ``consecutive_failures`` failed attempts in a row, or when the error ratio
    over a sliding window passes its threshold, whichever comes first (give one or both). An
    attempt counts as failed when its outcome is in ``failure_on``; other outcomes are ignored.
    """

    consecutive_failures: Count | None = Field(None, ge=1, le=1_000_000)
    error_ratio: ErrorRatioSpec | None = None
    cool_down: PositiveDuration = Field(5.0, le=MAX_WINDOW_S)
    probes: Count = Field(1, ge=1, le=10_000)
    failure_on: list[FailureOutcome] = Field(
        default_factory=lambda: list(FAILURE_OUTCOMES), min_length=1
    )

    @model_validator(mode="after")
    def _trips_somehow(self) -> CircuitBreakerSpec:
        if self.consecutive_failures is None and self.error_ratio is None:
            raise ValueError(
                "a circuit breaker needs a reason to open: give consecutive_failures (e.g. 5),"
                " error_ratio ({threshold: 50%, window: 10s, min_requests: 20}), or both"
            )
        return self


class HedgingSpec(Spec):
    """After ``delay`` without an answer, send another attempt (through the balancer), up to
    ``max_attempts`` in all, one each ``delay``; the first ok answer wins and the others are
    cancelled (gRPC's hedgingDelay and maxAttempts, which gRPC caps at 5). Dean and Barroso
    hedge at the 95th percentile of the latency: about 5% more attempts."""

    delay: NonNegativeDuration
    max_attempts: Count = Field(2, ge=2, le=5)
