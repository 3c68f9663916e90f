"""Failure injectors: SimPy processes that break and mend the cluster as a scenario says.

Every failure is the truth, not a belief: a crash makes the server refuse connections and lose
its work at once, but nobody is told. The balancer learns of it later, through detection. Each
injector draws its times from streams of its own (one per failure entry and component), so
adding a failure to a scenario never changes when the others happen.

Overlapping faults are counted: a server crashed by two overlapping failures comes back only
when both are repaired.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable

import simpy
from simpy.events import Timeout

from sim.model.biasing import FailureBiasing
from sim.model.monitor import Incident, Monitor
from sim.model.network import FAILOVER_MANAGER, Network
from sim.model.redundancy import BalancerNode, DnsGroup, SingleBalancer, VrrpGroup
from sim.model.server import Server
from sim.model.timing import at_start
from sim.registry import Registry
from sim.scenario import (
    FAILURE_MODELS,
    CrashRepairSpec,
    CrashSpec,
    PartitionSpec,
    PauseSpec,
    SlowdownSpec,
    TargetSpec,
    ZoneOutageSpec,
)
from sim.streams import Streams

__all__ = ["INJECTORS", "FailureInjector"]

INJECTORS: Registry[Callable] = Registry("failure injector")
"""Failure kind -> method of FailureInjector that starts its processes."""


class FailureInjector:
    """Starts the processes of every failure entry and applies their faults to the cluster."""

    def __init__(
        self,
        env: simpy.Environment,
        servers: list[Server],
        balancers: SingleBalancer | VrrpGroup | DnsGroup,
        monitor: Monitor,
        streams: Streams,
        on_change: Callable[[list[Server]], None],
    ) -> None:
        self.env = env
        self.servers = servers
        self.balancers = balancers
        self.monitor = monitor
        self.streams = streams
        self.on_change = on_change
        self._crashes: Counter[str] = Counter()
        self._partitions: Counter[str] = Counter()
        self._pauses: Counter[str] = Counter()
        self._slowdowns: dict[str, list[float]] = {}
        self.biasing: FailureBiasing | None = None
        """Set before :meth:`start` to bias the failure clocks (``sim.model.biasing``)."""
        self._balancer_crashes: Counter[str] = Counter()
        self._crashed_node: dict[int, BalancerNode] = {}
        self.network = Network()
        """Links cut by partial partitions (a peer other than the balancer)."""

    def start(self, failures: list) -> None:
        for index, spec in enumerate(failures):
            INJECTORS.get(spec.kind)(self, index, spec)

    def resolve(self, target: TargetSpec) -> list[Server]:
        """The servers a target names, in declared order."""
        if target.server is not None:
            return [s for s in self.servers if s.name == target.server]
        if target.group is not None:
            return [s for s in self.servers if s.group == target.group]
        if target.zone is not None:
            return [s for s in self.servers if s.zone == target.zone]
        return []

    # -- faults -------------------------------------------------------------------------------

    def crash(
        self, kind: str, component: str, servers: list[Server], zone: str | None = None
    ) -> Incident:
        incident = self.monitor.open_incident(kind, component, servers, zone)
        self.stop(servers)
        return incident

    def repair(self, incident: Incident) -> None:
        _release(self._crashes, incident.servers, Server.repair)
        self.on_change(incident.servers)
        self.monitor.clear_fault(incident, "repaired")

    def stop(self, servers: list[Server]) -> None:
        """Stop the processes of ``servers``, as a crash does; planned maintenance calls it
        without an incident. Faults and stops on one server nest: the last one to end
        starts it again."""
        _hold(self._crashes, servers, Server.crash)
        self.on_change(servers)
        self.monitor.refresh()

    def restart(self, servers: list[Server]) -> None:
        """End a :meth:`stop`."""
        _release(self._crashes, servers, Server.repair)
        self.on_change(servers)
        self.monitor.refresh()

    def crash_balancer(self, kind: str, node: BalancerNode | None = None) -> Incident:
        """Crash a balancer instance: ``node``, or the one holding the address now (the first
        when none does)."""
        if node is None:
            node = self.balancers.holder() or self.balancers.nodes[0]
        incident = self.monitor.open_incident(kind, node.name, [])
        incident.routed = self.balancers.carries(node)
        self._crashed_node[incident.number] = node
        self._balancer_crashes[node.name] += 1
        if self._balancer_crashes[node.name] == 1:
            node.alive = False
            self.balancers.node_changed(node)
        self.monitor.refresh()
        return incident

    def repair_balancer(self, incident: Incident) -> None:
        node = self._crashed_node.pop(incident.number)
        self._balancer_crashes[node.name] -= 1
        if self._balancer_crashes[node.name] == 0:
            node.alive = True
            self.balancers.node_changed(node)
        self.monitor.clear_fault(incident, "repaired")

    # -- failure models -----------------------------------------------------------------------

    def _crash_for(self, target: TargetSpec, servers: list, kind: str) -> Incident:
        if target.balancer:
            return self.crash_balancer(kind, servers[0] if servers else None)
        return self.crash(kind, component_name(target, servers), servers, target.zone)

    def _mend(self, target: TargetSpec, incident: Incident) -> None:
        if target.balancer:
            self.repair_balancer(incident)
        else:
            self.repair(incident)

    def _components(self, target: TargetSpec) -> list[list[Server]]:
        """The independent units a stochastic failure hits: each server, or a zone as one."""
        if target.balancer:
            return [[node] for node in self.balancers.nodes]
        if target.zone is not None:
            return [self.resolve(target)]
        return [[server] for server in self.resolve(target)]

    def _can_fail(self, servers: list[Server]) -> bool:
        # A cold spare is switched off: it cannot fail until it boots (a zone still fails
        # when it holds one). No servers is the balancer, which always can.
        if len(servers) == 1:  # the common case: one server, asked at each of its failures
            return servers[0].powered
        return not servers or any(server.powered for server in servers)


def _hold(faults: Counter[str], servers: list[Server], apply: Callable) -> None:
    """Count one more fault on each server; the first one applies."""
    for server in servers:
        name = server.name
        count = faults[name] = faults[name] + 1
        if count == 1:
            apply(server)


def _release(faults: Counter[str], servers: list[Server], undo: Callable) -> None:
    """Count one fault less on each server; the last one to go undoes it."""
    for server in servers:
        name = server.name
        count = faults[name] = faults[name] - 1
        if count == 0:
            undo(server)


class RepairCrews:
    """``count`` repair crews shared by the components of one failure entry: a repair that finds
    every crew busy waits for one, first come first served, as on a ``simpy.Resource`` of that
    capacity; one that finds a crew free starts at once, without an event (thousands of years
    of repairs made two needless events each)."""

    def __init__(self, env: simpy.Environment, count: int) -> None:
        self.env = env
        self.free = count
        self._waiting: deque[simpy.Event] = deque()

    def take(self) -> simpy.Event | None:
        """Take a crew: None when one was free, else an event that fires when one is."""
        if self.free:
            self.free -= 1
            return None
        event = self.env.event()
        self._waiting.append(event)
        return event

    def give_back(self) -> None:
        """A repair is over: its crew goes to the longest waiting repair, if any."""
        if self._waiting:
            self._waiting.popleft().succeed()
        else:
            self.free += 1


def component_name(target: TargetSpec, servers: list[Server]) -> str:
    """A server's own name when one server is hit, else ``zone a`` or ``group web``."""
    if len(servers) == 1 and target.zone is None:
        return servers[0].name
    return target.describe()


