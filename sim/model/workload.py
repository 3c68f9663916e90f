"""Where requests come from: open-loop arrivals and closed-loop shopping sessions.

Open-loop users arrive whatever the site does: as a Poisson process (or a renewal process with
gaps of another shape) at a rate that may follow a profile (a flash sale that triples traffic
for 30 minutes), or at the times of a recorded trace. Closed-loop users are a fixed population
that each wait for an answer, think, and ask again: when the site slows down they slow down
with it. Real sites see both; the difference matters under overload.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import simpy
from simpy.events import Timeout

from sim.distributions import Exponential
from sim.model.client import Client
from sim.request import Request
from sim.scenario import ArrivalsSpec, RequestClassSpec, SessionsSpec
from sim.scenario.trace import ArrivalTrace
from sim.scenario.workload import RateProfile
from sim.streams import Streams, uniforms

__all__ = ["ClosedLoopUsers", "OpenLoopSource", "TraceReplay", "open_loop_source"]


def open_loop_source(
    env: simpy.Environment,
    spec: ArrivalsSpec,
    classes: Sequence[RequestClassSpec],
    streams: Streams,
    client: Client,
) -> OpenLoopSource | TraceReplay:
    """The source of ``spec``'s arrivals: generated at a rate, or replayed from a trace."""
    if spec.trace is not None:
        return TraceReplay(env, spec.trace.arrivals(), classes, streams, client)
    return OpenLoopSource(env, spec, classes, streams, client)


class OpenLoopSource:
    """Arrivals at a rate following a profile; each request's class and work drawn on arrival.

    Poisson by default. With an ``interarrival`` shape the arrivals are a renewal process
    time-changed by the profile: gaps of unit mean drawn from the shape are laid out in
    operational time (the integral of the rate), exactly as the Poisson process's Exp(1) gaps
    are, so the long-run rate follows the profile and, at a constant rate, the gaps have the
    shape scaled to mean 1/rate. Arrival times, classes and service demands each come from
    their own stream, so every alternative compared on one seed faces the same requests.
    """

    def __init__(
        self,
        env: simpy.Environment,
        spec: ArrivalsSpec,
        classes: Sequence[RequestClassSpec],
        streams: Streams,
        client: Client,
    ) -> None:
        self.env = env
        self.profile = RateProfile(spec)
        self.client = client
        times = streams.generator("arrivals/times")
        if spec.interarrival is None:
            self._gaps = Exponential(mean=1.0).sampler(times)
        else:
            self._gaps = spec.interarrival.sampler(times, scale=1.0 / spec.interarrival.mean())
        self._constant_rate = spec.rate if not spec.profile else None
        self._class_choice = uniforms(streams.generator("arrivals/classes"))
        shares = [spec.share for spec in classes]
        self._cumulative = [sum(shares[: i + 1]) for i in range(len(shares) - 1)]
        self._demands = _demands(classes, streams)

    def start(self) -> None:
        self._schedule_next(self.env.now)

    def mean_rate(self, start: float, end: float) -> float:
        """Expected arrivals per second over [start, end]."""
        return self.profile.mean_rate(start, end)

    def _schedule_next(self, now: float) -> None:
        # A chain of Timeout callbacks rather than a generator process: a third less work per
        # arrival, and arrivals are the hottest path of a run.
        exp1 = next(self._gaps)
        if self._constant_rate is not None:
            arrival = now + exp1 / self._constant_rate if self._constant_rate > 0 else math.inf
        else:
            arrival = self.profile.next_arrival(now, exp1)
        if arrival != math.inf:
            Timeout(self.env, arrival - now).callbacks.append(self._arrive)

    def _arrive(self, _: simpy.Event) -> None:
        now = self.env.now
        self._schedule_next(now)
        class_index = (
            bisect.bisect_right(self._cumulative, next(self._class_choice))
            if self._cumulative
            else 0
        )
        self.client.send(Request(class_index, now, next(self._demands[class_index])))


def _demands(classes: Sequence[RequestClassSpec], streams: Streams) -> list[Iterator[float]]:
    return [
        spec.service_time.sampler(streams.generator(f"arrivals/demand/{spec.name}"))
        for spec in classes
    ]


