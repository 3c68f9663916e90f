"""The scenario: an immutable, validated description of one simulated cluster and its workload.

A scenario file is read and checked once, at the edge (:mod:`sim.scenario.loading`). Everything
after it trusts the objects it receives: units are SI floats, names are resolved, references
point somewhere. The parts of a scenario live in modules named after them.
"""

from sim.scenario.admission import QUEUE_SHEDDING, AdmissionSpec, QueueSheddingSpec
from sim.scenario.cluster import (
    AutoscalingSpec,
    BalancerSpec,
    ColdStartSpec,
    ServerGroupSpec,
    StandbySpec,
)
from sim.scenario.database import (
    REPLICATION_KINDS,
    DatabaseSpec,
    DatabaseUseSpec,
    KeySpaceSpec,
    MasterSlaveSpec,
    MultiMasterSpec,
    ReplicationSpec,
)
from sim.scenario.detection import (
    DETECTORS,
    DetectorSpec,
    HealthCheckSpec,
    HeartbeatSpec,
    OutlierEjectionSpec,
    PhiAccrualSpec,
)
from sim.scenario.failures import (
    FAILURE_MODELS,
    CrashRepairSpec,
    CrashSpec,
    PartitionSpec,
    PauseSpec,
    SlowdownSpec,
    TargetSpec,
    ZoneOutageSpec,
)
from sim.scenario.loading import Problem, ScenarioError, load_scenario, parse_scenario
from sim.scenario.maintenance import MaintenanceSpec
from sim.scenario.redundancy import (
    BALANCER_REDUNDANCY,
    ActivePassiveSpec,
    DnsSpec,
    RedundancySpec,
)
from sim.scenario.resilience import (
    CircuitBreakerSpec,
    ErrorRatioSpec,
    HedgingSpec,
    RetryBudgetSpec,
)
from sim.scenario.root import MetricsSpec, Scenario, SloSpec
from sim.scenario.workload import (
    ArrivalsSpec,
    RateChange,
    RequestClassSpec,
    RetrySpec,
    SessionsSpec,
    WorkloadSpec,
)

__all__ = [
    "BALANCER_REDUNDANCY",
    "DETECTORS",
    "FAILURE_MODELS",
    "QUEUE_SHEDDING",
    "REPLICATION_KINDS",
    "ActivePassiveSpec",
    "AdmissionSpec",
    "ArrivalsSpec",
    "AutoscalingSpec",
    "BalancerSpec",
    "CircuitBreakerSpec",
    "ColdStartSpec",
    "CrashRepairSpec",
    "CrashSpec",
    "DatabaseSpec",
    "DatabaseUseSpec",
    "DetectorSpec",
    "DnsSpec",
    "ErrorRatioSpec",
    "HealthCheckSpec",
    "HeartbeatSpec",
    "HedgingSpec",
    "KeySpaceSpec",
    "MaintenanceSpec",
    "MasterSlaveSpec",
    "MetricsSpec",
    "MultiMasterSpec",
    "OutlierEjectionSpec",
    "PartitionSpec",
    "PauseSpec",
    "PhiAccrualSpec",
    "Problem",
    "QueueSheddingSpec",
    "RateChange",
    "RedundancySpec",
    "ReplicationSpec",
    "RequestClassSpec",
    "RetryBudgetSpec",
    "RetrySpec",
    "Scenario",
    "ScenarioError",
    "ServerGroupSpec",
    "SessionsSpec",
    "SloSpec",
    "SlowdownSpec",
    "StandbySpec",
    "TargetSpec",
    "WorkloadSpec",
    "ZoneOutageSpec",
    "load_scenario",
    "parse_scenario",
]
