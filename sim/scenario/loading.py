"""Reading a scenario at the edge: YAML, overrides, validation, and errors in the user's words.

Every mistake a user can make comes back as a :class:`ScenarioError` that names the file, the key
path (``servers[1].workers``), what was expected and, for names, the closest known one.
"""

from __future__ import annotations

import re
import reprlib
import stat
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sim.overrides import apply_overrides
from sim.registry import did_you_mean
from sim.scenario.root import Scenario
from sim.scenario.workload import SCENARIO_FOLDER
from sim.spec import BOUND_RELATIONS
from sim.units import parse_duration, parse_rate
from sim.yaml_reader import MAX_BYTES, YamlProblem, read_yaml

__all__ = ["Problem", "ScenarioError", "load_scenario", "parse_scenario", "read_text_file"]


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


_SHORT = reprlib.Repr()
"""Values quoted in messages: a few levels and items, long texts cut (a 1 MB value, or one a
thousand levels deep, is quoted in a line)."""
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = _SHORT.maxset = 5


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as YAML spells them, not Python
    return "nothing (null)" if value is None else _SHORT.repr(value)


def _quantity(given: Any) -> tuple[str, str]:
    """What a bounded value written with a unit (``'1e9/s'``) is, and the unit of its bound.
    Bounds on durations and rates are otherwise worded by their types (``sim.spec``); this
    covers those pydantic checks outside them (an optional rate's)."""
    if isinstance(given, str):
        for what, unit, parse in (
            ("a duration", " s", parse_duration),
            ("a rate", "/s", parse_rate),
        ):
            try:
                parse(given)
            except ValueError:
                continue
            return what, unit
    return "a number", ""


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
        message = f"expected {context.get('expected')}, got {_shown(given)}" + (
            did_you_mean(given, choices) if isinstance(given, str) and len(given) < 100 else ""
        )
    elif kind in BOUND_RELATIONS:
        bound = next(iter(context.values()))
        what, unit = _quantity(given)
        message = f"expected {what} {BOUND_RELATIONS[kind]} {bound}{unit}, got {_shown(given)}"
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
    data: Any,
    source: str = "<scenario>",
    overrides: list[str] | tuple[str, ...] = (),
    folder: str | Path | None = None,
) -> Scenario:
    """A validated Scenario from already-parsed YAML data, after applying ``key.path=value``.

    Relative file names in it (a trace) are read from ``folder``, else from the working folder.
    """
    if not isinstance(data, dict):
        raise ScenarioError(source, [Problem("", "expected a mapping of scenario keys")])
    try:
        data = apply_overrides(data, overrides)
    except ValueError as error:
        raise ScenarioError(source, [Problem("--set", str(error))]) from None
    try:
        context = {SCENARIO_FOLDER: str(folder)} if folder is not None else None
        return Scenario.model_validate(data, context=context)
    except ValidationError as error:
        problems = [_problem(e) for e in error.errors(include_url=False)]
        raise ScenarioError(source, [_blamed(problem, overrides) for problem in problems]) from None


def _blamed(problem: Problem, overrides: list[str] | tuple[str, ...]) -> Problem:
    """A problem at (or under) a key path that ``--set`` gave says so: the file does not hold
    the value it complains about."""
    for text in reversed(overrides):  # the last override of a path is the one that holds
        path = text.split("=", 1)[0].strip()
        if problem.path == path or problem.path.startswith((f"{path}.", f"{path}[")):
            return Problem(problem.path, f"{problem.message} (from --set)")
    return problem


def read_text_file(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of a regular file of at most :data:`MAX_BYTES` bytes.

    Raises ``ValueError`` saying why not: it is missing, not a regular file (a FIFO, a device
    such as /dev/zero: reading them may block or never end), too large, or not UTF-8 text.
    """
    path = Path(path)
    try:
        status = path.stat()
    except OSError as error:
        raise ValueError(f"cannot read {what}: {error.strerror}") from None
    if not stat.S_ISREG(status.st_mode):
        raise ValueError(f"not a regular {what} (a pipe, a device or a folder)")
    if status.st_size > MAX_BYTES:
        raise ValueError(
            f"{what} of {status.st_size:,} bytes, more than the {MAX_BYTES:,} ecsim reads"
        )
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot read {what}: {error.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ValueError(f"{what} of more than the {MAX_BYTES:,} bytes ecsim reads")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"not a UTF-8 text {what}") from None


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read, override and validate a scenario file; every failure is a :class:`ScenarioError`.

    The file is read within the bounds of :mod:`sim.yaml_reader` (size, nesting, aliases,
    digits).
    """
    path = Path(path)
    source = str(path)
    try:
        data = read_yaml(read_text_file(path))
    except YamlProblem as problem:
        raise ScenarioError(source, [Problem("", str(problem))]) from None
    except ValueError as error:
        raise ScenarioError(source, [Problem("", str(error))]) from None
    if isinstance(data, dict) and "name" not in data:
        data = {"name": _default_name(path), **data}
    return parse_scenario(data, source, overrides, folder=path.parent)


def _default_name(path: Path) -> str:
    stem = "".join(c if (c.isascii() and c.isalnum()) or c in "_.-" else "-" for c in path.stem)
    return (stem if stem[:1].isalpha() else f"s-{stem}")[:64]
