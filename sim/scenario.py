"""The scenario: an immutable, validated description of one simulated cluster and its workload.

A scenario file is read and checked once, here, at the edge. Everything after this module trusts
the objects it receives: units are SI floats, names are resolved, references point somewhere.
Every mistake a user can make comes back as a :class:`ScenarioError` that names the file, the key
path (``servers[1].workers``), what was expected and, for names, the closest known one.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, StringConstraints, ValidationError, model_validator

from sim.distributions import DistributionSpec
from sim.model.balancing import PolicySpecField, RoundRobinSpec
from sim.overrides import apply_overrides
from sim.registry import did_you_mean
from sim.spec import (
    Fraction,
    NonNegativeDuration,
    PositiveDuration,
    Rate,
    Spec,
    located_error,
)

__all__ = [
    "ArrivalsSpec",
    "BalancerSpec",
    "MetricsSpec",
    "Problem",
    "RateChange",
    "RequestClassSpec",
    "RetrySpec",
    "Scenario",
    "ScenarioError",
    "ServerGroupSpec",
    "SessionsSpec",
    "WorkloadSpec",
    "load_scenario",
    "parse_scenario",
]

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", max_length=64)]


class RetrySpec(Spec):
    """How a client retries a failed attempt: capped exponential backoff with jitter.

    The n-th retry waits ``min(max_backoff, backoff * multiplier**(n-1))``, scaled by jitter:
    ``full`` draws uniformly in [0, that], ``equal`` in [that/2, that], ``none`` waits exactly that.
    """

    max_retries: int = Field(0, alias="max", ge=0)
    backoff: NonNegativeDuration = 0.1
    multiplier: float = Field(2.0, ge=1.0)
    max_backoff: NonNegativeDuration = 10.0
    jitter: Literal["none", "full", "equal"] = "full"
    retry_on: list[Literal["timeout", "rejected", "no_backend", "error"]] = Field(
        default_factory=lambda: ["timeout", "rejected", "no_backend", "error"]
    )


class RequestClassSpec(Spec):
    """A kind of request (browse, cart, checkout) with its own work and client behaviour."""

    name: Name
    share: Fraction | None = None
    kind: Literal["read", "write"] = "read"
    service_time: DistributionSpec
    timeout: PositiveDuration | None = None
    retries: RetrySpec = RetrySpec()


class RateChange(Spec):
    """From time ``at``, arrivals come at ``rate``; reached linearly over ``ramp`` when given."""

    at: NonNegativeDuration
    rate: Rate
    ramp: NonNegativeDuration = 0.0


class ArrivalsSpec(Spec):
    """Open-loop Poisson arrivals: users who come regardless of how the site is doing."""

    rate: Rate
    profile: list[RateChange] = Field(default_factory=list)

    @model_validator(mode="after")
    def _changes_in_order(self) -> ArrivalsSpec:
        previous_end = 0.0
        for index, change in enumerate(self.profile):
            if change.at < previous_end:
                raise located_error(
                    f".profile[{index}].at",
                    f"changes must be in time order without overlapping ramps: {change.at:g}s"
                    f" starts before the previous change ends at {previous_end:g}s",
                )
            previous_end = change.at + change.ramp
        return self


class SessionsSpec(Spec):
    """Closed-loop shoppers: each waits for an answer, thinks, then sends the next request."""

    users: int = Field(ge=1)
    think_time: DistributionSpec
    steps: list[Name] = Field(min_length=1)


class WorkloadSpec(Spec):
    arrivals: ArrivalsSpec | None = None
    sessions: SessionsSpec | None = None
    classes: list[RequestClassSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSpec:
        if self.arrivals is None and self.sessions is None:
            raise ValueError("give 'arrivals' (open loop), 'sessions' (closed loop), or both")
        names = [request_class.name for request_class in self.classes]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise located_error(f".classes[{index}].name", f"duplicate class {name!r}")
        if self.arrivals is not None:
            for index, request_class in enumerate(self.classes):
                if request_class.share is None:
                    raise located_error(
                        f".classes[{index}].share",
                        "open-loop arrivals need a share for every class",
                    )
            total = sum(request_class.share for request_class in self.classes)
            if not math.isclose(total, 1.0, abs_tol=1e-6):
                raise located_error(
                    ".classes", f"class shares must sum to 1 (100%), they sum to {total:.6g}"
                )
        if self.sessions is not None:
            for index, step in enumerate(self.sessions.steps):
                if step not in names:
                    raise located_error(
                        f".sessions.steps[{index}]",
                        f"unknown class {step!r}{did_you_mean(step, names)}; known: "
                        + ", ".join(names),
                    )
        return self


class ServerGroupSpec(Spec):
    """Identical servers: ``count`` of them, each with ``workers`` serving at once.

    A request that finds every worker busy waits in a FIFO queue of ``queue_capacity`` places
    (no limit when omitted); one that finds the queue full is rejected at once. ``speed`` divides
    service times (2.0 is twice as fast); ``weight`` is used by weighted policies.
    """

    name: Name
    count: int = Field(1, ge=1)
    workers: int = Field(1, ge=1)
    queue_capacity: int | None = Field(None, ge=0)
    speed: float = Field(1.0, gt=0)
    weight: float = Field(1.0, gt=0)
    zone: Name = "default"


class BalancerSpec(Spec):
    """The load balancer in front of the servers; ``backends`` lists server groups (default all)."""

    policy: PolicySpecField = RoundRobinSpec()
    backends: list[Name] | None = None


class MetricsSpec(Spec):
    """``step`` is the width of one row of the time series."""

    step: PositiveDuration = 10.0


class Scenario(Spec):
    """One simulated world: workload, balancer, servers, horizon and seed."""

    name: Name = "scenario"
    description: str = ""
    seed: int = Field(1, ge=0)
    duration: PositiveDuration
    warmup: NonNegativeDuration = 0.0
    workload: WorkloadSpec
    balancer: BalancerSpec = BalancerSpec()
    servers: list[ServerGroupSpec] = Field(min_length=1)
    metrics: MetricsSpec = MetricsSpec()

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        if self.warmup >= self.duration:
            raise located_error(
                ".warmup",
                f"warm-up ({self.warmup:g}s) must be shorter than the duration"
                f" ({self.duration:g}s)",
            )
        groups = [group.name for group in self.servers]
        for index, name in enumerate(groups):
            if name in groups[:index]:
                raise located_error(f".servers[{index}].name", f"duplicate group {name!r}")
        for index, name in enumerate(self.balancer.backends or []):
            if name not in groups:
                raise located_error(
                    f".balancer.backends[{index}]",
                    f"unknown server group {name!r}{did_you_mean(name, groups)}; known: "
                    + ", ".join(groups),
                )
        return self

    def backend_groups(self) -> list[ServerGroupSpec]:
        """The server groups behind the balancer, in declared order."""
        if self.balancer.backends is None:
            return list(self.servers)
        return [group for group in self.servers if group.name in self.balancer.backends]

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved scenario, every default filled in, in SI units."""
        return self.model_dump(mode="json", by_alias=True)


