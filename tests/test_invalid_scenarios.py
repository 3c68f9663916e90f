"""Every mistake in a scenario file is reported with the file, the key path and what was wrong.

Each file in ``tests/invalid_scenarios/`` holds one mistake, and its first line promises what the
report says about it: ``# expect: <key path> | <part of the message>`` (an empty key path for
mistakes in the file as a whole, such as broken YAML). Adding a case is adding a file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli import main
from sim.scenario import ScenarioError, load_scenario

FOLDER = Path(__file__).resolve().parent / "invalid_scenarios"
INVALID_SCENARIOS = sorted(FOLDER.glob("*.yaml"))
EXPECT_PREFIX = "# expect:"


def expectation(scenario_file: Path) -> tuple[str, str]:
    """The key path and the message fragment promised by the file's first line."""
    first_line = scenario_file.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith(EXPECT_PREFIX), (
        f"{scenario_file.name} must start with '{EXPECT_PREFIX} <key path> | <message>'"
    )
    key_path, message = first_line.removeprefix(EXPECT_PREFIX).split("|", 1)
    return key_path.strip(), message.strip()


def reports(text: str, scenario_file: Path, key_path: str, message: str) -> bool:
    """Whether a line of ``text`` names the file, then the key path, and says ``message``."""
    location = f"{scenario_file}: {key_path}: " if key_path else f"{scenario_file}: "
    return any(line.strip().startswith(location) and message in line for line in text.splitlines())


each_invalid_scenario = pytest.mark.parametrize(
    "scenario_file", INVALID_SCENARIOS, ids=[path.stem for path in INVALID_SCENARIOS]
)


def test_the_folder_holds_enough_cases_that_the_parametrization_cannot_silently_shrink():
    assert len(INVALID_SCENARIOS) >= 20


@each_invalid_scenario
def test_loading_names_the_file_the_key_path_and_the_mistake(scenario_file):
    key_path, message = expectation(scenario_file)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(scenario_file)
    error = raised.value
    assert len(error.problems) == 1, "one mistake is one problem, not a cascade"
    assert scenario_file.name in str(error)
    assert reports(str(error), scenario_file, key_path, message), str(error)


@each_invalid_scenario
def test_validate_exits_with_code_2_and_names_the_key_path(scenario_file):
    key_path, message = expectation(scenario_file)
    result = CliRunner().invoke(main, ["validate", str(scenario_file)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert reports(result.stderr, scenario_file, key_path, message), result.stderr


@each_invalid_scenario
def test_run_refuses_the_scenario_with_exit_code_2_and_names_the_key_path(scenario_file, tmp_path):
    key_path, message = expectation(scenario_file)
    arguments = ["run", str(scenario_file), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    assert reports(result.stderr, scenario_file, key_path, message), result.stderr
