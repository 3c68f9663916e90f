"""The service as a user of the shop sees it: each request class up or down over its whole path.

A request class is *up* at an instant when every tier it needs can serve it: the balancer
works, at least ``slo.min_servers`` servers in its rotation can serve, and, for a class that
writes, every database shard its keys fall on has a writable master (for a class that reads,
a node it may read from). A class's keys are spread over the whole ring, so a class that
touches the database needs every shard: one shard without a master fails a share of its
requests, and that is an outage for the class. "Can serve" is the truth combined with belief:
a live server the balancer has not yet taken back does not serve, nor does a dead one it still
routes to.

The service's time-based availability is the mean of the classes weighted by their share of
requests (so an outage of checkout alone costs checkout's share), and beside it the fraction
of the time *all* classes were up. Behind DNS a dead balancer instance fails only the requests
sent to it, so a class is up by a fraction, the balancers' *reach* (the share of new requests
that find a live instance), and its up time integrates that fraction. Every second a class is
down is charged, with the class's weight, to the component that caused it: the balancer, the
servers, a database shard, a zone whose outage explains every failed component, or
``combined`` when several tiers are down at once. The charges sum to the service's downtime.
"""

from __future__ import annotations

from typing import Any

from sim.scenario.paths import ClassPath

__all__ = ["ServiceState"]


class ServiceState:
    """Per class, the fraction it is up (1 up, 0 down, between behind DNS); integrated over
    time from the start of the measurement window.

    :meth:`set` is called with the classes' states and the cause of any downtime after every
    change; the integrals are exact (piecewise constant between changes).
    """

    def __init__(self, paths: list[ClassPath], causes: list[str], now: float = 0.0) -> None:
        self.paths = paths
        self.up = [1.0] * len(paths)
        self.cause = ""
        self.all_up = True
        """Every class wholly up."""
        self._since = now
        self.up_s = [0.0] * len(paths)
        self.weighted_up_s = 0.0
        self.all_up_s = 0.0
        self.downtime_s = dict.fromkeys(causes, 0.0)
        self._window_start = now

    def _integrate(self, now: float) -> None:
        elapsed = now - self._since
        if elapsed > 0:
            weighted = 0.0
            for index, up in enumerate(self.up):
                if up:
                    self.up_s[index] += elapsed * up
                    weighted += self.paths[index].weight * up
            self.weighted_up_s += elapsed * weighted
            # All classes share the balancer's reach, the only fraction: their minimum is it
            # when every other tier serves them all, else 0.
            self.all_up_s += elapsed * min(self.up)
            if self.cause:
                self.downtime_s[self.cause] += elapsed * (1.0 - weighted)
        self._since = now

    def set(self, now: float, up: list[float], cause: str) -> None:
        """From ``now`` on, class ``i`` is up by the fraction ``up[i]`` (1 up, 0 down);
        downtime is charged to ``cause``."""
        self._integrate(now)
        self.up = up
        self.cause = cause
        self.all_up = min(up) >= 1.0

    def start_window(self, now: float) -> None:
        """Count from ``now``: what came before is warm-up."""
        self._integrate(now)
        self.up_s = [0.0] * len(self.paths)
        self.weighted_up_s = 0.0
        self.all_up_s = 0.0
        self.downtime_s = dict.fromkeys(self.downtime_s, 0.0)
        self._window_start = now

    def totals(self, now: float) -> dict[str, Any]:
        """Seconds since the window started: ``elapsed_s``, ``up_s`` (weighted), ``all_up_s``,
        ``class_up_s`` per class name and ``downtime_by_cause_s`` per cause."""
        self._integrate(now)
        return {
            "elapsed_s": now - self._window_start,
            "up_s": self.weighted_up_s,
            "all_up_s": self.all_up_s,
            "class_up_s": {
                path.name: seconds for path, seconds in zip(self.paths, self.up_s, strict=True)
            },
            "downtime_by_cause_s": dict(self.downtime_s),
        }
