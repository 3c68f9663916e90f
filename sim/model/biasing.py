"""Failure biasing: failure clocks run faster while something is down, with the likelihood ratio.

At 99.9999% a design is down a few seconds a year, and only when failures coincide: crude
simulation must wait through years of uneventful failures and repairs for each coincidence.
Failure biasing (Lewis and Böhm, 1984; balanced failure biasing, Shahabuddin, *Management
Science* 40(3), 1994, and, for general repair times, Nicola, Shahabuddin and Heidelberger,
*IEEE Trans. Computers* 42(12), 1993) makes coincidences common: while at least one component
is down, every component still up fails at an inflated rate, the same for all (balanced), so
that about ``bias`` of the failure-or-repair races go to a failure. The simulation is then
one of a different law; each path is weighted by its likelihood ratio (the original density
of the failure times drawn over the biased one), which makes expectations unbiased.

Only exponential times to failure are biased, so a failure clock may be redrawn whenever the
rates change (memorylessness); repair, detection, promotion and takeover keep their own laws.
For an exponential clock of rate r drawn at rate r', the ratio of a failure after t is
(r / r') exp(-(r - r') t), and of no failure over t, exp(-(r - r') t): the running log-ratio
is the sum, over the intervals between changes, of (sum of r' - sum of r) x length, plus
log(r / r') at each failure.
"""

from __future__ import annotations

import math

import numpy as np
import simpy

__all__ = ["WINDOW_REPAIRS", "FailureBiasing"]

WINDOW_REPAIRS = 10.0


class FailureBiasing:
    """The failure clocks of one run, their biased rates and the running likelihood ratio.

    ``bias``: the share of the failure-or-repair races a failure should win while something is
    down; ``repair_s``: the mean repair time those races are measured against. Clocks are
    keyed by the component they belong to. The likelihood ratio restarts from 1 at
    :meth:`restart` (a regeneration point of the run).
    """

    def __init__(
        self, env: simpy.Environment, rng: np.random.Generator, bias: float, repair_s: float
    ) -> None:
        if not 0 < bias < 1:
            raise ValueError(f"bias must be in (0, 1), got {bias}")
        self.env = env
        self.rng = rng
        self.bias = bias
        self.repair_s = repair_s
        self.running: dict[object, float] = {}
        """Clocks running now: component -> its true failure rate (per second)."""
        self.down = 0
        """Components failed and not yet repaired."""
        self.log_ratio = 0.0
        self._waiting: dict[object, simpy.Event] = {}
        """Per running clock, the event its component's process waits on."""
        self._draw = 0  # clocks drawn before the latest change are stale
        self._since = env.now
        self._window_open = False
        self._window = 0
        self.window_repairs = WINDOW_REPAIRS

    def biased_rate(self, rate: float) -> float:
        """The rate a clock of true rate ``rate`` runs at now: unchanged while nothing is down
        or once the biasing window after the last failure is over; else the same for every
        clock, so that together they fail at bias / (1 - bias) per mean repair time (never
        slower than the truth)."""
        if self.down == 0 or not self.running or not self._window_open:
            return rate
        total = self.bias / (1 - self.bias) / self.repair_s
        return max(rate, total / len(self.running))

    def _account(self) -> None:
        now = self.env.now
        elapsed = now - self._since
        if elapsed > 0 and self.down:
            biased = sum(self.biased_rate(rate) for rate in self.running.values())
            self.log_ratio += elapsed * (biased - math.fsum(self.running.values()))
        self._since = now

    def _changed(self) -> None:
        """The rates may have changed: redraw every running clock at its rate now (exact for
        exponential clocks, which have no memory); the clocks drawn before are stale."""
        self._draw += 1
        draw = self._draw
        for component, rate in self.running.items():
            biased = self.biased_rate(rate)
            timer = self.env.timeout(self.rng.exponential(1 / biased))
            timer.callbacks.append(
                lambda _, c=component, r=rate, b=biased: self._fire(c, r, b, draw)
            )

    def _fire(self, component: object, rate: float, biased: float, draw: int) -> None:
        if draw != self._draw:
            return
        self._account()
        self.log_ratio += math.log(rate / biased)
        del self.running[component]
        failed = self._waiting.pop(component)
        self._changed()
        failed.succeed()

    def failed(self) -> None:
        """A component went down: the others run biased for one mean repair time from now.

        The window bounds the likelihood ratio of a path with no further failure by
        exp(bias / (1 - bias)), whatever the law of the repair time: biasing for the whole
        repair would make the ratio's variance infinite under heavy-tailed (or even
        exponential) repairs."""
        self._account()
        self.down += 1
        self._window_open = True
        self._window += 1
        window = self._window
        timer = self.env.timeout(self.window_repairs * self.repair_s)
        timer.callbacks.append(lambda _: self._window_over(window))
        self._changed()

    def _window_over(self, window: int) -> None:
        if window == self._window:
            self._account()  # the interval before ran biased
            self._window_open = False
            self._changed()

    def repaired(self) -> None:
        """A component is back."""
        self._account()
        self.down -= 1
        self._changed()

    def restart(self) -> None:
        """A regeneration point: the ratio of the next cycle starts from 1."""
        self._account()
        self.log_ratio = 0.0

    def time_to_failure(self, component: object, rate: float) -> simpy.Event:
        """The event of ``component``'s failure, its clock redrawn at the biased rate
        whenever rates change."""
        self._account()
        self.running[component] = rate
        failed = self._waiting[component] = self.env.event()
        self._changed()
        return failed
