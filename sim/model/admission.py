"""Protection against overload at run time: the balancer's admission control and the servers'
priority queues (the scenario side, with the keys, is :mod:`sim.scenario.admission`).

Both act only on what the component itself can see: the balancer counts the attempts it has
sent and not yet seen answered, and refills its own token bucket from its clock; a server
looks at how long the attempt at the head of its queue has waited.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import simpy

from sim.request import Attempt, Cause
from sim.scenario import AdmissionSpec

__all__ = ["Admission", "PriorityQueue", "priority_shares"]


def priority_shares(priorities: Sequence[int], reserve: float) -> list[float]:
    """Per class, the share of a limit it may use: 1 for the highest priority present,
    1 - ``reserve`` for the lowest, and in between in proportion to the rank of the class's
    priority among those present."""
    levels = sorted(set(priorities), reverse=True)
    if len(levels) == 1:
        return [1.0] * len(priorities)
    rank = {level: index / (len(levels) - 1) for index, level in enumerate(levels)}
    return [1.0 - reserve * rank[priority] for priority in priorities]


class Admission:
    """The balancer's gate: a token bucket and a limit on attempts in flight, each with a
    share kept for higher priorities (:func:`priority_shares`).

    A class whose share is s may take a token only if ``burst x (1 - s)`` tokens would remain,
    and may send an attempt only while fewer than ``limit x s`` are in flight. The bucket is
    refilled lazily, at each request, from the time since the last one: exact for a bucket,
    and free while nothing arrives.
    """

    def __init__(self, env: simpy.Environment, spec: AdmissionSpec, priorities: Sequence[int]):
        self.env = env
        shares = priority_shares(priorities, spec.reserve)
        rate_limit = spec.rate_limit
        self._rate = rate_limit.rate if rate_limit is not None else None
        self._burst = rate_limit.burst if rate_limit is not None else 0
        self._tokens = float(self._burst)
        self._refilled_at = env.now
        self._floor = [self._burst * (1.0 - share) + 1.0 for share in shares]
        """Per class: the tokens the bucket must hold for the class to take one."""
        limit = spec.concurrency_limit
        self._ceiling = [limit * share if limit is not None else None for share in shares]
        """Per class: attempts in flight below which the class may send one more."""
        self.in_flight = 0

    def admit(self, class_index: int) -> Cause | None:
        """Let an attempt of class ``class_index`` through (None), or say why not."""
        ceiling = self._ceiling[class_index]
        if ceiling is not None and self.in_flight >= ceiling:
            return Cause.CONCURRENCY_LIMITED
        if self._rate is not None:
            now = self.env.now
            self._tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self._rate)
            self._refilled_at = now
            if self._tokens < self._floor[class_index]:
                return Cause.RATE_LIMITED
            self._tokens -= 1.0
        self.in_flight += 1
        return None


class PriorityQueue:
    """A server's queue served highest priority first, in arrival order within a priority
    (non-preemptive: a service under way is never interrupted). It offers what the server
    uses of a ``deque``: append, popleft, remove, len, iteration (highest priority first) and
    clear.
    """

    __slots__ = ("_lines", "_rank", "_size")

    def __init__(self, priorities: Sequence[int]) -> None:
        levels = sorted(set(priorities), reverse=True)
        self._rank = [levels.index(priority) for priority in priorities]
        self._lines: list[deque[Attempt]] = [deque() for _ in levels]
        self._size = 0

    def append(self, attempt: Attempt) -> None:
        self._lines[self._rank[attempt.request.class_index]].append(attempt)
        self._size += 1

    def popleft(self) -> Attempt:
        for line in self._lines:
            if line:
                self._size -= 1
                return line.popleft()
        raise IndexError("pop from an empty queue")

    def remove(self, attempt: Attempt) -> None:
        """Take ``attempt`` out (a cancelled hedge); ValueError when it is not queued."""
        self._lines[self._rank[attempt.request.class_index]].remove(attempt)
        self._size -= 1

    def clear(self) -> None:
        for line in self._lines:
            line.clear()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[Attempt]:
        for line in self._lines:
            yield from line
