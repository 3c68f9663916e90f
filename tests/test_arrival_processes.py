"""Arrivals beyond Poisson: renewal arrivals against GI/M/1 theory, and recorded traces replayed.

The queueing checks follow tests/test_theory.py: R independent replications, a Student-t
interval for the metric, the theoretical value inside the 99.9% interval, and the interval
itself narrow enough (a stated relative half-width) to be a test.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import simpy
from builders import exponential
from scipy.special import lambertw

from sim import load_scenario, parse_scenario, run
from sim.analysis import mean_confidence_interval
from sim.distributions import parse_distribution
from sim.model.cluster import Cluster
from sim.model.workload import OpenLoopSource
from sim.scenario import ArrivalsSpec, RequestClassSpec
from sim.scenario.advice import advise
from sim.scenario.workload import RateProfile
from sim.streams import Streams
from sim.theory import gim1_mean_wait, gim1_sigma

CONFIDENCE = 0.999


def exponential_transform(mean: float):
    return lambda s: 1.0 / (1.0 + mean * s)


def test_gim1_sigma_is_rho_for_poisson_arrivals():
    for rho in (0.1, 0.5, 0.9):
        assert gim1_sigma(exponential_transform(1.0), 1.0, 1.0 / rho) == pytest.approx(rho)


def test_gim1_sigma_matches_the_closed_forms_of_d_m_1_and_e2_m_1():
    """D/M/1: sigma = -rho W(-exp(-1/rho) / rho) (Lambert W, principal branch). E2/M/1:
    sigma = (1 + 4 rho - sqrt(1 + 8 rho)) / 2 (Gross and Harris, the E_k/M/1 example)."""
    for rho in (0.3, 0.5, 0.8, 0.95):
        deterministic = gim1_sigma(lambda s: math.exp(-s), 1.0, 1.0 / rho)
        lambert = -rho * lambertw(-math.exp(-1 / rho) / rho).real
        assert deterministic == pytest.approx(lambert, rel=1e-9)
        erlang2 = gim1_sigma(lambda s: (2 / (2 + s)) ** 2, 1.0, 1.0 / rho)
        assert erlang2 == pytest.approx((1 + 4 * rho - math.sqrt(1 + 8 * rho)) / 2, rel=1e-9)


def test_gim1_refuses_an_unstable_queue():
    with pytest.raises(ValueError, match="unstable"):
        gim1_sigma(lambda s: math.exp(-s), 1.0, 1.0)


# -- renewal arrivals against GI/M/1 ---------------------------------------------------------


def assert_covers(values: list[float], expected: float, max_relative_half_width: float) -> None:
    mean, half_width = mean_confidence_interval(values, CONFIDENCE)
    assert half_width <= max_relative_half_width * abs(expected), (
        f"interval too wide to be a test: {mean:.5g} +- {half_width:.3g}"
    )
    assert abs(mean - expected) <= half_width, (
        f"theory {expected:.5g} outside {mean:.5g} +- {half_width:.3g} ({CONFIDENCE:.1%} CI)"
    )


def renewal_queue(
    interarrival: dict[str, Any], rate: float, servers: int, mean_service: float
) -> dict[str, Any]:
    """``servers`` single-worker servers behind round-robin, fed renewal arrivals at ``rate``."""
    return {
        "name": "renewal",
        "duration": 2100,
        "warmup": 100,
        "workload": {
            "arrivals": {"rate": rate, "interarrival": interarrival},
            "classes": [{"name": "request", "share": 1, "service_time": exponential(mean_service)}],
        },
        "balancer": {"policy": "round_robin"},
        "servers": [{"name": "web", "count": servers, "workers": 1}],
        "metrics": {"step": 100},
    }


def per_server_transform(aggregate, servers: int):
    """Round-robin hands server i every ``servers``-th arrival, so its gaps are sums of
    ``servers`` independent aggregate gaps: their transform is the aggregate's to that power.
    Deterministic gaps 1/lam become deterministic gaps n/lam (D/M/1 at rate lam/n); Erlang-k
    gaps of mean 1/lam become Erlang-(n k) gaps of mean n/lam (E_nk/M/1)."""
    return lambda s: aggregate(s) ** servers


def hyperexponential_transform(mean: float, cv: float):
    (p1, m1), (p2, m2) = parse_distribution(
        {"kind": "hyperexponential", "mean": mean, "cv": cv}
    ).phases()
    return lambda s: p1 / (1 + m1 * s) + p2 / (1 + m2 * s)


GIM1_CASES = [
    # (interarrival shape, its transform at mean 1/lam, servers): each server sees GI/M/1.
    ({"kind": "deterministic"}, lambda lam: lambda s: math.exp(-s / lam), 3),
    ({"kind": "erlang", "k": 2}, lambda lam: lambda s: (2 * lam / (2 * lam + s)) ** 2, 2),
    ({"kind": "hyperexponential", "cv": 2}, lambda lam: hyperexponential_transform(1 / lam, 2), 1),
]


@pytest.mark.parametrize(
    ("interarrival", "transform", "servers"),
    GIM1_CASES,
    ids=["D over 3 servers: D/M/1", "E2 over 2 servers: E4/M/1", "H2 cv 2: H2/M/1"],
)
def test_renewal_arrivals_reproduce_gi_m_1(interarrival, transform, servers):
    """Per server: utilization 0.6, service Exp(mean 0.1 s), so the per-server arrival rate
    is 6/s and the aggregate 6n/s. 2,000 s after a 100 s warm-up is 12,000 arrivals per
    server and replication; 10 replications. Measured on the group: the fraction of accepted
    attempts that waited (sigma, the same at every server by symmetry) within a 99.9%
    interval no wider than +-4% of it (runs of this length give +-2 to 3%), and the mean wait
    within +-12% (they give +-6 to 9%). For scale: Poisson arrivals would give sigma = 0.6;
    D/M/1 gives 0.324, E4/M/1 0.422, H2/M/1 0.774."""
    mu, per_server_rate = 10.0, 6.0
    lam = per_server_rate * servers
    scenario = parse_scenario(renewal_queue(interarrival, lam, servers, 1 / mu))
    summaries = [run(scenario, seed=5, replication=r).summary for r in range(10)]
    each = per_server_transform(transform(lam), servers)
    groups = [summary["groups"]["web"] for summary in summaries]
    assert_covers(
        [group["waited_fraction"] for group in groups],
        gim1_sigma(each, 1 / per_server_rate, mu),
        0.04,
    )
    assert_covers(
        [group["wait_s"]["mean"] for group in groups],
        gim1_mean_wait(each, 1 / per_server_rate, mu),
        0.12,
    )


# -- renewal arrivals: their times, their rate ------------------------------------------------


class Recorder:
    """Stands for the client: records each request's arrival time and class."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.classes: list[int] = []

    def send(self, request) -> None:
        self.times.append(request.created_at)
        self.classes.append(request.class_index)


