"""An application server: a pool of workers in front of a FIFO queue of bounded capacity.

A server is a small G/G/c/K queue. It is written with SimPy callbacks rather than a process per
request: each service is a single Timeout event whose callback frees the worker and starts the
next queued attempt. That is what lets a run push millions of requests through in minutes (see
``benchmarks/``); the behaviour is that of a ``simpy.Resource`` with ``workers`` slots.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy
from simpy.events import Timeout

from sim.metrics import LatencyHistogram
from sim.model.admission import PriorityQueue
from sim.request import Attempt, Cause
from sim.scenario import QueueSheddingSpec

__all__ = ["MAX_QUEUE", "QueueOverflowError", "Server"]

MAX_QUEUE = 1_000_000
"""The most attempts a queue without ``queue_capacity`` may hold (about a hundred megabytes of
waiting requests), and the most writes that may wait for a new master: past it the cluster is
overloaded without end, and the run stops rather than eat the machine."""


class QueueOverflowError(RuntimeError):
    """A queue without a bound grew past :data:`MAX_QUEUE`: the run would eat the machine."""

    def __init__(self, queue: str, now: float, remedy: str) -> None:
        self.queue = queue
        self.now = now
        super().__init__(
            f"{queue} passed {MAX_QUEUE:,} waiting at {now:.6g} s of simulated time: it would"
            f" grow until memory runs out. {remedy}"
        )


_OK = Cause.OK


def _unwired(attempt: Attempt, cause: Cause) -> None:
    raise RuntimeError("server used before the cluster wired its responses")


class Server:
    """Serves attempts; answers each one exactly once through ``respond(attempt, cause)``.

    ``respond`` is wired by the cluster to the balancer that sends this server its work. A
    server can crash (it refuses connections and loses what it was doing), be cut off by a
    partition (alive, but unreachable: attempts sent to it fail after the balancer's connect
    timeout), or slow down (alive, reachable, each service ``slowdown`` times longer).

    With a ``cold_factor`` above 1, a server whose process (re)starts (repaired after a crash,
    or a cold spare booted) starts with cold caches: the first service it starts takes
    ``cold_factor`` times longer, and the factor falls linearly to 1 over ``warm_up_s`` from
    then (caches fill with traffic, so the warm-up counts from the first request, not from the
    restart, which detection may leave idle for a while). A service keeps the factor it
    started with. Servers running at the start, and hot spares (running, kept warm), are warm.
    """

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        group: str,
        zone: str,
        workers: int,
        queue_capacity: int | None,
        speed: float,
        connect_timeout_s: float = 0.0,
        pool: str | None = None,
        waits: list[LatencyHistogram] | None = None,
        cold_factor: float = 1.0,
        warm_up_s: float = 0.0,
        priorities: list[int] | None = None,
        shedding: QueueSheddingSpec | None = None,
    ) -> None:
        """``waits`` holds, per request class, the queueing delays of attempts that had to
        wait (shared by the servers of a group); its length is the number of classes.
        ``priorities`` (per class) makes the queue serve the highest priority first;
        ``shedding`` drops queued attempts that waited too long (cause ``queue_delay``)."""
        self.env = env
        self.name = name
        self.group = group
        self.zone = zone
        self.workers = workers
        self.queue_capacity = queue_capacity
        self.speed = speed
        self.connect_timeout_s = connect_timeout_s
        self.pool = pool or group
        """Servers that replace one another (a group, or a database shard)."""
        self.database = None
        self._database_plan: list[tuple[str, int, int] | None] | None = None
        self._finish_service = self._finish
        self.respond: Callable[[Attempt, Cause], None] = _unwired
        self._limit = MAX_QUEUE if queue_capacity is None else queue_capacity
        self.queue: deque[Attempt] | PriorityQueue = (
            deque() if priorities is None else PriorityQueue(priorities)
        )
        self._shedding = shedding
        self._queue_busy_since = 0.0
        """When the queue last became non-empty (CoDel's standing-queue clock)."""
        self.shed = 0
        """Attempts dropped from the queue by the shedding policy."""
        self.connecting: dict[Attempt, None] = {}
        """Attempts sent while it was unreachable, waiting for their connect timeout."""
        self.in_service: dict[Attempt, float] = {}
        """Attempts being served, with the time their service ends (insertion-ordered)."""
        self.busy = 0
        self.alive = True
        self.reachable = True
        self.serving = True
        """Alive and reachable: an attempt sent here can be served (slowly, perhaps)."""
        self.serving_watchers: list[Callable[[], None]] = []
        """Told each time ``serving`` changes (a balancer keeps a count of those it routes to
        that serve)."""
        self.powered = True
        self.paused = False
        """Frozen (a stop-the-world pause, a VM freeze): alive, reachable, doing nothing."""
        self._paused_at = 0.0
        self._backlog: list[Attempt] = []
        """Attempts that arrived during a pause: taken when it ends."""
        self._frozen: dict[Attempt, float] = {}
        """Services whose end came during a pause, with the work they had left when it began."""
        self._delay: dict[Attempt, float] = {}
        """Pause time still to add to services that were running when a pause began."""
        self._held_answers: list[tuple[Attempt, Cause]] = []
        """Database answers that came during a pause."""
        self.on_resume: list[Callable[[], None]] = []
        """Called once when the current pause ends (a health probe waiting for its answer)."""
        self._pausable = False
        """Set by the first pause: from then on each service's end checks for pauses."""
        self.slowdown = 1.0
        self.state_watchers: list[Callable[[], None]] = []
        """Called at every change of what a probe can see (alive, reachable, paused,
        slowdown): a health check that stopped probing a steady server starts again."""
        self._refusing = False
        self._effective_speed = speed
        self.cold_factor = cold_factor
        self.warm_up_s = warm_up_s
        self.warming = False
        """Cold, or warming up: services take longer (see :meth:`_cold_slowdown`)."""
        self._warm_up_from: float | None = None
        # Work is accounted when a service starts (its length is known then), and waiting time
        # when a queued attempt leaves the queue: exact totals at a fraction of the cost of
        # integrating queue lengths at every change.
        self.busy_time_s = 0.0
        self.wait_time_s = 0.0
        self.waits = waits if waits is not None else [LatencyHistogram()]
        classes = len(self.waits)
        self.accepted = [0] * classes
        """Attempts taken, per request class (started at once, or queued)."""
        self.queued = [0] * classes
        """Attempts that had to queue, per request class: the others did not wait at all."""
        self.rejected = 0
        self.refused = 0
        """Attempts turned away because it was down or unreachable."""

    def held(self) -> list[Attempt]:
        """Every attempt it holds: in service, queued, connecting, or waiting for a pause to
        end."""
        return [*self.in_service, *self.queue, *self.connecting, *self._backlog]

    def busy_time_so_far(self) -> float:
        """Worker-seconds of service done up to now (work started, less what is still to come)."""
        now = self.env.now
        return self.busy_time_s - sum(end - now for end in self.in_service.values())

    def wait_time_so_far(self) -> float:
        """Attempt-seconds spent waiting in the queue up to now, those still waiting included."""
        now = self.env.now
        return self.wait_time_s + sum(now - attempt.queued_at for attempt in self.queue)

    @property
    def refuses_connections(self) -> bool:
        """Reachable but crashed: a connection is refused at once (an unreachable host is
        silent instead, and a caller waits for its timeout)."""
        return self.reachable and not self.alive

    def submit(self, attempt: Attempt) -> None:
        """An attempt arrives: start it, queue it, or reject it when the queue is full."""
        if self._refusing:
            self._refuse(attempt)
        elif self.busy < self.workers:
            self.accepted[attempt.request.class_index] += 1
            self.busy += 1
            service_s = attempt.demand_s / self._effective_speed
            if self.warming:
                service_s *= self._cold_slowdown()
            self.busy_time_s += service_s
            self.in_service[attempt] = self.env.now + service_s
            Timeout(self.env, service_s, attempt).callbacks.append(self._finish_service)
        elif len(self.queue) < self._limit:
            class_index = attempt.request.class_index
            self.accepted[class_index] += 1
            self.queued[class_index] += 1
            attempt.queued_at = self.env.now
            if self._shedding is not None and not self.queue:
                self._queue_busy_since = attempt.queued_at
            self.queue.append(attempt)
        elif self.queue_capacity is None:
            raise QueueOverflowError(
                f"the queue of {self.name}",
                self.env.now,
                "The servers cannot keep up with the work: give the group a queue_capacity"
                " (attempts beyond it are rejected, as real servers do), more servers or"
                " workers, or less traffic",
            )
        else:
            self.rejected += 1
            self.respond(attempt, Cause.QUEUE_FULL)

    def cancel(self, attempt: Attempt) -> bool:
        """The client no longer wants ``attempt`` (another hedge answered first): taken out of
        the queue unserved, or its service aborted and the worker freed for the next queued
        attempt, as a gRPC cancellation reaches the server and stops the handler. Never
        answered. False, and nothing done, when the attempt is not here or the server is
        paused (nothing runs in a frozen process: the attempt is then served and its answer
        ignored); an attempt waiting on the database has its worker freed, the operation runs on.
        """
        if self.paused:
            return False
        end = self.in_service.pop(attempt, None)
        if end is not None:
            # A service's whole length was counted when it started: take back what is left (an
            # attempt waiting on the database holds the time its wait began, so this adds it).
            self.busy_time_s -= end - self.env.now
            if self._pausable:
                self._delay.pop(attempt, None)
            self._release(None, _OK)
            return True
        try:
            self.queue.remove(attempt)
        except ValueError:
            return False
        self.wait_time_s += self.env.now - attempt.queued_at
        return True

    def use_database(self, database, plan: list[tuple[str, int, int] | None]) -> None:
        """Requests of class i do ``plan[i] = (class name, reads, writes)`` after their own work."""
        self.database = database
        self._database_plan = plan
        self._finish_service = self._finish_then_database

    def _finish(self, service: simpy.Event) -> None:
        """A service ended: answer, and start the next queued attempt."""
        if self._pausable and self._held_by_pause(service):
            return
        done = service.value
        try:
            del self.in_service[done]
        except KeyError:
            return  # lost in a crash or a partition, and already answered then
        self._release(done, _OK)

    def _finish_then_database(self, service: simpy.Event) -> None:
        """A service ended on a server that calls the database: requests of a class that uses
        data go on to their database operations, holding the worker meanwhile."""
        if self._pausable and self._held_by_pause(service):
            return
        done = service.value
        use = self._database_plan[done.request.class_index]
        if use is None or done not in self.in_service:
            self._finish(service)
            return
        self.in_service[done] = self.env.now
        self.database.run(done, use[0], use[1], use[2], self._database_done)

    def _database_done(self, attempt: Attempt, cause: Cause) -> None:
        if self.paused:
            self._held_answers.append((attempt, cause))
            return
        started = self.in_service.pop(attempt, None)
        if started is None:
            return  # this server crashed meanwhile, and answered then
        self.busy_time_s += self.env.now - started
        self._release(attempt, cause)

    def _release(self, done: Attempt | None, cause: Cause) -> None:
        """A worker is free: it takes the next queued attempt, if any; then ``done`` is
        answered (a cancelled attempt, None, is not)."""
        in_service = self.in_service
        if self.queue:
            attempt = self.queue.popleft()
            now = self.env.now
            wait_s = now - attempt.queued_at
            if self._shedding is not None and wait_s > self._shedding.limit_s(
                now - self._queue_busy_since
            ):
                attempt = self._shed_stale(attempt, now)
                if attempt is None:
                    self.busy -= 1
                    if done is not None:
                        self.respond(done, cause)
                    return
                wait_s = now - attempt.queued_at
            self.wait_time_s += wait_s
            self.waits[attempt.request.class_index].add(wait_s)
            service_s = attempt.demand_s / self._effective_speed
            if self.warming:
                service_s *= self._cold_slowdown()
            self.busy_time_s += service_s
            in_service[attempt] = now + service_s
            Timeout(self.env, service_s, attempt).callbacks.append(self._finish_service)
        else:
            self.busy -= 1
        if done is not None:
            self.respond(done, cause)

    def _shed_stale(self, attempt: Attempt, now: float) -> Attempt | None:
        """Drop ``attempt`` (just taken from the queue, waited too long) and every next one
        that waited too long as well; return the first that may be served, if any."""
        limit = self._shedding.limit_s(now - self._queue_busy_since)
        while True:
            self.wait_time_s += now - attempt.queued_at
            self.shed += 1
            self.respond(attempt, Cause.QUEUE_DELAY)
            if not self.queue:
                return None
            attempt = self.queue.popleft()
            if now - attempt.queued_at <= limit:
                return attempt

    @property
    def attempts(self) -> int:
        """Attempts sent to it so far: taken, rejected by a full queue, or refused."""
        return sum(self.accepted) + self.rejected + self.refused

    def _refuse(self, attempt: Attempt) -> None:
        if self.paused:  # the connection is accepted; nothing answers it until the pause ends
            self._backlog.append(attempt)
            return
        self.refused += 1
        if self.reachable:
            self.respond(attempt, Cause.SERVER_CRASH)  # connection refused, at once
        else:
            self.connecting[attempt] = None
            timer = Timeout(self.env, self.connect_timeout_s, attempt)
            timer.callbacks.append(self._connect_timed_out)

    def _connect_timed_out(self, timer: simpy.Event) -> None:
        attempt = timer.value
        del self.connecting[attempt]
        self.respond(attempt, Cause.UNREACHABLE)

    def _drop_everything(self, cause: Cause) -> None:
        """Every attempt here fails: a crash loses them, a partition cuts their connections."""
        if not (self.in_service or self.queue or self.paused or self._backlog):
            return  # idle: nothing to lose (a long-horizon run has no requests at all)
        now = self.env.now
        lost = list(self.in_service) + list(self.queue)
        # Summed as busy_time_so_far and wait_time_so_far sum them, so that a snapshot taken
        # at this instant and the totals after agree to the last bit.
        self.busy_time_s -= sum(end - now for end in self.in_service.values())
        self.wait_time_s += sum(now - attempt.queued_at for attempt in self.queue)
        self.in_service.clear()
        self.queue.clear()
        self.busy = 0
        if self.paused or self._backlog:
            lost += self._backlog
            self._backlog.clear()
            self._frozen.clear()
            self._delay.clear()
            self._held_answers.clear()
            self.on_resume.clear()  # no answer will come
            self.paused = False  # a dead or cut-off process is not paused any more
        for attempt in lost:
            self.respond(attempt, cause)

    def _update(self) -> None:
        serving = self.alive and self.reachable
        if serving != self.serving:
            self.serving = serving
            for watcher in self.serving_watchers:
                watcher()
        self._refusing = not self.serving or self.paused
        self._effective_speed = self.speed / self.slowdown
        if self.state_watchers:
            self.tell_state_watchers()

    def tell_state_watchers(self) -> None:
        """What a probe of this server sees, or what is believed of it, may have changed."""
        watchers, self.state_watchers = self.state_watchers, []
        for watcher in watchers:
            watcher()

    # -- pauses -------------------------------------------------------------------------------

    def pause(self) -> None:
        """Freeze: services stop progressing, answers wait, new attempts wait unanswered.
        Nothing is refused or lost. A pause of a server already paused, or down, does
        nothing."""
        if self.paused or not self.serving:
            return
        self.paused = True
        self._pausable = True
        self._paused_at = self.env.now
        self._update()

    def resume(self) -> None:
        """The pause is over: every service in progress ends that much later, and what
        waited is taken in arrival order."""
        if not self.paused:
            return  # a crash or a partition ended it already
        now = self.env.now
        length = now - self._paused_at
        self.paused = False
        self._update()
        for attempt, end in self.in_service.items():
            if attempt not in self._frozen and end > self._paused_at:
                self.in_service[attempt] = end + length
                self._delay[attempt] = self._delay.get(attempt, 0.0) + length
                self.busy_time_s += length
        for attempt, left in self._frozen.items():
            self.in_service[attempt] = now + left
            self.busy_time_s += length
            Timeout(self.env, left, attempt).callbacks.append(self._finish_service)
        self._frozen.clear()
        answers, self._held_answers = self._held_answers, []
        for attempt, cause in answers:
            self._database_done(attempt, cause)
        backlog, self._backlog = self._backlog, []
        for attempt in backlog:
            self.submit(attempt)
        waiting, self.on_resume = self.on_resume, []
        for resumed in waiting:
            resumed()

    def _held_by_pause(self, service: simpy.Event) -> bool:
        """A service's timer fired on a server that has paused: True when the service has
        not yet had its whole demand of unpaused time (it is then held, or timed again)."""
        attempt = service.value
        end = self.in_service.get(attempt)
        if end is None:
            return False  # lost in a crash or a partition: the end handles that
        if self.paused:
            self._frozen[attempt] = max(0.0, end - self._paused_at)
            self._delay.pop(attempt, None)
            return True
        extra = self._delay.pop(attempt, 0.0)
        if extra > 0:
            Timeout(self.env, extra, attempt).callbacks.append(self._finish_service)
            return True
        return False

    def crash(self) -> None:
        self.alive = False
        self._update()
        self._drop_everything(Cause.SERVER_CRASH)

    def repair(self) -> None:
        """Back up, empty: a restarted process has no memory of its old connections (nor, with
        a ``cold_factor``, warm caches)."""
        self.alive = True
        self._update()
        self._restarted()

    def power_on(self) -> None:
        """A cold spare boots: it can fail from now on, and starts cold."""
        self.powered = True
        self._restarted()

    def power_off(self) -> None:
        """A cold spare is switched off again: it cannot fail while off."""
        self.powered = False

    def _restarted(self) -> None:
        if self.cold_factor > 1.0:
            self.warming = True
            self._warm_up_from = None  # from its first service

    def _cold_slowdown(self) -> float:
        """The factor by which a service starting now is longer: ``cold_factor`` at the first
        service after a restart, falling linearly to 1 over ``warm_up_s``."""
        now = self.env.now
        if self._warm_up_from is None:
            self._warm_up_from = now
        left = 1.0 - (now - self._warm_up_from) / self.warm_up_s
        if left <= 0.0:
            self.warming = False
            return 1.0
        return 1.0 + (self.cold_factor - 1.0) * left

    def disconnect(self) -> None:
        self.reachable = False
        self._update()
        self._drop_everything(Cause.UNREACHABLE)

    def reconnect(self) -> None:
        self.reachable = True
        self._update()

    def slow_down(self, factor: float) -> None:
        """Services that start from now on take ``factor`` times longer."""
        self.slowdown = factor
        self._update()

    def restore_speed(self) -> None:
        self.slowdown = 1.0
        self._update()
