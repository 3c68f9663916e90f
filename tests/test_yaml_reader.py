"""Scenario text is read within bounds that say what they are (see :mod:`sim.yaml_reader`)."""

from __future__ import annotations

import pytest

from sim.yaml_reader import MAX_BYTES, MAX_DEPTH, MAX_DIGITS, MAX_VALUES, YamlProblem, read_yaml


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def items(count: int) -> str:
    return "[" + ",".join(["1"] * count) + "]"


def test_a_scenario_reads_as_plain_data_with_yaml_1_2_exponents():
    text = "a: 1\nb: [1, 2.5, {c: 1e-3, d: 250ms}]\nbase: &b {x: 1}\nd: {<<: *b, y: 2}\n"
    assert read_yaml(text) == {
        "a": 1,
        "b": [1, 2.5, {"c": 0.001, "d": "250ms"}],
        "base": {"x": 1},
        "d": {"x": 1, "y": 2},
    }


def test_nesting_is_read_up_to_the_bound_and_refused_past_it():
    assert read_yaml(nested(MAX_DEPTH)) is not None
    with pytest.raises(YamlProblem, match=f"nested more than {MAX_DEPTH} levels deep"):
        read_yaml(nested(MAX_DEPTH + 1))
    with pytest.raises(YamlProblem, match="line 1, column"):
        read_yaml(nested(100_000))


def test_values_are_read_up_to_the_bound_and_refused_past_it():
    assert len(read_yaml(items(MAX_VALUES - 1))) == MAX_VALUES - 1  # the list is a value too
    with pytest.raises(YamlProblem, match=f"more than {MAX_VALUES:,} values"):
        read_yaml(items(MAX_VALUES))


def test_aliases_count_as_the_copies_they_stand_for():
    bomb = "l0: &l0 [a, a, a, a, a, a, a, a, a]\n" + "".join(
        f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]\n" for n in range(1, 9)
    )
    with pytest.raises(YamlProblem, match="once its aliases are expanded"):
        read_yaml(bomb)
    assert read_yaml("a: &x [1, 2]\nb: [*x, *x]\n") == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


@pytest.mark.parametrize(
    "text, message",
    [
        ("x: &a [*a]", "the alias \\*a is inside the node &a names"),
        ("x: &a {k: {j: [1, *a]}}", "the alias \\*a is inside the node &a names"),
        ("x: *a", "the alias \\*a comes before any anchor &a"),
        ("x: &a [&a 1, *a]", "the anchor &a is defined twice"),
    ],
)
def test_an_alias_must_name_an_earlier_node_that_does_not_contain_it(text, message):
    with pytest.raises(YamlProblem, match=message):
        read_yaml(text)


def test_size_and_digits_are_bounded():
    with pytest.raises(YamlProblem, match=f"more than {MAX_BYTES:,} bytes"):
        read_yaml("# " + "x" * MAX_BYTES)
    assert read_yaml("a: " + "9" * MAX_DIGITS) == {"a": int("9" * MAX_DIGITS)}
    for number in ("9" * (MAX_DIGITS + 1), "1." + "5" * (MAX_DIGITS + 1) + "e3"):
        with pytest.raises(YamlProblem, match=f"more than {MAX_DIGITS} digits"):
            read_yaml(f"a: {number}")


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: 1\na: 2", "line 2, column 1: duplicate key 'a'"),
        ("? [1]\n: 2", "a key must be a plain name"),
        ("d: !!binary aGVsbG8=", "the tag tag:yaml.org,2002:binary is not allowed"),
        ("d: !!python/object:os.system x", "is not allowed"),
        ("d: !custom 1", "the tag !custom is not allowed"),
        ("a: [1, 2\n", "invalid YAML: line 2, column 1"),
    ],
)
def test_what_is_not_plain_data_is_refused_with_its_place(text, message):
    with pytest.raises(YamlProblem, match=message):
        read_yaml(text)