@INJECTORS.register("crash_repair")
def _crash_repair(injector: FailureInjector, index: int, spec: CrashRepairSpec) -> None:
    crews = RepairCrews(injector.env, spec.repair_crews) if spec.repair_crews else None
    for servers in injector._components(spec.target):
        name = servers[0].name if len(servers) == 1 else spec.target.describe()
        stream = injector.streams.generator(f"failures[{index}]/{name}")
        _Life(injector, spec, servers, crews, stream)


class _Life:
    """One component of a crash/repair entry (a server, a zone's servers, a balancer),
    failing and mended forever: a failure after a time to failure, then a repair, once a crew
    is free, after a time to repair.

    Callbacks on SimPy events rather than a process, beginning where the process would have:
    a long-horizon run is thousands of these steps per simulated year, and a generator's
    resumption was a good part of each."""

    __slots__ = (
        "crews",
        "env",
        "incident",
        "injector",
        "servers",
        "spec",
        "time_to_failure",
        "time_to_repair",
    )

    def __init__(
        self,
        injector: FailureInjector,
        spec: CrashRepairSpec,
        servers: list[Server],
        crews: RepairCrews | None,
        stream,
    ) -> None:
        self.injector = injector
        self.env = injector.env
        self.spec = spec
        self.servers = servers
        self.crews = crews
        self.time_to_failure = spec.time_to_failure.sampler(stream, block=64)
        self.time_to_repair = spec.time_to_repair.sampler(stream, block=64)
        self.incident: Incident | None = None
        at_start(self.env, self._until_failure)

    def _until_failure(self, _: object = None) -> None:
        biasing = self.injector.biasing
        if biasing is None:
            timer = Timeout(self.env, next(self.time_to_failure))
        else:
            rate = 1 / self.spec.time_to_failure.mean()  # exponential: checked before
            timer = biasing.time_to_failure(tuple(self.servers), rate)
        timer.callbacks.append(self._failed)

    def _failed(self, _: object) -> None:
        injector = self.injector
        if not injector._can_fail(self.servers):
            self._until_failure()
            return
        self.incident = injector._crash_for(self.spec.target, self.servers, "crash")
        if injector.biasing is not None:
            injector.biasing.failed()
        crews = self.crews
        waiting = crews.take() if crews is not None else None
        if waiting is None:
            self._repair()
        else:
            waiting.callbacks.append(self._repair)

    def _repair(self, _: object = None) -> None:
        Timeout(self.env, next(self.time_to_repair)).callbacks.append(self._repaired)

    def _repaired(self, _: object) -> None:
        if self.crews is not None:
            self.crews.give_back()
        injector = self.injector
        if injector.biasing is not None:
            injector.biasing.repaired()  # before the mend, which lets the monitor take stock
        incident, self.incident = self.incident, None
        injector._mend(self.spec.target, incident)
        self._until_failure()