class Problem:
    """One thing wrong in a scenario: where (a key path) and what."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ScenarioError(Exception):
    """A scenario that cannot be used, with every problem found; the CLI exits with code 2."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{self.source}: {problem}" for problem in self.problems]
        return "\n".join(lines)


def _key_path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).startswith("function-"):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}
_TYPES = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
}


def _shown(value: Any) -> str:
    return "nothing (null)" if value is None else repr(value)


def _problem(error: dict[str, Any]) -> Problem:
    """A pydantic error in the words of a scenario author."""
    context = error.get("ctx") or {}
    path = _key_path(error["loc"])
    kind = error["type"]
    given = error.get("input")
    message = error["msg"]
    if kind == "unknown_key":
        path = f"{path}.{context['key']}" if path else context["key"]
    elif kind == "reference":
        path = f"{path}{context['path']}" if path else context["path"].lstrip(".")
    elif kind in {"value_error", "assertion_error"}:
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    elif kind == "missing":
        message = "missing required key"
    elif kind == "literal_error":
        choices = re.findall(r"'([^']*)'", context.get("expected", ""))
        message = f"expected {context.get('expected')}, got {_shown(given)}" + did_you_mean(
            str(given), choices
        )
    elif kind in _BOUNDS:
        bound = next(iter(context.values()))
        message = f"expected a number {_BOUNDS[kind]} {bound}, got {_shown(given)}"
    elif kind in _TYPES:
        message = f"expected {_TYPES[kind]}, got {_shown(given)}"
    elif kind == "string_pattern_mismatch":
        message = (
            "expected a name: a letter, then letters, digits, '_', '.' or '-'"
            f" (at most 64), got {_shown(given)}"
        )
    elif kind == "too_short":
        message = f"expected at least {context.get('min_length')} item(s), got none"
    elif kind not in {"unknown_kind", "unit", "bound", "kind_mapping", "kind_missing"}:
        message = f"{message.replace('Input should be', 'expected', 1)} (got {_shown(given)})"
    return Problem(path, message)


def parse_scenario(
    data: Any, source: str = "<scenario>", overrides: list[str] | tuple[str, ...] = ()
) -> Scenario:
    """A validated Scenario from already-parsed YAML data, after applying ``key.path=value``."""
    if not isinstance(data, dict):
        raise ScenarioError(source, [Problem("", "expected a mapping of scenario keys")])
    try:
        data = apply_overrides(data, overrides)
    except ValueError as error:
        raise ScenarioError(source, [Problem("--set", str(error))]) from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        problems = [_problem(e) for e in error.errors(include_url=False)]
        raise ScenarioError(source, problems) from None


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read, override and validate a scenario file; every failure is a :class:`ScenarioError`."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(source, [Problem("", f"cannot read file: {error.strerror}")]) from None
    except UnicodeDecodeError:
        raise ScenarioError(source, [Problem("", "not a UTF-8 text file")]) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(error, "problem", None) or str(error)
        raise ScenarioError(source, [Problem("", f"invalid YAML: {where}{reason}")]) from None
    if isinstance(data, dict) and "name" not in data:
        data = {"name": _default_name(path), **data}
    return parse_scenario(data, source, overrides)


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key written twice in one mapping is an error.

    Plain YAML keeps the last of two ``duration:`` lines without a word; a scenario should not.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _default_name(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "_.-" else "-" for c in path.stem)
    return stem if stem[:1].isalpha() else f"s-{stem}"
