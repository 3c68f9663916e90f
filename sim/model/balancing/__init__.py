"""Load-balancing policies: which healthy backend gets the next request.

Each policy lives in its own module as a spec (its options, pure data) and a policy class (its
live state). The registry maps the ``kind`` a scenario names to the spec; the spec builds the
policy with its own random stream. Adding a policy is one file here plus a test: the contract
tests in ``tests/test_balancing.py`` run over every registered entry.
"""

from sim.model.balancing.base import (
    BALANCING_POLICIES,
    Backend,
    Policy,
    PolicySpec,
    PolicySpecField,
)
from sim.model.balancing.least_connections import LeastConnections, LeastConnectionsSpec
from sim.model.balancing.least_response_time import LeastResponseTime, LeastResponseTimeSpec
from sim.model.balancing.power_of_two_choices import PowerOfChoices, PowerOfTwoChoicesSpec
from sim.model.balancing.random import RandomChoice, RandomSpec
from sim.model.balancing.round_robin import RoundRobin, RoundRobinSpec
from sim.model.balancing.weighted_round_robin import WeightedRoundRobin, WeightedRoundRobinSpec

__all__ = [
    "BALANCING_POLICIES",
    "Backend",
    "LeastConnections",
    "LeastConnectionsSpec",
    "LeastResponseTime",
    "LeastResponseTimeSpec",
    "Policy",
    "PolicySpec",
    "PolicySpecField",
    "PowerOfChoices",
    "PowerOfTwoChoicesSpec",
    "RandomChoice",
    "RandomSpec",
    "RoundRobin",
    "RoundRobinSpec",
    "WeightedRoundRobin",
    "WeightedRoundRobinSpec",
]
