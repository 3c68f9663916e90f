"""The truth about the cluster, as an observer outside it sees it: incidents and service state.

Components report what really happens to them (a crash, a repair, a partition), the balancer
reports what it believes (a backend marked down or up). The monitor puts the two side by side:
it keeps the timeline of events, follows each failure as an incident from failure to detection,
to traffic moved, to recovery, and integrates over time whether the service could serve.
It observes and never acts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import simpy

from sim.analysis import IncidentTally
from sim.model.service import ServiceState
from sim.scenario.paths import COMBINED, MAINTENANCE, ClassPath

if TYPE_CHECKING:
    from sim.model.balancer import Balancer
    from sim.model.database import DataTier
    from sim.model.server import Server

__all__ = ["EVENT_COLUMNS", "INCIDENT_COLUMNS", "Incident", "Monitor"]

INCIDENT_COLUMNS = [
    "incident",
    "kind",
    "component",
    "failed_at_s",
    "detected_at_s",
    "traffic_moved_at_s",
    "restored_at_s",
    "time_to_detect_s",
    "failover_time_s",
    "time_to_recover_s",
    "failed_requests",
]
EVENT_COLUMNS = ["time_s", "component", "event", "detail"]
STILL_CONNECTED = frozenset({"slowdown", "pause"})
"""Failures of a server that keeps accepting connections (slowly, or not answering until a
pause ends): nothing refuses its traffic, so that traffic has moved only once detection takes
it out of rotation."""
MAX_RECORDED = 100_000
"""The most events and incidents a run keeps as rows (events.csv, incidents.csv); the summary
counts every incident whatever their number, so memory stays bounded over any horizon."""


@dataclass(slots=True)
class Incident:
    """One failure, followed from the moment it happens to the moment service is restored."""

    number: int
    kind: str
    component: str
    servers: list[Server]
    failed_at: float
    failed_requests_before: int
    detected_at: float | None = None
    traffic_moved_at: float | None = None
    restored_at: float | None = None
    failed_requests: int | None = None
    ended: bool = False
    zone: str | None = None
    """The zone a zone-wide failure hit as a whole, else None."""
    routed: bool = True
    """Whether traffic went to an affected server when it failed: if not (an idle spare, a
    server already out), there is no traffic to move and no failover time."""
    _fault_cleared: bool = field(default=False, repr=False)

    def durations(self) -> tuple[float | None, float | None, float | None]:
        """Seconds from the failure to detection, to traffic moved and to recovery; None for a
        moment not reached."""
        failed_at = self.failed_at
        detected, moved, restored = self.detected_at, self.traffic_moved_at, self.restored_at
        return (
            detected - failed_at if detected is not None else None,
            moved - failed_at if moved is not None else None,
            restored - failed_at if restored is not None else None,
        )

    def record(self) -> dict[str, Any]:
        detect, failover, recover = (
            math.nan if seconds is None else seconds for seconds in self.durations()
        )
        return {
            "incident": self.number,
            "kind": self.kind,
            "component": self.component,
            "failed_at_s": self.failed_at,
            "detected_at_s": self.detected_at if self.detected_at is not None else math.nan,
            "traffic_moved_at_s": (
                self.traffic_moved_at if self.traffic_moved_at is not None else math.nan
            ),
            "restored_at_s": self.restored_at if self.restored_at is not None else math.nan,
            "time_to_detect_s": detect,
            "failover_time_s": failover,
            "time_to_recover_s": recover,
            "failed_requests": self.failed_requests,
        }


def _routes_nowhere(server: Server) -> bool:
    return False


class Monitor:
    """Timeline, incidents, false suspicions and the up/down state of the service."""

    def __init__(
        self,
        env: simpy.Environment,
        min_servers: int,
        failed_requests: Any,
        paths: list[ClassPath],
        causes: list[str],
        log_events: bool = True,
    ) -> None:
        self.env = env
        self.log_events = log_events
        self.min_servers = min_servers
        self.failed_requests = failed_requests
        """() -> requests failed so far (the recorder's count)."""
        self.maintenance: frozenset[Server] = frozenset()
        """Servers planned maintenance holds now: downtime for want of them is planned."""
        self.balancer: Balancer | None = None
        self.balancers: Any = None
        """The balancer instances (:mod:`sim.model.redundancy`): their reach."""
        self.data_tier: DataTier | None = None
        self.views: list[Any] = []
        self._view_of: dict[Server, Any] = {}
        """Whoever routes work to servers (the balancer, the data tier): asked whether a
        server is in their rotation."""
        self._routes_of: dict[Server, Any] = {}
        """Per server, its view's ``routes_to`` (asked after most events)."""
        self.events: list[dict[str, Any]] = []
        self.incidents: list[Incident] = []
        self._open: list[Incident] = []
        self.false_suspicions = 0
        self.listeners: list[Any] = []
        """Called after every refresh (an estimator watching for regeneration points)."""
        self.incident_tally = IncidentTally()
        self.failed_during_incidents = 0
        self._failed_when_opened = 0
        self._opened = 0
        self.service = ServiceState(paths, causes)
        self._pending_promotions: dict[str, int] = {}

    # -- the timeline -------------------------------------------------------------------------

    def log(self, component: str, event: str, detail: str = "") -> None:
        if not self.log_events or len(self.events) >= MAX_RECORDED:
            return
        self.events.append(
            {"time_s": self.env.now, "component": component, "event": event, "detail": detail}
        )

    # -- incidents ----------------------------------------------------------------------------

    def open_incident(
        self, kind: str, component: str, servers: list[Server], zone: str | None = None
    ) -> Incident:
        """A failure is about to be applied; call :meth:`refresh` once it has been. ``zone``
        names the zone when the failure hits a whole zone at once."""
        self._opened += 1
        failed = self.failed_requests()
        incident = Incident(
            self._opened, kind, component, list(servers), self.env.now, failed, zone=zone
        )
        if len(servers) == 1:  # the common case, a server's crash
            incident.routed = self._routes_to(servers[0])
        else:
            incident.routed = not servers or any(self._routes_to(server) for server in servers)
        if self.log_events and len(self.incidents) < MAX_RECORDED:
            self.incidents.append(incident)  # rows for incidents.csv; the tally counts all
        if not self._open:
            self._failed_when_opened = failed
        self._open.append(incident)
        if self.log_events:
            self.log(component, kind)
        return incident

    def clear_fault(self, incident: Incident, event: str) -> None:
        """The fault behind ``incident`` is gone (repaired, reconnected, back to speed)."""
        incident._fault_cleared = True
        if self.log_events:
            self.log(incident.component, event)
        self.refresh()

    def address_taken_over(self) -> None:
        """A backup balancer took over the service address: the failure of the instance that
        held it was detected (the advertisements stopped) and its traffic has moved."""
        now = self.env.now
        for incident in self._open:
            if not incident.servers and incident.routed and incident.traffic_moved_at is None:
                incident.detected_at = incident.traffic_moved_at = now

    def balancer_detected(self, name: str) -> None:
        """DNS withdrew balancer instance ``name``: its failure is detected."""
        for incident in self._open:
            if incident.component == name and not incident.servers and incident.detected_at is None:
                incident.detected_at = self.env.now

    def balancer_traffic_moved(self, name: str) -> None:
        """No resolver sends traffic to dead balancer instance ``name`` any more."""
        for incident in self._open:
            if (
                incident.component == name
                and not incident.servers
                and incident.routed
                and incident.traffic_moved_at is None
            ):
                incident.traffic_moved_at = self.env.now

    def promotion_started(self, group: str) -> None:
        self._pending_promotions[group] = self._pending_promotions.get(group, 0) + 1

    def promotion_ended(self, group: str) -> None:
        self._pending_promotions[group] -= 1

    def rotation_changed(self, server: Server, in_rotation: bool, reason: str) -> None:
        """The balancer started or stopped sending to ``server``."""
        if not in_rotation and reason in {"detected down", "ejected"} and server.alive:
            self.false_suspicions += 1
            reason = f"{reason} (false suspicion: alive)"
        if self.log_events:
            self.log(server.name, "in rotation" if in_rotation else "out of rotation", reason)
        if in_rotation or not self._open or not reason.startswith(("detected down", "ejected")):
            return
        now = self.env.now
        for incident in self._open:
            if incident.detected_at is None and server in incident.servers:
                incident.detected_at = now

    def _update_incidents(self) -> None:
        now = self.env.now
        for incident in self._open[:]:  # a copy: a restored incident leaves the list
            if incident._fault_cleared:
                self._check_restored(incident, now)
            elif incident.traffic_moved_at is None and incident.routed and incident.servers:
                gray = incident.kind in STILL_CONNECTED
                pending = self._pending_promotions
                for server in incident.servers:
                    if self._routes_to(server) and (gray or not server.serving):
                        break  # misrouted
                    if pending and pending.get(server.pool, 0) > 0:
                        break  # a promotion is under way
                else:
                    incident.traffic_moved_at = now

    def _check_restored(self, incident: Incident, now: float) -> None:
        if incident.servers:
            for server in incident.servers:
                if not (server.serving and self._back_in_service(server)):
                    return
        elif self.balancers.reach() != 1.0:
            return
        incident.restored_at = now
        incident.failed_requests = self.failed_requests() - incident.failed_requests_before
        incident.ended = True
        self._open.remove(incident)
        if not self._open:
            self._close_failing()
        self.incident_tally.add(*incident.durations())

    def _view(self, server: Server) -> Any:
        # Who routes to a server never changes: look it up once.
        try:
            return self._view_of[server]
        except KeyError:
            view = next((view for view in self.views if view.knows(server)), None)
            self._view_of[server] = view
            return view

    def _routes_to(self, server: Server) -> bool:
        try:
            routes_to = self._routes_of[server]
        except KeyError:
            view = self._view(server)
            routes_to = self._routes_of[server] = (
                view.routes_to if view is not None else _routes_nowhere
            )
        return routes_to(server)

    def _back_in_service(self, server: Server) -> bool:
        """Whether the service ``server`` belongs to is whole again with it: an incident ends
        when the service is back, never merely when a component is."""
        view = self._view(server)
        return view is not None and view.back_in_service(server)

    # -- service state ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute incidents and which classes are up, after any change."""
        if self.balancer is None:
            return
        if self._open:
            self._update_incidents()
        balancer = self.balancer
        reach = self.balancers.reach()
        servers_up = balancer.serving_count() >= self.min_servers
        data_tier = self.data_tier
        service = self.service
        if reach == 1.0 and servers_up and (data_tier is None or data_tier.whole()):
            if not service.all_up:  # else nothing changed that a class could see
                service.set(self.env.now, [1.0] * len(service.paths), "")
                self.log("service", "up")
        else:
            states = data_tier.shard_states() if data_tier is not None else []
            self._set_down(reach, servers_up, states)
        for listener in self.listeners:
            listener()

    def _set_down(self, reach: float, servers_up: bool, states: list[tuple[bool, bool]]) -> None:
        """Some tier cannot serve every class: which classes are up, and who is to blame."""
        balancer = self.balancer
        failing: dict[str, list[Server]] = {}
        if reach < 1.0:
            failing["balancer"] = []
        if not servers_up:
            failing["servers"] = [
                backend.server
                for backend in balancer.backends
                if backend.member and not (backend in balancer.up and backend.server.serving)
            ]
        unwritable = [index for index, (writable, _) in enumerate(states) if not writable]
        unreadable = [index for index, (_, readable) in enumerate(states) if not readable]
        service = self.service
        up = []
        needed: dict[str, list[Server]] = {}
        for path in service.paths:
            shards = [*(unwritable if path.writes else []), *(unreadable if path.reads else [])]
            class_up = reach if servers_up and not shards else 0.0
            up.append(class_up)
            if class_up < 1.0:
                needed.update(failing)
                for index in shards:
                    key = f"shard_{index}"
                    if key not in needed:  # the same nodes whichever class needs the shard
                        needed[key] = self.data_tier.failed_nodes(index)
        cause = self._blame(needed) if needed else ""
        was = service.all_up
        service.set(self.env.now, up, cause)
        if service.all_up != was:
            self.log("service", "up" if service.all_up else "down", cause)

    def _blame(self, needed: dict[str, list[Server]]) -> str:
        """The cause of downtime while the tiers in ``needed`` (with the components of each
        that do not serve) are down: a tier whose failed components all lie in the servers of
        one open zone-wide incident is charged to that zone, and one whose failed components
        are all held by planned maintenance to ``maintenance``."""
        culprits = []
        for tier, failed in needed.items():
            culprit = tier
            if failed and self.maintenance and set(failed) <= self.maintenance:
                culprit = MAINTENANCE
            elif failed:
                for incident in self._open:
                    if incident.zone is not None and set(failed) <= set(incident.servers):
                        culprit = f"zone_{incident.zone}"
                        break
            if culprit not in culprits:
                culprits.append(culprit)
        return culprits[0] if len(culprits) == 1 else COMBINED

    def start_window(self) -> None:
        self.service.start_window(self.env.now)

    def service_totals(self) -> dict[str, Any]:
        """Seconds since the measurement window started: see :meth:`ServiceState.totals`."""
        return self.service.totals(self.env.now)

    def settled(self) -> bool:
        """No incident open and no promotion under way."""
        return not self._open and not any(self._pending_promotions.values())

    def close_open_incidents(self) -> None:
        """At the end of a run: incidents still open count the failures so far, and join
        the tally."""
        for incident in self._open:
            incident.failed_requests = self.failed_requests() - incident.failed_requests_before
            self.incident_tally.add(*incident.durations())
        if self._open:
            self._close_failing()
        self._open = []

    def _close_failing(self) -> None:
        """The last open incident ended: count the requests that failed while any was open."""
        self.failed_during_incidents += self.failed_requests() - self._failed_when_opened

    def incident_figures(self) -> dict[str, Any]:
        """Counts and means over every incident of the run (after :meth:`close_open_incidents`);
        ``failed_requests`` counts each request that failed while any incident was open once."""
        figures = self.incident_tally.summary(self.false_suspicions)
        return {**figures, "failed_requests": self.failed_during_incidents}
