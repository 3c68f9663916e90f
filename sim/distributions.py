"""Probability distributions of times: service, think, failure and repair times.

Each distribution is an inert spec that knows its own mean and variance, so that theory checks
and summaries can use them (a queue's load is arrival rate times mean service time), and that
can hand out a fast sampler bound to one random stream. Scenario files name them by ``kind``::

    service_time: {kind: lognormal, mean: 40ms, cv: 1.5}
    repair_time: {kind: weibull, shape: 1.5, mean: 4h}
    service_time: {kind: empirical, percentiles: {50: 30ms, 90: 80ms, 99: 300ms, 100: 1s}}
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from decimal import Decimal
from typing import Literal

import numpy as np
from pydantic import Field, TypeAdapter, field_validator, model_validator

from sim.registry import Registry
from sim.spec import Count, NonNegativeDuration, PositiveDuration, Spec, located_error, registered

__all__ = [
    "DISTRIBUTIONS",
    "DelaySpec",
    "Deterministic",
    "Distribution",
    "DistributionSpec",
    "Empirical",
    "Erlang",
    "Exponential",
    "Gamma",
    "HyperExponential",
    "LogNormal",
    "Uniform",
    "Weibull",
    "parse_distribution",
]

DISTRIBUTIONS: Registry[type[Distribution]] = Registry("distribution")


class Distribution(Spec, ABC):
    """A distribution of non-negative times in seconds."""

    kind: str

    @abstractmethod
    def mean(self) -> float:
        """Expected value in seconds."""

    @abstractmethod
    def variance(self) -> float:
        """Variance in seconds squared."""

    def cv(self) -> float:
        """Coefficient of variation, the shape parameter of queueing formulas."""
        mean = self.mean()
        return math.sqrt(self.variance()) / mean if mean > 0 else 0.0

    @abstractmethod
    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` independent samples from ``rng``."""

    def sampler(
        self, rng: np.random.Generator, block: int = 2048, scale: float = 1.0
    ) -> Iterator[float]:
        """An endless iterator of samples from ``rng``, drawn from numpy ``block`` at a time,
        each multiplied by ``scale`` (the same shape with a mean ``scale`` times larger).

        Drawing one number at a time from numpy costs about a microsecond of call overhead and the
        simulator draws millions; ``next()`` on this iterator costs a few tens of nanoseconds.
        The sequence is the same whatever the block size.
        """
        if scale == 1.0:
            while True:
                yield from self.draw(rng, block).tolist()
        while True:
            yield from (self.draw(rng, block) * scale).tolist()


@DISTRIBUTIONS.register("exponential")
class Exponential(Distribution):
    """Memoryless times: Poisson arrivals, M/M/c service, constant failure rates (MTTF)."""

    kind: Literal["exponential"] = "exponential"
    mean_s: PositiveDuration = Field(alias="mean")

    def mean(self) -> float:
        return self.mean_s

    def variance(self) -> float:
        return self.mean_s**2

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.exponential(self.mean_s, size)


@DISTRIBUTIONS.register("deterministic")
class Deterministic(Distribution):
    """Always the same time: a fixed boot delay, the D in M/D/1."""

    kind: Literal["deterministic"] = "deterministic"
    value: NonNegativeDuration

    def mean(self) -> float:
        return self.value

    def variance(self) -> float:
        return 0.0

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, self.value)


@DISTRIBUTIONS.register("uniform")
class Uniform(Distribution):
    """Equally likely anywhere in [low, high]."""

    kind: Literal["uniform"] = "uniform"
    low: NonNegativeDuration
    high: NonNegativeDuration

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise located_error(".high", f"high ({self.high:g}s) must be >= low ({self.low:g}s)")
        return self

    def mean(self) -> float:
        return (self.low + self.high) / 2

    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size)


