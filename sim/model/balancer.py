"""The load balancer: spreads attempts over the backends it *believes* are up.

The balancer's list of healthy backends is its belief, not the truth: it changes only when
detection (health checks, heartbeats, outlier ejection) tells it so, never because a server
died. An attempt that finds no backend it believes healthy fails at once as ``no_backend``,
like a 503 from a proxy whose upstream pool is empty. The balancer itself can crash: while it
is down every attempt fails with ``error`` (cause ``balancer_down``). With slow start, a backend
that enters the rotation takes a rising share of the traffic (:mod:`sim.model.slow_start`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import simpy

from sim.model.admission import Admission
from sim.model.balancing import Backend, Policy
from sim.model.slow_start import SlowStart
from sim.request import Attempt, Cause

if TYPE_CHECKING:
    from sim.model.monitor import Monitor
    from sim.scenario import OutlierEjectionSpec

__all__ = ["Balancer"]

_OK = Cause.OK
_MIGRATE_ON = frozenset({Cause.SERVER_CRASH, Cause.UNREACHABLE})
"""Failures of the backend itself (refused, reset, cut off): hot migration retries those."""


class Balancer:
    def __init__(
        self,
        env: simpy.Environment,
        policy: Policy,
        backends: Sequence[Backend],
        respond: Callable[[Attempt, Cause], None],
        monitor: Monitor | None = None,
        outlier_ejection: OutlierEjectionSpec | None = None,
        hot_migration: bool = False,
        panic_threshold: float = 0.0,
        slow_start_s: float = 0.0,
        admission: Admission | None = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.backends = list(backends)
        self.up: list[Backend] = [b for b in self.backends if b.routable]
        self._rotation = set(self.up)
        self._position = {backend: i for i, backend in enumerate(self.backends)}
        self._backend_of = {backend.server: backend for backend in self.backends}
        self._serving_count: int | None = None
        """How many backends of ``routing`` serve, or None when it must be counted again."""
        for server in self._backend_of:
            if server is not None:
                server.serving_watchers.append(self._forget_serving_count)
        self.panic_threshold = panic_threshold
        self.panicking = False
        self.routing: list[Backend] = self.up
        """Where attempts go: the rotation, or every member of the pool in panic."""
        self._routed = self._rotation
        self._route()
        self.working = True
        self.monitor = monitor
        self.outlier_ejection = outlier_ejection
        self.hot_migration = hot_migration
        self.slow_start = (
            SlowStart(env, slow_start_s, policy.choose, monitor) if slow_start_s > 0 else None
        )
        self._choose = policy.choose if self.slow_start is None else self.slow_start.choose
        self._observe = policy.observe if policy.observes_latency else None
        self._load_changed = policy.load_changed if policy.watches_load else None
        self._respond = respond
        self.admission = admission
        self._watch_errors = outlier_ejection is not None or hot_migration
        self._reset_errors = outlier_ejection is not None
        self.front: Callable[[], Any] | None = None
        """Behind DNS: picks the instance a new attempt goes through (None when it is dead)."""
        self._draining: dict[Backend, simpy.Event] = {}
        """Backends in maintenance's drain, with the event their last open attempt fires."""
        self.listeners: list[Callable[[Backend], None]] = []
        """Told of every backend that enters or leaves the rotation; the monitor then takes
        stock of the whole change (a spare promotion a listener started included)."""

    # -- traffic ------------------------------------------------------------------------------

    def dispatch(self, attempt: Attempt) -> None:
        """Send an attempt to the backend the policy picks among those believed up (among
        all members, in panic)."""
        up = self.routing
        if not up or not self.working:
            self._respond(attempt, Cause.NO_BACKEND if self.working else Cause.BALANCER_DOWN)
            return
        if self.front is not None:
            entry = self.front()
            if entry is None:
                self._respond(attempt, Cause.BALANCER_DOWN)
                return
            attempt.entry = entry
        if self.admission is not None:
            refused = self.admission.admit(attempt.request.class_index)
            if refused is not None:
                self._respond(attempt, refused)
                return
        backend = self._choose(up)
        attempt.backend = backend
        backend.active += 1
        if self._load_changed is not None:
            self._load_changed(backend)
        backend.server.submit(attempt)

    def on_response(self, attempt: Attempt, cause: Cause) -> None:
        """A backend answered (or refused) an attempt; pass it on to the client."""
        backend = attempt.backend
        if backend is not None:
            backend.active -= 1
            if self.admission is not None:
                self.admission.in_flight -= 1
            if self._load_changed is not None:
                self._load_changed(backend)
            if self._draining and not backend.active and backend in self._draining:
                self._draining.pop(backend).succeed()
            if cause == _OK:
                if self._reset_errors:
                    backend.consecutive_errors = 0
                # Only answers teach latency: an instant refusal would make a full or dead
                # backend look like the fastest one.
                if self._observe is not None:
                    self._observe(backend, self.env.now - attempt.sent_at)
            else:
                backend.errors += 1
                if self._watch_errors and self._errors_handled(attempt, backend, cause):
                    return
        self._respond(attempt, cause)

    def cancel(self, attempt: Attempt) -> None:
        """The client cancels an attempt it no longer wants (a hedge lost the race): the
        server drops it if it still can (:meth:`Server.cancel`), and the backend's count of
        open attempts falls as if it had answered; otherwise its answer comes, and is ignored.
        A cancellation is neither an error nor a latency sample."""
        backend = attempt.backend
        if backend is None or not backend.server.cancel(attempt):
            return
        backend.active -= 1
        if self.admission is not None:
            self.admission.in_flight -= 1
        if self._load_changed is not None:
            self._load_changed(backend)
        if self._draining and not backend.active and backend in self._draining:
            self._draining.pop(backend).succeed()

    def _errors_handled(self, attempt: Attempt, backend: Backend, cause: Cause) -> bool:
        """Passive detection and hot migration; True when the attempt was sent elsewhere."""
        if self.outlier_ejection is not None:
            backend.consecutive_errors += 1
            if backend.consecutive_errors >= self.outlier_ejection.consecutive_errors:
                self._eject(backend)
        if (
            cause in _MIGRATE_ON
            and self.hot_migration
            and not attempt.migrated
            and attempt.live  # a client that gave up gets no second try
            and self.working
        ):
            others = [b for b in self.routing if b is not backend]
            if others:
                attempt.migrated = True
                if self.admission is not None:
                    self.admission.in_flight += 1  # in flight again, already admitted
                target = self._choose(others)
                attempt.backend = target
                target.active += 1
                if self._load_changed is not None:
                    self._load_changed(target)
                target.server.submit(attempt)
                return True
        return False

    # -- belief -------------------------------------------------------------------------------

    def knows(self, server) -> bool:
        return server in self._backend_of

    def routes_to(self, server) -> bool:
        return self._backend_of.get(server) in self._routed

    def is_idle_spare(self, server) -> bool:
        """A spare waiting outside the pool: healthy spares are not expected in rotation."""
        backend = self._backend_of.get(server)
        return backend is not None and not backend.member

    def back_in_service(self, server) -> bool:
        """In rotation again (or, for a spare, idle again), with the balancer working."""
        return self.working and (self.routes_to(server) or self.is_idle_spare(server))

    def serving_count(self) -> int:
        """Backends in rotation whose server can really serve. Counted again only after the
        routing list or a server's ``serving`` changed: the monitor asks after every event."""
        count = self._serving_count
        if count is None:
            count = self._serving_count = len(
                [backend for backend in self.routing if backend.server.serving]
            )
        return count

    def _forget_serving_count(self) -> None:
        self._serving_count = None

    def _refresh(self, backend: Backend, reason: str, judged: bool = False) -> None:
        """``backend`` changed (its verdict, membership, drain...): route accordingly, and tell
        the listeners when its routing changed, or when ``judged`` (detection changed its
        verdict) though its routing did not: a spare must replace an ejected member the
        moment its health check fails, not when it is repaired."""
        was = backend in self._rotation
        now = backend.routable
        if was == now:
            self._route()  # the pool's size may have changed
            if judged:
                for listener in self.listeners:
                    listener(backend)
            return
        if now:
            backend.in_rotation_since = self.env.now
        else:
            backend.rotation_s = backend.rotation_time(self.env.now)
            backend.in_rotation_since = None
        if self.slow_start is not None:
            if now:
                self.slow_start.begin(backend)
            else:
                self.slow_start.end(backend)
        # Only ``backend`` changed (every change of routability comes here): a new list in the
        # declared order, so that choices stay deterministic for a seed and a policy's index
        # sees a new routing list.
        up = self.up.copy()
        if now:
            bisect.insort(up, backend, key=self._position.__getitem__)
        else:
            up.remove(backend)
        self.up = up
        self._rotation = set(up)
        if self.monitor is not None:
            self.monitor.rotation_changed(backend.server, now, reason)
        self._route()  # after the change that causes a panic is told
        for listener in self.listeners:
            listener(backend)
        if self.monitor is not None:
            self.monitor.refresh()

    def _route(self) -> None:
        """Envoy's healthy panic threshold: while fewer than that share of the pool's members
        are in rotation, route to every member, healthy or not."""
        self._serving_count = None
        if not self.panic_threshold:
            self.routing, self._routed = self.up, self._rotation
            self.policy.routing_changed(self.routing)
            return
        members = [b for b in self.backends if b.member and not b.drained]
        panic = len(self.up) < self.panic_threshold * len(members)
        if panic != self.panicking and self.monitor is not None:
            event = "panic routing: to every member" if panic else "panic over"
            self.monitor.log("balancer", event, f"{len(self.up)} of {len(members)} healthy")
        self.panicking = panic
        self.routing = members if panic else self.up
        self._routed = set(self.routing)
        self.policy.routing_changed(self.routing)

    def mark_down(self, backend: Backend) -> None:
        """Detection has judged ``backend`` unhealthy."""
        judged = backend.detected_up
        backend.detected_up = False
        self._refresh(backend, "detected down", judged)

    def mark_up(self, backend: Backend) -> None:
        """Detection has judged ``backend`` healthy again."""
        judged = not backend.detected_up
        backend.detected_up = True
        self._refresh(backend, "detected up", judged)

    def admit(self, backend: Backend) -> None:
        """A promoted spare joins the pool (its detector's verdict still applies)."""
        backend.member = True
        self._refresh(backend, "promoted")

    def retire(self, backend: Backend) -> None:
        """A spare leaves the pool again (work in flight on it still completes)."""
        backend.member = False
        self._refresh(backend, "retired")

    # -- planned maintenance (HAProxy's DRAIN, MAINT and READY states) --------------------------

    def drain(self, backend: Backend) -> simpy.Event:
        """Send ``backend`` no new attempts; the event fires once no attempt sent to it is
        still open (at once when none is)."""
        backend.drained = True
        self._refresh(backend, "draining")
        closed = self.env.event()
        if backend.active:
            self._draining[backend] = closed
        else:
            closed.succeed()
        return closed

    def hold_down(self, backend: Backend) -> None:
        """Its server is about to be stopped: count it down, so that it rejoins only once
        its detector sees it healthy again."""
        self._draining.pop(backend, None)
        backend.detected_up = False
        if backend in self._rotation:  # callers drain it first; one that did not takes it out
            self._refresh(backend, "held down")
        watchers = getattr(backend.server, "state_watchers", None)
        if watchers:
            backend.server.tell_state_watchers()

    def undrain(self, backend: Backend) -> None:
        """Maintenance is over: the backend may rejoin when detection says it is up."""
        backend.drained = False
        self._refresh(backend, "maintenance over")

    def _eject(self, backend: Backend) -> None:
        spec = self.outlier_ejection
        ejected = sum(1 for b in self.backends if b.ejected)
        members = sum(1 for b in self.backends if b.member)
        if backend.ejected or (ejected + 1) > spec.max_ejected * members:
            return
        # The multiplier lost one for each whole interval spent in the pool since the last
        # ejection ended (Envoy decrements it at each healthy interval).
        forgiven = int((self.env.now - backend.readmitted_at) / spec.interval)
        backend.ejections = max(0, backend.ejections - forgiven) + 1
        backend.ejected = True
        backend.consecutive_errors = 0
        self._refresh(backend, "ejected")
        duration = min(spec.ejection_time * backend.ejections, spec.max_ejection_time)
        timer = self.env.timeout(duration)
        timer.callbacks.append(lambda _: self._readmit(backend))

    def _readmit(self, backend: Backend) -> None:
        backend.ejected = False
        backend.readmitted_at = self.env.now
        self._refresh(backend, "ejection ended")

    # -- its own failures ---------------------------------------------------------------------

    def crash(self) -> None:
        """Down: every attempt in flight through it fails, and new ones are refused."""
        self.working = False
        self.fail_in_flight()
        if self.monitor is not None:
            self.monitor.refresh()

    def fail_in_flight(self, entry: Any = None) -> None:
        """Fail the attempts in flight through the balancer (through instance ``entry`` only,
        when given): their connections died with it."""
        for backend in self.backends:
            server = backend.server
            for attempt in server.held():
                if attempt.live and (entry is None or attempt.entry is entry):
                    self._respond(attempt, Cause.BALANCER_DOWN)

    def repair(self) -> None:
        self.working = True
        if self.monitor is not None:
            self.monitor.refresh()
