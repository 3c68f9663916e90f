"""A client with the tools that keep overload from feeding on itself: budgets, breakers, hedges.

Per request class, each optional (:mod:`sim.scenario.resilience`):

- A **retry budget** (:mod:`sim.model.retry_budget`) is asked before each retry (and hedge): a
  retry it refuses is not sent, and the request ends with the cause of its last failure.
- A **circuit breaker** (:mod:`sim.model.circuit_breaker`) is asked before every attempt. A
  first try or retry it refuses fails at once with cause ``circuit_open``, never reaching the
  balancer (a refused first try is no attempt; a refused retry ends the request, as retrying
  into an open circuit is pointless). It hears the result of every attempt it let through.
- **Hedging**: a first try or retry opens a *round*. While the round has no answer, every
  ``delay`` another attempt of it is sent through the balancer (so it may reach another server),
  up to ``max_attempts``; it draws its own service time from the class's distribution (from a
  stream of its own), since the tail a hedge escapes comes from the server it lands on (Dean
  and Barroso). The first ok answer ends the request and the round's other attempts are
  cancelled: one still queued leaves the queue unserved, one in service is aborted and frees
  its worker (gRPC propagates the cancellation to the server). A failed attempt leaves the
  round waiting for its others; when every attempt sent has failed the round fails (no more
  hedges), and the retry policy decides. The round's deadline is its first attempt's: at the
  class's ``timeout`` the whole round times out, its hedges included, as a gRPC deadline
  covers every hedge. Timed-out attempts are not cancelled, as everywhere in ecsim: a server
  does not know its client left. Hedges count as attempts (not as retries), and hedging never
  counts toward ``retries.max``.

Only a client with one of these pays for them: :func:`build_client` gives the plain
:class:`sim.model.client.Client` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import simpy

from sim.metrics import Recorder
from sim.model.circuit_breaker import CircuitBreaker
from sim.model.client import Client, DeadlineWatch
from sim.model.retry_budget import RetryBudget
from sim.request import Attempt, Cause, Request
from sim.scenario import HedgingSpec, RequestClassSpec
from sim.streams import Streams

__all__ = ["ResilientClient", "Round", "build_client"]

_OK = Cause.OK
_TIMEOUT = Cause.TIMEOUT
_CIRCUIT_OPEN = Cause.CIRCUIT_OPEN


def build_client(
    env: simpy.Environment,
    classes: Sequence[RequestClassSpec],
    streams: Streams,
    recorder: Recorder,
    log: Callable[[str, str, str], None],
) -> Client:
    """The client of a scenario: the plain one unless a class uses a retry budget, a circuit
    breaker or hedging, so that runs without them pay nothing for them."""
    if not any(spec.resilient for spec in classes):
        return Client(env, classes, streams, recorder)
    return ResilientClient(env, classes, streams, recorder, log)


class GuardedAttempt(Attempt):
    """An attempt of a resilient client: the breaker generation that let it through, and
    the hedging round it belongs to (None for a class without hedging)."""

    __slots__ = ("generation", "round")


class Round:
    """A first try or a retry with the hedges sent for it; ``live`` until an attempt of it
    answers ok, every attempt sent has failed, or its ``deadline`` passes."""

    __slots__ = ("attempts", "deadline", "live", "request")

    def __init__(self, request: Request, deadline: float) -> None:
        self.request = request
        self.deadline = deadline
        self.attempts: list[GuardedAttempt] = []
        """Its attempts while it is live (each points back at it: :meth:`close` breaks that
        cycle, so that refcounting frees a finished round and the collector never has to)."""
        self.live = True

    def close(self) -> None:
        """It is over: nothing reads its attempts again."""
        self.live = False
        self.attempts = []


class _ClassGuard:
    """What one class's client uses, and what it counted since the start of the run."""

    def __init__(
        self,
        spec: RequestClassSpec,
        breaker: CircuitBreaker | None,
        budget: RetryBudget | None,
        hedge_demands: Iterator[float] | None,
        round_watch: DeadlineWatch | None,
    ) -> None:
        self.breaker = breaker
        self.budget = budget
        self.hedging: HedgingSpec | None = spec.hedging
        self.hedge_demands = hedge_demands
        self.round_watch = round_watch
        self.hedges = 0
        self.hedge_wins = 0
        self.cancelled = 0

    def counts(self) -> dict[str, float]:
        breaker = self.breaker
        return {
            "circuit_opens": breaker.opens if breaker is not None else 0,
            "circuit_open_s": breaker.not_closed_s() if breaker is not None else 0.0,
            "budget_denied": self.budget.denied if self.budget is not None else 0,
            "hedges": self.hedges,
            "hedge_wins": self.hedge_wins,
            "cancelled": self.cancelled,
        }


