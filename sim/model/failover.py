"""Spares that take over: hot and cold standby servers, promoted when detection says so.

The controller of a server group keeps its rotation at the group's nominal size. When
detection takes a server out, it promotes an idle spare: a hot spare after the promotion delay,
a cold one after booting and then the promotion delay. When a repaired server passes its checks
and comes back, the most recently promoted spare steps down again. The controller acts only on
what the balancer believes, never on the truth.
"""

from __future__ import annotations

from collections.abc import Iterator

import simpy

from sim.model.balancer import Balancer
from sim.model.balancing import Backend
from sim.model.monitor import Monitor
from sim.scenario import StandbySpec

__all__ = ["StandbyController"]


class StandbyController:
    def __init__(
        self,
        env: simpy.Environment,
        group: str,
        nominal: int,
        spec: StandbySpec,
        members: list[Backend],
        spares: list[Backend],
        balancer: Balancer,
        monitor: Monitor,
        promotion_delays: Iterator[float],
        boot_times: Iterator[float],
    ) -> None:
        self.env = env
        self.group = group
        self.nominal = nominal
        self.spec = spec
        self.members = members
        self.spares = spares
        self.balancer = balancer
        self.monitor = monitor
        self._promotion_delays = promotion_delays
        self._boot_times = boot_times
        self._reconciling = False
        self._again = False
        self._pending: dict[int, simpy.Event] = {}
        self._promoted: list[Backend] = []
        if spec.mode == "cold":
            for spare in spares:
                spare.server.power_off()

    def _healthy(self) -> int:
        healthy = 0
        for backend in self.members:
            if backend.member and backend.detected_up:
                healthy += 1
        for backend in self._promoted:
            if backend.member and backend.detected_up:
                healthy += 1
        return healthy

    def reconcile(self) -> None:
        """Promote or retire spares until the healthy rotation is back at its nominal size."""
        if self._reconciling:  # called back from a change this reconciliation made
            self._again = True
            return
        self._reconciling = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._reconcile_once()
        finally:
            self._reconciling = False

    def _reconcile_once(self) -> None:
        healthy = self._healthy()  # promotions started below change it only when they end
        missing = self.nominal - healthy - len(self._pending)
        if missing == 0 and not self._promoted:
            return  # the common case: nothing to start, nothing to retire
        for spare in self.spares:
            if missing <= 0:
                break
            if spare.member or spare.index in self._pending:
                continue
            if self.spec.mode == "hot" and not spare.server.serving:
                continue  # a hot spare that failed while waiting cannot take over
            self._start_promotion(spare)
            missing -= 1
        excess = healthy + len(self._pending) - self.nominal
        while excess > 0 and self._pending:
            index, timer = self._pending.popitem()
            timer.callbacks.clear()
            self.monitor.promotion_ended(self.group)
            if self.spec.mode == "cold":  # the boot is abandoned: the spare is off again
                spare = next(b for b in self.spares if b.index == index)
                spare.server.power_off()
            excess -= 1
        for spare in reversed(list(self._promoted)):
            if excess <= 0:
                break
            if spare.detected_up:  # a promoted spare that failed stays until it is back
                self._promoted.remove(spare)
                self.balancer.retire(spare)
                if self.spec.mode == "cold":
                    spare.server.power_off()
                excess -= 1

    def _start_promotion(self, spare: Backend) -> None:
        delay = next(self._promotion_delays)
        if self.spec.mode == "cold":
            delay += next(self._boot_times)
            spare.server.power_on()
        self.monitor.promotion_started(self.group)
        if self.monitor.log_events:
            self.monitor.log(spare.server.name, "promotion started", f"{delay:g}s")
        timer = self.env.timeout(delay)
        timer.callbacks.append(lambda _: self._promoted_now(spare))
        self._pending[spare.index] = timer

    def _promoted_now(self, spare: Backend) -> None:
        del self._pending[spare.index]
        self.monitor.promotion_ended(self.group)
        self._promoted.append(spare)
        self.balancer.admit(spare)
        self.reconcile()  # a spare that failed while booting did not fill the gap
