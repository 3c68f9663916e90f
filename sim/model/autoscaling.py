"""Autoscaling: a server group that launches and retires servers to track a target metric.

Target tracking as Kubernetes' HorizontalPodAutoscaler and AWS target-tracking policies do it
(the scenario side is :class:`sim.scenario.AutoscalingSpec`): every evaluation period the
autoscaler reads the metric its servers report (busy time, time-averaged queue, as a metrics
agent would), averaged over the period across the servers in service, and wants
``ceil(in_service * metric / target)`` servers, clamped to [min, max], unless the metric is
within the tolerance of its target (the HPA's default 10% dead band). Cooldowns hold back a
scale-out after a scale-out, and a scale-in after any scaling.

A launched server is provisioned for the provisioning delay (booked from the launch, as a
cloud bills it), then starts, cold if the group has a ``cold_start``, and takes traffic only
once the balancer's detector has seen it healthy, as a new target behind a load balancer must
pass its health checks. A retired server is drained (HAProxy's DRAIN, an AWS deregistration
delay): no new attempts, then stopped once the balancer's connections to it have closed or
the drain timeout has passed. Servers that are not provisioned are stopped and switched off:
they can neither fail nor serve.

The autoscaler does not replace failed servers: a crashed server stays provisioned, and the
load its peers take on shows in their metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import simpy

from sim.model.balancer import Balancer
from sim.model.balancing import Backend
from sim.model.failures import FailureInjector
from sim.model.monitor import Monitor
from sim.scenario import AutoscalingSpec

__all__ = ["Autoscaler"]


class Autoscaler:
    """The autoscaler of one server group, over ``backends``: the group's servers in declared
    order, the first ``initial`` running at the start, the others off until launched.

    Figures over the measurement window: ``scale_outs`` and ``scale_ins`` (decisions),
    ``launched`` and ``retired`` (servers), the provisioned server-seconds (the cost), and the
    time spent, and the requests failed, while a scale-out was under way (launched servers not
    all in service yet): what scaling late cost.
    """

    def __init__(
        self,
        env: simpy.Environment,
        group: str,
        spec: AutoscalingSpec,
        backends: list[Backend],
        initial: int,
        balancer: Balancer,
        injector: FailureInjector,
        monitor: Monitor,
        provisioning_delays: Iterator[float],
    ) -> None:
        self.env = env
        self.group = group
        self.spec = spec
        self.backends = backends
        self.balancer = balancer
        self.injector = injector
        self.monitor = monitor
        self._provisioning_delays = provisioning_delays
        self._initial = initial
        self.provisioned: list[Backend] = list(backends[:initial])
        """Launched and not retired, in launch order (those still provisioning included)."""
        self._retiring: set[Backend] = set()
        """Retired, still draining: provisioned (and paid for) until switched off."""
        self._launching: dict[Backend, simpy.Event] = {}
        self._unseen: set[Backend] = set()
        """Launched servers that have not yet been in service (detection has not seen them)."""
        self._last_scale_out = -math.inf
        self._last_scaling = -math.inf
        self._readings: dict[Backend, float] = {}
        self._server_s = 0.0
        self._count_since = 0.0
        self._window_server_s = 0.0
        self._lagging_since: float | None = None
        self._failed_when_lagging = 0
        self.scale_outs = self.scale_ins = self.launched = self.retired = 0
        self.lagging_s = 0.0
        self.failed_while_lagging = 0
        self.peak = initial
        balancer.listeners.append(self._rotation_changed)

    # -- figures ------------------------------------------------------------------------------

    def server_seconds(self) -> float:
        """Provisioned server-seconds since the start: the running total a bill is made of."""
        running = len(self.provisioned) + len(self._retiring)
        return self._server_s + running * (self.env.now - self._count_since)

    def _recount(self) -> None:
        now = self.env.now
        self._server_s += (len(self.provisioned) + len(self._retiring)) * (now - self._count_since)
        self._count_since = now
        self.peak = max(self.peak, len(self.provisioned))

    def start_window(self) -> None:
        """Count decisions, peaks and lag from now (the server-seconds are read as a
        difference by the caller)."""
        self._window_server_s = self.server_seconds()
        self.scale_outs = self.scale_ins = self.launched = self.retired = 0
        self.peak = len(self.provisioned)
        self.lagging_s = 0.0
        self.failed_while_lagging = 0
        if self._lagging_since is not None:
            self._lagging_since = self.env.now
            self._failed_when_lagging = self.monitor.failed_requests()

    def summary(self, measured_s: float) -> dict[str, float | int]:
        """The ``autoscaling.<group>`` section of a run's summary over the measurement window
        of ``measured_s`` seconds (see :mod:`sim.catalogue`)."""
        server_seconds = self.server_seconds() - self._window_server_s
        if self._lagging_since is not None:  # still lagging at the end of the run
            self._lag_over()
        return {
            "scale_outs": self.scale_outs,
            "scale_ins": self.scale_ins,
            "launched": self.launched,
            "retired": self.retired,
            "server_hours": server_seconds / 3600.0,
            "mean_servers": server_seconds / measured_s if measured_s > 0 else math.nan,
            "peak_servers": self.peak,
            "lagging_s": self.lagging_s,
            "failed_while_lagging": self.failed_while_lagging,
        }

    # -- the control loop ---------------------------------------------------------------------

    def start(self, evaluate: bool = True) -> None:
        """Switch off the servers not running at the start; evaluate every period from now
        (unless not ``evaluate``: without requests there is no metric to track)."""
        for backend in self.backends[self._initial :]:
            self._switch_off(backend)
        if not evaluate:
            return
        for backend in self.backends:
            self._readings[backend] = self._reading(backend)
        self._tick = 0
        self._schedule()

    def _schedule(self) -> None:
        # Evaluation k falls at k periods exactly: adding periods up would drift with rounding.
        self._tick += 1
        delay = max(0.0, self._tick * self.spec.evaluation_period - self.env.now)
        self.env.timeout(delay).callbacks.append(self._evaluate)

    def _reading(self, backend: Backend) -> float:
        server = backend.server
        if self.spec.metric == "utilization":
            return server.busy_time_so_far() / server.workers
        return server.wait_time_so_far()

    def _evaluate(self, _: simpy.Event) -> None:
        self._schedule()
        spec = self.spec
        period = spec.evaluation_period
        values = []
        for backend in self.backends:
            reading = self._reading(backend)
            if backend.member and backend.routable:
                values.append((reading - self._readings[backend]) / period)
            self._readings[backend] = reading
        capacity = len(self.provisioned)
        if not values:
            return  # nothing in service reports the metric
        ratio = math.fsum(values) / len(values) / spec.target
        if abs(ratio - 1.0) <= spec.tolerance:
            return
        # Provisioned servers not in service (booting, crashed, not yet seen healthy) report
        # nothing. As the HorizontalPodAutoscaler does, count them idle when the others ask
        # for more, and fully busy when the others ask for fewer; if that reverses the
        # direction, or lands within the tolerance, do nothing: a crash never retires the
        # healthy servers, and servers still booting are not launched twice.
        missing = capacity - len(values)
        if missing > 0:
            assumed = 0.0 if ratio > 1.0 else self._busy_value()
            adjusted = (math.fsum(values) + missing * assumed) / capacity / spec.target
            if abs(adjusted - 1.0) <= spec.tolerance or (adjusted > 1.0) != (ratio > 1.0):
                return
            ratio = adjusted
        wanted = math.ceil(capacity * ratio - 1e-9)
        wanted = min(max(wanted, spec.minimum), spec.maximum)
        now = self.env.now
        detail = f"{spec.metric} {ratio * spec.target:.3g} for a target of {spec.target:g}"
        if wanted > capacity and now - self._last_scale_out >= spec.scale_out_cooldown:
            self._scale_out(wanted - capacity, detail)
        elif wanted < capacity and now - self._last_scaling >= spec.scale_in_cooldown:
            self._scale_in(capacity - wanted, detail)

    def _busy_value(self) -> float:
        """The metric a server that reports nothing is assumed to show on a scale-in: fully
        busy (utilization 1), or exactly at the target (a queue length has no ceiling)."""
        return 1.0 if self.spec.metric == "utilization" else self.spec.target

    def _scale_out(self, count: int, detail: str) -> None:
        now = self.env.now
        self._last_scale_out = self._last_scaling = now
        self.scale_outs += 1
        self.monitor.log(self.group, f"scale out by {count}", detail)
        off = [b for b in self.backends if b not in self.provisioned and b not in self._retiring]
        for backend in off[:count]:
            self._recount()
            self.provisioned.append(backend)
            self.peak = max(self.peak, len(self.provisioned))
            self.launched += 1
            self._unseen.add(backend)
            timer = self.env.timeout(next(self._provisioning_delays))
            timer.callbacks.append(lambda _, backend=backend: self._provisioned(backend))
            self._launching[backend] = timer
        if self._lagging_since is None:
            self._lagging_since = now
            self._failed_when_lagging = self.monitor.failed_requests()

    def _provisioned(self, backend: Backend) -> None:
        del self._launching[backend]
        server = backend.server
        server.power_on()
        self.injector.restart([server])
        self.monitor.log(server.name, "launched")
        self.balancer.admit(backend)  # in rotation once its detector sees it healthy

    def _scale_in(self, count: int, detail: str) -> None:
        self._last_scaling = self.env.now
        self.scale_ins += 1
        self.monitor.log(self.group, f"scale in by {count}", detail)
        # The newest go first: a launch still provisioning is simply cancelled.
        for backend in reversed(list(self.provisioned)):
            if count == 0:
                break
            count -= 1
            self._recount()
            self.provisioned.remove(backend)
            self.retired += 1
            self._unseen.discard(backend)
            timer = self._launching.pop(backend, None)
            if timer is not None:
                timer.callbacks.clear()
                self.monitor.log(backend.server.name, "launch cancelled")
            else:
                self._retiring.add(backend)
                self.env.process(self._retire(backend))
        self._check_lag()

    def _retire(self, backend: Backend):
        env, balancer = self.env, self.balancer
        drained = balancer.drain(backend)
        if not drained.triggered:
            yield drained | env.timeout(self.spec.drain_timeout)
        server = backend.server
        cut = len(server.in_service) + len(server.queue)
        balancer.hold_down(backend)
        balancer.retire(backend)
        balancer.undrain(backend)
        self._switch_off(backend)
        self._recount()
        self._retiring.discard(backend)
        self.monitor.log(server.name, "retired", f"{cut} attempts cut")

    def _switch_off(self, backend: Backend) -> None:
        server = backend.server
        self.balancer.hold_down(backend)
        self.injector.stop([server])
        server.power_off()

    # -- lag ----------------------------------------------------------------------------------

    def _rotation_changed(self, backend: Backend) -> None:
        if backend in self._unseen and backend.routable:
            self._unseen.discard(backend)
            self.monitor.log(backend.server.name, "in service")
            self._check_lag()

    def _check_lag(self) -> None:
        if self._lagging_since is not None and not self._unseen:
            self._lag_over()

    def _lag_over(self) -> None:
        now = self.env.now
        self.lagging_s += now - self._lagging_since
        self.failed_while_lagging += self.monitor.failed_requests() - self._failed_when_lagging
        self._lagging_since = None if not self._unseen else now
        self._failed_when_lagging = self.monitor.failed_requests()