def _values(array, block: int = 4096) -> Iterator:
    """The items of a numpy array as Python numbers, converted a block at a time."""
    for start in range(0, len(array), block):
        yield from array[start : start + block].tolist()


class TraceReplay:
    """Arrivals at the times of a recorded trace, with its classes or classes drawn by share.

    Each arrival's time is the trace's to the last bit; its work is drawn from its class's
    stream, as for generated arrivals. The trace is walked a block at a time: the arrays stay
    as they are, and an arrival costs what a generated one does. Past the trace's last arrival
    no more come; arrivals after the end of the run are never reached.
    """

    def __init__(
        self,
        env: simpy.Environment,
        trace: ArrivalTrace,
        classes: Sequence[RequestClassSpec],
        streams: Streams,
        client: Client,
    ) -> None:
        self.env = env
        self.trace = trace
        self.client = client
        self._times = _values(trace.times)
        self._next_arrival = 0.0
        if trace.class_codes is not None:
            index_of = {spec.name: index for index, spec in enumerate(classes)}
            lookup = np.array([index_of[name] for name in trace.class_names], dtype=np.int64)
            self._classes = _mapped(trace.class_codes, lookup)
        else:
            shares = [spec.share for spec in classes]
            cumulative = [sum(shares[: i + 1]) for i in range(len(shares) - 1)]
            choice = uniforms(streams.generator("arrivals/classes"))
            self._classes = (
                (bisect.bisect_right(cumulative, u) for u in choice)
                if cumulative
                else itertools.repeat(0)
            )
        self._demands = _demands(classes, streams)

    def start(self) -> None:
        self._schedule_next(self.env.now)

    def mean_rate(self, start: float, end: float) -> float:
        """Arrivals per second over [start, end)."""
        return self.trace.mean_rate(start, end)

    def _schedule_next(self, now: float) -> None:
        arrival = next(self._times, None)
        if arrival is None:
            return
        delay = arrival - now
        if now + delay == arrival:
            Timeout(self.env, delay).callbacks.append(self._arrive)
        else:
            # SimPy fires at now + delay, which can round off a time more than twice now (no
            # delay reaches it when now has a half-unit remainder). From three quarters of the
            # way, arrival - now is exact (Sterbenz's lemma), so hop there first.
            self._next_arrival = arrival
            Timeout(self.env, 0.75 * arrival - now).callbacks.append(self._hop)

    def _hop(self, _: simpy.Event) -> None:
        Timeout(self.env, self._next_arrival - self.env.now).callbacks.append(self._arrive)

    def _arrive(self, _: simpy.Event) -> None:
        now = self.env.now
        self._schedule_next(now)
        class_index = next(self._classes)
        self.client.send(Request(class_index, now, next(self._demands[class_index])))


def _mapped(codes, lookup) -> Iterator[int]:
    """``lookup[code]`` for each code, as Python ints, a block at a time."""
    for start in range(0, len(codes), 4096):
        yield from lookup[codes[start : start + 4096]].tolist()


class ClosedLoopUsers:
    """A population of shoppers, each cycling through ``steps`` with a think time before each.

    Each user draws think times and service demands from a stream of its own, so the same user
    behaves the same way whatever the cluster does with its requests.
    """

    def __init__(
        self,
        env: simpy.Environment,
        spec: SessionsSpec,
        classes: Sequence[RequestClassSpec],
        streams: Streams,
        client: Client,
    ) -> None:
        self.env = env
        self.spec = spec
        self.client = client
        index_of = {request_class.name: i for i, request_class in enumerate(classes)}
        self._steps = [index_of[name] for name in spec.steps]
        self._classes = classes
        self._streams = streams

    def start(self) -> list[simpy.Process]:
        return [self.env.process(self._shopper(user)) for user in range(self.spec.users)]

    def _shopper(self, user: int):
        env = self.env
        rng = self._streams.generator(f"sessions/user-{user}")
        think = self.spec.think_time.sampler(rng, block=64)
        demands = [spec.service_time.sampler(rng, block=64) for spec in self._classes]
        while True:
            for class_index in self._steps:
                yield env.timeout(next(think))
                answered = env.event()
                self.client.send(
                    Request(class_index, env.now, next(demands[class_index]), answered.succeed)
                )
                yield answered
