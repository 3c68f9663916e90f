"""Write scenarios/sale_trace.csv: five minutes of a sale's arrivals, as a shop's access log
would give them, for the trace-replay example (scenarios/sale_replay.yaml).

The traffic is made up, but shaped like the real thing: 40 requests a second, a surge to 150 a
second from minute 2 (the newsletter lands) that fades after a minute, and bursty gaps
(hyperexponential, cv 2: clients that send several requests at once). Times are rounded to the
millisecond, as logs keep them, so some arrivals share a time.

    python docs/sale_trace.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.distributions import parse_distribution  # noqa: E402
from sim.scenario import ArrivalsSpec  # noqa: E402
from sim.scenario.workload import RateProfile  # noqa: E402

SEED = 20241129
DURATION_S = 300.0
CLASSES = {"browse": 0.7, "cart": 0.2, "checkout": 0.1}
ARRIVALS = {
    "rate": "40/s",
    "profile": [
        {"at": "120s", "rate": "150/s", "ramp": "10s"},
        {"at": "180s", "rate": "40/s", "ramp": "30s"},
    ],
}


def sale_trace() -> tuple[np.ndarray, np.ndarray]:
    """Arrival times (seconds, rounded to the millisecond) and class names."""
    rng = np.random.default_rng(SEED)
    profile = RateProfile(ArrivalsSpec.model_validate(ARRIVALS))
    gaps = parse_distribution({"kind": "hyperexponential", "mean": 1, "cv": 2}).sampler(rng)
    times, t = [], 0.0
    while (t := profile.next_arrival(t, next(gaps))) < DURATION_S:
        times.append(t)
    classes = rng.choice(list(CLASSES), len(times), p=list(CLASSES.values()))
    return np.round(np.array(times), 3), classes


def main() -> None:
    times, classes = sale_trace()
    rows = "".join(f"{time:.3f},{name}\n" for time, name in zip(times, classes, strict=True))
    path = ROOT / "scenarios" / "sale_trace.csv"
    path.write_text("time,class\n" + rows, encoding="utf-8")
    print(f"{path.relative_to(ROOT)}: {len(times):,} arrivals over {DURATION_S:g} s")


if __name__ == "__main__":
    main()
