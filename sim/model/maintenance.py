"""Planned work at run time: rolling deploys that drain, stop and restart servers a batch at a
time (the scenario side is :mod:`sim.scenario.maintenance`).

A server's maintenance is a SimPy process that drives the balancer the way an operator's
tooling does: drain (no new attempts), wait for the balancer's open connections to it to close
or for the drain timeout, stop it (what is still in flight is cut), wait the deploy time,
start it again, and wait until its detector has put it back in rotation. Nothing here reads
another component's state that an operator's tooling could not see: the balancer's own
connection count, and its rotation.

Maintenance is planned downtime: the servers it holds are charged to the cause
``maintenance`` when the service goes down for want of them, which keeps planned downtime
apart from unplanned in the availability figures.
"""

from __future__ import annotations

from collections.abc import Iterator

import simpy

from sim.model.balancer import Balancer
from sim.model.balancing import Backend
from sim.model.failures import FailureInjector
from sim.model.monitor import Monitor
from sim.model.server import Server
from sim.scenario import MaintenanceSpec
from sim.streams import Streams

__all__ = ["Maintenance"]


class Maintenance:
    """Every rollout of a scenario, and what they cost.

    ``capacity_lost_s`` counts server-seconds spent out of rotation for maintenance (from the
    drain to the return to rotation), ``attempts_cut`` the attempts still on a server when it
    was stopped, and ``failed_requests`` the requests that failed while any maintenance was
    under way (whatever failed them).
    """

    def __init__(
        self,
        env: simpy.Environment,
        specs: list[MaintenanceSpec],
        backends: list[Backend],
        balancer: Balancer,
        injector: FailureInjector,
        monitor: Monitor,
        streams: Streams,
    ) -> None:
        self.env = env
        self.specs = specs
        self.balancer = balancer
        self.injector = injector
        self.monitor = monitor
        self.streams = streams
        self._backend_of = {backend.server: backend for backend in backends}
        self._waiting: dict[Backend, simpy.Event] = {}
        self.servers_maintained = 0
        self.attempts_cut = 0
        self.failed_requests = 0
        self._failed_when_started = 0
        self._window_start = 0.0
        self._lost_before_s = 0.0
        self._out_since: dict[Server, float] = {}
        """Servers under maintenance now, with when each was drained (or the window began)."""
        balancer.listeners.append(self._rotation_changed)

    def start(self) -> None:
        for index, spec in enumerate(self.specs):
            servers = self.injector.resolve(spec.target)
            deploy_times = spec.deploy_time.sampler(
                self.streams.generator(f"maintenance[{index}]"), block=64
            )
            self.env.process(self._rollouts(spec, servers, deploy_times))

    def start_window(self) -> None:
        """Count from now: maintenance that began in the warm-up counts from here."""
        now = self.env.now
        self._window_start = now
        self._lost_before_s = 0.0
        self._out_since = dict.fromkeys(self._out_since, now)
        self.servers_maintained = self.attempts_cut = self.failed_requests = 0
        self._failed_when_started = self.monitor.failed_requests()

    @property
    def under_way(self) -> frozenset[Server]:
        """The servers maintenance holds out of rotation now."""
        return frozenset(self._out_since)

    def capacity_lost_s(self) -> float:
        """Server-seconds out of rotation for maintenance since the window began."""
        now = self.env.now
        return self._lost_before_s + sum(now - since for since in self._out_since.values())

    def summary(self, measured_s: float) -> dict[str, float | int]:
        """The ``maintenance`` section of a run's summary (see :mod:`sim.catalogue`)."""
        if self._out_since:  # still under way at the end of the run
            self.failed_requests += self.monitor.failed_requests() - self._failed_when_started
            self._failed_when_started = self.monitor.failed_requests()
        lost = self.capacity_lost_s()
        members = sum(1 for backend in self._backend_of.values() if backend.member)
        return {
            "servers_maintained": self.servers_maintained,
            "capacity_lost_s": lost,
            "capacity_lost_fraction": lost / (members * measured_s) if measured_s > 0 else 0.0,
            "attempts_cut": self.attempts_cut,
            "failed_requests": self.failed_requests,
        }

    # -- the process --------------------------------------------------------------------------

    def _rollouts(
        self, spec: MaintenanceSpec, servers: list[Server], deploy_times: Iterator[float]
    ):
        yield self.env.timeout(spec.at)
        while True:
            began = self.env.now
            for first in range(0, len(servers), spec.batch):
                batch = servers[first : first + spec.batch]
                yield self.env.all_of(
                    [self.env.process(self._maintain(s, spec, deploy_times)) for s in batch]
                )
            if spec.every is None:
                return
            # The next rollout starts a period after this one began, or at once if it overran.
            yield self.env.timeout(max(0.0, began + spec.every - self.env.now))

    def _maintain(self, server: Server, spec: MaintenanceSpec, deploy_times: Iterator[float]):
        env, balancer, backend = self.env, self.balancer, self._backend_of[server]
        if not server.powered:
            return  # switched off (a cold spare, a server autoscaling has not launched): it
            # will start with the new release
        self._began(server)
        drained = balancer.drain(backend)
        if not drained.triggered:
            yield drained | env.timeout(spec.drain_timeout)
        cut = len(server.in_service) + len(server.queue)
        self.attempts_cut += cut
        balancer.hold_down(backend)
        self.monitor.log(server.name, "stopped for maintenance", f"{cut} attempts cut")
        self.injector.stop([server])
        yield env.timeout(next(deploy_times))
        self.injector.restart([server])
        self.monitor.log(server.name, "restarted after maintenance")
        balancer.undrain(backend)
        if not _back(backend):
            self._waiting[backend] = back = env.event()
            yield back
        self._ended(server)

    def _rotation_changed(self, backend: Backend) -> None:
        back = self._waiting.get(backend)
        if back is not None and _back(backend):
            del self._waiting[backend]
            back.succeed()

    def _began(self, server: Server) -> None:
        if not self._out_since:
            self._failed_when_started = self.monitor.failed_requests()
        self._out_since[server] = self.env.now
        self.servers_maintained += 1
        self.monitor.maintenance = self.under_way

    def _ended(self, server: Server) -> None:
        self._lost_before_s += self.env.now - self._out_since.pop(server)
        self.monitor.log(server.name, "maintenance over")
        if not self._out_since:
            self.failed_requests += self.monitor.failed_requests() - self._failed_when_started
        self.monitor.maintenance = self.under_way
        self.monitor.refresh()


def _back(backend: Backend) -> bool:
    """Back in rotation; a spare outside the pool is back once its process runs again, or
    once it is switched off (autoscaling retired it meanwhile)."""
    server = backend.server
    return backend.routable or (not backend.member and (server.serving or not server.powered))
