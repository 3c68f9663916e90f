"""Build and wire the SimPy world of a scenario: users, client, balancer, servers, metrics.

The lifecycle is explicit: :meth:`Cluster.build` turns the inert scenario into live components
and wires them, :meth:`Cluster.start` starts their processes, :meth:`Cluster.run` advances
simulated time, and the recorder holds what was observed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy

from sim.metrics import GoodWindows, LatencyHistogram, Recorder
from sim.model.admission import Admission
from sim.model.autoscaling import Autoscaler
from sim.model.balancer import Balancer
from sim.model.balancing import Backend
from sim.model.cache import CacheTier
from sim.model.client import Client
from sim.model.database import DataTier
from sim.model.detection import DETECTOR_PROCESSES, SampledDetection, start_detector
from sim.model.failover import StandbyController
from sim.model.failures import INJECTORS, FailureInjector
from sim.model.maintenance import Maintenance
from sim.model.monitor import Monitor
from sim.model.redundancy import build_balancers
from sim.model.replication import REPLICATION_STRATEGIES
from sim.model.resilient_client import build_client
from sim.model.server import Server
from sim.model.tallies import ServerTallies
from sim.model.timing import advance
from sim.model.workload import ClosedLoopUsers, OpenLoopSource, TraceReplay, open_loop_source
from sim.scenario import DETECTORS, FAILURE_MODELS, REPLICATION_KINDS, DatabaseSpec, Scenario
from sim.scenario.paths import class_paths, downtime_causes
from sim.streams import Streams

__all__ = ["Cluster"]


class Cluster:
    """The live model of one scenario in one replication.

    With ``requests=False`` the cluster has no users and no time series: only failures,
    detection (sampled from the detector's delay distribution) and failover run, which is how
    the long-horizon availability mode covers centuries of simulated time.
    """

    def __init__(self, scenario: Scenario, streams: Streams, requests: bool = True) -> None:
        self.scenario = scenario
        self.streams = streams
        self.requests = requests
        self.env = simpy.Environment()
        self.groups = [group.name for group in scenario.servers]
        self.recorder = Recorder(
            [request_class.name for request_class in scenario.workload.classes],
            self.groups,
            scenario.slo.latency if scenario.slo.latency is not None else math.inf,
        )
        self.monitor = Monitor(
            self.env,
            scenario.slo.min_servers,
            self.recorder.failed_total,
            class_paths(scenario),
            downtime_causes(scenario),
            log_events=requests,
        )
        self.good_windows = GoodWindows(self.recorder, scenario.slo.window_good)
        self._good_window_start = 0.0
        self.servers: list[Server] = []
        self.backends: list[Backend] = []
        self.client: Client
        self.balancer: Balancer
        self.source: OpenLoopSource | TraceReplay | None = None
        self.users: ClosedLoopUsers | None = None
        self.injector: FailureInjector
        self.controllers: dict[str, StandbyController] = {}
        self.sampled_detection: SampledDetection | None = None
        self.maintenance: Maintenance | None = None
        self.autoscalers: dict[str, Autoscaler] = {}
        self.database_nodes: list[Server] = []
        """The database's nodes, then its cache's (group ``cache``)."""
        self.data_tier: DataTier | None = None
        self.queue_waits: dict[str, list[LatencyHistogram]] = {}
        """Per server group (and ``db``), per request class: the waits of attempts that queued."""
        self.tallies: ServerTallies
        self._row_start = 0.0
        self._row_totals: list[dict[str, float]] = []
        self._server_row_totals: dict[str, dict[str, float]] = {}
        self._row_server_s: dict[str, float] = {}
        self._data_row_totals: dict[str, int] = {}

    @classmethod
    def build(cls, scenario: Scenario, streams: Streams, requests: bool = True) -> Cluster:
        """Every component created and wired, nothing started."""
        cluster = cls(scenario, streams, requests)
        cluster._wire()
        return cluster

    def _wire(self) -> None:
        # Kinds registered after the model was imported (a user's plugin) are checked here,
        # before anything runs.
        DETECTOR_PROCESSES.check_covers(DETECTORS)
        INJECTORS.check_covers(FAILURE_MODELS)
        REPLICATION_STRATEGIES.check_covers(REPLICATION_KINDS)
        scenario, env, streams = self.scenario, self.env, self.streams
        workload = scenario.workload
        balancer_spec = scenario.balancer
        self.client = build_client(env, workload.classes, streams, self.recorder, self.monitor.log)
        behind_balancer = {group.name for group in scenario.backend_groups()}
        group_backends: dict[str, tuple[list[Backend], list[Backend]]] = {}
        classes = len(workload.classes)
        priorities = [request_class.priority for request_class in workload.classes]
        for group in scenario.servers:
            members: list[Backend] = []
            spares: list[Backend] = []
            waits = self.queue_waits[group.name] = [LatencyHistogram() for _ in range(classes)]
            cold = group.cold_start
            for number, name in enumerate(group.server_names()):
                server = Server(
                    env,
                    name=name,
                    group=group.name,
                    zone=group.zone,
                    workers=group.workers,
                    queue_capacity=group.queue_capacity,
                    speed=group.speed,
                    connect_timeout_s=balancer_spec.connect_timeout,
                    waits=waits,
                    cold_factor=cold.factor if cold is not None else 1.0,
                    warm_up_s=cold.warm_up if cold is not None else 0.0,
                    priorities=priorities if group.queue_discipline == "priority" else None,
                    shedding=group.shedding,
                )
                self.servers.append(server)
                if group.name in behind_balancer:
                    spare = number >= group.count
                    backend = Backend(
                        len(self.backends), name, group.weight, server, member=not spare
                    )
                    self.backends.append(backend)
                    (spares if spare else members).append(backend)
            group_backends[group.name] = (members, spares)
        self._backend_of = {backend.server: backend for backend in self.backends}
        if scenario.database is not None:
            self._wire_database(scenario.database)
        policy = balancer_spec.policy.build(
            streams.generator("balancer/policy"), len(self.backends), lambda: env.now
        )
        self.balancer = Balancer(
            env,
            policy,
            self.backends,
            self.client.on_response,
            monitor=self.monitor,
            outlier_ejection=balancer_spec.outlier_ejection,
            hot_migration=balancer_spec.hot_migration,
            panic_threshold=balancer_spec.panic_threshold,
            # Slow start shapes traffic only: the long-horizon mode, without requests, skips it.
            slow_start_s=balancer_spec.slow_start if self.requests else 0.0,
            admission=Admission(env, balancer_spec.admission, priorities)
            if balancer_spec.admission is not None
            else None,
        )
        self._members = {backend.index for backend in self.backends if backend.member}
        self.monitor.balancer = self.balancer
        self.monitor.views.append(self.balancer)
        self.client.dispatch = self.balancer.dispatch
        self.client.cancel = self.balancer.cancel
        for server in self.servers:
            server.respond = self.balancer.on_response
        if self.requests and workload.arrivals is not None:
            self.source = open_loop_source(
                env, workload.arrivals, workload.classes, streams, self.client
            )
        if self.requests and workload.sessions is not None:
            self.users = ClosedLoopUsers(
                env, workload.sessions, workload.classes, streams, self.client
            )
        for group in scenario.backend_groups():
            if group.standby is None:
                continue
            members, spares = group_backends[group.name]
            stream = streams.generator(f"standby/{group.name}")
            controller = StandbyController(
                env,
                group.name,
                group.count,
                group.standby,
                members,
                spares,
                self.balancer,
                self.monitor,
                group.standby.promotion_delay.sampler(stream, block=64),
                group.standby.boot_time.sampler(stream, block=64),
            )
            self.controllers[group.name] = controller
        self.balancer.listeners.append(self._rotation_changed)
        if not self.requests:
            self.sampled_detection = SampledDetection(
                env, balancer_spec.detection, self.balancer, streams.generator("detection")
            )
        self.tallies = ServerTallies(
            env,
            scenario.servers,
            [node for node in [*self.servers, *self.database_nodes] if node.group != "cache"],
            self.backends,
            self.queue_waits,
        )
        self.balancers = build_balancers(env, balancer_spec, self.balancer, self.monitor, streams)
        self.monitor.balancers = self.balancers
        self.injector = FailureInjector(
            env,
            [*self.servers, *self.database_nodes],
            self.balancers,
            self.monitor,
            streams,
            self._truth_changed,
        )
        if self.data_tier is not None:
            self.data_tier.network = self.injector.network
            self.injector.network.listeners.append(self.data_tier.links_changed)
            self.data_tier.stonith = self._power_cycle
            if self.data_tier.cache is not None:
                self.data_tier.cache.network = self.injector.network
        for group in scenario.backend_groups():
            if group.autoscaling is None:
                continue
            members, reserve = group_backends[group.name]
            self.autoscalers[group.name] = autoscaler = Autoscaler(
                env,
                group.name,
                group.autoscaling,
                [*members, *reserve],
                group.count,
                self.balancer,
                self.injector,
                self.monitor,
                group.autoscaling.provisioning_delay.sampler(
                    streams.generator(f"autoscaling/{group.name}"), block=64
                ),
            )
            self.tallies.scaled[group.name] = autoscaler.server_seconds
        if scenario.maintenance:
            self.maintenance = Maintenance(
                env,
                scenario.maintenance,
                self.backends,
                self.balancer,
                self.injector,
                self.monitor,
                streams,
            )

    def _wire_database(self, spec: DatabaseSpec) -> None:
        classes = len(self.scenario.workload.classes)
        waits = self.queue_waits["db"] = [LatencyHistogram() for _ in range(classes)]
        for name in spec.node_names():
            shard, number = (int(part) for part in name.split("-")[1:])
            self.database_nodes.append(
                Server(
                    self.env,
                    name=name,
                    group="db",
                    zone=spec.zones[(number - 1) % len(spec.zones)],
                    workers=spec.workers,
                    queue_capacity=spec.queue_capacity,
                    speed=1.0,
                    connect_timeout_s=self.scenario.balancer.connect_timeout,
                    pool=f"db-{shard}",
                    waits=waits,
                )
            )
        self.data_tier = DataTier(self.env, spec, self.database_nodes, self.streams, self.monitor)
        if self.requests:
            self.data_tier.check_lag()
            # Real detectors watch the nodes; the long-horizon mode samples their delay law.
            self.data_tier.watch(
                lambda backend, watcher: start_detector(
                    self.env,
                    spec.detection,
                    backend,
                    watcher,
                    self.streams.generator(f"database/detection/{backend.name}"),
                )
            )
        self.monitor.views.append(self.data_tier)
        self.monitor.data_tier = self.data_tier
        if spec.cache is not None:
            self._wire_cache(spec)
        plan = [
            (c.name, c.database.reads, c.database.writes)
            if c.database is not None and (c.database.reads or c.database.writes)
            else None
            for c in self.scenario.workload.classes
        ]
        for server in self.servers:
            server.use_database(self.data_tier, plan)

    def _wire_cache(self, spec: DatabaseSpec) -> None:
        cache = spec.cache
        classes = len(self.scenario.workload.classes)
        nodes = [
            Server(
                self.env,
                name=name,
                group="cache",
                zone=spec.zones[number % len(spec.zones)],
                workers=cache.workers,
                queue_capacity=None,
                speed=1.0,
                connect_timeout_s=self.scenario.balancer.connect_timeout,
                waits=[LatencyHistogram() for _ in range(classes)],
            )
            for number, name in enumerate(cache.node_names())
        ]
        self.database_nodes += nodes
        tier = self.data_tier
        cache_tier = CacheTier(
            self.env, cache, nodes, spec.keys.count, self.streams, tier.read_hit, tier.read_missed
        )
        cacheable = frozenset(
            c.name for c in self.scenario.workload.classes if c.database and c.database.cacheable
        )
        tier.use_cache(cache_tier, cacheable)
        self.monitor.views.append(cache_tier)

    def quiescent(self) -> bool:
        """Whether the cluster is as it started, up to which replica is master: every component
        alive and believed up, the initial members in rotation and no spare, every shard with
        a master, the balancer instances as at the start, no incident open and nothing under
        way. The long-horizon runs regenerate here: only exponential failure clocks, which
        have no memory, carry over."""
        if not self.monitor.settled() or not self.balancers.settled():
            return False
        if not all(server.alive and server.reachable for server in self.servers):
            return False
        up = self.balancer.up
        for backend in self.backends:
            if not backend.server.alive or not backend.detected_up:
                return False
            if backend.member != (backend.index in self._members):
                return False
            if backend.member and (backend not in up or not backend.server.serving):
                return False
        return self.data_tier is None or self.data_tier.settled()

    def _rotation_changed(self, backend: Backend) -> None:
        controller = self.controllers.get(backend.server.group)
        if controller is not None:
            controller.reconcile()

    def _power_cycle(self, server: Server, seconds: float) -> None:
        """Fencing's STONITH: power ``server`` off, out of band, and back on after ``seconds``."""
        self.injector.stop([server])
        self.env.timeout(seconds).callbacks.append(lambda _: self.injector.restart([server]))

    def _truth_changed(self, servers: list[Server]) -> None:
        if self.data_tier is not None:
            cache = self.data_tier.cache
            for server in servers:
                if self.data_tier.knows(server):
                    self.data_tier.node_changed(server)
                elif cache is not None and cache.knows(server):
                    cache.node_changed(server)
        if self.sampled_detection is not None:
            backend_of = self._backend_of
            for server in servers:
                backend = backend_of.get(server)
                if backend is not None:
                    self.sampled_detection.changed(backend)
        controllers = self.controllers
        if not controllers:
            return
        if len(servers) == 1:  # the common case, a crash or a repair of one server
            controller = controllers.get(servers[0].group)
            if controller is not None:
                controller.reconcile()
            return
        for group in dict.fromkeys(server.group for server in servers):  # ordered, not a set
            if group in controllers:
                controllers[group].reconcile()

    def start(self) -> None:
        """Start users, detectors, failures and the time-series sampler."""
        if self.source is not None:
            self.source.start()
        if self.users is not None:
            self.users.start()
        if self.requests:
            detection = self.scenario.balancer.detection
            for backend in self.backends:
                start_detector(
                    self.env,
                    detection,
                    backend,
                    self.balancer,
                    self.streams.generator(f"detection/{backend.name}"),
                )
            self._row_totals = self.tallies.group_totals()
            if self.data_tier is not None:
                self._data_row_totals = self.data_tier.running_totals()
            if self.scenario.metrics.per_server:
                self._server_row_totals = self.tallies.server_totals()
            self.env.process(self._sample_time_series())
        for autoscaler in self.autoscalers.values():
            autoscaler.start(evaluate=self.requests)
        self.injector.start(self.scenario.failures)
        if self.maintenance is not None:
            self.maintenance.start()
        if self.scenario.warmup > 0:
            warmup_end = self.env.timeout(self.scenario.warmup)
            warmup_end.callbacks.append(lambda _: self._snapshot_warmup())
        else:
            self._snapshot_warmup()

    def _snapshot_warmup(self) -> None:
        self.tallies.start_window()
        self.recorder.start_window()
        self.client.start_window()
        self.monitor.start_window()
        if self.maintenance is not None:
            self.maintenance.start_window()
        for autoscaler in self.autoscalers.values():
            autoscaler.start_window()
        if self.data_tier is not None:
            self.data_tier.start_window()
        if self.requests:
            self.good_windows.restart()
            self._good_window_start = self.env.now
            self.env.process(self._close_good_windows())

    def _close_good_windows(self):
        length = self.scenario.slo.window
        start = self.env.now
        tick = 0
        while True:
            tick += 1
            yield self.env.timeout(max(0.0, start + tick * length - self.env.now))
            self.good_windows.close(self.env.now - self._good_window_start)
            self._good_window_start = self.env.now

    def _sample_time_series(self):
        step = self.scenario.metrics.step
        tick = 0
        while True:
            tick += 1
            # Row k ends at k * step exactly: adding steps up would drift with rounding.
            yield self.env.timeout(max(0.0, tick * step - self.env.now))
            self._close_row()

    def _close_row(self) -> None:
        now = self.env.now
        tallies = self.tallies
        current = tallies.group_totals()
        work_started = [
            c["busy_time_s"] - p["busy_time_s"]
            for c, p in zip(current, self._row_totals, strict=True)
        ]
        workers = tallies.group_workers()
        servers: dict[str, float] = {}
        width = now - self._row_start
        for index, group in enumerate(self.scenario.servers):
            autoscaler = self.autoscalers.get(group.name)
            if autoscaler is not None and width > 0:
                total = autoscaler.server_seconds()
                servers[group.name] = (total - self._row_server_s.get(group.name, 0.0)) / width
                self._row_server_s[group.name] = total
                workers[index] = servers[group.name] * group.workers
        self.recorder.close_row(
            now,
            work_started,
            tallies.group_queue_lengths(),
            workers,
            self.offered_rate(self._row_start, now),
            servers,
            self._data_columns(now - self._row_start) if self.data_tier is not None else None,
        )
        if self.scenario.metrics.per_server:
            self._server_row_totals = tallies.close_server_rows(
                self._row_start, self._server_row_totals
            )
        self._row_totals = current
        self._row_start = now

    def _data_columns(self, width_s: float) -> dict[str, float]:
        """The data tier's columns of the row closing now, ``width_s`` wide: the database's
        load, and what the cache answered."""
        current = self.data_tier.running_totals()
        step = {key: value - self._data_row_totals[key] for key, value in current.items()}
        self._data_row_totals = current
        columns = {
            "db.reads_per_s": step["reads"] / width_s if width_s > 0 else math.nan,
            "db.writes_per_s": step["writes"] / width_s if width_s > 0 else math.nan,
        }
        if "lookups" in step:
            lookups, hits = step["lookups"], step["hits"]
            columns["cache.lookups"] = lookups
            columns["cache.hits"] = hits
            columns["cache.hit_ratio"] = hits / lookups if lookups else math.nan
        return columns

    def offered_rate(self, start: float, end: float) -> float:
        """Mean open-loop arrival rate over [start, end], NaN for a closed-loop workload."""
        return self.source.mean_rate(start, end) if self.source else math.nan

    def run(self, until: float, progress: Callable[[float], None] | None = None) -> None:
        """Advance simulated time to ``until`` and close the last time-series row.

        ``progress`` is told the fraction of simulated time done, many times a second of
        work. Raises :class:`sim.model.timing.StalledClockError` if simulated time stops
        moving, and :class:`sim.model.server.QueueOverflowError` if a queue without a bound
        outgrows what memory can hold.
        """
        if progress is None:
            advance(self.env, until)
        else:
            advance(self.env, until, tick=lambda: progress(self.env.now / until))
            progress(1.0)
        self._close_last_row()
        self.monitor.close_open_incidents()

    def _close_last_row(self) -> None:
        # The sampler's own tick at the end time is never processed (the run stops first), so
        # the last row, whole or partial, is closed here.
        # A row narrower than a millionth of a step is rounding, not time.
        if self.requests and self.env.now - self._row_start > 1e-6 * self.scenario.metrics.step:
            self._close_row()
        window = self.env.now - self._good_window_start
        if self.requests and window > 1e-6 * self.scenario.slo.window:
            self.good_windows.close(window)
