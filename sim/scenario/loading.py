"""Reading a scenario at the edge: YAML, overrides, validation, and errors in the user's words.

Every mistake a user can make comes back as a :class:`ScenarioError` that names the file, the key
path (``servers[1].workers``), what was expected and, for names, the closest known one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sim.overrides import apply_overrides
from sim.registry import did_you_mean
from sim.scenario.root import Scenario

__all__ = ["Problem", "ScenarioError", "load_scenario", "parse_scenario"]


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
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # resolve `<<:` merge keys first: they are not repeats
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain name, not a list or a mapping",
                    key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _default_name(path: Path) -> str:
    stem = "".join(c if (c.isascii() and c.isalnum()) or c in "_.-" else "-" for c in path.stem)
    return (stem if stem[:1].isalpha() else f"s-{stem}")[:64]
