"""``key.path=value`` overrides of scenario data, as given by ``--set`` and by sweeps.

A path is dotted keys with list indices: ``servers[1].workers=8``, ``balancer.policy=random``,
``workload.arrivals.rate=1200/s``. The value is read as YAML, so ``8`` is a number, ``[a, b]`` a
list and ``{kind: exponential, mean: 40ms}`` a mapping. Overrides apply to the raw data before
validation, so an overridden value is checked exactly like one written in the file.
"""

from __future__ import annotations

import csv
import io
import json
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


def read_points(
    path: Any, blank_keeps: bool = False, most: int = 10_000, text_columns: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The rows of a CSV file of points (a sweep's, or designs to compare): a column per key
    path, a row per point, each cell read as YAML (``8``, ``random``, ``{kind: codel}``).

    The file is read as a scenario is (a regular UTF-8 file within the size bound; a byte-order
    mark, as spreadsheet programs write it, is skipped); its header names each key path once.
    With ``blank_keeps``, a blank cell sets nothing (the row keeps the scenario's value); else
    it is YAML's null. Cells of ``text_columns`` (names, not values) are kept as their text.
    Raises ``ValueError``, naming the file and line, for an unreadable file,
    a header without key paths or with one twice, no rows or more than ``most``, a row of the
    wrong length, or a cell that is not a readable value.
    """
    from sim.scenario.loading import read_text_file  # the scenario package imports this module

    text = read_text_file(path, "points file")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ValueError(f"{path} has no header naming the key paths")
    header = [cell.strip() for cell in rows[0]]
    for index, name in enumerate(header):
        if not name:
            raise ValueError(f"{path}: column {index + 1} has no key path in the header")
        if name in header[:index]:
            raise ValueError(f"{path}: the column {name!r} is given twice")
    body = [
        (number, row)
        for number, row in enumerate(rows[1:], start=2)
        if any(cell.strip() for cell in row)
    ]
    if not body:
        raise ValueError(f"{path} has no rows")
    if len(body) > most:
        raise ValueError(f"{path} has {len(body):,} points, more than {most:,}")
    points = []
    for number, row in body:
        if len(row) != len(header):
            raise ValueError(f"{path}, line {number}: expected one cell per column")
        try:
            points.append(
                {
                    key: value.strip() if key in text_columns else read_yaml(value)
                    for key, value in zip(header, row, strict=True)
                    if not (blank_keeps and not value.strip())
                }
            )
        except YamlProblem as problem:
            raise ValueError(
                f"{path}, line {number}: a cell is not a readable value ({problem})"
            ) from None
    return points


def read_alternatives(path: Any, most: int = 10_000) -> dict[str, dict[str, Any]]:
    """The alternatives of a CSV file, in order (the first is the baseline): label -> the key
    paths its non-blank cells set. An ``alternative`` column names the rows (as written: ``no``
    stays ``no``); without it a row is named by its changes. Raises ``ValueError`` as
    :func:`read_points` does, and for a name given twice."""
    alternatives: dict[str, dict[str, Any]] = {}
    for row in read_points(path, blank_keeps=True, most=most, text_columns=("alternative",)):
        label = row.pop("alternative", None)
        if label is None:
            label = "; ".join(
                f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                for key, value in row.items()
            )
        label = str(label or "as is")
        if label in alternatives:
            raise ValueError(f"{path}: the alternative {label!r} is given twice")
        alternatives[label] = row
    return alternatives
