"""Quantities with units, as users write them in scenario files.

Scenario files speak the language of operations: ``250ms``, ``30d``, ``800/s``, ``99.99%``. These
parsers turn such strings into plain floats in SI base units (seconds, events per second,
fractions) so that nothing inside the simulator ever has to think about units again.
A bare number is accepted and taken to be in the base unit.
"""

from __future__ import annotations

import math
import re
from decimal import Context, Decimal

__all__ = [
    "DURATION_UNITS",
    "parse_duration",
    "parse_fraction",
    "parse_rate",
]

DURATION_UNITS: dict[str, float] = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0,
}

_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"  # ASCII digits only
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Z%/]*)\s*$", re.ASCII)
_RATE = re.compile(rf"^\s*({_NUMBER})\s*/\s*({_NUMBER})?\s*([a-zA-Z]+)\s*$", re.ASCII)


_EXACT = Context(prec=40, traps=[])
"""Decimal arithmetic for numbers as written: 9ms is the double nearest 0.009 (9 x 0.001 in
floats is 0.009000000000000001), 99.99% that nearest 0.9999. Without traps, an overflow
(an exponent beyond Decimal's, too) gives an infinity or a zero, which the parsers reject
with the usual message."""

_UNIT_SECONDS = {unit: Decimal(repr(seconds)) for unit, seconds in DURATION_UNITS.items()}


def _split(text: str, expected: str) -> tuple[Decimal, str]:
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"expected {expected}, got {text!r}")
    return _EXACT.create_decimal(match.group(1)), match.group(2)  # 1e99999999999999999999: inf


def _number(value: object, expected: str) -> float | None:
    """The value as a float when it is a plain number, None when it is a string to parse."""
    if isinstance(value, bool):
        raise ValueError(f"expected {expected}, got a boolean")
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"expected {expected}, got a number too large to use") from None
    if isinstance(value, str):
        return None
    if value is None:
        raise ValueError(f"expected {expected}, got nothing (null)")
    raise ValueError(f"expected {expected}, got {type(value).__name__}")


def _check_finite(number: float, expected: str, text: object) -> float:
    if not math.isfinite(number):
        raise ValueError(f"expected {expected}, got {text!r}")
    return number


def parse_duration(value: object) -> float:
    """Seconds in ``value``: ``250ms``, ``2s``, ``5m``, ``2h``, ``30d``, or a number of seconds."""
    expected = "a duration such as 250ms, 2s, 5m, 2h or 30d"
    number = _number(value, expected)
    if number is None:
        number, unit = _split(str(value), expected)
        if unit == "":
            unit = "s"
        if unit not in DURATION_UNITS:
            known = ", ".join(DURATION_UNITS)
            raise ValueError(f"unknown time unit {unit!r} in {value!r}; known units: {known}")
        number = float(_EXACT.multiply(number, _UNIT_SECONDS[unit]))
    return _check_finite(number, expected, value)


def parse_rate(value: object) -> float:
    """Events per second in ``value``: ``800/s``, ``12/min``, ``3/2h``, or a number per second."""
    expected = "a rate such as 800/s, 12/min or 3/h"
    number = _number(value, expected)
    if number is None and _QUANTITY.match(str(value)) and _split(str(value), expected)[1] == "":
        number = float(_split(str(value), expected)[0])
    if number is None:
        match = _RATE.match(str(value))
        if not match:
            raise ValueError(f"expected {expected}, got {value!r}")
        count, per_count, unit = match.groups()
        if unit not in DURATION_UNITS:
            known = ", ".join(DURATION_UNITS)
            raise ValueError(f"unknown time unit {unit!r} in {value!r}; known units: {known}")
        period = _EXACT.multiply(_EXACT.create_decimal(per_count or "1"), _UNIT_SECONDS[unit])
        if period <= 0:
            raise ValueError(f"expected {expected}, got a zero period in {value!r}")
        number = float(_EXACT.divide(_EXACT.create_decimal(count), period))
    return _check_finite(number, expected, value)


def parse_fraction(value: object) -> float:
    """A fraction in [0, 1] from ``99.99%`` or a plain number such as ``0.9999``."""
    expected = "a percentage such as 99.99% or a fraction such as 0.9999"
    outside = "a percentage from 0% to 100% (or a fraction from 0 to 1)"
    number = _number(value, expected)
    if number is None:
        written, unit = _split(str(value), expected)
        if unit == "%":
            written = _EXACT.divide(written, 100)
        elif unit != "":
            raise ValueError(f"expected {expected}, got {value!r}")
        number = float(written)
    number = _check_finite(number, expected, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"expected {outside}, got {value!r}")
    return number
