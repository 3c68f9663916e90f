"""The client side of a request: attempts, timeouts and retries with backoff.

Clients are where overload turns into a storm: a client that times out and retries sends more
work to servers that are already too slow, and the attempts it abandoned keep them busy. This
module counts every attempt so that the amplification shows in the results.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import simpy

from sim.metrics import Recorder
from sim.model.timing import at_deadline
from sim.request import CAUSE_OUTCOME, Attempt, Cause, Request
from sim.scenario import RequestClassSpec, RetrySpec
from sim.streams import Streams, uniforms

__all__ = ["Client", "DeadlineWatch"]

_OK = Cause.OK


class DeadlineWatch:
    """Fires timeouts for the attempts of one request class, with one pending event at a time.

    All attempts of a class share one timeout, so their deadlines come in the order they were
    sent. The watch sleeps until the earliest deadline of an attempt still waiting and skips, for
    free, every attempt that was answered in the meantime: most never cost a timer event. The
    alarm is a deadline (:mod:`sim.model.timing`): an answer due at that very instant wins.
    """

    def __init__(
        self,
        env: simpy.Environment,
        timeout_s: float,
        expire_if_waiting: Callable[[Attempt], None],
    ) -> None:
        self.env = env
        self.timeout_s = timeout_s
        self._expire_if_waiting = expire_if_waiting
        self._waiting: deque[Attempt] = deque()
        self._armed = False

    def watch(self, attempt: Attempt) -> None:
        self._waiting.append(attempt)
        if not self._armed:
            self._arm(attempt.deadline)

    def _arm(self, deadline: float) -> None:
        self._armed = True
        at_deadline(self.env, deadline - self.env.now, self._ring, deadline)

    def _ring(self, alarm: simpy.Event) -> None:
        reached = alarm.value
        waiting = self._waiting
        while waiting:
            attempt = waiting[0]
            if not attempt.live:
                waiting.popleft()
            elif attempt.deadline <= reached:
                waiting.popleft()
                self._expire_if_waiting(attempt)
            else:
                break
        self._armed = False
        if waiting:
            self._arm(waiting[0].deadline)


def _unwired(attempt: Attempt) -> None:
    raise RuntimeError("client used before the cluster wired it to a balancer")


class Client:
    """Sends requests through ``dispatch`` and ends each exactly once, retrying as configured.

    ``dispatch`` (and ``cancel``, which only a :class:`ResilientClient` uses) are wired by the
    cluster to the balancer's.
    """

    def __init__(
        self,
        env: simpy.Environment,
        classes: Sequence[RequestClassSpec],
        streams: Streams,
        recorder: Recorder,
    ) -> None:
        self.env = env
        self.recorder = recorder
        self._record_end = recorder.end
        self._record_arrival = recorder.arrival
        self.dispatch: Callable[[Attempt], None] = _unwired
        self.cancel: Callable[[Attempt], None] = _unwired
        self.created = 0
        self.ended = 0
        self._timeout_s = [spec.timeout for spec in classes]
        self._retries = [spec.retries for spec in classes]
        self._retry_on = [
            frozenset(
                cause for cause in Cause if CAUSE_OUTCOME[cause].label in spec.retries.retry_on
            )
            for spec in classes
        ]
        self._jitter = [
            uniforms(streams.generator(f"retry/{spec.name}"), block=256)
            if spec.retries.max_retries
            else None
            for spec in classes
        ]
        self._watches = [
            DeadlineWatch(env, spec.timeout, self._expire_if_waiting) if spec.timeout else None
            for spec in classes
        ]

    @property
    def in_flight(self) -> int:
        return self.created - self.ended

    def start_window(self) -> None:
        """The warm-up is over (a plain client counts nothing beyond the recorder)."""

    def summary(self) -> dict[str, Any] | None:
        """Per class, what retry budgets, breakers and hedging did in the window; None here."""
        return None

    def send(self, request: Request) -> None:
        """A new request from a user."""
        self.created += 1
        self._record_arrival()
        self._attempt(request, request.created_at)

    def _retry(self, request: Request) -> None:
        self.recorder.retry()
        self._attempt(request, self.env.now)

    def _attempt(self, request: Request, now: float) -> None:
        request.attempts += 1
        class_index = request.class_index
        timeout = self._timeout_s[class_index]
        attempt = Attempt(request, now, now + timeout if timeout else math.inf)
        if timeout:
            self._watches[class_index].watch(attempt)
        self.dispatch(attempt)

    def on_response(self, attempt: Attempt, cause: Cause) -> None:
        """The balancer's answer to an attempt; ignored when the client has already given up."""
        if attempt.live:
            attempt.live = False
            if cause == _OK:
                self._end(attempt.request, _OK)
            else:
                self._settle(attempt.request, cause)

    def _expire_if_waiting(self, attempt: Attempt) -> None:
        if attempt.live:
            attempt.live = False
            self._settle(attempt.request, Cause.TIMEOUT)

    def _settle(self, request: Request, cause: Cause) -> None:
        class_index = request.class_index
        retries = self._retries[class_index]
        if request.attempts <= retries.max_retries and cause in self._retry_on[class_index]:
            delay = self._backoff_s(retries, request.attempts, self._jitter[class_index])
            timer = self.env.timeout(delay)
            timer.callbacks.append(lambda _: self._retry(request))
        else:
            self._end(request, cause)

    @staticmethod
    def _backoff_s(retries: RetrySpec, failed_attempts: int, jitter: Iterator[float]) -> float:
        # Grow no further than the cap needs: multiplier ** n overflows for long retry chains.
        exponent = min(failed_attempts - 1, 1100)
        try:
            ceiling = min(retries.max_backoff, retries.backoff * retries.multiplier**exponent)
        except OverflowError:
            ceiling = retries.max_backoff
        if retries.jitter == "full":
            return ceiling * next(jitter)
        if retries.jitter == "equal":
            return ceiling * (0.5 + 0.5 * next(jitter))
        return ceiling

    def _end(self, request: Request, cause: Cause) -> None:
        if request.ended:
            raise RuntimeError("a request ended twice: the model broke its own invariant")
        request.ended = True
        self.ended += 1
        now = self.env.now
        self._record_end(request.class_index, cause, now - request.created_at)
        if request.on_end is not None:
            request.on_end(cause)
