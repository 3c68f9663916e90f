"""Balancer instances and the service address: who holds it, and how it moves when one dies.

The routing (pool, policy, health checks) is one :class:`sim.model.balancer.Balancer`; which
instance forwards the traffic is decided here. An instance's death is the truth; a backup
learns of it only by missing the master's advertisements for its master-down interval (the
mechanism VRRP uses), drawn from the spec's law: the last advertisement went out at a uniform
phase of the interval before the death. While no live instance holds the address, the balancer
is down: every request fails, as do those in flight through the instance that died.

Behind DNS every instance carries traffic: a request goes through the instance its resolver's
cached answer gives it, and fails when that instance is dead. Each group tells the monitor its
*reach*, the share of new requests that find a live instance (0 or 1 for one address; a
fraction behind DNS), which time-based availability integrates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy

from sim.registry import Registry
from sim.scenario.redundancy import BALANCER_REDUNDANCY, ActivePassiveSpec, DnsSpec
from sim.streams import uniform_below, uniforms

if TYPE_CHECKING:
    from sim.model.balancer import Balancer
    from sim.model.monitor import Monitor
    from sim.streams import Streams

__all__ = [
    "ADDRESS_HOLDERS",
    "BalancerNode",
    "DnsGroup",
    "SingleBalancer",
    "VrrpGroup",
    "build_balancers",
]

ADDRESS_HOLDERS: Registry[Callable] = Registry("balancer redundancy model")
"""Redundancy kind -> class(env, spec, balancer, monitor, streams) that runs the instances.

Each offers ``nodes``; ``holder()`` (the instance a one-off ``crash`` hits); ``carries(node)``
(whether traffic goes through it now); ``reach()``; ``settled()`` (as at the start: every
instance alive and the traffic spread as then); and ``node_changed(node)``, called after an
instance died or came back."""


class BalancerNode:
    """One balancer instance (a host running the proxy and its VRRP daemon)."""

    __slots__ = ("alive", "index", "name", "powered")

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.index = index
        self.alive = True
        self.powered = True  # can fail (as a server that is switched on)


class SingleBalancer:
    """One instance, a single point of failure: the address dies with it."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.nodes = [BalancerNode("balancer", 0)]

    def holder(self) -> BalancerNode | None:
        return self.nodes[0] if self.nodes[0].alive else None

    def carries(self, node: BalancerNode) -> bool:
        return node.alive

    def reach(self) -> float:
        return 1.0 if self.balancer.working else 0.0

    def settled(self) -> bool:
        return self.nodes[0].alive

    def node_changed(self, node: BalancerNode) -> None:
        if node.alive:
            self.balancer.repair()
        else:
            self.balancer.crash()


@ADDRESS_HOLDERS.register("active_passive")
class VrrpGroup:
    """An active/passive group: the master holds the address, the backups listen.

    When the master dies, every live backup arms a timer for its own master-down interval from
    the last advertisement it heard; the first to expire (the highest priority alive) takes the
    address, the others hear it and stand down. An instance that comes back listens for a whole
    master-down interval before it takes an address nobody holds; with preemption, one of
    higher priority than the master takes the address over (no downtime: the old master hands
    it over as soon as it hears the higher priority).
    """

    def __init__(
        self,
        env: simpy.Environment,
        spec: ActivePassiveSpec,
        balancer: Balancer,
        monitor: Monitor,
        streams: Streams,
    ) -> None:
        self.env = env
        self.spec = spec
        self.balancer = balancer
        self.monitor = monitor
        self.rng = streams.generator("balancer/address")
        self.nodes = [BalancerNode(name, index) for index, name in enumerate(spec.node_names())]
        self._holder: BalancerNode | None = self.nodes[0]
        self._generation = 0

    def holder(self) -> BalancerNode | None:
        return self._holder

    def carries(self, node: BalancerNode) -> bool:
        return node is self._holder

    def reach(self) -> float:
        return 1.0 if self.balancer.working else 0.0

    def settled(self) -> bool:
        return self._holder is self.nodes[0] and all(node.alive for node in self.nodes)

    def node_changed(self, node: BalancerNode) -> None:
        """The truth about ``node`` changed (it died, or is back)."""
        if not node.alive:
            if node is self._holder:
                self._holder = None
                self._generation += 1
                self.balancer.crash()
                # One last advertisement for all backups: the same phase for each.
                phase = uniform_below(self.rng, self.spec.advertisement_interval)
                for backup in self.nodes:
                    if backup.alive:
                        self._arm(backup, self.spec.master_down_interval(backup.index) - phase)
            return
        if self._holder is None:
            self._arm(node, self.spec.master_down_interval(node.index))
        elif self.spec.preempt and node.index < self._holder.index:
            delay = self.spec.preempt_delay + self.spec.master_down_interval(node.index)
            self._arm(node, delay)

    def _arm(self, node: BalancerNode, delay: float) -> None:
        generation = self._generation
        timer = self.env.timeout(max(0.0, delay))
        timer.callbacks.append(lambda _: self._expire(node, generation))

    def _expire(self, node: BalancerNode, generation: int) -> None:
        if not node.alive or generation != self._generation:
            return
        holder = self._holder
        if holder is not None and holder.index <= node.index:
            return  # someone of higher priority holds it: this one heard it and stands down
        self._generation += 1
        self._holder = node
        if holder is None:
            self.monitor.log(node.name, "took over the address")
            self.balancer.repair()
            self.monitor.address_taken_over()
        else:
            self.monitor.log(node.name, "took the address back (preemption)", holder.name)


