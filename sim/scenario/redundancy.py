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

A failure whose target is ``balancer`` hits each instance on its own (``crash_repair``), or the
instance holding the address at that moment (``crash``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np
from pydantic import Field

from sim.registry import Registry
from sim.spec import NonNegativeDuration, PositiveDuration, Spec, registered

__all__ = [
    "BALANCER_REDUNDANCY",
    "ActivePassiveSpec",
    "RedundancySpec",
    "RedundancySpecField",
]

BALANCER_REDUNDANCY: Registry[type[RedundancySpec]] = Registry("balancer redundancy")


class RedundancySpec(Spec, ABC):
    """How many balancer instances run, and the law of the delay before one takes over."""

    kind: str
    count: int

    def node_names(self) -> list[str]:
        return [f"lb-{number}" for number in range(1, self.count + 1)]

    @abstractmethod
    def takeover_delay(self, rng: np.random.Generator, index: int) -> float:
        """Seconds from the death of the instance holding the address to instance ``index``
        (0-based) taking it over, for a death at a uniformly random moment."""

    @abstractmethod
    def mean_takeover_delay(self, index: int) -> float:
        """Expected value of :meth:`takeover_delay`."""


@BALANCER_REDUNDANCY.register("active_passive")
class ActivePassiveSpec(RedundancySpec):
    """VRRP (keepalived): one master holds the address, backups take over when it falls silent."""

    kind: Literal["active_passive"] = "active_passive"
    count: int = Field(2, ge=2, le=16)
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
        # The last advertisement went out U x interval before the death, U uniform.
        return self.master_down_interval(index) - rng.uniform(0, self.advertisement_interval)

    def mean_takeover_delay(self, index: int) -> float:
        return self.master_down_interval(index) - self.advertisement_interval / 2


RedundancySpecField = registered(BALANCER_REDUNDANCY, RedundancySpec)
