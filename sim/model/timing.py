"""Time in the model: what comes first at one instant, and a clock that must keep moving.

**Ties.** SimPy processes the events of one instant by priority, then in the order they were
scheduled. On top of that ecsim keeps one rule: *what happens comes before what judges it*.
Arrivals, answers, heartbeats, crashes and repairs are ordinary events; deadlines (a client's
timeout, a detector's silence alarm, a health probe looking at its backend) are scheduled at a
later priority, so they fire after every event already due at their instant. An answer, a
heartbeat or a repair that lands exactly on a deadline therefore counts as in time, whatever
order the two were scheduled in.

**Progress.** A run must end. :func:`advance` runs the environment like ``env.run(until)``,
but stops with :class:`StalledClockError`, naming the callbacks involved, when millions of
events pass without simulated time moving: a loop in which something fails and is tried again
at the same instant (validation rejects the known ones; this catches the rest).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import simpy
from simpy.core import StopSimulation
from simpy.events import URGENT, Event

__all__ = [
    "JUDGEMENT",
    "STALL_EVENTS",
    "StalledClockError",
    "advance",
    "at_deadline",
    "at_start",
    "delay_until",
]

JUDGEMENT = 2
"""Priority of deadlines: after SimPy's URGENT (0) and NORMAL (1) events of the same instant."""

STALL_EVENTS = 10_000_000
"""Events at one instant after which a run is declared stalled (about ten seconds of work)."""

_CHECK_EVERY = 1 << 16


def at_deadline(
    env: simpy.Environment, delay: float, callback: Callable[[Event], Any], value: Any = None
) -> Event:
    """Call ``callback(event)`` after ``delay`` seconds, once everything else due then has run.

    A delay made slightly negative by floating-point rounding counts as zero.
    """
    return _scheduled(env, callback, JUDGEMENT, delay if delay > 0.0 else 0.0, value)


def at_start(env: simpy.Environment, callback: Callable[[Event], Any]) -> Event:
    """Call ``callback(event)`` first thing at the current instant, where SimPy starts a
    process (an urgent event): for a component written as callbacks rather than as a process,
    which must begin exactly where the process would have."""
    return _scheduled(env, callback, URGENT, 0.0)


def _scheduled(
    env: simpy.Environment,
    callback: Callable[[Event], Any],
    priority: int,
    delay: float,
    value: Any = None,
) -> Event:
    """An event already triggered, scheduled ``delay`` from now at ``priority``, that calls
    ``callback`` (SimPy's public events take only the default priority)."""
    event = Event(env)
    event._ok = True
    event._value = value
    event.callbacks.append(callback)
    env.schedule(event, priority, delay)
    return event


def delay_until(env: simpy.Environment, moment: float) -> float:
    """The delay that SimPy turns into exactly ``moment`` (it schedules at ``now + delay``,
    and ``moment - now`` added back to ``now`` may round to a neighbour): for an event that
    must fall where a chain of earlier delays would have put it, to the last bit."""
    now = env.now
    delay = moment - now
    while now + delay < moment:
        delay = math.nextafter(delay, math.inf)
    while now + delay > moment:
        delay = math.nextafter(delay, -math.inf)
    return delay


class StalledClockError(RuntimeError):
    """Simulated time stopped: events kept coming at one instant and the run would never end."""

    def __init__(self, now: float, events: int, sources: list[tuple[str, int]]) -> None:
        self.now = now
        self.events = events
        self.sources = sources
        named = ", ".join(f"{name} ({count})" for name, count in sources) or "nothing pending"
        super().__init__(
            f"simulated time stopped at {now:.6g} s: {events:,} events without the clock"
            f" moving; the events pending at that instant come from {named}: a loop in which"
            " nothing takes time (a zero think time, service time, backoff or repair time, or a"
            " failure answered and tried again at once); give that loop a delay"
        )


def _describe(callback: Any) -> str:
    owner = getattr(callback, "__self__", None)
    generator = getattr(owner, "_generator", None)  # a SimPy process: name its generator
    if generator is not None:
        return getattr(generator, "__qualname__", repr(generator))
    return getattr(callback, "__qualname__", type(callback).__name__)


def _pending_sources(env: simpy.Environment, limit: int = 5) -> list[tuple[str, int]]:
    names: Counter[str] = Counter()
    for time, _, _, event in env._queue:
        if time == env.now and event.callbacks:
            names.update(_describe(callback) for callback in event.callbacks)
    return names.most_common(limit)


def advance(
    env: simpy.Environment,
    until: float,
    stall_events: int | None = None,
    tick: Callable[[], Any] | None = None,
) -> None:
    """Run ``env`` up to time ``until`` (as ``env.run(until=until)``), guarding against a
    stopped clock: raises :class:`StalledClockError` after ``stall_events`` (default
    :data:`STALL_EVENTS`) events at one instant. ``tick()`` is called every 65,536 events
    (a fraction of a second of work), for progress reports."""
    if until <= env.now:
        return
    stall_events = STALL_EVENTS if stall_events is None else stall_events
    _scheduled(env, StopSimulation.callback, URGENT, until - env.now)
    step = env.step
    check = min(_CHECK_EVERY, stall_events)
    stalled_at, stalled = env.now, 0
    try:
        while True:
            for _ in range(check):
                step()
            if tick is not None:
                tick()
            if env.now != stalled_at:
                stalled_at, stalled = env.now, 0
                continue
            stalled += check
            if stalled >= stall_events:
                raise StalledClockError(env.now, stalled, _pending_sources(env))
    except StopSimulation:
        return
