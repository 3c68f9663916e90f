"""ecsim: a discrete-event simulator of a replicated e-commerce cluster, on SimPy.

The public API for scripts and notebooks::

    from sim import load_scenario, run
    scenario = load_scenario("scenarios/baseline.yaml", ["servers[0].count=6"])
    result = run(scenario, seed=7)
    result.summary["latency_s"]["p99"], result.timeseries

Names are imported on first use, so that importing a pure part of the package (say
``sim.theory``) does not load the simulation engine.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "RunResult": "sim.experiment",
    "run": "sim.experiment",
    "Scenario": "sim.scenario",
    "ScenarioError": "sim.scenario",
    "load_scenario": "sim.scenario",
    "parse_scenario": "sim.scenario",
    "estimate_availability": "sim.reliability",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
