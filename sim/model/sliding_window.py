"""Counts over the last few seconds, in a fixed number of slices: bounded memory at any rate.

Like Hystrix's rolling counters and Finagle's ``WindowedAdder``, the window is cut into
``slices`` equal slices; a count stays in the window until its whole slice has left it. The
window therefore holds the events of the last ``window_s`` seconds give or take one slice (the
current slice is partly filled), whatever the rate, in a few integers.
"""

from __future__ import annotations

__all__ = ["SlidingCounts"]


class SlidingCounts:
    """``kinds`` integer counts over a sliding window of ``window_s`` seconds.

    ``totals(now)`` are the counts added in the current slice and the ``slices - 1`` before it.
    Raises ``ValueError`` for a window that is not positive or fewer than one slice.
    """

    def __init__(self, window_s: float, kinds: int = 2, slices: int = 10) -> None:
        if not window_s > 0 or slices < 1:
            raise ValueError(f"a sliding window needs a positive length and slices: {window_s}")
        self.window_s = window_s
        self._slice_s = window_s / slices
        self._slices = slices
        self._counts = [[0] * kinds for _ in range(slices)]
        self._totals = [0] * kinds
        self._current = 0
        """The number of the slice being filled (time // slice length)."""

    def _roll(self, now: float) -> None:
        current = int(now // self._slice_s)
        if current == self._current:
            return
        counts, totals = self._counts, self._totals
        for number in range(self._current + 1, min(current, self._current + self._slices) + 1):
            expired = counts[number % self._slices]
            for kind, count in enumerate(expired):
                totals[kind] -= count
                expired[kind] = 0
        self._current = current

    def add(self, now: float, kind: int, count: int = 1) -> None:
        self._roll(now)
        self._counts[self._current % self._slices][kind] += count
        self._totals[kind] += count

    def totals(self, now: float) -> list[int]:
        """The counts of each kind in the window ending at ``now`` (do not modify)."""
        self._roll(now)
        return self._totals

    def clear(self) -> None:
        for counts in self._counts:
            counts[:] = [0] * len(counts)
        self._totals = [0] * len(self._totals)
