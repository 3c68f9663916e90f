"""Regenerate the example figures of the README, from real runs of the example scenarios.

    python docs/make_images.py          # about two minutes on 2 cores

Writes docs/images/{latency_cdf,timeseries,incidents,availability_curve,downtime_by_cause,
comparison,overload_cures,cache}.png.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from sim import load_scenario, plots, run
from sim.executors import ProcessExecutor
from sim.experiment import compare, with_overrides
from sim.overrides import read_alternatives
from sim.reliability import estimate_availability, markov_availability
from sim.results import atomic_write_bytes

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


def save(figure, name: str) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    atomic_write_bytes(IMAGES / name, buffer.getvalue())
    print(IMAGES / name)


def main() -> None:
    crash = run(load_scenario(ROOT / "scenarios" / "flash_sale_crash.yaml", ["duration=20m"]))
    save(
        plots.latency_cdf(crash.latency, 1.0, "flash_sale_crash: latency of ok requests"),
        "latency_cdf.png",
    )
    save(
        plots.time_series(
            crash.timeseries,
            crash.events,
            "flash_sale_crash: a server crashes during the sale",
            end_s=crash.scenario.duration,
        ),
        "timeseries.png",
    )
    save(
        plots.incident_timeline(
            crash.events, crash.scenario.duration, "flash_sale_crash: incident timeline"
        ),
        "incidents.png",
    )

    design = load_scenario(ROOT / "scenarios" / "four_nines.yaml")
    rows, theory = [], []
    for spares in range(4):
        standby = {"count": spares, "mode": "hot", "promotion_delay": 30} if spares else None
        variant = with_overrides(design, {"servers[0].standby": standby})
        estimate = estimate_availability(variant, years=500, replications=8)
        rows += [
            {"hot spares": spares, "replication": i, "availability": value}
            for i, value in enumerate(estimate["per_replication"])
        ]
        theory.append({"parameter": spares, "value": markov_availability(variant)["value"]})
    save(
        plots.availability_curve(
            pd.DataFrame(rows),
            "hot spares",
            "availability",
            0.9999,
            pd.DataFrame(theory),
            title="four_nines: availability against hot spares",
        ),
        "availability_curve.png",
    )

    trading = load_scenario(ROOT / "scenarios" / "trading_system.yaml")
    designs = []
    for label, promotion in (("promotion 30 s", "30s"), ("promotion 10 s", "10s")):
        variant = with_overrides(trading, {"database.replication.promotion_delay": promotion})
        estimate = estimate_availability(variant, years=500, replications=8)
        designs.append((label, estimate["downtime_by_cause"]))
    save(
        plots.downtime_by_cause(designs, "trading_system: where the minutes go"),
        "downtime_by_cause.png",
    )

    slow = load_scenario(ROOT / "scenarios" / "slow_server.yaml", ["duration=10m"])
    policies = ["round_robin", "least_connections", "power_of_two_choices", "least_response_time"]
    executor = ProcessExecutor()
    try:
        _, comparison = compare(
            slow, {p: {"balancer.policy": p} for p in policies}, 4, executor=executor
        )
    finally:
        executor.close()
    save(
        plots.comparison_chart(
            comparison,
            ["availability.request_based_within_latency", "latency_s.p99"],
            "slow_server: balancing policies compared",
        ),
        "comparison.png",
    )

    storm = load_scenario(ROOT / "scenarios" / "overload_retries.yaml")
    cures = read_alternatives(ROOT / "scenarios" / "overload_retries_cures.csv")
    executor = ProcessExecutor()
    try:
        _, comparison = compare(storm, cures, 3, executor=executor)
    finally:
        executor.close()
    save(
        plots.comparison_chart(
            comparison,
            ["availability.request_based", "latency_s.p99", "attempts_per_request"],
            "overload_retries: four cures for a retry storm",
        ),
        "overload_cures.png",
    )

    cached = run(load_scenario(ROOT / "scenarios" / "cached_catalogue.yaml"))
    save(
        plots.cache_and_database_load(
            cached.timeseries,
            cached.events,
            "cached_catalogue: a cache node crashes in the sale",
            end_s=cached.scenario.duration,
        ),
        "cache.png",
    )


if __name__ == "__main__":
    main()
