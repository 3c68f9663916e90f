"""Reading YAML from users, within bounds: scenario files, ``--set`` values, sweep points.

YAML can say a great deal in a few bytes: a list nested five hundred deep, an anchor that
contains itself, a billion values from a dozen nested aliases, an integer of a million digits.
ecsim reads a scenario through this reader, which refuses each of those with a message that
says what the bound is, before anything builds on them (the structure is checked on the
parser's events, in C where PyYAML has it, so a refusal takes a fraction of a second):

- at most :data:`MAX_BYTES` of text (a scenario is a few kilobytes);
- nesting at most :data:`MAX_DEPTH` levels deep;
- at most :data:`MAX_VALUES` values once aliases are expanded (an alias counts as a copy);
- no alias inside the node it names (a structure that contains itself), each anchor defined
  once and before its aliases;
- numbers of at most :data:`MAX_DIGITS` digits;
- a key written twice in one mapping is an error (plain YAML keeps the last one silently),
  and keys are plain names, not lists or mappings.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_VALUES",
    "YamlProblem",
    "read_yaml",
]

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_VALUES = 100_000
MAX_DIGITS = 100

_TOO_MANY_VALUES = (
    f"more than {MAX_VALUES:,} values once its aliases are expanded (a scenario holds a few"
    " hundred)"
)
_LONG_NUMBER = re.compile(rf"[0-9]{{{MAX_DIGITS + 1},}}")


class YamlProblem(ValueError):
    """Text that is not YAML ecsim will read; ``where`` is ``line L, column C: `` or empty."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where}{message}")


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


_FAST = yaml.__with_libyaml__
"""Whether PyYAML has its C parser (its wheels do): 100,000 values then read in a fraction of
a second, against four seconds in pure Python."""


def _check_events(text: str) -> None:
    """Refuse, from the parser's events and before any node is built, text nested too deep,
    with too many values, or with an alias inside the node it names."""
    depth = values = 0
    latest: dict[str, int] = {}  # anchor -> the event that defines it
    open_nodes: list[int | None] = []  # the anchor definitions of the collections now open
    events = yaml.parse(text, Loader=yaml.CSafeLoader if _FAST else yaml.SafeLoader)
    for number, event in enumerate(events):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in latest:
                raise YamlProblem(
                    f"the alias *{event.anchor} comes before any anchor &{event.anchor}",
                    _where(event.start_mark),
                )
            if latest[event.anchor] in open_nodes:
                raise YamlProblem(
                    f"the alias *{event.anchor} is inside the node &{event.anchor} names: a"
                    " structure that contains itself has no end",
                    _where(event.start_mark),
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            open_nodes.pop()
            continue
        elif not isinstance(event, yaml.NodeEvent):
            continue
        values += 1
        if values > MAX_VALUES:
            raise YamlProblem(_TOO_MANY_VALUES, _where(event.start_mark))
        if isinstance(event, yaml.AliasEvent):
            continue
        if event.anchor is not None:
            if event.anchor in latest:
                raise YamlProblem(
                    f"the anchor &{event.anchor} is defined twice", _where(event.start_mark)
                )
            latest[event.anchor] = number
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlProblem(
                    f"nested more than {MAX_DEPTH} levels deep (a scenario needs a handful)",
                    _where(event.start_mark),
                )
            open_nodes.append(number if event.anchor is not None else None)


class _BoundedLoader(yaml.CSafeLoader if _FAST else yaml.SafeLoader):
    """YAML's safe loader, strict about keys, numbers and tags (see the module docstring); the
    structure's bounds are checked before, by :func:`_check_events`."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # resolve `<<:` merge keys first: they are not repeats
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                what = "an empty key (null)" if key is None else "a list or a mapping"
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a plain name, not {what}", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        if _LONG_NUMBER.search(node.value):
            raise YamlProblem(f"a number of more than {MAX_DIGITS} digits", _where(node.start_mark))
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node):
        if _LONG_NUMBER.search(node.value):
            raise YamlProblem(f"a number of more than {MAX_DIGITS} digits", _where(node.start_mark))
        return super().construct_yaml_float(node)

    def construct_undefined(self, node):
        raise YamlProblem(f"the tag {node.tag} is not allowed here", _where(node.start_mark))


# YAML 1.2 reads 1e-3 as a number; PyYAML's YAML 1.1 rules want a dot (1.0e-3) and would read
# it as the text "1e-3". Users write the former.
_BoundedLoader.yaml_implicit_resolvers = {
    key: list(value) for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)
_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _BoundedLoader.construct_yaml_float)
_BoundedLoader.add_constructor("tag:yaml.org,2002:binary", _BoundedLoader.construct_undefined)
_BoundedLoader.add_constructor(None, _BoundedLoader.construct_undefined)


def _expanded_size(node: yaml.Node) -> int:
    """Values the node stands for once every alias is copied out, up to just past the bound."""
    sizes: dict[int, int] = {}

    def size(current: yaml.Node) -> int:
        known = sizes.get(id(current))
        if known is not None:
            return known
        total = 1
        if isinstance(current, yaml.SequenceNode):
            children = current.value
        elif isinstance(current, yaml.MappingNode):
            children = [part for pair in current.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                break
        sizes[id(current)] = total
        return total

    return size(node)


def _invalid(error: yaml.YAMLError) -> YamlProblem:
    where = _where(getattr(error, "problem_mark", None))
    reason = getattr(error, "problem", None) or str(error)
    return YamlProblem(f"invalid YAML: {where}{reason}")


def read_yaml(text: str) -> Any:
    """The data in ``text``, or :class:`YamlProblem` saying what is wrong with it and where."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise YamlProblem(f"more than {MAX_BYTES:,} bytes: a scenario is a few kilobytes")
    try:
        _check_events(text)
        loader = _BoundedLoader(text)
    except yaml.YAMLError as error:
        raise _invalid(error) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_VALUES:
            raise YamlProblem(_TOO_MANY_VALUES)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise _invalid(error) from None
    except RecursionError:  # aliases of aliases, each within the bound, nest past Python's stack
        raise YamlProblem(
            f"nested more than {MAX_DEPTH} levels deep once its aliases are expanded"
        ) from None
    finally:
        loader.dispose()
