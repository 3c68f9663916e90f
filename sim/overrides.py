"""``key.path=value`` overrides of scenario data, as given by ``--set`` and by sweeps.

A path is dotted keys with list indices: ``servers[1].workers=8``, ``balancer.policy=random``,
``workload.arrivals.rate=1200/s``. The value is read as YAML, so ``8`` is a number, ``[a, b]`` a
list and ``{kind: exponential, mean: 40ms}`` a mapping. Overrides apply to the raw data before
validation, so an overridden value is checked exactly like one written in the file.
"""

from __future__ import annotations

import re
from typing import Any

from sim.yaml_reader import YamlProblem, read_yaml

__all__ = ["apply_overrides", "parse_alternatives", "parse_override", "set_path"]

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


MAX_PATH_PARTS = 32
"""The deepest key path: scenarios nest a few levels, so a longer path is a mistake."""


def split_path(path: str) -> list[str | int]:
    """``servers[1].workers`` as ``['servers', 1, 'workers']``.

    Raises ``ValueError`` for a path that cannot be read or is deeper than
    :data:`MAX_PATH_PARTS`."""
    parts: list[str | int] = []
    position = 0
    text = path.strip()
    if text.count(".") + text.count("[") >= MAX_PATH_PARTS:
        raise ValueError(
            f"key path {_short(path)} is deeper than {MAX_PATH_PARTS} keys; no scenario key is"
        )
    while position < len(text):
        if text[position] == "." and parts:
            position += 1
        match = _PART.match(text, position)
        if not match:
            raise ValueError(f"cannot read key path {_short(path)}")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if not parts or not isinstance(parts[0], str):
        raise ValueError(f"cannot read key path {_short(path)}")
    return parts


def _short(text: str, most: int = 80) -> str:
    """A text quoted for a message, cut to ``most`` characters."""
    return repr(text) if len(text) <= most else repr(text[: most - 3] + "...")


def parse_override(text: str) -> tuple[str, Any]:
    """``'a.b=3'`` as ``('a.b', 3)``; the value is YAML."""
    if "=" not in text:
        raise ValueError(f"expected key.path=value, got {text!r}")
    path, raw = text.split("=", 1)
    try:
        value = read_yaml(raw) if raw.strip() else ""
    except YamlProblem as problem:
        raise ValueError(f"cannot read the value of {path.strip()!r}: {problem}") from None
    return path.strip(), value


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in ``data`` in place, creating missing mappings along the way."""
    parts = split_path(path)
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        shown = path if last else _join(parts[: depth + 1])
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ValueError(f"{_join(parts[:depth])} is not a list, cannot index [{part}]")
            if part >= len(node):
                items = f"{len(node)} item" + ("" if len(node) == 1 else "s")
                raise ValueError(f"{shown}: index out of range (the list has {items})")
        elif not isinstance(node, dict):
            raise ValueError(f"{_join(parts[:depth])} is not a mapping, cannot set {part!r}")
        if last:
            node[part] = value
        else:
            if isinstance(part, str) and node.get(part) is None:
                if isinstance(parts[depth + 1], int):
                    raise ValueError(f"{shown} does not exist, cannot index [{parts[depth + 1]}]")
                node[part] = {}
            node = node[part]


def _join(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _unshared_copy(data: Any) -> Any:
    """A deep copy in which no two places share an object, as YAML anchors make them do:
    overriding ``classes[0].service_time`` must not change a class that reused its anchor."""
    if isinstance(data, dict):
        return {key: _unshared_copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_unshared_copy(item) for item in data]
    return data


def parse_alternatives(text: str) -> tuple[str, list[Any]]:
    """``'servers[0].count=4,6,8'`` as ``('servers[0].count', [4, 6, 8])``.

    Values are split at commas outside brackets and braces, so a value can be a YAML mapping:
    ``service_time={kind: exponential, mean: 40ms},{kind: deterministic, value: 40ms}``.
    """
    if "=" not in text:
        raise ValueError(f"expected key.path=value1,value2,..., got {text!r}")
    path, raw = text.split("=", 1)
    pieces, depth, current = [], 0, ""
    for character in raw:
        if character in "[{":
            depth += 1
        elif character in "]}":
            depth -= 1
        if character == "," and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += character
    pieces.append(current)
    values = []
    for piece in pieces:
        try:
            values.append(read_yaml(piece) if piece.strip() else "")
        except YamlProblem as problem:
            raise ValueError(
                f"cannot read the value {piece!r} of {path.strip()!r}: {problem}"
            ) from None
    split_path(path)  # the path must be readable
    return path.strip(), values


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``data`` with every ``key.path=value`` override applied in order."""
    if not overrides:
        return data
    result = _unshared_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        set_path(result, path, value)
    return result
