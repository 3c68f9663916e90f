"""Closed forms from queueing theory, used to check the simulator against results nobody here wrote.

Notation: arrival rate ``lam`` (per second), service rate per worker ``mu`` (per second),
``c`` workers, ``K`` places in the system (workers plus queue). Formulas are the textbook ones
(Kleinrock, *Queueing Systems* vol. 1; Gross and Harris, *Fundamentals of Queueing Theory*).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = [
    "che_characteristic_time",
    "che_hit_ratio",
    "cold_cache_misses",
    "ctmc_steady_state",
    "dns_balancer_reach",
    "erlang_c",
    "erlang_stages",
    "expected_lost_writes",
    "gim1_mean_wait",
    "gim1_sigma",
    "gim1_wait_quantile",
    "mg1_mean_wait",
    "mm1_mean_response",
    "mm1_response_quantile",
    "mmc_mean_wait",
    "mmc_response_quantile",
    "mmc_wait_quantile",
    "mmck_blocking",
    "observed_replication_lag_cdf",
    "parallel_availability",
    "redundant_balancer_availability",
    "replica_group_availability",
    "single_component_availability",
    "standby_group_availability",
    "standby_group_serving",
    "standby_states",
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


def mmc_wait_quantile(c: int, lam: float, mu: float, q: float) -> float:
    """The q-quantile of the time in queue of an M/M/c FIFO system.

    An arrival waits with probability C (Erlang C), and then for an exponential time of rate
    c mu - lam: P(W > t) = C exp(-(c mu - lam) t). Zero when q <= 1 - C.
    """
    waiting = erlang_c(c, lam, mu)
    if q <= 1 - waiting:
        return 0.0
    return math.log(waiting / (1 - q)) / (c * mu - lam)


def mmc_response_quantile(c: int, lam: float, mu: float, q: float) -> float:
    """The q-quantile of the time in an M/M/c FIFO system (wait plus service), by bisection on
    P(T > t) = (1 - C) e^(-mu t) + C P(W' + S > t), with W' ~ Exp(theta = c mu - lam) and
    S ~ Exp(mu) independent: P(W' + S > t) = (theta e^(-mu t) - mu e^(-theta t)) / (theta - mu),
    or (1 + mu t) e^(-mu t) when theta = mu."""
    waiting = erlang_c(c, lam, mu)
    theta = c * mu - lam

    def survival(t: float) -> float:
        if math.isclose(theta, mu):
            after_wait = (1 + mu * t) * math.exp(-mu * t)
        else:
            after_wait = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
        return (1 - waiting) * math.exp(-mu * t) + waiting * after_wait

    low, high = 0.0, 1.0 / mu
    while survival(high) > 1 - q:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if survival(middle) > 1 - q:
            low = middle
        else:
            high = middle
    return (low + high) / 2


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


def gim1_sigma(
    interarrival_transform: Callable[[float], float], mean_interarrival: float, mu: float
) -> float:
    """The root sigma in (0, 1) of sigma = A*(mu (1 - sigma)) for a GI/M/1 queue.

    ``interarrival_transform`` is the Laplace-Stieltjes transform A*(s) = E[exp(-s A)] of the
    interarrival time A (seconds, mean ``mean_interarrival``), ``mu`` the service rate per
    second. sigma is the probability that an arrival finds the server busy (it waits), and the
    number an arrival finds is geometric with parameter sigma (Kleinrock, *Queueing Systems*
    vol. 1, section 6.4; Gross and Harris, section 5.3). For Poisson arrivals sigma = rho.
    Raises ``ValueError`` unless rho = 1 / (mu mean_interarrival) < 1.
    """
    from scipy.optimize import brentq

    _check_stable(1.0 / mean_interarrival, mu)

    def excess(sigma: float) -> float:
        # Divided by (1 - sigma) to remove the trivial root at 1: positive at 0 (A*(mu) > 0),
        # 1 - 1/rho < 0 near 1.
        return (interarrival_transform(mu * (1 - sigma)) - sigma) / (1 - sigma)

    return float(brentq(excess, 0.0, 1.0 - 1e-9, xtol=1e-14, rtol=1e-12))


def gim1_mean_wait(
    interarrival_transform: Callable[[float], float], mean_interarrival: float, mu: float
) -> float:
    """Mean time in queue of a GI/M/1 FIFO system: sigma / (mu (1 - sigma)) (see
    :func:`gim1_sigma`); the time in system adds 1 / mu."""
    sigma = gim1_sigma(interarrival_transform, mean_interarrival, mu)
    return sigma / (mu * (1 - sigma))


def gim1_wait_quantile(
    interarrival_transform: Callable[[float], float],
    mean_interarrival: float,
    mu: float,
    q: float,
) -> float:
    """The q-quantile of the time in queue of a GI/M/1 FIFO system.

    An arrival waits with probability sigma, and then for an exponential time of rate
    mu (1 - sigma): P(W > t) = sigma exp(-mu (1 - sigma) t) (Kleinrock vol. 1, eq. 6.30).
    Zero when q <= 1 - sigma.
    """
    sigma = gim1_sigma(interarrival_transform, mean_interarrival, mu)
    if q <= 1 - sigma:
        return 0.0
    return math.log(sigma / (1 - q)) / (mu * (1 - sigma))


def ctmc_steady_state(generator: np.ndarray) -> np.ndarray:
    """Stationary distribution pi of a continuous-time Markov chain: pi Q = 0, sum(pi) = 1.

    Solved as a least-squares system with the normalization appended, which is robust for
    the small, stiff chains of availability models (rates from 1/years to 1/seconds).
    """
    size = generator.shape[0]
    system = np.vstack([generator.T, np.ones(size)])
    target = np.zeros(size + 1)
    target[-1] = 1.0
    with _one_blas_thread():
        solution, *_ = np.linalg.lstsq(system, target, rcond=None)
    solution = np.clip(solution, 0.0, None)
    return solution / solution.sum()


def _stationary_over(start, moves):
    """The stationary distribution of the chain reachable from ``start``, where
    ``moves(state)`` lists the (rate, next state) pairs: {state: probability}."""
    index = {start: 0}
    edges = []
    frontier = [start]
    while frontier:
        state = frontier.pop()
        for rate, target in moves(state):
            if target not in index:
                index[target] = len(index)
                frontier.append(target)
            edges.append((index[state], index[target], rate))
    size = len(index)
    if size <= DENSE_STATES:
        generator = np.zeros((size, size))
        for source, target, rate in edges:
            if source != target:
                generator[source, target] += rate
        generator[np.diag_indices_from(generator)] = -generator.sum(axis=1)
        stationary = ctmc_steady_state(generator)
    else:
        stationary = _sparse_steady_state(size, edges)
    return {state: stationary[i] for state, i in index.items()}


DENSE_STATES = 400
"""Chains up to this many states are solved dense (least squares); larger ones sparse."""


def _sparse_steady_state(size: int, edges: list[tuple[int, int, float]]) -> np.ndarray:
    """pi Q = 0, sum(pi) = 1 for a large chain: Q^T with its last balance equation replaced
    by the normalization (one balance equation is redundant), by sparse LU."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    rows, columns, rates = [], [], []
    out = np.zeros(size)
    for source, target, rate in edges:
        if source != target:
            rows.append(target)  # transposed: column of the source
            columns.append(source)
            rates.append(rate)
            out[source] += rate
    rows += list(range(size))
    columns += list(range(size))
    rates += list(-out)
    matrix = coo_matrix((rates, (rows, columns)), shape=(size, size)).tolil()
    matrix[size - 1, :] = np.ones(size)
    target = np.zeros(size)
    target[-1] = 1.0
    with _one_blas_thread():
        solution = np.clip(spsolve(matrix.tocsc(), target), 0.0, None)
    return solution / solution.sum()


def _one_blas_thread():
    """BLAS on one thread for a solve, whatever the process's setting: threads sum in another
    order, which moves a chain's last digits, and its phase error (the difference of two
    nearly equal values) by parts per million. The ``ecsim`` command and its workers run one
    thread; a notebook or a Dask worker may not, and must get the same numbers."""
    return threadpool_limits(limits=1, user_api="blas")


def single_component_availability(mean_time_to_failure: float, mean_time_to_repair: float):
    """Long-run availability of a component that fails and is repaired in turn: MTTF/(MTTF+MTTR).

    True for any distributions of the two times (renewal-reward theorem), not only exponential.
    """
    return mean_time_to_failure / (mean_time_to_failure + mean_time_to_repair)


def parallel_availability(availability: float, count: int) -> float:
    """At least one of ``count`` independent components up: 1 - (1 - A)^n."""
    return 1.0 - (1.0 - availability) ** count


def standby_group_serving(
    active: int,
    spares: int,
    failure_rate: float,
    repair_rate: float,
    failover_rate: float = math.inf,
    hot_spares: bool = True,
    repair_crews: int | None = None,
    failover_stages: int = 1,
) -> np.ndarray:
    """Steady-state distribution of the servers up and in rotation (0 to ``active``), a CTMC.

    The group keeps ``active`` servers in rotation; each fails at ``failure_rate`` and is
    repaired at ``repair_rate`` by one of ``repair_crews`` crews (unlimited when None). When a
    server in rotation fails, an idle spare (hot spares can fail while idle, cold ones cannot)
    is promoted after an Erlang(``failover_stages``) delay of mean 1/``failover_rate`` (the
    method of stages: a near-fixed delay is many stages, an exponential one); when a repaired
    server comes back and the rotation is full, the promotion started last is called off, or
    else a spare returns to idle. This is the standby model that :mod:`sim.model.failover`
    implements, with detection folded into the failover delay.

    The state counts members up/down, promoted spares up/down, promotions in progress per
    stage and idle spares up/down. With limited crews and failures of several kinds at once,
    the crews are shared among the kinds in proportion to their numbers (an approximation of
    first-come first-served repair, exact when only one kind is down).
    """
    if math.isinf(failover_rate):
        raise ValueError("give a finite failover rate (1 / mean failover delay)")
    stages = failover_stages

    def reconcile(state):
        members_up, members_down, promoted_up, promoted_down, pending, idle_up, idle_down = state
        pending = list(pending)
        missing = active - members_up - promoted_up - sum(pending)
        while missing > 0 and idle_up > 0:
            idle_up, missing = idle_up - 1, missing - 1
            pending[0] += 1
        excess = members_up + promoted_up + sum(pending) - active
        while excess > 0 and sum(pending) > 0:
            latest = next(stage for stage, count in enumerate(pending) if count)
            pending[latest] -= 1
            idle_up, excess = idle_up + 1, excess - 1
        while excess > 0 and promoted_up > 0:
            promoted_up, idle_up, excess = promoted_up - 1, idle_up + 1, excess - 1
        return (
            members_up, members_down, promoted_up, promoted_down, tuple(pending), idle_up,
            idle_down,
        )  # fmt: skip

    def moves(state):
        members_up, members_down, promoted_up, promoted_down, pending, idle_up, idle_down = state
        out = []

        def go(rate, members=(0, 0), promoted=(0, 0), idle=(0, 0), stage=None, to=None):
            if rate <= 0:
                return
            changed = list(pending)
            if stage is not None:
                changed[stage] -= 1
            if to is not None:
                changed[to] += 1
            target = (
                members_up + members[0], members_down + members[1],
                promoted_up + promoted[0], promoted_down + promoted[1], tuple(changed),
                idle_up + idle[0], idle_down + idle[1],
            )  # fmt: skip
            out.append((rate, reconcile(target)))

        go(members_up * failure_rate, members=(-1, 1))
        go(promoted_up * failure_rate, promoted=(-1, 1))
        for stage, count in enumerate(pending):
            go(count * failure_rate, promoted=(0, 1), stage=stage)  # a booting spare fails
            if stage < stages - 1:
                go(count * failover_rate * stages, stage=stage, to=stage + 1)
            else:
                go(count * failover_rate * stages, promoted=(1, 0), stage=stage)
        if hot_spares:
            go(idle_up * failure_rate, idle=(-1, 1))
        down = members_down + promoted_down + idle_down
        if down:
            busy = down if repair_crews is None else min(down, repair_crews)
            share = busy * repair_rate / down
            go(members_down * share, members=(1, -1))
            go(promoted_down * share, promoted=(1, -1))
            go(idle_down * share, idle=(1, -1))
        return out

    serving = np.zeros(active + 1)
    start = reconcile((active, 0, 0, 0, (0,) * stages, spares, 0))
    for state, probability in _stationary_over(start, moves).items():
        serving[state[0] + state[2]] += probability
    return serving


def standby_states(active: int, spares: int, stages: int) -> int:
    """An upper bound on the states of :func:`standby_group_serving`'s chain: members up or
    down, and the spares split among promoted up/down, idle up/down and the stages."""
    return (active + 1) * math.comb(spares + stages + 3, spares)


def standby_group_availability(
    active: int,
    required: int,
    spares: int,
    failure_rate: float,
    repair_rate: float,
    failover_rate: float = math.inf,
    hot_spares: bool = True,
    repair_crews: int | None = None,
) -> float:
    """Probability that at least ``required`` servers are up and in rotation, from a CTMC.

    The chain is that of :func:`standby_group_serving`, whose arguments these are.
    """
    if not 1 <= required <= active:
        raise ValueError(f"need 1 <= required ({required}) <= active ({active})")
    serving = standby_group_serving(
        active, spares, failure_rate, repair_rate, failover_rate, hot_spares, repair_crews
    )
    return float(serving[required:].sum())


def _survival_integral(survival, points: int = 200_001):
    """H(x) = integral of ``survival(a)`` da from x to infinity, on a grid of x >= 0.

    The grid is uniform in u, where x = s u / (1 - u) maps [0, 1) onto [0, inf) with s the
    median of the delay: fine near zero and reaching far into the tail. Returns x, dx/du, the
    step du and H on the grid (trapezoid rule).
    """
    probe = np.logspace(-12, 12, 2401)
    tail = np.asarray(survival(probe), dtype=float)
    scale = probe[np.argmax(tail <= 0.5)] if np.any(tail <= 0.5) else probe[-1]
    u = np.linspace(0.0, 1.0, points)[:-1]
    du = u[1]
    x = scale * u / (1 - u)
    jacobian = scale / (1 - u) ** 2
    density = np.clip(np.asarray(survival(x), dtype=float), 0.0, 1.0) * jacobian
    pieces = 0.5 * (density[1:] + density[:-1]) * du
    h = np.append(np.cumsum(pieces[::-1])[::-1], 0.0) + 0.5 * density[-1] * du
    return x, jacobian, du, h


def observed_replication_lag_cdf(write_rate: float, survival, lag_s: np.ndarray) -> np.ndarray:
    """P(observed lag <= x) of a replica that applies writes in commit order.

    Writes commit as a Poisson process of ``write_rate`` (per second); each needs an
    independent delay D (``survival(x)`` = P(D > x), vectorized over seconds) to reach the
    replica, and waits for every write before it. A write's observed lag is at most x when its
    own delay is and no earlier write is still in flight past it (Palm calculus on the
    thinned Poisson process of late writes): P = F(x) exp(-w H(x)), with H(x) the integral of
    P(D > a) from x to infinity. Shape: as ``lag_s``.
    """
    x, _, _, h = _survival_integral(survival)
    lag_s = np.asarray(lag_s, dtype=float)
    own = 1.0 - np.clip(np.asarray(survival(lag_s), dtype=float), 0.0, 1.0)
    return own * np.exp(-write_rate * np.interp(lag_s, x, h, right=0.0))


def expected_lost_writes(write_rate: float, survival) -> float:
    """Writes acknowledged by an async master but on no replica yet when the master dies.

    With in-order application, the lost writes are every write since the oldest one still in
    flight; that one's age M has P(M > m) = 1 - exp(-w H(m)), and E[lost | M = m] = 1 + w m,
    so E = 1 - exp(-w E[D]) + w * integral of (1 - exp(-w H(m))) dm over m >= 0. By Little's
    law this is w times the mean observed lag. A fixed delay L gives exactly w L; exponential
    delays of mean d give 1 - e^(-wd) + wd (gamma + ln wd + E1(wd)).
    """
    _, jacobian, du, h = _survival_integral(survival)
    integral = np.trapezoid(-np.expm1(-write_rate * h) * jacobian, dx=du)
    return float(-np.expm1(-write_rate * h[0]) + write_rate * integral)


def erlang_stages(mean: float, variance: float, most: int = 16) -> int:
    """Stages k of an Erlang distribution with the mean and about the squared coefficient of
    variation (1/k) of a delay: 1 for an exponential, ``most`` for a fixed delay. An Erlang-k
    stage keeps a chain Markovian while matching a near-deterministic delay far better than one
    exponential of the same mean (the method of stages: Kleinrock, vol. 1, section 4.2)."""
    if mean <= 0 or variance <= 0:
        return most
    return max(1, min(most, round(mean * mean / variance)))


def replica_group_availability(
    nodes: int,
    failure_rate: float,
    repair_rate: float,
    detection_rate: float,
    promotion_rate: float,
    detection_stages: int = 1,
    promotion_stages: int = 1,
    repair_crews: int | None = None,
    multi_master: bool = False,
) -> tuple[float, float]:
    """Steady-state probabilities that a database shard can take a write and serve a read.

    ``nodes`` copies each fail at ``failure_rate`` and are repaired at ``repair_rate`` by one
    of ``repair_crews`` crews (unlimited when None). Master-slave: when the master dies, the
    failure is detected after an Erlang(``detection_stages``) delay of mean
    1/``detection_rate``, then a live replica is promoted after an Erlang(``promotion_stages``)
    delay of mean 1/``promotion_rate``; a master repaired before its death is detected stays
    master; a promotion that finds no live replica waits for the next node to come back and
    starts again. Writes need a live master; reads need any live node. Multi-master: any live
    node takes both. Returns (writable, readable). The state is (nodes up, master status,
    phase); the chain is solved by :func:`ctmc_steady_state`.
    """
    if nodes < 1:
        raise ValueError("a shard needs at least one node")

    def moves(state):
        up, status, phase = state
        down = nodes - up
        out = []
        if up:
            if status == "ok" and not multi_master:
                out.append((failure_rate, (up - 1, "detect", 1)))
                if up > 1:
                    out.append(((up - 1) * failure_rate, (up - 1, "ok", 0)))
            else:
                out.append((up * failure_rate, (up - 1, status, phase)))
        if down:
            busy = down if repair_crews is None else min(down, repair_crews)
            each = busy * repair_rate / down
            if status == "detect":
                out.append((each, (up + 1, "ok", 0)))  # the master itself is back
                if down > 1:
                    out.append(((down - 1) * each, (up + 1, "detect", phase)))
            elif status == "wait":
                out.append((down * each, (up + 1, "promote", 1)))
            else:
                out.append((down * each, (up + 1, status, phase)))
        if status == "detect":
            rate = detection_rate * detection_stages
            last = phase == detection_stages
            out.append((rate, (up, "promote", 1) if last else (up, "detect", phase + 1)))
        elif status == "promote":
            rate = promotion_rate * promotion_stages
            if phase < promotion_stages:
                out.append((rate, (up, "promote", phase + 1)))
            else:
                out.append((rate, (up, "ok", 0) if up else (up, "wait", 0)))
        return out

    stationary = _stationary_over((nodes, "ok", 0), moves)
    writable = sum(
        probability
        for (up, status, _), probability in stationary.items()
        if (up > 0 if multi_master else status == "ok")
    )
    readable = sum(probability for (up, _, _), probability in stationary.items() if up > 0)
    return float(writable), float(readable)


def redundant_balancer_availability(
    count: int,
    failure_rate: float,
    repair_rate: float,
    takeover_rate: float,
    takeover_stages: int = 1,
    repair_crews: int | None = None,
) -> float:
    """Probability that a live instance of ``count`` redundant balancers holds the address.

    Each instance fails at ``failure_rate`` and is repaired at ``repair_rate`` (by one of
    ``repair_crews`` crews; unlimited when None). When the holder dies, a live backup takes the
    address after an Erlang(``takeover_stages``) delay of mean 1/``takeover_rate`` (VRRP's
    master-down interval); when none is alive, the first one repaired waits for the same delay.
    The state is (instances alive, holding or pending, phase); solved by
    :func:`ctmc_steady_state`.
    """
    if count < 1:
        raise ValueError("need at least one balancer")

    def moves(state):
        alive, holding, phase = state
        down = count - alive
        out = []
        if holding:
            out.append((failure_rate, (alive - 1, False, 1)))
            if alive > 1:
                out.append(((alive - 1) * failure_rate, (alive - 1, True, 0)))
        else:
            if alive:
                out.append((alive * failure_rate, (alive - 1, False, phase if alive > 1 else 1)))
                rate = takeover_rate * takeover_stages
                last = phase == takeover_stages
                out.append((rate, (alive, True, 0) if last else (alive, False, phase + 1)))
        if down:
            busy = down if repair_crews is None else min(down, repair_crews)
            out.append((busy * repair_rate, (alive + 1, holding, phase if alive else 1)))
        return out

    stationary = _stationary_over((count, True, 0), moves)
    return float(sum(p for (_, holding, _), p in stationary.items() if holding))


def _uniform_laplace(rate: float, width: float) -> float:
    """E[exp(-rate U)] for U uniform on (0, width)."""
    if width <= 0 or rate <= 0:
        return 1.0
    return -math.expm1(-rate * width) / (rate * width)


def dns_balancer_reach(
    count: int,
    mean_time_to_failure: float,
    mean_time_to_repair: float,
    health_check_interval: float,
    failure_threshold: int,
    ttl: float,
    repair_crews: int | None = None,
    most_states: int = 2_000,
) -> float:
    """Long-run share of requests that find a live instance behind round-robin DNS, a CTMC.

    ``count`` instances share the traffic; each fails at 1/``mean_time_to_failure`` and is
    repaired at 1/``mean_time_to_repair`` (by one of ``repair_crews`` crews; unlimited when
    None). A dead instance stays in the answer until the health checks' verdict,
    (``failure_threshold`` - 1) x interval + U(0, interval) after its death, then in the
    caches until they expire, uniform on (0, ``ttl``): in expectation the linear decay of its
    stale share, as a stage of mean ``ttl`` / 2 at full share. Both delays are Erlang stages
    matched to their variance (fewer while the chain would pass ``most_states`` states). With
    u instances up and v dead but still answered, a request finds a live one with probability
    u / (u + v) (0 with none up), so overlapping outages count: the second death while the
    first is withdrawn costs all the traffic. A repaired instance is taken back at once (its
    health checks' return is left out, as is the rarer case of every instance withdrawn and
    one back while DNS still answers with all).
    """
    if count < 1:
        raise ValueError("need at least one balancer instance")
    if mean_time_to_failure <= 0 or mean_time_to_repair <= 0:
        raise ValueError("mean times to failure and repair must be positive")
    failure_rate, repair_rate = 1.0 / mean_time_to_failure, 1.0 / mean_time_to_repair
    verdict_s = (failure_threshold - 0.5) * health_check_interval
    detect = erlang_stages(verdict_s, health_check_interval**2 / 12, 64)
    stale = erlang_stages(ttl / 2, ttl**2 / 12, 64) if ttl > 0 else 0
    while math.comb(count + detect + stale + 1, count) > most_states and detect + stale > 1:
        if detect >= stale:
            detect -= 1
        else:
            stale -= 1
    phases = [detect / verdict_s] * detect + ([stale / (ttl / 2)] * stale if stale else [])

    def moves(state):
        up, dead = state[0], state[1:]  # dead: per phase (verdict, then stale), then withdrawn
        down = sum(dead)
        out = []

        def go(rate, source, target):
            if rate > 0:
                changed = list(state)
                changed[source] -= 1
                changed[target] += 1
                out.append((rate, tuple(changed)))

        go(up * failure_rate, 0, 1)
        for phase, rate in enumerate(phases):
            go(dead[phase] * rate, 1 + phase, 2 + phase)
        if down:
            busy = down if repair_crews is None else min(down, repair_crews)
            for position, number in enumerate(dead):
                go(number * busy * repair_rate / down, 1 + position, 0)
        return out

    start = (count, *([0] * (len(phases) + 1)))
    reach = 0.0
    for state, probability in _stationary_over(start, moves).items():
        up, answered = state[0], sum(state[1 : 1 + len(phases)])
        if up:
            reach += probability * up / (up + answered)
    return float(reach)


# -- caches ---------------------------------------------------------------------------------


def che_characteristic_time(probabilities: np.ndarray, capacity: int) -> float:
    """The characteristic time T_C of an LRU cache of ``capacity`` keys under the independent
    reference model with key probabilities ``probabilities`` (summing to 1), in references:
    the root of sum_i (1 - exp(-p_i T)) = C (Che, Tung and Wang 2002). A key stays in the
    cache about T_C references after its last one. Raises ValueError when the capacity holds
    every key with a positive probability (nothing is ever evicted: T_C is infinite)."""
    p = np.asarray(probabilities, dtype=float)
    if capacity >= np.count_nonzero(p):
        raise ValueError(f"a capacity of {capacity} holds every key: no eviction, T_C = inf")
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")

    def excess(t: float) -> float:
        return float(np.sum(-np.expm1(-p * t))) - capacity

    low, high = 0.0, capacity / p.max()  # excess(high) >= 0 would fail only for C < 1
    while excess(high) < 0:
        low, high = high, 2 * high
    for _ in range(200):  # bisection to the last bit: excess is increasing in t
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if excess(middle) < 0:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def che_hit_ratio(probabilities: np.ndarray, capacity: int) -> float:
    """Che's approximation of the hit ratio of an LRU cache of ``capacity`` keys under the
    independent reference model: sum_i p_i (1 - exp(-p_i T_C)). Its error vanishes as the
    cache grows (Fricker, Robert and Roberts 2012: a key's presence depends on the others
    only through a sum of many small terms, which concentrates at C); it is 1 when the cache
    holds every key."""
    p = np.asarray(probabilities, dtype=float)
    if capacity >= np.count_nonzero(p):
        return 1.0
    t = che_characteristic_time(p, capacity)
    return float(np.sum(p * -np.expm1(-p * t)))


def cold_cache_misses(rates: np.ndarray, seconds: float) -> tuple[float, float]:
    """Mean and variance of the misses of a cache that starts empty and evicts nothing, over
    its first ``seconds``, for keys requested as independent Poisson processes of ``rates``
    (per second): each key misses once, at its first request, so the misses are the keys
    requested at least once, a sum of independent Bernoulli variables of 1 - exp(-r_i t)."""
    r = np.asarray(rates, dtype=float)
    seen = -np.expm1(-r * seconds)
    return float(seen.sum()), float(np.sum(seen * (1.0 - seen)))
