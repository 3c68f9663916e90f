"""The layering of shared/STYLE.md, enforced: only the model and experiments import simpy, and
analysis, theory, plots and results never import the model; no global random state anywhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sim"
MODULES = sorted(PACKAGE.rglob("*.py"))


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_only_the_model_and_experiments_import_simpy(path):
    allowed = relative(path).startswith("sim/model/") or relative(path) == "sim/experiment.py"
    uses_simpy = any(name == "simpy" or name.startswith("simpy.") for name in imports(path))
    assert allowed or not uses_simpy


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in MODULES
        if p.stem
        in {"analysis", "theory", "plots", "results", "metrics", "report", "units", "streams"}
    ],
    ids=relative,
)
def test_pure_modules_never_import_the_model(path):
    assert not any(
        name.startswith("sim.model") or name == "sim.experiment" for name in imports(path)
    )


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if p.stem == "write_log" or p.parent.name == "replication"],
    ids=relative,
)
def test_the_write_log_and_the_replication_strategies_need_no_simulation_engine(path):
    """They decide and remember from what the data tier tells them; it alone holds the clock."""
    assert not any(name == "simpy" or name.startswith("simpy.") for name in imports(path))


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_no_global_random_state(path):
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert all(alias.name != "random" for alias in node.names), "use a named stream"
        if isinstance(node, ast.ImportFrom):
            assert node.module not in {"random", "numpy.random"} or all(
                alias.name in {"Generator", "SeedSequence", "PCG64"} for alias in node.names
            ), "use a named stream"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner = node.value
            if (
                isinstance(inner.value, ast.Name)
                and inner.value.id == "np"
                and inner.attr == "random"
            ):
                assert node.attr in {"Generator", "SeedSequence", "PCG64", "default_rng"}, (
                    f"np.random.{node.attr} uses global state"
                )


def test_pure_modules_do_not_load_the_engine_even_indirectly():
    """Importing analysis, theory, results or the scenario must not pull in simpy or the model."""
    import subprocess
    import sys

    code = (
        "import sys, sim.analysis, sim.theory, sim.results, sim.scenario, sim.report; "
        "loaded = [m for m in sys.modules if m == 'simpy' or m.startswith('sim.model.cluster')]; "
        "print(loaded)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


HEAVY = ("pandas", "scipy", "matplotlib", "dask", "pyarrow")


@pytest.mark.parametrize(
    "arguments",
    [
        ["--help"],
        ["validate", "scenarios/trading_system.yaml"],
        ["list"],
        ["run", "tests/invalid_scenarios/unknown_balancing_policy.yaml"],
        ["availability", "tests/invalid_scenarios/unknown_balancing_policy.yaml"],
    ],
    ids=" ".join,
)
def test_the_command_line_starts_without_the_heavy_libraries(arguments):
    """Start-up is paid on every command: help, validation, listings and a run that the
    scenario's own mistakes stop must not load the data-frame, statistics or plotting
    libraries (each costs a few hundred milliseconds)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from sim.cli import main\n"
        "try:\n"
        f"    main({arguments!r}, standalone_mode=False)\n"
        "finally:\n"
        f"    print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
    )
    assert done.returncode == (2 if "invalid_scenarios" in arguments[-1] else 0), done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
