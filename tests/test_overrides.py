"""``key.path=value`` overrides (``--set`` and sweeps) edit a copy of the raw scenario data."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sim.overrides import apply_overrides, set_path
from sim.scenario import ScenarioError, load_scenario, parse_scenario

BASELINE = Path(__file__).resolve().parent.parent / "scenarios" / "baseline.yaml"


def scenario_data() -> dict:
    return {
        "duration": "10m",
        "workload": {
            "arrivals": {"rate": "100/s"},
            "classes": [{"name": "browse", "service_time": {"kind": "deterministic"}}],
        },
        "balancer": {"policy": "round_robin"},
        "servers": [{"name": "web", "workers": 4}, {"name": "api", "workers": 2}],
    }


def test_a_nested_key_is_set_in_place():
    data = scenario_data()
    set_path(data, "balancer.policy", "random")
    assert data["balancer"] == {"policy": "random"}


def test_a_list_index_selects_one_item():
    data = scenario_data()
    set_path(data, "servers[1].workers", 8)
    assert data["servers"] == [{"name": "web", "workers": 4}, {"name": "api", "workers": 8}]


def test_missing_mappings_are_created_along_the_path():
    data = scenario_data()
    set_path(data, "metrics.step", "5s")
    set_path(data, "workload.sessions.think_time.mean", "5s")
    assert data["metrics"] == {"step": "5s"}
    assert data["workload"]["sessions"] == {"think_time": {"mean": "5s"}}


def test_an_empty_value_on_the_path_becomes_a_mapping():
    data = {"balancer": None}
    set_path(data, "balancer.policy", "random")
    assert data == {"balancer": {"policy": "random"}}


def test_an_index_past_the_end_of_a_list_is_an_error_naming_the_path():
    with pytest.raises(ValueError, match=r"servers\[2\]: index out of range \(the list has 2"):
        set_path(scenario_data(), "servers[2].workers", 8)


def test_indexing_something_that_is_not_a_list_is_an_error_naming_the_path():
    with pytest.raises(ValueError, match=r"balancer is not a list, cannot index \[0\]"):
        set_path(scenario_data(), "balancer[0]", "random")


def test_a_key_below_something_that_is_not_a_mapping_is_an_error_naming_the_path():
    with pytest.raises(ValueError, match="duration is not a mapping, cannot set 'unit'"):
        set_path(scenario_data(), "duration.unit", "s")


@pytest.mark.parametrize("path", ["", "[0].workers", "servers[x]", "servers..workers", ".a"])
def test_an_unreadable_key_path_is_an_error_quoting_it(path):
    with pytest.raises(ValueError, match="cannot read key path"):
        set_path(scenario_data(), path, 1)


@pytest.mark.parametrize(
    ("override", "path", "value"),
    [
        ("servers[0].workers=8", ("servers", 0, "workers"), 8),
        ("servers[0].speed=1.5", ("servers", 0, "speed"), 1.5),
        ("duration=30m", ("duration",), "30m"),
        ("balancer.backends=[web, api]", ("balancer", "backends"), ["web", "api"]),
        (
            "balancer.policy={kind: power_of_two_choices, choices: 3}",
            ("balancer", "policy"),
            {"kind": "power_of_two_choices", "choices": 3},
        ),
        (
            "workload.classes[0].service_time={kind: exponential, mean: 40ms}",
            ("workload", "classes", 0, "service_time"),
            {"kind": "exponential", "mean": "40ms"},
        ),
        ("balancer.backends=null", ("balancer", "backends"), None),
        ("description=", ("description",), ""),
        ("description=a=b", ("description",), "a=b"),
    ],
)
def test_an_override_value_is_read_as_yaml(override, path, value):
    node = apply_overrides(scenario_data(), [override])
    for part in path:
        node = node[part]
    assert node == value


def test_overrides_apply_in_order_so_the_last_one_wins():
    data = apply_overrides(scenario_data(), ["servers[0].workers=8", "servers[0].workers=16"])
    assert data["servers"][0]["workers"] == 16


def test_overriding_leaves_the_original_data_untouched():
    original = scenario_data()
    before = copy.deepcopy(original)
    apply_overrides(original, ["servers[0].workers=8", "metrics.step=5s", "duration=1h"])
    assert original == before


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("servers[0].workers", "expected key.path=value, got 'servers[0].workers'"),
        ("servers[0].workers=[8", "cannot read the value of 'servers[0].workers'"),
        ("servers[5].workers=8", "servers[5]: index out of range"),
    ],
)
def test_a_bad_override_is_an_error_naming_it(override, message):
    with pytest.raises(ValueError) as raised:
        apply_overrides(scenario_data(), [override])
    assert message in str(raised.value)


def test_an_override_lands_in_the_loaded_scenario():
    assert load_scenario(BASELINE).servers[0].count != 3
    assert load_scenario(BASELINE, ["servers[0].count=3"]).servers[0].count == 3


def test_zero_spares_is_a_group_without_standby_so_a_sweep_can_start_at_zero():
    four_nines = BASELINE.parent / "four_nines.yaml"
    assert load_scenario(four_nines).servers[0].standby.count >= 1
    group = load_scenario(four_nines, ["servers[0].standby.count=0"]).servers[0]
    assert group.standby is None
    assert group.server_names() == [f"web-{n}" for n in range(1, group.count + 1)]


def test_an_overridden_value_is_validated_like_one_written_in_the_file():
    with pytest.raises(ScenarioError) as raised:
        load_scenario(BASELINE, ["servers[0].workers=0"])
    assert [problem.path for problem in raised.value.problems] == ["servers[0].workers"]


def test_a_problem_with_an_overridden_value_says_it_came_from_the_option():
    """The file does not hold the value the message quotes: the message says where it is."""
    with pytest.raises(ScenarioError) as raised:
        load_scenario(
            BASELINE,
            ["servers[0].workers=2", "servers[0].workers=0", "balancer={policy: round_robbin}"],
        )
    messages = {problem.path: problem.message for problem in raised.value.problems}
    assert messages["servers[0].workers"] == "expected a whole number >= 1, got 0 (from --set)"
    assert messages["balancer.policy"].endswith("(from --set)")  # under an overridden mapping
    data = scenario_data()
    data["servers"][1]["workers"] = -1  # in the "file": no tag
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(data, overrides=["servers[0].count=true"])
    messages = {problem.path: problem.message for problem in raised.value.problems}
    assert messages["servers[0].count"] == "expected a whole number, got true (from --set)"
    assert messages["servers[1].workers"] == "expected a whole number >= 1, got -1"


def test_an_override_that_cannot_be_applied_is_a_scenario_error_about_the_option():
    with pytest.raises(ScenarioError) as raised:
        load_scenario(BASELINE, ["servers[3].count=3"])
    [problem] = raised.value.problems
    assert problem.path == "--set"
    assert "servers[3]: index out of range" in problem.message


def test_indexing_a_list_that_does_not_exist_says_so():
    with pytest.raises(ValueError, match=r"workload.arrivals.profile does not exist"):
        apply_overrides(
            {"workload": {"arrivals": {"rate": 1}}}, ["workload.arrivals.profile[0].at=1"]
        )
