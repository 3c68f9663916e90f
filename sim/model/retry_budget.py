"""A retry budget: retries at most a fraction of first tries, so failures cannot multiply load.

Finagle's ``RetryBudget`` (and, in spirit, gRPC's retry throttling): every first try deposits
``ratio`` of a token, every retry withdraws a whole one, and deposits and withdrawals expire
after ``window`` seconds. A reserve of ``min_per_second`` x ``window`` tokens lets a quiet client
retry at all. A retry is allowed only while a whole token is left:

    retries in the window + 1 <= ratio x first tries in the window + min_per_second x window

Summed over disjoint windows, a run with ``min_per_second = 0`` retries at most ``ratio`` times
its first tries, however its attempts fail: under a total outage, attempts per request stay
within 1 + ratio (``tests/test_client_resilience.py``). Tokens are counted in millionths, in
integers, so the bound holds exactly, without rounding.
"""

from __future__ import annotations

from sim.model.sliding_window import SlidingCounts
from sim.scenario import RetryBudgetSpec

__all__ = ["RetryBudget"]

_UNITS = 1_000_000
"""Millionths of a token: ratios are kept to six decimals, and sums are exact integers."""
_FIRST, _RETRY = 0, 1


class RetryBudget:
    """The budget of one request class's client. Time is given by the caller (seconds)."""

    def __init__(self, spec: RetryBudgetSpec) -> None:
        self.spec = spec
        self._deposit = round(spec.ratio * _UNITS)
        self._reserve = round(spec.min_per_second * spec.window * _UNITS)
        self._window = SlidingCounts(spec.window)
        self.denied = 0
        """Retries (and hedges) refused since the start of the run."""

    def first_try(self, now: float) -> None:
        """A request's first attempt was sent: it funds ``ratio`` of a retry."""
        self._window.add(now, _FIRST)

    def try_withdraw(self, now: float) -> bool:
        """Whether one more retry (or hedge) may be sent now; if so it is counted."""
        firsts, retries = self._window.totals(now)
        if (retries + 1) * _UNITS <= firsts * self._deposit + self._reserve:
            self._window.add(now, _RETRY)
            return True
        self.denied += 1
        return False
