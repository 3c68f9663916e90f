"""Where requests come from: open-loop arrivals and closed-loop shopping sessions.

Open-loop users arrive as a Poisson process whatever the site does, at a rate that may follow a
profile (a flash sale that triples traffic for 30 minutes). Closed-loop users are a fixed
population that each wait for an answer, think, and ask again: when the site slows down they
slow down with it. Real sites see both; the difference matters under overload.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import simpy
from simpy.events import Timeout

from sim.distributions import Exponential
from sim.model.client import Client
from sim.request import Request
from sim.scenario import ArrivalsSpec, RequestClassSpec, SessionsSpec
from sim.scenario.workload import RateProfile
from sim.streams import Streams, uniforms

__all__ = ["ClosedLoopUsers", "OpenLoopSource"]


class OpenLoopSource:
    """Poisson arrivals following a rate profile; each request's class and work drawn on arrival.

    Arrival times, classes and service demands each come from their own stream, so every
    alternative compared on one seed faces exactly the same requests.
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
        self._gaps = Exponential(mean=1.0).sampler(streams.generator("arrivals/times"))
        self._constant_rate = spec.rate if not spec.profile else None
        self._class_choice = uniforms(streams.generator("arrivals/classes"))
        shares = [spec.share for spec in classes]
        self._cumulative = [sum(shares[: i + 1]) for i in range(len(shares) - 1)]
        self._demands = [
            spec.service_time.sampler(streams.generator(f"arrivals/demand/{spec.name}"))
            for spec in classes
        ]

    def start(self) -> None:
        self._schedule_next(self.env.now)

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