def _scheduled_outage(injector: FailureInjector, index: int, spec, target: TargetSpec, kind: str):
    env = injector.env
    servers = injector.resolve(target)
    repair_time = None
    if spec.time_to_repair is not None:
        repair_time = spec.time_to_repair.sampler(
            injector.streams.generator(f"failures[{index}]/repair"), block=1
        )

    def outage():
        yield env.timeout(spec.at)
        incident = injector._crash_for(target, servers, kind)
        if spec.duration is not None:
            yield env.timeout(spec.duration)
        elif repair_time is not None:
            yield env.timeout(next(repair_time))
        else:
            return
        injector._mend(target, incident)

    env.process(outage())


@INJECTORS.register("crash")
def _crash(injector: FailureInjector, index: int, spec: CrashSpec) -> None:
    _scheduled_outage(injector, index, spec, spec.target, "crash")


@INJECTORS.register("zone_outage")
def _zone_outage(injector: FailureInjector, index: int, spec: ZoneOutageSpec) -> None:
    _scheduled_outage(injector, index, spec, spec.target, "zone outage")


@INJECTORS.register("partition")
def _partition(injector: FailureInjector, index: int, spec: PartitionSpec) -> None:
    env = injector.env
    servers = injector.resolve(spec.target)
    if spec.peer.balancer:
        apply, undo = _disconnect, _reconnect
    else:
        links = _links(injector, servers, spec)
        apply = lambda injector, servers: injector.network.cut(links, env.now)  # noqa: E731
        undo = lambda injector, servers: injector.network.heal(links)  # noqa: E731

    def partition():
        yield env.timeout(spec.at)
        incident = injector.monitor.open_incident(
            "partition", component_name(spec.target, servers), servers, spec.target.zone
        )
        apply(injector, servers)
        injector.monitor.refresh()
        yield env.timeout(spec.duration)
        undo(injector, servers)
        injector.monitor.clear_fault(incident, "reconnected")

    env.process(partition())


