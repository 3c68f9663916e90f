"""Arrivals follow their rate profile; streams are independent and reproducible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.scenario import ArrivalsSpec
from sim.scenario.workload import RateProfile
from sim.streams import Streams, substream, uniform_below

FLASH_SALE = ArrivalsSpec.model_validate(
    {
        "rate": "10/s",
        "profile": [
            {"at": "100s", "rate": "30/s", "ramp": "100s"},
            {"at": "300s", "rate": "30/s"},
            {"at": "400s", "rate": "5/s"},
        ],
    }
)


def test_the_rate_profile_steps_and_ramps_linearly():
    profile = RateProfile(FLASH_SALE)
    assert profile.rate_at(50) == 10
    assert profile.rate_at(150) == pytest.approx(20)
    assert profile.rate_at(250) == 30
    assert profile.rate_at(400) == 5
    assert profile.rate_at(10_000) == 5
    # 100 s at 10, a 100 s ramp averaging 20, 200 s at 30, then 5 per second.
    assert profile.cumulative(500) == pytest.approx(1000 + 2000 + 6000 + 500)


def test_arrival_counts_in_each_phase_match_the_integral_of_the_rate():
    """Counts in disjoint windows are Poisson: each within 4 standard deviations of its mean."""
    profile = RateProfile(FLASH_SALE)
    rng = np.random.default_rng(9)
    times = []
    t = 0.0
    for _ in range(200):  # 200 independent paths of 500 s
        t = 0.0
        while True:
            t = profile.next_arrival(t, rng.exponential())
            if t >= 500:
                break
            times.append(t)
    times = np.array(times)
    for start, end in [(0, 100), (100, 150), (150, 200), (200, 400), (400, 500)]:
        expected = 200 * (profile.cumulative(end) - profile.cumulative(start))
        observed = ((times >= start) & (times < end)).sum()
        assert abs(observed - expected) <= 4 * math.sqrt(expected), (start, end)


def test_a_rate_falling_to_zero_stops_arrivals():
    profile = RateProfile(
        ArrivalsSpec.model_validate({"rate": 5, "profile": [{"at": 10, "rate": 0}]})
    )
    assert profile.next_arrival(9.9, 1.0) == math.inf


def test_named_streams_do_not_depend_on_the_order_they_are_asked_for():
    first = Streams(7)
    a_then_b = (first.generator("a").random(), first.generator("b").random())
    second = Streams(7)
    b_value = second.generator("b").random()
    a_value = second.generator("a").random()
    assert a_then_b == (a_value, b_value)
    assert Streams(7, replication=1).generator("a").random() != a_value
    assert Streams(8).generator("a").random() != a_value


def test_a_substream_draws_nothing_from_its_parent_and_is_its_own():
    """A feature that is off by default takes its randomness from a child stream: the
    parent's draws stay as they were, and each child is keyed by its name, seed and
    replication like any stream."""
    parent = Streams(7).generator("detection/web-1")
    child = substream(parent, "loss")
    assert parent.random(3).tolist() == Streams(7).generator("detection/web-1").random(3).tolist()
    again = substream(Streams(7).generator("detection/web-1"), "loss")
    first = child.random()
    assert first == again.random()
    others = [
        substream(Streams(7).generator("detection/web-1"), "poll"),
        substream(Streams(7).generator("detection/web-2"), "loss"),
        substream(Streams(7, replication=1).generator("detection/web-1"), "loss"),
        Streams(7).generator("loss"),
    ]
    values = {round(stream.random(), 15) for stream in others}
    assert len(values) == len(others) and round(first, 15) not in values


@pytest.mark.parametrize("high", [1.0, 5.0, 0.3, 1e-3, 123.456])
def test_uniform_below_draws_bit_for_bit_what_numpy_uniform_draws(high):
    """Detectors draw their phases through ``uniform_below``; seeded results were made with
    ``rng.uniform(0, high)``, and must not move."""
    ours, numpys = np.random.default_rng(7), np.random.default_rng(7)
    drawn = np.array([uniform_below(ours, high) for _ in range(20_000)])
    expected = np.array([numpys.uniform(0, high) for _ in range(20_000)])
    assert drawn.tobytes() == expected.tobytes()
    assert ours.random() == numpys.random()  # and each consumed exactly one double per draw


def test_a_stream_cannot_be_shared_by_accident():
    streams = Streams(1)
    streams.generator("arrivals/times")
    with pytest.raises(ValueError, match="already issued"):
        streams.generator("arrivals/times")