@ADDRESS_HOLDERS.register("dns")
class DnsGroup:
    """Active instances behind round-robin DNS, health-checked, cached by resolvers.

    The authoritative answer lists the instances the health checkers find healthy (all of them
    when none is). A verdict comes the spec's health delay after a death or a return; a later
    change of the same instance cancels it. Resolver ``j`` re-queries at its phase, drawn once
    per run uniform over the TTL, so after a change of the answer at time c its cached view
    turns over at c + ((phase_j - c) mod TTL). A request picks a resolver at random (they share
    the traffic evenly) and an address of its view at random; a dead instance fails it
    (``balancer_down``), as it fails the requests in flight through it when it dies.
    """

    def __init__(
        self,
        env: simpy.Environment,
        spec: DnsSpec,
        balancer: Balancer,
        monitor: Monitor,
        streams: Streams,
    ) -> None:
        self.env = env
        self.spec = spec
        self.balancer = balancer
        self.monitor = monitor
        self.nodes = [BalancerNode(name, index) for index, name in enumerate(spec.node_names())]
        self.listed = [True] * len(self.nodes)
        self.answer: tuple[BalancerNode, ...] = tuple(self.nodes)
        self._verdicts = [0] * len(self.nodes)  # per instance: a newer change cancels a verdict
        self._health = streams.generator("balancer/dns")
        # Phases from a stream of their own: how many resolvers run changes no health delay.
        phases = streams.generator("balancer/dns-resolvers").uniform(0, spec.ttl, spec.resolvers)
        self.phases = [float(phase) for phase in phases]
        self.views: list[tuple[BalancerNode, ...]] = [self.answer] * spec.resolvers
        self._in_views = [spec.resolvers] * len(self.nodes)
        """Per instance, how many resolvers' views hold it."""
        self._share_sum = float(spec.resolvers)  # sum over views of their live share
        self._picks = uniforms(streams.generator("balancer/dns-clients"))
        balancer.front = self.entry

    def holder(self) -> BalancerNode | None:
        return next((node for node in self.nodes if node.alive), None)

    def carries(self, node: BalancerNode) -> bool:
        return self._in_views[node.index] > 0

    def reach(self) -> float:
        return self._share_sum / len(self.views)

    def settled(self) -> bool:
        return (
            all(node.alive for node in self.nodes)
            and all(self.listed)
            and all(view == self.answer for view in self.views)
        )

    def entry(self) -> BalancerNode | None:
        """The instance a new request goes through, or None when it is dead."""
        draw = next(self._picks) * len(self.views)
        resolver = int(draw)
        view = self.views[resolver]
        node = view[int((draw - resolver) * len(view))]
        return node if node.alive else None

    def node_changed(self, node: BalancerNode) -> None:
        if not node.alive:
            self.balancer.fail_in_flight(node)
        self._verdicts[node.index] += 1
        if node.alive != self.listed[node.index]:
            verdict = self._verdicts[node.index]
            timer = self.env.timeout(self.spec.health_delay(self._health))
            timer.callbacks.append(lambda _: self._decide(node, verdict))
        # Every view that holds it changes its live share: O(resolvers x instances), once.
        self._share_sum = sum(_live_share(view) for view in self.views)

    def _decide(self, node: BalancerNode, verdict: int) -> None:
        if verdict != self._verdicts[node.index]:
            return
        self.listed[node.index] = node.alive
        if node.alive:
            self.monitor.log(node.name, "back in DNS", "health checks passed")
        else:
            self.monitor.log(node.name, "withdrawn from DNS", "health checks failed")
            self.monitor.balancer_detected(node.name)
        self.answer = tuple(n for n in self.nodes if self.listed[n.index]) or tuple(self.nodes)
        now = self.env.now
        ttl = self.spec.ttl
        for resolver, phase in enumerate(self.phases):
            if self.views[resolver] == self.answer:
                continue
            if ttl <= 0:
                self._requery(resolver)
                continue
            timer = self.env.timeout((phase - now) % ttl)
            timer.callbacks.append(lambda _, resolver=resolver: self._requery(resolver))
        self.monitor.refresh()

    def _requery(self, resolver: int) -> None:
        """Resolver ``resolver``'s cache expired: it holds the current answer until next time."""
        old, new = self.views[resolver], self.answer
        if old == new:
            return
        self.views[resolver] = new
        self._share_sum += _live_share(new) - _live_share(old)
        for node in new:
            self._in_views[node.index] += 1
        for node in old:
            self._in_views[node.index] -= 1
            if not node.alive and self._in_views[node.index] == 0:
                self.monitor.balancer_traffic_moved(node.name)
        if all(node.alive or not self._in_views[node.index] for node in self.nodes):
            self._share_sum = float(len(self.views))  # whole again: exactly, without drift
        if self.spec.ttl > 0:
            self.monitor.refresh()


def _live_share(view: tuple[BalancerNode, ...]) -> float:
    """The share of a view's requests that find a live instance."""
    return sum(node.alive for node in view) / len(view)


def build_balancers(
    env: simpy.Environment,
    spec,
    balancer: Balancer,
    monitor: Monitor,
    streams: Streams,
):
    """The instances of a scenario's balancer: one, or the redundancy its spec names."""
    if spec.redundancy is None:
        return SingleBalancer(balancer)
    kind = ADDRESS_HOLDERS.get(spec.redundancy.kind)
    return kind(env, spec.redundancy, balancer, monitor, streams)


ADDRESS_HOLDERS.check_covers(BALANCER_REDUNDANCY)
