"""Balancer instances and the service address: who holds it, and how it moves when one dies.

The routing (pool, policy, health checks) is one :class:`sim.model.balancer.Balancer`; which
instance forwards the traffic is decided here. An instance's death is the truth; a backup
learns of it only by missing the master's advertisements for its master-down interval (the
mechanism VRRP uses), drawn from the spec's law: the last advertisement went out at a uniform
phase of the interval before the death. While no live instance holds the address, the balancer
is down: every request fails, as do those in flight through the instance that died.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy

from sim.registry import Registry
from sim.scenario.redundancy import BALANCER_REDUNDANCY, ActivePassiveSpec

if TYPE_CHECKING:
    import numpy as np

    from sim.model.balancer import Balancer
    from sim.model.monitor import Monitor

__all__ = ["ADDRESS_HOLDERS", "BalancerNode", "SingleBalancer", "VrrpGroup", "build_balancers"]

ADDRESS_HOLDERS: Registry[Callable] = Registry("balancer redundancy model")
"""Redundancy kind -> class(env, spec, balancer, monitor, rng) that runs the instances."""


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
        rng: np.random.Generator,
    ) -> None:
        self.env = env
        self.spec = spec
        self.balancer = balancer
        self.monitor = monitor
        self.rng = rng
        self.nodes = [BalancerNode(name, index) for index, name in enumerate(spec.node_names())]
        self._holder: BalancerNode | None = self.nodes[0]
        self._generation = 0

    def holder(self) -> BalancerNode | None:
        return self._holder

    def node_changed(self, node: BalancerNode) -> None:
        """The truth about ``node`` changed (it died, or is back)."""
        if not node.alive:
            if node is self._holder:
                self._holder = None
                self._generation += 1
                self.balancer.crash()
                # One last advertisement for all backups: the same phase for each.
                phase = self.rng.uniform(0, self.spec.advertisement_interval)
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


def build_balancers(
    env: simpy.Environment,
    spec,
    balancer: Balancer,
    monitor: Monitor,
    rng: np.random.Generator,
):
    """The instances of a scenario's balancer: one, or the redundancy its spec names."""
    if spec.redundancy is None:
        return SingleBalancer(balancer)
    return ADDRESS_HOLDERS.get(spec.redundancy.kind)(env, spec.redundancy, balancer, monitor, rng)


ADDRESS_HOLDERS.check_covers(BALANCER_REDUNDANCY)
