"""Quantities as users write them (``250ms``, ``12/min``, ``99.99%``) become SI floats, or a
ValueError that says what was expected and what was given."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest

from sim.units import parse_duration, parse_fraction, parse_rate

SECONDS_IN = {"minute": 60.0, "hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0}

DURATIONS = [
    ("500us", 500e-6),
    ("250ms", 0.25),
    ("2s", 2.0),
    ("5m", 5 * SECONDS_IN["minute"]),
    ("5min", 5 * SECONDS_IN["minute"]),
    ("2h", 7200.0),
    ("1.5h", 1.5 * SECONDS_IN["hour"]),
    ("30d", 30 * SECONDS_IN["day"]),
    ("2w", 2 * SECONDS_IN["week"]),
    ("1y", 365 * SECONDS_IN["day"]),
    ("1e3ms", 1.0),
    (" 10 s ", 10.0),
    ("90", 90.0),
    (90, 90.0),
    (0.5, 0.5),
    (0, 0.0),
]

BAD_DURATIONS = [
    ("1e999999999999999999999s", "expected a duration such as 250ms, 2s, 5m, 2h or 30d"),
    ("10 parsecs", "unknown time unit 'parsecs' in '10 parsecs'; known units: us, ms, s"),
    ("5 fortnights", "unknown time unit 'fortnights'"),
    ("2 H", "unknown time unit 'H'"),
    ("", "expected a duration such as 250ms"),
    ("ms", "expected a duration such as 250ms, 2s, 5m, 2h or 30d, got 'ms'"),
    (True, "got a boolean"),
    (False, "got a boolean"),
    (None, "expected a duration"),
    (math.nan, "expected a duration"),
    (math.inf, "expected a duration"),
    ("nan", "got 'nan'"),
    ("inf", "got 'inf'"),
    ("1e999s", "got '1e999s'"),
]

RATES = [
    ("800/s", 800.0),
    ("12/min", 0.2),
    ("60/m", 1.0),
    ("3/h", 3 / SECONDS_IN["hour"]),
    ("3/2h", 3 / (2 * SECONDS_IN["hour"])),
    ("1/d", 1 / SECONDS_IN["day"]),
    ("1.5/ms", 1500.0),
    (" 100 / s ", 100.0),
    (800, 800.0),
    (0.25, 0.25),
    (0, 0.0),
]

BAD_RATES = [
    ("1e999999999999999999999/s", "expected a rate such as 800/s, 12/min or 3/h, got '1e999"),
    ("5/1e-999999999999999999999s", "a zero period"),
    ("800/parsec", "unknown time unit 'parsec' in '800/parsec'; known units: us, ms, s"),
    ("800/fortnight", "unknown time unit 'fortnight'"),
    ("1/0s", "a zero period in '1/0s'"),
    ("fast", "expected a rate such as 800/s, 12/min or 3/h, got 'fast'"),
    ("", "expected a rate such as 800/s"),
    (True, "got a boolean"),
    (None, "expected a rate"),
    (math.nan, "expected a rate"),
    (math.inf, "expected a rate"),
    ("1e999/s", "got '1e999/s'"),
]

FRACTIONS = [
    ("99.99%", 0.9999),
    ("60%", 0.6),
    ("12.5 %", 0.125),
    ("100%", 1.0),
    ("0%", 0.0),
    ("0.9999", 0.9999),
    (0.5, 0.5),
    (1, 1.0),
    (0, 0.0),
]

BAD_FRACTIONS = [
    ("1e999999999999999999999%", "expected a percentage such as 99.99% or a fraction"),
    ("120%", "from 0% to 100% (or a fraction from 0 to 1), got '120%'"),
    ("100.0001%", "from 0% to 100%"),
    ("-5%", "from 0% to 100%"),
    (1.5, "from 0% to 100% (or a fraction from 0 to 1), got 1.5"),
    (-0.1, "from 0% to 100%"),
    ("99.99 percent", "expected a percentage such as 99.99%"),
    ("", "expected a percentage"),
    (True, "got a boolean"),
    (None, "expected a percentage"),
    (math.nan, "expected a percentage"),
    (math.inf, "expected a percentage"),
    ("nan%", "got 'nan%'"),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_a_duration_is_read_in_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(("value", "message"), BAD_DURATIONS)
def test_a_bad_duration_says_what_was_expected(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(value)


@pytest.mark.parametrize(("text", "per_second"), RATES)
def test_a_rate_is_read_in_events_per_second(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second, rel=1e-12)


@pytest.mark.parametrize(("value", "message"), BAD_RATES)
def test_a_bad_rate_says_what_was_expected(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_rate(value)


@pytest.mark.parametrize(("text", "fraction"), FRACTIONS)
def test_a_percentage_or_a_fraction_is_read_as_a_fraction(text, fraction):
    assert parse_fraction(text) == pytest.approx(fraction, rel=1e-12)


@pytest.mark.parametrize("percent", ["99.99%", "99.999%", "99.95%", "0.1%", "57.7 %"])
def test_a_percentage_is_exactly_the_fraction_it_writes(percent):
    """99.99% and 0.9999 are one number: a target written either way is met by the same
    availability (dividing the float 99.99 by 100 gives 0.9998999999999999)."""
    written = percent.removesuffix("%").strip()
    fraction = str(Decimal(written) / 100)
    assert parse_fraction(percent) == parse_fraction(fraction) == float(fraction)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("9ms", "0.009"),
        ("1.3ms", "0.0013"),
        ("52ms", "0.052"),
        ("20us", "0.00002"),
        ("0.1h", "360"),
    ],
)
def test_a_duration_is_exactly_the_number_it_writes(text, seconds):
    """9ms and 0.009 are one number (9 x 0.001 in floats is 0.009000000000000001): a timeout
    written in milliseconds ties with one written in seconds."""
    assert parse_duration(text) == parse_duration(seconds) == float(seconds)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("9/ms", "9000"),
        ("3/10s", "0.3"),
        ("1/9ms", "111.11111111111111"),  # 1 / (9 x 0.001) in floats: 111.1111111111111
        ("3/1.1h", "0.0007575757575757576"),  # in floats: 0.0007575757575757575
    ],
)
def test_a_rate_is_exactly_the_number_it_writes(text, per_second):
    """The double nearest count / period as written (repeating decimals rounded once)."""
    assert parse_rate(text) == float(per_second)


@pytest.mark.parametrize(("value", "message"), BAD_FRACTIONS)
def test_a_bad_fraction_says_what_was_expected(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_fraction(value)


def test_the_parsers_read_a_sign_and_leave_bounds_to_the_scenario_fields():
    assert parse_duration("-5s") == -5.0
    assert parse_rate("-5/s") == -5.0
