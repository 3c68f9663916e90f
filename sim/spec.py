"""The base of every scenario spec: inert, frozen, strict about keys, fluent in units.

A spec is a description, not a machine: it holds validated numbers in SI units and never changes.
The simulation turns specs into live objects. Unknown keys are errors with a did-you-mean, never
silently ignored, because a misspelt ``wrokers: 8`` that falls back to a default gives a
plausible but wrong answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    SerializeAsAny,
    StringConstraints,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sim.registry import did_you_mean
from sim.units import parse_duration, parse_fraction, parse_rate

__all__ = [
    "Count",
    "Duration",
    "Fraction",
    "Name",
    "NonNegativeDuration",
    "PositiveDuration",
    "PositiveRate",
    "Rate",
    "Spec",
    "located_error",
    "registered",
]


class Spec(BaseModel):
    """Base class of all specs: frozen, unknown keys rejected with a did-you-mean, and strict
    about types: ``true`` is not the number 1, ``2.5`` is not a count, bytes are not text."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = [field.alias or name for name, field in cls.model_fields.items()]
            for key in data:
                if key not in known:
                    hint = did_you_mean(str(key), known)
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown key '{key}'{hint}; expected one of: {known}",
                        {"key": str(key), "hint": hint, "known": ", ".join(known)},
                    )
        return data


def located_error(path: str, message: str) -> PydanticCustomError:
    """An error about a key below the model being validated, located by ``path`` (``.a[1].b``).

    Cross-field checks run on a whole model but are about one key: this names that key.
    """
    return PydanticCustomError("reference", "{message}", {"message": message, "path": path})


def _unit(parser, unit: str = ""):
    def parse(value: Any) -> Any:
        try:
            return parser(value)
        except ValueError as error:
            raise PydanticCustomError("unit", str(error)) from None

    parse.unit = unit  # what the number is in, for tools that list bounds (the README's limits)
    return BeforeValidator(parse)


def _plain(number: float) -> str:
    """A number as a message quotes it: whole ones in full (10000000, not 1e+07)."""
    if isinstance(number, int):
        return str(number)
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return f"{number:g}"


def _at_least(bound: float, strict: bool, what: str, unit: str):
    def check(value: float) -> float:
        if value < bound or (strict and value == bound):
            relation = ">" if strict else ">="
            raise PydanticCustomError(
                "bound",
                f"expected {what} {relation} {_plain(bound)}{unit}, got {_plain(value)}{unit}",
            )
        return value

    return AfterValidator(check)


BOUND_RELATIONS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}
"""Pydantic's bound error types, as a message writes them."""


def _worded_bounds(what: str, unit: str):
    """A field's own bounds (``Field(ge=0.001, le=86_400)``) in the user's words: pydantic
    would call the value "a number" and leave out its unit, so that ``interval: 0.0ms`` came
    back as "expected a number >= 0.001, got 0.0"."""

    def wrap(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            problem = error.errors(include_url=False)[0]
            relation = BOUND_RELATIONS.get(problem["type"])
            if relation is None:
                raise
            bound = next(iter(problem["ctx"].values()))
            raise PydanticCustomError(
                "bound",
                f"expected {what} {relation} {_plain(bound)}{unit}, got {_plain(value)}{unit}",
            ) from None

    return WrapValidator(wrap)


Count = Annotated[int, _worded_bounds("a whole number", "")]
"""A whole number; its field's bounds (``Field(ge=1, le=1_000)``) are worded as such."""

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", max_length=64)]
"""A name users give to things (a server group, a class): a letter, then letters, digits, _ . -"""

Duration = Annotated[float, _worded_bounds("a duration", " s"), _unit(parse_duration, " s")]
"""Seconds, written as ``250ms``, ``2s``, ``5m``, ``2h``, ``30d`` or a number of seconds."""
NonNegativeDuration = Annotated[Duration, _at_least(0.0, False, "a duration", " s")]
PositiveDuration = Annotated[Duration, _at_least(0.0, True, "a duration", " s")]
Rate = Annotated[
    Annotated[float, _worded_bounds("a rate", "/s"), _unit(parse_rate, "/s")],
    _at_least(0.0, False, "a rate", "/s"),
]
"""Events per second, written as ``800/s``, ``12/min`` or a number per second."""
PositiveRate = Annotated[Rate, _at_least(0.0, True, "a rate", "/s")]
Fraction = Annotated[float, _unit(parse_fraction)]
"""A fraction in [0, 1], written as ``99.99%`` or ``0.9999``."""


def registered(registry, base: type[Spec], shorthand=None):
    """A field type for an extension point: a mapping with a ``kind`` looked up in ``registry``.

    The kind is resolved when the scenario is validated, not when this module is imported, so
    implementations registered by a user's own code are as valid as the built-in ones. A bare
    string is shorthand for ``{kind: <string>}``; ``shorthand``, when given, may turn other
    plain values into such a mapping first (or return them unchanged).
    """

    def parse(value: Any) -> Any:
        written_plain = False
        if shorthand is not None:
            written = value
            value = shorthand(value)
            written_plain = not isinstance(written, dict) and isinstance(value, dict)
        if isinstance(value, base):
            return value
        if isinstance(value, str):
            if value not in registry:
                raise PydanticCustomError(
                    "unknown_kind",
                    "{unknown}; a {what} is a mapping with a 'kind' and its parameters",
                    {"unknown": registry.unknown_message(value), "what": registry.what},
                )
            value = {"kind": value}
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "kind_mapping",
                "expected a mapping with a 'kind' key naming a {what}",
                {"what": registry.what},
            )
        if "kind" not in value:
            raise PydanticCustomError(
                "kind_missing",
                "missing key 'kind'; known kinds: {known}",
                {"known": ", ".join(registry.names())},
            )
        implementation = registry.validate_kind(value["kind"])
        if not written_plain:
            return implementation.model_validate(value)
        # The user wrote a plain value: a problem with it is the field's own, not that of a key
        # they never wrote (``promotion_delay``, not ``promotion_delay.value``).
        try:
            return implementation.model_validate(value)
        except ValidationError as error:
            raise PydanticCustomError("bound", error.errors(include_url=False)[0]["msg"]) from None

    parse.registry = registry  # for tools that list a field's kinds (the README's limits)
    return Annotated[SerializeAsAny[base], PlainValidator(parse)]