def generated_arrivals(arrivals: dict[str, Any], until: float, replication: int = 0) -> np.ndarray:
    env = simpy.Environment()
    classes = [
        RequestClassSpec.model_validate(
            {"name": "request", "share": 1, "service_time": {"kind": "deterministic", "value": 0}}
        )
    ]
    recorder = Recorder()
    spec = ArrivalsSpec.model_validate(arrivals)
    OpenLoopSource(env, spec, classes, Streams(3, replication), recorder).start()
    env.run(until=until)
    return np.array(recorder.times)


def test_deterministic_arrivals_follow_a_step_in_the_rate_exactly():
    """Gaps of one unit of operational time: every 0.1 s at 10/s, every 0.05 s after the step
    to 20/s at 1 s."""
    times = generated_arrivals(
        {"rate": 10, "profile": [{"at": 1, "rate": 20}], "interarrival": "deterministic"}, 1.52
    )
    expected = [0.1 * i for i in range(1, 11)] + [1 + 0.05 * i for i in range(1, 11)]
    assert times.tolist() == pytest.approx(expected, abs=1e-12)


def test_an_exponential_shape_is_the_poisson_default_draw_for_draw():
    poisson = generated_arrivals({"rate": 50}, 200)
    assert len(poisson) > 9000
    assert generated_arrivals({"rate": 50, "interarrival": "exponential"}, 200).tolist() == (
        poisson.tolist()
    )


