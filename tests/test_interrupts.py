"""An interrupted batch keeps every run it finished, leaves no worker behind, and resumes to the
very table an uninterrupted batch writes. Real signals, sent to a real ecsim process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

SCENARIO = {
    "name": "interrupted",
    "duration": 2500,
    "metrics": {"step": 2500},
    "workload": {
        "arrivals": {"rate": 40},
        "classes": [
            {"name": "r", "share": 1, "service_time": {"kind": "exponential", "mean": 0.02}}
        ],
    },
    "servers": [{"name": "web", "count": 2, "workers": 2}],
}

BATCHES = {
    "sweep": (
        ["sweep", "--param", "servers[0].workers=1,2,3,4,5,6", "--replications", "2"],
        "sweep.csv",
        12,
    ),
    "replications": (["run", "--replications", "12", "--quiet"], "replications.csv", 12),
    "comparison": (
        ["compare", "--balancers", "round_robin,random,least_connections", "--replications", "4"],
        "runs.csv",
        12,
    ),
}


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "interrupted.yaml"
    path.write_text(yaml.safe_dump(SCENARIO), encoding="utf-8")
    return path


def ecsim(scenario_file: Path, arguments: list[str], out: Path, *extra: str) -> list[str]:
    command, *rest = arguments
    return [
        sys.executable,
        "-m",
        "sim",
        command,
        str(scenario_file),
        *rest,
        "--workers",
        "2",
        "--out",
        str(out),
        *extra,
    ]


def children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def references(scenario_file, tmp_path_factory) -> dict[str, str]:
    """Each batch run once without interruption: its table, as written."""
    tables = {}
    for name, (arguments, table, _) in BATCHES.items():
        out = tmp_path_factory.mktemp(f"reference-{name}") / "out"
        subprocess.run(ecsim(scenario_file, arguments, out), check=True, capture_output=True)
        tables[name] = (out / table).read_text(encoding="utf-8")
    return tables


@pytest.mark.parametrize(
    ("batch", "sent"),
    [
        ("sweep", "SIGINT"),
        ("sweep", "SIGTERM"),
        ("sweep", "SIGKILL"),
        ("replications", "SIGINT"),
        ("comparison", "SIGTERM"),
    ],
)
def test_an_interrupted_batch_keeps_its_finished_runs_and_resumes_to_the_same_table(
    batch, sent, scenario_file, references, tmp_path
):
    arguments, table, total = BATCHES[batch]
    out = tmp_path / "out"
    log = tmp_path / "stderr.txt"
    # As from a terminal: a test run launched in the background inherits Ctrl-C ignored (POSIX
    # does that to background jobs), and so would ecsim; a handler here is reset to the default
    # in the child.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with log.open("wb") as stderr_file:  # a file, not a pipe: orphans of SIGKILL may hold it
            process = subprocess.Popen(
                ecsim(scenario_file, arguments, out), stdout=subprocess.DEVNULL, stderr=stderr_file
            )
    finally:
        signal.signal(signal.SIGINT, ignored)
    runs = out / "runs"
    deadline = time.monotonic() + 120
    while len(list(runs.glob("*.json"))) < 2:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "no run finished in two minutes"
        time.sleep(0.05)
    workers = children(process.pid)
    process.send_signal(getattr(signal, sent))
    process.wait(timeout=60)
    stderr = log.read_bytes()
    kept = len(list(runs.glob("*.json")))
    assert 2 <= kept < total, "the signal came after the batch ended: make the runs longer"
    if sent != "SIGKILL":
        assert process.returncode == {"SIGINT": 130, "SIGTERM": 143}[sent], stderr
        assert b"Traceback" not in stderr
        assert b"--resume" in stderr
        metadata = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
        assert metadata["status"] == "interrupted"
    # No orphan: every pool worker is gone soon after ecsim (after SIGKILL, on its own).
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in workers)
    resumed = subprocess.run(
        ecsim(scenario_file, arguments, out, "--resume"), capture_output=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (out / table).read_text(encoding="utf-8") == references[batch]


def test_a_finished_run_folder_is_not_overwritten_by_accident(scenario_file, tmp_path):
    out = tmp_path / "out"
    arguments = ["run", "--quiet", "--duration", "10s"]
    first = subprocess.run(ecsim(scenario_file, arguments, out), capture_output=True)
    assert first.returncode == 0, first.stderr
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    again = subprocess.run(ecsim(scenario_file, arguments, out), capture_output=True)
    assert again.returncode == 2 and b"--overwrite" in again.stderr
    replaced = subprocess.run(
        ecsim(scenario_file, arguments, out, "--overwrite"), capture_output=True
    )
    assert replaced.returncode == 0, replaced.stderr
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work", encoding="utf-8")
    refused = subprocess.run(
        ecsim(scenario_file, arguments, foreign, "--overwrite"), capture_output=True
    )
    assert refused.returncode == 2 and (foreign / "thesis.tex").exists()
    assert os.listdir(foreign) == ["thesis.tex"]
