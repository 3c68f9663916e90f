"""A client-side circuit breaker: stop sending to a backend that keeps failing, and fail fast.

The breaker of a request class sits in its client, in front of the balancer (Hystrix,
resilience4j, Finagle's failure accrual). *Closed*, it lets every attempt through and counts
their results. After ``consecutive_failures`` failures in a row, or an error ratio over a sliding
window at or above its threshold (with enough attempts in the window), it *opens*: for
``cool_down`` seconds nothing is sent, and requests fail at once with cause ``circuit_open``.
Then it is *half-open*: exactly ``probes`` attempts go through, the rest fail fast; when every
probe is ok it closes (its counts start afresh), when one fails it opens again.

It learns only what its own attempts tell it (an answer, a refusal, a timeout): detection, never
magic. Results of attempts let through before the last change of state are ignored: they say
nothing about the backend as the breaker now judges it. Every change is logged as an event.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

import simpy

from sim.model.sliding_window import SlidingCounts
from sim.request import CAUSE_OUTCOME, Cause
from sim.scenario import CircuitBreakerSpec

__all__ = ["BreakerState", "CircuitBreaker"]

_OK, _FAILED = 0, 1


def _probes(count: int) -> str:
    return f"{count} probe" if count == 1 else f"{count} probes"


class BreakerState(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


_CLOSED, _OPEN, _HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class CircuitBreaker:
    """The breaker of one request class. ``log(component, event, detail)`` is the run's event
    log (:meth:`sim.model.monitor.Monitor.log`)."""

    def __init__(
        self,
        env: simpy.Environment,
        spec: CircuitBreakerSpec,
        class_name: str,
        log: Callable[[str, str, str], None],
    ) -> None:
        self.env = env
        self.spec = spec
        self.component = f"client/{class_name}"
        self._log = log
        self._fails = frozenset(c for c in Cause if CAUSE_OUTCOME[c].label in spec.failure_on)
        self._window = (
            SlidingCounts(spec.error_ratio.window) if spec.error_ratio is not None else None
        )
        self.state = _CLOSED
        self.generation = 0
        """Counts changes of state: an attempt carries the generation that let it through."""
        self._consecutive = 0
        self._probes_sent = 0
        self._probes_ok = 0
        self.opens = 0
        self._not_closed_s = 0.0
        self._opened_at = 0.0

    # -- what may be sent -----------------------------------------------------------------

    def admit(self) -> int | None:
        """The generation to tag a first try or retry with, or None: fail it fast."""
        if self.state is _CLOSED:
            return self.generation
        if self.state is _HALF_OPEN and self._probes_sent < self.spec.probes:
            self._probes_sent += 1
            return self.generation
        return None

    def admit_hedge(self) -> int | None:
        """Hedges go only while closed: a half-open breaker's probes are its only traffic."""
        return self.generation if self.state is _CLOSED else None

    # -- what came back -------------------------------------------------------------------

    def record(self, generation: int, cause: Cause) -> None:
        """An attempt let through with ``generation`` ended with ``cause`` (not cancelled)."""
        if generation != self.generation:
            return
        failed = cause in self._fails
        if self.state is _CLOSED:
            self._closed_result(failed, cause)
        elif self.state is _HALF_OPEN:
            if failed:
                self._open(f"a probe failed ({cause.label})")
            elif cause == Cause.OK:
                self._probes_ok += 1
                if self._probes_ok == self.spec.probes:
                    self._close()
            else:
                self._probes_sent -= 1  # an outcome it ignores: the probe's place is free again

    def _closed_result(self, failed: bool, cause: Cause) -> None:
        if not failed and cause != Cause.OK:
            return  # an outcome it ignores
        spec = self.spec
        self._consecutive = self._consecutive + 1 if failed else 0
        if spec.consecutive_failures is not None and self._consecutive >= spec.consecutive_failures:
            self._open(f"{self._consecutive} consecutive failures, the last {cause.label}")
            return
        window = self._window
        if window is None:
            return
        now = self.env.now
        window.add(now, _FAILED if failed else _OK)
        ok, failures = window.totals(now)
        ratio = spec.error_ratio
        ended = ok + failures
        if ended >= ratio.min_requests and failures >= ratio.threshold * ended:
            self._open(
                f"error ratio {failures / ended:.1%} of {ended} attempts in {ratio.window:g}s"
            )

    # -- changes of state -----------------------------------------------------------------

    def _change(self, state: BreakerState, event: str, detail: str) -> None:
        now = self.env.now
        if self.state is _CLOSED:
            self._opened_at = now
        elif state is _CLOSED:
            self._not_closed_s += now - self._opened_at
        self.state = state
        self.generation += 1
        self._log(self.component, event, detail)

    def _open(self, detail: str) -> None:
        self.opens += 1
        self._change(_OPEN, "circuit open", detail)
        timer = self.env.timeout(self.spec.cool_down)
        timer.callbacks.append(self._half_open)

    def _half_open(self, _: simpy.Event) -> None:
        self._probes_sent = self._probes_ok = 0
        self._change(_HALF_OPEN, "circuit half-open", _probes(self.spec.probes) + " allowed")

    def _close(self) -> None:
        self._consecutive = 0
        if self._window is not None:
            self._window.clear()
        self._change(_CLOSED, "circuit closed", _probes(self.spec.probes) + " ok")

    def not_closed_s(self) -> float:
        """Seconds it has spent open or half-open since the start of the run."""
        ongoing = self.env.now - self._opened_at if self.state is not _CLOSED else 0.0
        return self._not_closed_s + ongoing