def test_erlang_gaps_have_the_erlang_law_with_mean_one_over_the_rate():
    """20,000 gaps at 100/s against the Erlang-4 CDF of mean 10 ms (scipy's gamma):
    Kolmogorov-Smirnov p-value above 0.001."""
    from scipy import stats

    gaps = np.diff(
        generated_arrivals({"rate": 100, "interarrival": {"kind": "erlang", "k": 4}}, 200)
    )
    assert len(gaps) > 19_000
    law = stats.gamma(a=4, scale=1 / 400)
    assert stats.kstest(gaps, law.cdf).pvalue > 0.001


def test_bursty_renewal_arrivals_follow_the_rate_profile_in_the_long_run():
    """Hyperexponential gaps (cv 2) under a flash-sale profile, 20 paths of 500 s: the count in
    each phase is within 4 standard deviations of the integral of the rate. A renewal count
    over L units of operational time has variance about cv^2 L (the renewal central limit
    theorem), and a path that starts with a full gap counts (cv^2 - 1)/2 more on average in
    its first window (Cox, *Renewal Theory*, 1962), allowed there."""
    arrivals = {
        "rate": 10,
        "profile": [
            {"at": 100, "rate": 30, "ramp": 100},
            {"at": 300, "rate": 30},
            {"at": 400, "rate": 5},
        ],
        "interarrival": {"kind": "hyperexponential", "cv": 2},
    }
    profile = RateProfile(ArrivalsSpec.model_validate(arrivals))
    paths, cv2 = 20, 4.0
    times = np.concatenate([generated_arrivals(arrivals, 500, path) for path in range(paths)])
    for start, end in [(0, 100), (100, 150), (150, 200), (200, 400), (400, 500)]:
        expected = paths * (profile.cumulative(end) - profile.cumulative(start))
        observed = int(((times >= start) & (times < end)).sum())
        offset = paths * (cv2 - 1) / 2 if start == 0 else 0.0
        assert abs(observed - expected - offset) <= 4 * math.sqrt(cv2 * expected), (start, end)


@pytest.mark.parametrize(
    ("interarrival", "message"),
    [
        ({"kind": "erlang", "k": 2, "mean": "1s"}, "leave out 'mean'"),
        ({"kind": "deterministic", "value": "1s"}, "leave out 'value'"),
        ({"kind": "uniform", "low": 0, "high": 0}, "gaps need a positive mean"),
        ({"kind": "hyperexponential", "cv": 0.5}, "greater than or equal to 1"),
    ],
)
def test_an_interarrival_shape_leaves_the_scale_to_the_rate(interarrival, message):
    with pytest.raises(ValueError, match=message):
        ArrivalsSpec.model_validate({"rate": 10, "interarrival": interarrival})


# -- trace replay ------------------------------------------------------------------------------

TRACE_SCENARIO = """
duration: 20s
warmup: 2s
workload:
  arrivals: {trace: TRACE}
  classes:
    - {name: browse, SHARE service_time: {kind: exponential, mean: 10ms}}
    - {name: checkout, SHARE service_time: {kind: exponential, mean: 30ms}}
servers:
  - {name: web, count: 2, workers: 4}
metrics: {step: 5s}
"""


def trace_scenario(folder, trace: str, shares: bool = False):
    """A scenario file in ``folder`` replaying ``trace``, named relative to it."""
    text = TRACE_SCENARIO.replace("TRACE", trace)
    text = text.replace("SHARE", "share: 70%," if shares else "", 1)
    text = text.replace("SHARE", "share: 30%," if shares else "", 1)
    (folder / "scenario.yaml").write_text(text, encoding="utf-8")
    return load_scenario(folder / "scenario.yaml")