def _disconnect(injector: FailureInjector, servers: list[Server]) -> None:
    _hold(injector._partitions, servers, Server.disconnect)
    injector.on_change(servers)


def _reconnect(injector: FailureInjector, servers: list[Server]) -> None:
    _release(injector._partitions, servers, Server.reconnect)
    injector.on_change(servers)


def _links(injector: FailureInjector, servers: list[Server], spec: PartitionSpec) -> list:
    """The directed links a partial partition cuts: from the target's servers to the peer's
    ends, the other way, or both."""
    ours = [server.name for server in servers]
    if spec.peer.failover_manager:
        theirs = [FAILOVER_MANAGER]
    else:
        theirs = [server.name for server in injector.resolve(spec.peer)]
    links = []
    if spec.direction in ("both", "from_target"):
        links += [(a, b) for a in ours for b in theirs if a != b]
    if spec.direction in ("both", "to_target"):
        links += [(b, a) for a in ours for b in theirs if a != b]
    return links


@INJECTORS.register("pause")
def _pause(injector: FailureInjector, index: int, spec: PauseSpec) -> None:
    env = injector.env
    if spec.time_between is None:
        units = [injector.resolve(spec.target)]
    else:  # each server pauses on its own, like each one's crashes
        units = [[server] for server in injector.resolve(spec.target)]
    for servers in units:
        name = servers[0].name if len(servers) == 1 else spec.target.describe()
        stream = injector.streams.generator(f"failures[{index}]/{name}")
        durations = spec.duration.sampler(stream, block=64)
        gaps = spec.time_between.sampler(stream, block=64) if spec.time_between else None

        def pauses(servers=servers, durations=durations, gaps=gaps):
            yield env.timeout(spec.at)
            while True:
                if gaps is not None:
                    yield env.timeout(next(gaps))
                incident = injector.monitor.open_incident(
                    "pause", component_name(spec.target, servers), servers
                )
                _hold(injector._pauses, servers, Server.pause)
                injector.monitor.refresh()
                yield env.timeout(next(durations))
                _release(injector._pauses, servers, Server.resume)
                injector.monitor.clear_fault(incident, "resumed")
                if gaps is None:
                    return

        env.process(pauses())


@INJECTORS.register("slowdown")
def _slowdown(injector: FailureInjector, index: int, spec: SlowdownSpec) -> None:
    env = injector.env
    servers = injector.resolve(spec.target)

    def slowdown():
        yield env.timeout(spec.at)
        incident = injector.monitor.open_incident(
            "slowdown", component_name(spec.target, servers), servers
        )
        for server in servers:
            factors = injector._slowdowns.setdefault(server.name, [])
            factors.append(spec.factor)
            server.slow_down(max(factors))
        injector.monitor.refresh()
        yield env.timeout(spec.duration)
        for server in servers:
            factors = injector._slowdowns[server.name]
            factors.remove(spec.factor)
            if factors:
                server.slow_down(max(factors))
            else:
                server.restore_speed()
        injector.monitor.clear_fault(incident, "back to speed")

    env.process(slowdown())


INJECTORS.check_covers(FAILURE_MODELS)
