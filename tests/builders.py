"""Small scenarios for tests, written as data the way a user would write YAML."""

from __future__ import annotations

from typing import Any

from sim import Scenario, parse_scenario, run


def queue_scenario(
    *,
    arrival_rate: float,
    service: dict[str, Any],
    workers: int = 1,
    servers: int = 1,
    queue_capacity: int | None = None,
    policy: str | dict[str, Any] = "round_robin",
    duration: float = 1000.0,
    warmup: float = 0.0,
    timeout: float | None = None,
    retries: dict[str, Any] | None = None,
    step: float = 100.0,
) -> Scenario:
    """One request class, one group of identical servers: a textbook queue."""
    request_class: dict[str, Any] = {"name": "request", "share": 1, "service_time": service}
    if timeout is not None:
        request_class["timeout"] = timeout
    if retries is not None:
        request_class["retries"] = retries
    group: dict[str, Any] = {"name": "web", "count": servers, "workers": workers}
    if queue_capacity is not None:
        group["queue_capacity"] = queue_capacity
    return parse_scenario(
        {
            "name": "test",
            "duration": duration,
            "warmup": warmup,
            "workload": {"arrivals": {"rate": arrival_rate}, "classes": [request_class]},
            "balancer": {"policy": policy},
            "servers": [group],
            "metrics": {"step": step},
        }
    )


def exponential(mean: float) -> dict[str, Any]:
    return {"kind": "exponential", "mean": mean}


def replicate(scenario: Scenario, replications: int, seed: int = 1) -> list[dict[str, Any]]:
    """Summaries of independent replications (independent streams from one root seed)."""
    return [run(scenario, seed=seed, replication=i).summary for i in range(replications)]