def awkward_times(count: int, end: float) -> np.ndarray:
    """Sorted times up to ``end`` with ties, and a time more than double the one before it
    where now + (t - now) rounds off t (0.4645566149700596 then 1.8132702392002724: the sum
    gives 1.8132702392002726)."""
    rng = np.random.default_rng(17)
    early = [1e-7, 3e-7, 0.1, 0.3, 0.3, 0.4645566149700596, 1.8132702392002724]
    late = rng.uniform(2, end, count)
    return np.sort(np.concatenate([early, late, late[:5]]))


def replayed(scenario) -> Recorder:
    cluster = Cluster.build(scenario, Streams(1))
    recorder = Recorder()
    cluster.source.client = recorder
    cluster.start()
    cluster.env.run(until=scenario.duration)
    return recorder


def test_a_csv_trace_is_replayed_to_the_last_bit_with_its_classes(tmp_path):
    """Times written with full precision come back as the same doubles; arrivals after the end
    of the run (the trace goes on to 30 s, the run stops at 20 s) never come."""
    times = awkward_times(3000, 30.0)
    names = np.random.default_rng(5).choice(["browse", "checkout"], len(times), p=[0.8, 0.2])
    rows = "".join(f"{time!r},{name}\n" for time, name in zip(times.tolist(), names, strict=True))
    (tmp_path / "sale.csv").write_text("time,class\n" + rows, encoding="utf-8")
    recorder = replayed(trace_scenario(tmp_path, "sale.csv"))
    within = times < 20.0
    assert recorder.times == times[within].tolist()
    class_index = {"browse": 0, "checkout": 1}
    assert recorder.classes == [class_index[name] for name in names[within]]


def test_a_parquet_trace_at_twice_the_speed_draws_classes_by_share(tmp_path):
    """Without a class column, classes are drawn by share: 70% browse over 2,000 arrivals,
    within 4 binomial standard deviations. ``speed: 2`` halves every time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    times = awkward_times(2500, 50.0)
    pq.write_table(pa.table({"time": times}), tmp_path / "sale.parquet")
    recorder = replayed(trace_scenario(tmp_path, "{path: sale.parquet, speed: 2}", shares=True))
    halved = times / 2
    assert recorder.times == halved[halved < 20.0].tolist()
    count = len(recorder.classes)
    browse = recorder.classes.count(0)
    assert abs(browse - 0.7 * count) <= 4 * math.sqrt(0.7 * 0.3 * count)


def test_a_run_replaying_a_trace_counts_and_offers_exactly_its_arrivals(tmp_path):
    times = awkward_times(1500, 25.0)
    (tmp_path / "sale.csv").write_text(
        "time\n" + "".join(f"{time!r}\n" for time in times.tolist()), encoding="utf-8"
    )
    scenario = trace_scenario(tmp_path, "sale.csv", shares=True)
    result = run(scenario, seed=1)
    assert result.summary["requests"]["arrived"] == int(((times >= 2) & (times < 20)).sum())
    offered = result.timeseries["offered_rate_per_s"].tolist()
    assert offered == [((times >= t) & (times < t + 5)).sum() / 5 for t in (0, 5, 10, 15)]


@pytest.mark.parametrize(
    ("times", "says"),
    [
        ([1_732_867_200.5, 1_732_867_210.25], "no arrival of the trace falls"),  # Unix time
        ([6.0 * k for k in range(1, 1001)], "only 3 of the trace's 1,000 arrivals"),  # in ms
        ([0.5 * k for k in range(1, 21)], "the trace ends at 10.000s, 10.0s before"),
        ([1.0 * k for k in range(1, 20)], None),  # ends within a tenth of the run: as meant
    ],
    ids=["unix-timestamps", "milliseconds", "ends-early", "fits"],
)
def test_a_trace_whose_times_do_not_fit_the_run_draws_a_warning(tmp_path, times, says):
    rows = "".join(f"{t!r}\n" for t in times)
    (tmp_path / "sale.csv").write_text("time\n" + rows, encoding="utf-8")
    warnings = [a.message for a in advise(trace_scenario(tmp_path, "sale.csv", shares=True))]
    traced = [message for message in warnings if "trace" in message]
    if says is None:
        assert traced == []
    else:
        assert len(traced) == 1 and says in traced[0], warnings
