"""The scenario: an immutable, validated description of one simulated cluster and its workload.

A scenario file is read and checked once, at the edge (:mod:`sim.scenario.loading`). Everything
after it trusts the objects it receives: units are SI floats, names are resolved, references
point somewhere. The parts of a scenario live in modules named after them.
"""

from sim.scenario.cluster import BalancerSpec, ServerGroupSpec
from sim.scenario.loading import Problem, ScenarioError, load_scenario, parse_scenario
from sim.scenario.root import MetricsSpec, Scenario
from sim.scenario.workload import (
    ArrivalsSpec,
    RateChange,
    RequestClassSpec,
    RetrySpec,
    SessionsSpec,
    WorkloadSpec,
)

__all__ = [
    "ArrivalsSpec",
    "BalancerSpec",
    "MetricsSpec",
    "Problem",
    "RateChange",
    "RequestClassSpec",
    "RetrySpec",
    "Scenario",
    "ScenarioError",
    "ServerGroupSpec",
    "SessionsSpec",
    "WorkloadSpec",
    "load_scenario",
    "parse_scenario",
]
