"""Redundant balancers: several instances, and how the service address moves between them.

    balancer:
      redundancy: {kind: active_passive, count: 2, advertisement_interval: 1s, preempt: true}

``active_passive`` is VRRP as keepalived runs it (RFC 5798): the master holds the virtual
address and advertises every ``advertisement_interval``; a backup that hears nothing for its
master-down interval, 3 x interval + skew, takes the address over. The skew is
(256 - priority) / 256 x interval, so the backup of highest priority moves first. Instance
``lb-1`` has priority 250 and each next one 10 less. With ``preempt``, an instance of higher
priority that comes back takes the address again ``preempt_delay`` after its own master-down
interval, without downtime. Requests that arrive while no live instance holds the address fail
(``balancer_down``), as do the requests in flight through an instance that dies.

``dns`` is round-robin DNS over active instances, as Route 53 (or any health-checked DNS)
runs it: every instance serves and has its own address in the record set; health checkers
probe each every ``health_check_interval`` and withdraw its address after
``failure_threshold`` failed probes in a row (and put it back after as many good ones). When
every address is withdrawn, DNS answers with all of them (Route 53 treats all records as
healthy then). Clients reach the service through ``resolvers`` recursive resolvers that share
the traffic evenly and cache the answer for ``ttl``, each re-querying at its own phase; a
client picks an address of its resolver's answer at random. So a dead instance fails the
share of requests its address gets until its withdrawal is detected and every cache has
expired: the instance's share, for the health checks' delay plus half the TTL on average.

A failure whose target is ``balancer`` hits each instance on its own (``crash_repair``), or the
instance holding the address at that moment (the first live one behind DNS) (``crash``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np
from pydantic import Field

from sim.registry import Registry
from sim.spec import Count, NonNegativeDuration, PositiveDuration, Spec, registered
from sim.streams import uniform_below

__all__ = [
    "BALANCER_REDUNDANCY",
    "ActivePassiveSpec",
    "DnsSpec",
    "RedundancySpec",
    "RedundancySpecField",
]

BALANCER_REDUNDANCY: Registry[type[RedundancySpec]] = Registry("balancer redundancy")


class RedundancySpec(Spec, ABC):
    """How many balancer instances run (named ``lb-1``, ``lb-2``, ...)."""

    kind: str
    count: int

    def node_names(self) -> list[str]:
        return [f"lb-{number}" for number in range(1, self.count + 1)]

    @abstractmethod
    def longest_loss_s(self) -> float:
        """Seconds of the whole traffic lost at most when one instance dies while the others
        live: the share of requests it carried times the longest it can stay lost."""


@BALANCER_REDUNDANCY.register("active_passive")
class ActivePassiveSpec(RedundancySpec):
    """VRRP (keepalived): one master holds the address, backups take over when it falls silent."""

    kind: Literal["active_passive"] = "active_passive"
    count: Count = Field(2, ge=2, le=16)
    advertisement_interval: PositiveDuration = Field(1.0, ge=0.001, le=86_400)
    preempt: bool = True
    preempt_delay: NonNegativeDuration = Field(0.0, le=86_400)

    def priority(self, index: int) -> int:
        """The VRRP priority of instance ``index`` (0-based): 250, 240, ..."""
        return 250 - 10 * index

    def master_down_interval(self, index: int) -> float:
        """3 x advertisement interval + skew: how long instance ``index`` waits in silence
        before it takes the address (RFC 5798, section 6.1)."""
        interval = self.advertisement_interval
        return 3 * interval + (256 - self.priority(index)) / 256 * interval

    def takeover_delay(self, rng: np.random.Generator, index: int) -> float:
        """Seconds from the death of the instance holding the address to instance ``index``
        (0-based) taking it over, for a death at a uniformly random moment: the last
        advertisement went out U x interval before the death, U uniform."""
        return self.master_down_interval(index) - uniform_below(rng, self.advertisement_interval)

    def takeover_moments(self, index: int) -> tuple[float, float]:
        """Mean and variance of :meth:`takeover_delay` (seconds, seconds squared): a
        constant less a uniform."""
        interval = self.advertisement_interval
        return self.master_down_interval(index) - interval / 2, interval**2 / 12

    def longest_loss_s(self) -> float:
        # The master carries everything; the first backup takes over within its interval.
        return self.master_down_interval(1)


@BALANCER_REDUNDANCY.register("dns")
class DnsSpec(RedundancySpec):
    """Round-robin DNS over active instances, health-checked, behind caching resolvers."""

    kind: Literal["dns"] = "dns"
    count: Count = Field(2, ge=2, le=16)
    ttl: NonNegativeDuration = Field(60.0, le=86_400)
    health_check_interval: PositiveDuration = Field(30.0, ge=0.001, le=86_400)
    failure_threshold: Count = Field(3, ge=1, le=10)
    resolvers: Count = Field(10, ge=1, le=1_000)

    def health_delay(self, rng: np.random.Generator) -> float:
        """Seconds from an instance's death (or return) to the health checkers' verdict, for
        a change at a uniformly random moment: the first probe after it comes U x interval
        later, U uniform, and ``failure_threshold`` probes in a row decide."""
        interval = self.health_check_interval
        return (self.failure_threshold - 1) * interval + uniform_below(rng, interval)

    def longest_loss_s(self) -> float:
        # Its share, until the verdict and the last cache's expiry.
        longest = self.failure_threshold * self.health_check_interval + self.ttl
        return longest / self.count


RedundancySpecField = registered(BALANCER_REDUNDANCY, RedundancySpec)