class ResilientClient(Client):
    """A :class:`Client` whose classes may have a retry budget, a circuit breaker and hedging.

    ``log(component, event, detail)`` receives the breakers' changes of state.
    """

    def __init__(
        self,
        env: simpy.Environment,
        classes: Sequence[RequestClassSpec],
        streams: Streams,
        recorder: Recorder,
        log: Callable[[str, str, str], None],
    ) -> None:
        super().__init__(env, classes, streams, recorder)
        self._class_names = [spec.name for spec in classes]
        self._guards = [
            _ClassGuard(
                spec,
                CircuitBreaker(env, spec.circuit_breaker, spec.name, log)
                if spec.circuit_breaker is not None
                else None,
                RetryBudget(spec.retries.budget) if spec.retries.budget is not None else None,
                spec.service_time.sampler(streams.generator(f"hedging/{spec.name}"), block=256)
                if spec.hedging is not None
                else None,
                DeadlineWatch(env, spec.timeout, self._round_expired)
                if spec.hedging is not None and spec.timeout
                else None,
            )
            for spec in classes
        ]
        self._window_start: list[dict[str, float]] = [guard.counts() for guard in self._guards]

    # -- sending ------------------------------------------------------------------------------

    def send(self, request: Request) -> None:
        """A new request from a user: sent, unless its class's circuit is open."""
        self.created += 1
        guard = self._guards[request.class_index]
        generation = 0
        if guard.breaker is not None:
            generation = guard.breaker.admit()
            if generation is None:
                self.recorder.arrival_not_sent()
                self._end(request, _CIRCUIT_OPEN)
                return
        self._record_arrival()
        if guard.budget is not None:
            guard.budget.first_try(self.env.now)
        self._open_round(request, guard, generation)

    def _retry(self, request: Request) -> None:
        guard = self._guards[request.class_index]
        generation = 0
        if guard.breaker is not None:
            generation = guard.breaker.admit()
            if generation is None:
                self._end(request, _CIRCUIT_OPEN)
                return
        self.recorder.retry()
        self._open_round(request, guard, generation)

    def _open_round(self, request: Request, guard: _ClassGuard, generation: int) -> None:
        request.attempts += 1
        now = self.env.now
        class_index = request.class_index
        timeout = self._timeout_s[class_index]
        attempt = GuardedAttempt(request, now, now + timeout if timeout else math.inf)
        attempt.generation = generation
        hedging = guard.hedging
        if hedging is None:
            attempt.round = None
            if timeout:
                self._watches[class_index].watch(attempt)
        else:
            round_ = Round(request, attempt.deadline)
            round_.attempts.append(attempt)
            attempt.round = round_
            if timeout:
                guard.round_watch.watch(round_)
            self._schedule_hedge(round_, hedging.delay)
        self.dispatch(attempt)

    def _schedule_hedge(self, round_: Round, delay: float) -> None:
        if self.env.now + delay < round_.deadline:  # a hedge due at the deadline is never sent
            timer = self.env.timeout(delay)
            timer.callbacks.append(lambda _: self._hedge(round_))

    def _hedge(self, round_: Round) -> None:
        """The round's delay passed without an answer: send one more attempt of it."""
        if not round_.live:
            return
        request = round_.request
        guard = self._guards[request.class_index]
        generation = 0
        if guard.breaker is not None:
            generation = guard.breaker.admit_hedge()
            if generation is None:
                return
        if guard.budget is not None and not guard.budget.try_withdraw(self.env.now):
            return
        attempt = GuardedAttempt(request, self.env.now, round_.deadline)
        attempt.demand_s = next(guard.hedge_demands)
        attempt.generation = generation
        attempt.round = round_
        round_.attempts.append(attempt)
        guard.hedges += 1
        self.recorder.hedge()
        if len(round_.attempts) < guard.hedging.max_attempts:
            self._schedule_hedge(round_, guard.hedging.delay)
        self.dispatch(attempt)

    # -- answers ------------------------------------------------------------------------------

    def on_response(self, attempt: GuardedAttempt, cause: Cause) -> None:
        """The balancer's answer to an attempt; ignored once the client stopped waiting."""
        if not attempt.live:
            return
        attempt.live = False
        request = attempt.request
        guard = self._guards[request.class_index]
        if guard.breaker is not None:
            guard.breaker.record(attempt.generation, cause)
        round_ = attempt.round
        if round_ is None:
            if cause == _OK:
                self._end(request, _OK)
            else:
                self._settle(request, cause)
        elif cause == _OK:
            others = round_.attempts
            round_.close()
            if attempt is not others[0]:
                guard.hedge_wins += 1
            for other in others:
                if other.live:
                    other.live = False
                    guard.cancelled += 1
                    self.cancel(other)
            self._end(request, _OK)
        elif not any(other.live for other in round_.attempts):
            round_.close()
            self._settle(request, cause)

    def _expire_if_waiting(self, attempt: GuardedAttempt) -> None:
        if attempt.live:
            attempt.live = False
            breaker = self._guards[attempt.request.class_index].breaker
            if breaker is not None:
                breaker.record(attempt.generation, _TIMEOUT)
            self._settle(attempt.request, _TIMEOUT)

    def _round_expired(self, round_: Round) -> None:
        """The round's deadline: every attempt of it still waiting times out at once."""
        if not round_.live:
            return
        attempts = round_.attempts
        round_.close()
        breaker = self._guards[round_.request.class_index].breaker
        for attempt in attempts:
            if attempt.live:
                attempt.live = False
                if breaker is not None:
                    breaker.record(attempt.generation, _TIMEOUT)
        self._settle(round_.request, _TIMEOUT)

    def _settle(self, request: Request, cause: Cause) -> None:
        class_index = request.class_index
        retries = self._retries[class_index]
        if request.attempts <= retries.max_retries and cause in self._retry_on[class_index]:
            budget = self._guards[class_index].budget
            if budget is not None and not budget.try_withdraw(self.env.now):
                self._end(request, cause)
                return
            delay = self._backoff_s(retries, request.attempts, self._jitter[class_index])
            timer = self.env.timeout(delay)
            timer.callbacks.append(lambda _: self._retry(request))
        else:
            self._end(request, cause)

    # -- what it did --------------------------------------------------------------------------

    def start_window(self) -> None:
        self._window_start = [guard.counts() for guard in self._guards]

    def summary(self) -> dict[str, Any]:
        """Per class, since the warm-up: ``circuit_opens``, ``circuit_open_s`` (open or
        half-open), ``budget_denied`` (retries and hedges the budget refused), ``hedges``
        (hedged attempts sent), ``hedge_wins`` (requests a hedge answered first) and
        ``cancelled`` (attempts cancelled once another answered)."""
        return {
            name: {key: now[key] - then[key] for key in now}
            for name, now, then in zip(
                self._class_names,
                (guard.counts() for guard in self._guards),
                self._window_start,
                strict=True,
            )
        }
