"""The data tier of a scenario: database nodes, replication, sharding and the key space.

    database:
      keys: {count: 100000, popularity: zipf, zipf_exponent: 1.1}
      shards: 4
      replication: {kind: master_slave, mode: semi_sync, ack_timeout: 10s, replicas: 2,
                    apply_delay: 20ms, read_from: replicas_within_lag, max_lag: 500ms,
                    promotion_delay: 10s}
      workers: 16
      read_time: {kind: exponential, mean: 2ms}
      write_time: {kind: exponential, mean: 5ms}
      zones: [zone-a, zone-b]
      cache: {nodes: 2, capacity: 5000}

and, per request class, how it uses the data: ``database: {reads: 2, writes: 1}`` (with
``cacheable: true``, its reads look in the cache first: :mod:`sim.scenario.cache`).
"""

from __future__ import annotations

from abc import ABC
from typing import Any, Literal

from pydantic import Field, model_validator

from sim.distributions import DelaySpec, Deterministic, DistributionSpec, Exponential
from sim.registry import Registry
from sim.scenario.cache import CacheSpec
from sim.scenario.detection import DetectorSpecField, HeartbeatSpec
from sim.spec import (
    Count,
    Name,
    NonNegativeDuration,
    PositiveDuration,
    Spec,
    located_error,
    registered,
)

__all__ = [
    "MASTER_SLAVE_ONLY",
    "REPLICATION_KINDS",
    "DatabaseSpec",
    "DatabaseUseSpec",
    "KeySpaceSpec",
    "MasterSlaveSpec",
    "MultiMasterSpec",
    "ReplicationSpec",
    "ReplicationSpecField",
]


class KeySpaceSpec(Spec):
    """``count`` keys (products, carts, orders); ``zipf`` makes a few of them very hot."""

    count: Count = Field(100_000, ge=1, le=10_000_000)
    popularity: Literal["uniform", "zipf"] = "uniform"
    zipf_exponent: float = Field(1.0, gt=0, le=10)


REPLICATION_KINDS: Registry[type[ReplicationSpec]] = Registry("replication kind")


class ReplicationSpec(Spec, ABC):
    """How the copies of each shard are kept: what every replication kind shares.

    Each shard has ``replicas + 1`` nodes. A write taken by a node is shipped to the others,
    each needing its own ``apply_delay`` (network and apply time) to reach one, and nodes apply
    writes in commit order, so a write also waits for those before it: the lag a node shows
    (``data.replication_lag_s``) is the delay of the slowest write ahead of it, longer than
    ``apply_delay`` when delays vary. While no node can take a write, writes ``fail`` or
    ``wait`` for one.
    """

    kind: str
    replicas: Count = Field(1, ge=0, le=16)
    apply_delay: DelaySpec = Deterministic(value=0.01)
    writes_during_failover: Literal["fail", "wait"] = "fail"

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lag" in data:
            raise located_error(
                ".lag",
                "'lag' is now 'apply_delay': the delay of each write on its own. Replicas apply"
                " writes in order, so the lag they show is longer when delays vary; it is"
                " reported as data.replication_lag_s",
            )
        return data


class FencingSpec(Spec):
    """What keeps a deposed master from taking writes while a promoted one does.

    ``none``: the failover manager demotes the old master (read-only) when a message of its
    gets through; while the old master serves clients but the manager cannot reach it (cut
    off from the manager, or paused), it keeps taking writes: split brain. ``stonith``: before
    promoting, the manager powers the old master off out of band (IPMI), whatever the network
    does, for ``reboot_time``. ``lease``: the master holds a lease it renews with the manager
    and stops taking writes ``lease_time`` after its last renewal; the manager promotes only
    once that lease has run out, and calls the failover off if the master still renews."""

    kind: Literal["none", "stonith", "lease"] = "none"
    lease_time: PositiveDuration = 10.0
    reboot_time: PositiveDuration = 60.0

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"kind": data} if isinstance(data, str) else data

    @property
    def promises_one_master(self) -> bool:
        """Whether two writable masters can never coexist."""
        return self.kind != "none"


