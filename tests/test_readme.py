"""Every number in the README comes from a command in the repository: docs/readme.py writes each
generated block, and the suite runs it (on short horizons) so it cannot rot."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _generator():
    spec = importlib.util.spec_from_file_location("readme_generator", ROOT / "docs" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_metric_table_is_the_catalogue():
    generator = _generator()
    assert generator.block(README.read_text(encoding="utf-8"), "metrics") == generator.metrics(
        False, Path(".")
    )


def test_the_readme_limits_are_the_bounds_in_the_code():
    generator = _generator()
    text = README.read_text(encoding="utf-8")
    assert generator.block(text, "limits") == generator.limits(False, Path("."))
    limits = generator.block(text, "limits")
    assert "| `servers[].workers` | ≤ 100,000 |" in limits  # a field of a list item
    assert "| `balancer.slow_start` | ≤ 86,400 s |" in limits  # a duration, in seconds
    assert "| `workload.arrivals.profile[].rate` | ≤ 10,000,000/s |" in limits  # a rate
    assert "failure detector `phi_accrual`: `window` | ≤ 10,000" in limits  # a registered kind
    assert "distribution `erlang`: `k` | ≤ 10,000" in limits  # a kind met inside other specs


def test_every_generated_block_of_the_readme_exists_and_was_generated():
    generator = _generator()
    text = README.read_text(encoding="utf-8")
    for name in generator.BLOCKS:
        content = generator.block(text, name)
        assert "docs/readme.py" not in content, f"block {name!r} was never generated"


@pytest.mark.slow
def test_the_readme_generator_runs_every_block(tmp_path):
    copy = tmp_path / "README.md"
    shutil.copy(README, copy)
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "readme.py"), "--quick", "--readme", str(copy)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    generator = _generator()
    text = copy.read_text(encoding="utf-8")
    assert "$ ecsim availability scenarios/four_nines.yaml" in generator.block(text, "four-nines")
    assert re.search(r"rank .* verdict", generator.block(text, "slow-server"))
    assert "data.lost_writes" in generator.block(text, "replication")
    examples = generator.block(text, "examples")
    assert all(f"`{path.name}`" in examples for path in (ROOT / "scenarios").glob("*.yaml"))
    assert "speed-up" in generator.block(text, "sweep-benchmark")