class _MeanAndCv(Distribution):
    mean_s: PositiveDuration = Field(alias="mean")
    cv_value: float = Field(alias="cv", ge=0.001, le=100)

    def mean(self) -> float:
        return self.mean_s

    def variance(self) -> float:
        return (self.cv_value * self.mean_s) ** 2


@DISTRIBUTIONS.register("lognormal")
class LogNormal(_MeanAndCv):
    """Right-skewed service times given by their mean and coefficient of variation."""

    kind: Literal["lognormal"] = "lognormal"

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        sigma2 = math.log1p(self.cv_value**2)
        mu = math.log(self.mean_s) - sigma2 / 2
        return rng.lognormal(mu, math.sqrt(sigma2), size)


@DISTRIBUTIONS.register("gamma")
class Gamma(_MeanAndCv):
    """Gamma by mean and cv: cv < 1 is more regular than exponential, cv > 1 more bursty."""

    kind: Literal["gamma"] = "gamma"

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        shape = 1.0 / self.cv_value**2
        return rng.gamma(shape, self.mean_s / shape, size)


@DISTRIBUTIONS.register("erlang")
class Erlang(Distribution):
    """Sum of ``k`` exponential phases with the given total mean (cv = 1/sqrt(k))."""

    kind: Literal["erlang"] = "erlang"
    k: Count = Field(ge=1, le=10_000)
    mean_s: PositiveDuration = Field(alias="mean")

    def mean(self) -> float:
        return self.mean_s

    def variance(self) -> float:
        return self.mean_s**2 / self.k

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.gamma(self.k, self.mean_s / self.k, size)


