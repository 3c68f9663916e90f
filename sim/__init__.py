"""ecsim: a discrete-event simulator of a replicated e-commerce cluster, on SimPy.

The public API for scripts and notebooks::

    from sim import load_scenario, run
    scenario = load_scenario("scenarios/baseline.yaml", ["servers[0].count=6"])
    result = run(scenario, seed=7)
    result.summary["latency_s"]["p99"], result.timeseries
"""

__version__ = "0.1.0"

from sim.experiment import RunResult, run
from sim.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "RunResult",
    "Scenario",
    "ScenarioError",
    "__version__",
    "load_scenario",
    "parse_scenario",
    "run",
]
