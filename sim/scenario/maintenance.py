"""Planned work, under ``maintenance:``: rolling deploys and maintenance windows (the seed's
cold migration), kept apart from the failures that happen to a cluster.

Each entry takes the servers it names out of rotation a batch at a time, the way operators
drive a balancer (HAProxy's DRAIN then MAINT states, a Kubernetes rolling update with
``maxUnavailable``)::

    maintenance:
      - {target: {group: web}, at: 2m, batch: 2, drain_timeout: 10s, deploy_time: 60s}
      - {target: {server: web-3}, at: 1d, every: 7d, deploy_time: 20m}

For each server of a batch: the balancer stops sending it new requests (drain), waits until
the connections it has open to it have closed or ``drain_timeout`` has passed, then the server
is stopped (what is still in flight is cut) and stays down for ``deploy_time``. It comes back
through detection: the balancer puts it back in rotation when its detector sees it healthy
again, as HAProxy does with a server set back to READY. The next batch starts once the whole
batch is back in rotation. ``every`` repeats the whole rollout at that period.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from sim.distributions import DelaySpec
from sim.scenario.failures import TargetSpec
from sim.spec import Count, NonNegativeDuration, PositiveDuration, Spec, located_error

__all__ = ["MaintenanceSpec"]


class MaintenanceSpec(Spec):
    """One rollout: ``target`` (a server, a group or a zone behind the balancer) taken out
    ``batch`` servers at a time from ``at`` (seconds), each drained for at most
    ``drain_timeout`` and down for ``deploy_time`` (a duration or a distribution), repeated
    every ``every`` seconds when given."""

    target: TargetSpec
    at: NonNegativeDuration = 0.0
    every: PositiveDuration | None = None
    batch: Count = Field(1, ge=1, le=100_000)
    drain_timeout: NonNegativeDuration = 30.0
    deploy_time: DelaySpec

    @model_validator(mode="after")
    def _servers_only(self) -> MaintenanceSpec:
        if self.target.balancer:
            raise located_error(
                ".target",
                "maintenance takes servers behind the balancer out of rotation; a balancer"
                " instance's planned restart is a crash with a duration under failures",
            )
        return self
