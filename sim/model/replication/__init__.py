"""Replication strategies: where reads and writes go, when writes are acknowledged, what a
node's death costs, whom a failover promotes. One module per kind, registered by the name a
scenario gives as ``database.replication.kind`` (see :mod:`sim.model.replication.base`)."""

from sim.model.replication.base import REPLICATION_STRATEGIES, ReplicationStrategy
from sim.model.replication.master_slave import MasterSlave
from sim.model.replication.multi_master import MultiMaster

__all__ = ["REPLICATION_STRATEGIES", "MasterSlave", "MultiMaster", "ReplicationStrategy"]
