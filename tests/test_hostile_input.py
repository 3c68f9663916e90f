"""Hostile and careless input is answered quickly, with exit code 2 and a message, never a
traceback, a hang or an exhausted machine.

The inputs here are too large or too odd to keep as files in ``tests/invalid_scenarios/`` (a
10 MB scenario, an alias bomb, a FIFO, /dev/zero, a points file in latin-1), so each is made in
the test. Every command runs as a real ``ecsim`` process under limits the answer must fit in:
5 s of CPU time and 1 GiB of address space (the kernel ends the process otherwise, and the
test fails on the signal). A wall-clock timeout catches what blocks without using the CPU,
such as a read from a FIFO nobody writes to. Before the loader's bounds, the alias bomb took
2.85 GB and four minutes, a million-item list 775 MB and 65 s, and a FIFO blocked forever.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # sixty real processes: a minute; tests/test_yaml_reader.py is fast

CPU_LIMIT_S = 5
MEMORY_LIMIT_BYTES = 1 << 30
WALL_LIMIT_S = 60  # only a process blocked on I/O gets near this: it uses no CPU time

SCENARIO = """\
duration: 10s
metrics: {step: 5s}
workload:
  arrivals: {rate: 20/s}
  classes: [{name: r, share: 1, service_time: {kind: exponential, mean: 40ms}}]