@REPLICATION_KINDS.register("master_slave")
class MasterSlaveSpec(ReplicationSpec):
    """One master takes the writes and ships them to ``replicas`` copies.

    ``async`` acknowledges a write at once; ``semi_sync`` once one replica has it; ``sync`` once
    every replica the master counts on has it. The master learns of a replica's death only by
    the missing acknowledgement: it waits up to ``ack_timeout`` (MySQL's
    ``rpl_semi_sync_source_timeout``, 10 s by default), writes stalling meanwhile, then stops
    counting on the replicas that did not acknowledge, and with none left falls back to
    asynchronous replication until one has caught up (see
    :class:`sim.model.replication.MasterSlave`). Reads go to the ``master``, to the
    ``replicas``, or to replicas at most ``max_lag`` behind (else the master). When detection
    declares the master dead, the most up-to-date live replica is promoted after
    ``promotion_delay``; the old master rejoins as a replica once demoted, as ``fencing``
    allows (:class:`FencingSpec`).
    """

    kind: Literal["master_slave"] = "master_slave"
    mode: Literal["async", "semi_sync", "sync"] = "async"
    ack_timeout: PositiveDuration = 10.0
    read_from: Literal["master", "replicas", "replicas_within_lag"] = "master"
    max_lag: NonNegativeDuration = 1.0
    lag_check_interval: PositiveDuration = 2.0
    """How often the router measures each replica's lag for ``replicas_within_lag`` (MaxScale's
    monitor_interval, 2 s by default): between checks it goes by the last one."""
    promotion_delay: DelaySpec = Deterministic(value=5.0)
    fencing: FencingSpec = FencingSpec()


MASTER_SLAVE_ONLY = ("mode", "ack_timeout", "read_from", "max_lag", "promotion_delay")
"""Keys a multi-master spec accepts, so that a master-slave scenario switched to multi-master
(``--set database.replication.kind=multi_master``, a comparison of kinds) still loads, and that
do nothing there (:mod:`sim.scenario.advice` says so when one is written)."""


@REPLICATION_KINDS.register("multi_master")
class MultiMasterSpec(ReplicationSpec):
    """``replicas + 1`` masters per shard all take writes, acknowledged at once and shipped to
    the others; reads go to any node. Two writes to one key within the lag window are a
    conflict, resolved by last-writer-wins. A master's death promotes no one: the others carry
    on without the writes only it had."""

    kind: Literal["multi_master"] = "multi_master"
    # Accepted and without effect here: see MASTER_SLAVE_ONLY.
    mode: Literal["async", "semi_sync", "sync"] = "async"
    ack_timeout: PositiveDuration = 10.0
    read_from: Literal["master", "replicas", "replicas_within_lag"] = "master"
    max_lag: NonNegativeDuration = 1.0
    promotion_delay: DelaySpec = Deterministic(value=5.0)

    @model_validator(mode="after")
    def _two_masters(self) -> MultiMasterSpec:
        if self.replicas < 1:
            raise ValueError("multi_master needs at least 1 replica (2 masters)")
        return self


def _master_slave_by_default(value: Any) -> Any:
    """A mapping without a ``kind`` is master-slave, as it always was."""
    if isinstance(value, dict) and "kind" not in value:
        return {"kind": "master_slave", **value}
    return value


ReplicationSpecField = registered(
    REPLICATION_KINDS, ReplicationSpec, shorthand=_master_slave_by_default
)
"""Field type of ``database.replication``: ``{kind: <name>, ...options}``, master-slave when
the kind is left out."""


class DatabaseSpec(Spec):
    """The database nodes: ``shards`` replica groups over a consistent-hash ring.

    Node ``j`` of shard ``i`` is named ``db-i-j`` (``db-i-1`` starts as the master) and lives in
    ``zones[(j - 1) % len(zones)]``; all are members of the server group ``db`` for failures.
    """

    keys: KeySpaceSpec = KeySpaceSpec()
    shards: Count = Field(1, ge=1, le=1024)
    virtual_nodes: Count = Field(128, ge=1, le=4096)
    replication: ReplicationSpecField = MasterSlaveSpec()
    workers: Count = Field(8, ge=1, le=100_000)
    queue_capacity: Count | None = Field(None, ge=0, le=10_000_000)
    read_time: DistributionSpec = Exponential(mean=0.002)
    write_time: DistributionSpec = Exponential(mean=0.005)
    zones: list[Name] = Field(default_factory=lambda: ["default"], min_length=1)
    detection: DetectorSpecField = HeartbeatSpec()
    cache: CacheSpec | None = None

    def nodes_per_shard(self) -> int:
        return 1 + self.replication.replicas

    def node_names(self) -> list[str]:
        return [
            f"db-{shard}-{number}"
            for shard in range(self.shards)
            for number in range(1, self.nodes_per_shard() + 1)
        ]


class DatabaseUseSpec(Spec):
    """What one request of a class does to the data: ``reads`` then ``writes``, one key each;
    ``cacheable``: its reads look in ``database.cache`` first."""

    reads: Count = Field(0, ge=0, le=100)
    writes: Count = Field(0, ge=0, le=100)
    cacheable: bool = False