@DISTRIBUTIONS.register("hyperexponential")
class HyperExponential(Distribution):
    """A mixture of two exponentials by mean and cv >= 1: bursty times, many short, a few long.

    The two-moment fit with balanced means (each phase carries half the mean): phase i is
    chosen with probability p_i and has mean ``mean / (2 p_i)``, where
    p_1 = (1 + sqrt((cv^2 - 1) / (cv^2 + 1))) / 2 (Whitt, "Approximating a point process by a
    renewal process", Operations Research 30, 1982; Allen, *Probability, Statistics, and
    Queueing Theory*, 1990). cv = 1 is the exponential.
    """

    kind: Literal["hyperexponential"] = "hyperexponential"
    mean_s: PositiveDuration = Field(alias="mean")
    cv_value: float = Field(alias="cv", ge=1.0, le=100)

    def phases(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((p_1, mean_1), (p_2, mean_2))``: each phase's probability and mean in seconds."""
        squared = self.cv_value**2
        first = (1 + math.sqrt((squared - 1) / (squared + 1))) / 2
        second = 1 - first
        return (first, self.mean_s / (2 * first)), (second, self.mean_s / (2 * second))

    def mean(self) -> float:
        return self.mean_s

    def variance(self) -> float:
        return (self.cv_value * self.mean_s) ** 2

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        (first, first_mean), (_, second_mean) = self.phases()
        in_first = rng.random(size) < first
        return rng.exponential(1.0, size) * np.where(in_first, first_mean, second_mean)


@DISTRIBUTIONS.register("weibull")
class Weibull(Distribution):
    """Weibull by ``shape`` and either ``scale`` or ``mean``: shape > 1 models wear-out."""

    kind: Literal["weibull"] = "weibull"
    shape: float = Field(ge=0.05, le=100)
    scale: PositiveDuration | None = None
    mean_s: PositiveDuration | None = Field(default=None, alias="mean")

    @model_validator(mode="after")
    def _one_of_scale_or_mean(self) -> Weibull:
        if (self.scale is None) == (self.mean_s is None):
            raise ValueError("give exactly one of 'scale' or 'mean'")
        return self

    def _scale(self) -> float:
        if self.scale is not None:
            return self.scale
        return self.mean_s / math.gamma(1 + 1 / self.shape)

    def mean(self) -> float:
        return self._scale() * math.gamma(1 + 1 / self.shape)

    def variance(self) -> float:
        g1 = math.gamma(1 + 1 / self.shape)
        g2 = math.gamma(1 + 2 / self.shape)
        return self._scale() ** 2 * (g2 - g1**2)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self._scale() * rng.weibull(self.shape, size)


@DISTRIBUTIONS.register("empirical")
class Empirical(Distribution):
    """Measured times: a list of ``samples`` (resampled), or ``percentiles`` (interpolated).

    Percentiles map a percentage to a time, e.g. ``{50: 30ms, 99: 300ms, 100: 1s}``; the 100th is
    required so the distribution has an upper bound, and the 0th defaults to zero. Between two
    given points the quantile function is linear.
    """

    kind: Literal["empirical"] = "empirical"
    samples: list[NonNegativeDuration] | None = Field(
        default=None, min_length=1, max_length=100_000
    )
    percentiles: dict[float, NonNegativeDuration] | None = None

    @field_validator("percentiles", mode="before")
    @classmethod
    def _percentile_keys(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        parsed = {}
        for key, time in value.items():
            try:
                parsed[float(str(key).lstrip("pP"))] = time
            except ValueError:
                raise ValueError(
                    f"percentile keys are numbers from 0 to 100 such as 50 or p99, got {key!r}"
                ) from None
        return parsed

    @model_validator(mode="after")
    def _one_source(self) -> Empirical:
        if (self.samples is None) == (self.percentiles is None):
            raise ValueError("give exactly one of 'samples' or 'percentiles'")
        if self.percentiles is not None:
            points = sorted(self.percentiles.items())
            if any(not 0 <= p <= 100 for p, _ in points):
                raise ValueError("percentiles must be between 0 and 100")
            if points[-1][0] != 100:
                raise ValueError("percentiles need the 100th (the largest time)")
            times = [t for _, t in points]
            if any(b < a for a, b in itertools.pairwise(times)):
                raise ValueError("percentile times must not decrease as the percentile grows")
        return self

    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        points = dict(self.percentiles)
        points.setdefault(0.0, 0.0)
        percents, times = zip(*sorted(points.items()), strict=True)
        # As written: p99.9 is the probability nearest 0.999 (99.9 / 100 in floats is above it).
        probabilities = [float(Decimal(repr(percent)) / 100) for percent in percents]
        return np.array(probabilities), np.array(times)

    def mean(self) -> float:
        if self.samples is not None:
            return float(np.mean(self.samples))
        p, t = self._knots()
        return float(np.sum(np.diff(p) * (t[1:] + t[:-1]) / 2))

    def variance(self) -> float:
        if self.samples is not None:
            return float(np.var(self.samples))
        p, t = self._knots()
        # Integral of Q(u)^2 over each linear piece of the quantile function Q.
        second = np.sum(np.diff(p) * (t[:-1] ** 2 + t[:-1] * t[1:] + t[1:] ** 2) / 3)
        return float(second - self.mean() ** 2)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self.samples is not None:
            return np.asarray(self.samples)[rng.integers(0, len(self.samples), size)]
        p, t = self._knots()
        return np.interp(rng.random(size), p, t)


DistributionSpec = registered(DISTRIBUTIONS, Distribution)
"""Field type of a distribution in a scenario: ``{kind: <name>, ...parameters}``."""


def _duration_as_deterministic(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"kind": "deterministic", "value": value}
    if isinstance(value, str) and value.strip()[:1] in set("0123456789.+-"):
        return {"kind": "deterministic", "value": value}
    return value


DelaySpec = registered(DISTRIBUTIONS, Distribution, shorthand=_duration_as_deterministic)
"""Field type of a delay: a plain duration (``5s``, always the same) or any distribution."""

_ADAPTER = TypeAdapter(DistributionSpec)


def parse_distribution(value: object) -> Distribution:
    """A distribution from scenario-style data, e.g. ``{"kind": "exponential", "mean": "40ms"}``."""
    return _ADAPTER.validate_python(value)