servers: [{name: web, count: 2}]
"""


def within_limits() -> None:  # pragma: no cover - runs in the child process
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def ecsim(*arguments: str, limited: bool = True) -> subprocess.CompletedProcess:
    """Run ecsim as a user would; a process the kernel stopped has a negative return code."""
    return subprocess.run(
        [sys.executable, "-m", "sim", *arguments],
        capture_output=True,
        text=True,
        timeout=WALL_LIMIT_S,
        preexec_fn=within_limits if limited else None,
        stdin=subprocess.DEVNULL,
    )


def refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, no traceback, and a message holding every fragment."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr[-2000:])


def alias_bomb(levels: int = 9) -> str:
    """The 'billion laughs': each level holds nine aliases of the one before (9**9 leaves)."""
    lines = ["zzz:", "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


HOSTILE_SCENARIOS = {
    "a list nested 500 deep": (
        SCENARIO + "zzz: " + "[" * 500 + "]" * 500 + "\n",
        "nested more than 64 levels deep",
    ),
    "a recursive alias": (SCENARIO + "zzz: &a [*a]\n", "contains itself"),
    "a warm-up of 400 digits": (SCENARIO + "warmup: " + "9" * 400 + "\n", "more than 100 digits"),
    "a 5,000-digit integer": (
        SCENARIO.replace("duration: 10s", "duration: " + "1" * 5000),
        "more than 100 digits",
    ),
    "a billion laughs": (SCENARIO + alias_bomb(), "more than 100,000 values"),
    "a 10 MB file": (SCENARIO + "# " + "x" * 10_000_000 + "\n", "more than the 1,000,000"),
    "a million-item list": (
        SCENARIO + "zzz: [" + ", ".join(["1"] * 1_000_000) + "]\n",
        "more than the 1,000,000",
    ),
    "400,000 items within the size bound": (
        SCENARIO + "zzz: [" + ",".join(["1"] * 400_000) + "]\n",
        "more than 100,000 values",
    ),
    "spares in the hundred quintillions": (
        SCENARIO.replace("count: 2}", "count: 2, standby: {count: 100000000000000000000}}"),
        "servers[0].standby.count",
    ),
}


@pytest.mark.parametrize("command", [["validate"], ["run", "--seed", "3"]], ids=["validate", "run"])
@pytest.mark.parametrize("case", list(HOSTILE_SCENARIOS))
def test_a_hostile_scenario_is_refused_within_the_limits(case, command, tmp_path):
    text, fragment = HOSTILE_SCENARIOS[case]
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    out = ["--out", str(tmp_path / "out")] if command[0] == "run" else []
    refused(ecsim(command[0], str(path), *command[1:], *out), str(path), fragment)


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_a_device_or_a_pipe_is_not_read_as_a_scenario(device, tmp_path):
    if device == "fifo":
        device = str(tmp_path / "scenario.yaml")
        os.mkfifo(device)  # nobody writes: opening it to read would block forever
    refused(ecsim("validate", device), device, "not a regular file")


@pytest.fixture
def scenario(tmp_path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


FLAGS = {
    "a 400-digit seed": (["run", "--seed", "9" * 400], ["--seed", "0<=x<=9223372036854775807"]),
    "a negative seed": (["run", "--seed", "-1"], ["--seed"]),
    "workers beyond the bound": (
        ["run", "--replications", "2", "--workers", "10**6"],
        ["--workers"],
    ),
    "replications beyond the bound": (["run", "--replications", "1000001"], ["--replications"]),
    "a scheduler that is not an address": (
        ["sweep", "--param", "servers[0].workers=1,2", "--scheduler", "notaurl"],
        ["'notaurl' is not a Dask scheduler address"],
    ),
    "a scheduler without a host": (
        ["sweep", "--param", "servers[0].workers=1,2", "--scheduler", "tcp://"],
        ["'tcp://' is not a Dask scheduler address"],
    ),
    "an http scheduler": (
        ["compare", "--balancers", "random,round_robin", "--scheduler", "http://host"],
        ["'http://host' is not a Dask scheduler address"],
    ),
    "a scheduler port beyond 65535": (
        ["sweep", "--param", "servers[0].workers=1,2", "--scheduler", "tcp://localhost:99999"],
        ["is not a Dask scheduler address"],
    ),
    "availability over nan years": (["availability", "--years", "nan"], ["--years", "'nan'"]),
    "availability over infinite years": (["availability", "--years", "inf"], ["--years"]),
    "years written with a unit": (
        ["availability", "--years", "10y"],
        ["--years", "'10y' is not a number (expected one in the range"],
    ),
    "a parameter the scenario does not have": (
        ["sweep", "--param", "nosuch=1,2"],
        ["nosuch: unknown key 'nosuch'"],
    ),
    "a parameter with a typo": (
        ["sweep", "--param", "servers[0].wrokers=1,2"],
        ["did you mean 'workers'"],
    ),
    "an override of a value the field cannot take": (
        ["run", "--set", "servers[0].count=true"],
        ["servers[0].count"],
    ),
}


@pytest.mark.parametrize("case", list(FLAGS))
def test_a_bad_flag_value_is_refused_naming_the_flag(case, scenario, tmp_path):
    arguments, fragments = FLAGS[case]
    command, *rest = arguments
    result = ecsim(command, str(scenario), *rest, "--out", str(tmp_path / "out"))
    refused(result, *fragments)
    assert not (tmp_path / "out").exists(), "a refused command writes nothing"


def points_file(tmp_path: Path, content: bytes | None) -> str:
    path = tmp_path / "points.csv"
    if content is None:
        os.mkfifo(path)
    else:
        path.write_bytes(content)
    return str(path)


BAD_POINTS = {
    "latin-1": ("description\ncaf\xe9\n".encode("latin-1"), "not a UTF-8 text points file"),
    "utf-16": ("servers[0].workers\n1\n".encode("utf-16"), "not a UTF-8 text points file"),
    "a FIFO": (None, "not a regular points file"),
    "duplicate columns": (
        b"servers[0].workers,servers[0].workers\n1,2\n",
        "the column 'servers[0].workers' is given twice",
    ),
    "an empty column name": (b"servers[0].workers,\n1,2\n", "column 2 has no key path"),
    "a short row": (b"servers[0].workers,servers[0].count\n1\n", "line 2: expected one cell"),
    "a cell that is not a value": (b"servers[0].workers\n[1\n", "line 2: a cell is not a readable"),
    "no rows": (b"servers[0].workers\n\n", "has no rows"),
}


@pytest.mark.parametrize("case", list(BAD_POINTS))
def test_a_bad_points_file_is_refused_naming_the_flag(case, scenario, tmp_path):
    content, fragment = BAD_POINTS[case]
    path = points_file(tmp_path, content)
    result = ecsim("sweep", str(scenario), "--points", path, "--out", str(tmp_path / "out"))
    refused(result, "--points", fragment)


def test_a_points_file_with_a_byte_order_mark_is_read_as_spreadsheets_write_it(scenario, tmp_path):
    path = points_file(tmp_path, b"\xef\xbb\xbfservers[0].workers\r\n1\r\n2\r\n")
    out = tmp_path / "out"
    result = ecsim(
        "sweep", str(scenario), "--points", path, "--workers", "1", "--out", str(out), limited=False
    )
    assert result.returncode == 0, result.stderr
    sweep = (out / "sweep.csv").read_text(encoding="utf-8").splitlines()
    assert sweep[0].startswith("point,servers[0].workers,"), sweep[0]
    assert [line.split(",")[1] for line in sweep[1:]] == ["1", "2"]


def test_a_runs_folder_that_is_a_symlink_is_refused_and_its_target_kept(scenario, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.json").write_text("{}", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "runs").symlink_to(elsewhere, target_is_directory=True)
    for flag in ([], ["--overwrite"], ["--resume"]):
        result = ecsim(
            "sweep", str(scenario), "--param", "servers[0].workers=1,2", "--out", str(out), *flag
        )
        refused(result, "runs is not a folder ecsim made")
    assert os.listdir(elsewhere) == ["precious.json"]


def test_a_corrupt_saved_run_is_reported_and_run_again(scenario, tmp_path):
    out = tmp_path / "out"
    arguments = ["sweep", str(scenario), "--param", "servers[0].workers=1,2", "--workers", "1"]
    first = ecsim(*arguments, "--out", str(out), limited=False)
    assert first.returncode == 0, first.stderr
    table = (out / "sweep.csv").read_text(encoding="utf-8")
    saved = sorted((out / "runs").glob("*.json"))
    assert len(saved) == 2
    saved[0].write_text('{"key": "cut sho', encoding="utf-8")  # as a crash mid-write would
    saved[1].write_bytes(b"\xff\xfe not json")
    resumed = ecsim(*arguments, "--out", str(out), "--resume", limited=False)
    assert resumed.returncode == 0, resumed.stderr
    for path in saved:
        assert f"warning: {path} cannot be read back; that run is done again" in resumed.stderr
        json.loads(path.read_text(encoding="utf-8"))  # written again, whole
    assert (out / "sweep.csv").read_text(encoding="utf-8") == table
