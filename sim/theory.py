"""Closed forms from queueing theory, used to check the simulator against results nobody here wrote.

Notation: arrival rate ``lam`` (per second), service rate per worker ``mu`` (per second),
``c`` workers, ``K`` places in the system (workers plus queue). Formulas are the textbook ones
(Kleinrock, *Queueing Systems* vol. 1; Gross and Harris, *Fundamentals of Queueing Theory*).
"""

from __future__ import annotations

import math

__all__ = [
    "erlang_c",
    "mg1_mean_wait",
    "mm1_mean_response",
    "mm1_response_quantile",
    "mmc_mean_wait",
    "mmck_blocking",
]


def _check_stable(lam: float, capacity: float) -> None:
    if lam <= 0 or capacity <= 0:
        raise ValueError("rates must be positive")
    if lam >= capacity:
        raise ValueError(f"unstable queue: arrival rate {lam} >= service capacity {capacity}")


def mm1_mean_response(lam: float, mu: float) -> float:
    """Mean time in an M/M/1 system: 1 / (mu - lam)."""
    _check_stable(lam, mu)
    return 1.0 / (mu - lam)


def mm1_response_quantile(lam: float, mu: float, q: float) -> float:
    """The q-quantile of M/M/1 FIFO response time, which is exponential with rate mu - lam."""
    _check_stable(lam, mu)
    return -math.log1p(-q) / (mu - lam)


def erlang_c(c: int, lam: float, mu: float) -> float:
    """Probability that an arrival to an M/M/c queue has to wait (Erlang's C formula)."""
    _check_stable(lam, c * mu)
    offered = lam / mu
    # Terms offered^k / k! built by recurrence, which stays finite for large c.
    term = 1.0
    below = 0.0
    for k in range(c):
        below += term
        term *= offered / (k + 1)
    waiting = term * c / (c - offered)
    return waiting / (below + waiting)


def mmc_mean_wait(c: int, lam: float, mu: float) -> float:
    """Mean time in queue (before service) of an M/M/c system: C(c, a) / (c mu - lam)."""
    return erlang_c(c, lam, mu) / (c * mu - lam)


def mmck_blocking(c: int, capacity: int, lam: float, mu: float) -> float:
    """Probability that an arrival finds an M/M/c/K system full (K = ``capacity`` >= c).

    By PASTA this is also the long-run fraction of arrivals that are rejected.
    """
    if capacity < c:
        raise ValueError(f"capacity {capacity} must be >= workers {c}")
    if lam <= 0 or mu <= 0:
        raise ValueError("rates must be positive")
    offered = lam / mu
    weights = [1.0]
    for n in range(1, capacity + 1):
        weights.append(weights[-1] * offered / min(n, c))
    return weights[-1] / sum(weights)


def mg1_mean_wait(lam: float, mean_service: float, service_second_moment: float) -> float:
    """Mean wait in an M/G/1 queue, by the Pollaczek-Khinchine formula: lam E[S^2] / 2(1 - rho)."""
    rho = lam * mean_service
    _check_stable(rho, 1.0)
    return lam * service_second_moment / (2 * (1 - rho))
