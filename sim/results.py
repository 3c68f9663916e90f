"""The on-disk layout of a run, written atomically, and read back for plots and notebooks.

A run folder holds::

    scenario.yaml     the fully resolved scenario (every default filled in, SI units, the seed)
    metadata.json     ecsim and library versions, start time, wall time, status, any error
    summary.json      every summary metric (keys documented in the README)
    timeseries.csv    one row per time step
    incidents.csv     one row per failure: detection, failover and recovery times
    latency.csv       the latency distribution of ok requests per class (histogram buckets)
    events.csv        the timeline of component events (crashes, detections, promotions...)
    servers.csv       per server and time step, when the scenario asks (metrics.per_server)

Every file is written to a temporary name in the same folder and renamed into place, so an
interrupted run leaves whole files or none. ``metadata.json`` is written when the run starts and
again when it ends, with status ``completed``, ``failed`` (and the error) or ``interrupted``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata as package_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sim.analysis import finite_or_none

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "RUNS",
    "FolderInUse",
    "RunFolder",
    "RunStore",
    "atomic_write_bytes",
    "atomic_write_text",
    "batch_identity",
    "new_run_folder",
    "read_run",
]

SUMMARY = "summary.json"
TIMESERIES = "timeseries.csv"
INCIDENTS = "incidents.csv"
EVENTS = "events.csv"
LATENCY = "latency.csv"
SERVERS = "servers.csv"
SCENARIO = "scenario.yaml"
METADATA = "metadata.json"


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes it private; results are not
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json(data: Any) -> str:
    return json.dumps(finite_or_none(data), indent=2, allow_nan=False) + "\n"


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("ecsim", "simpy", "numpy", "pandas", "pydantic"):
        try:
            versions[package] = package_metadata.version(package)
        except package_metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def new_run_folder(root: Path, scenario_name: str, seed: int) -> Path:
    """A fresh folder under ``root`` named after the scenario, the time and the seed."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{scenario_name}-{stamp}-seed{seed}"
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


RUNS = "runs"
"""The sub-folder where a batch keeps its finished runs (see :class:`RunStore`)."""
WRITTEN = (
    SCENARIO,
    METADATA,
    SUMMARY,
    TIMESERIES,
    INCIDENTS,
    EVENTS,
    LATENCY,
    SERVERS,
    "replications.csv",
    "runs.csv",
    "comparison.csv",
    "sweep.csv",
    "sweep.parquet",
)
"""Every file name ecsim writes into a results folder (figures aside)."""
FIGURE_STEMS = (
    "latency_cdf",
    "timeseries",
    "cache",
    "incidents",
    "comparison",
    "availability_curve",
)


class FolderInUse(Exception):
    """The output folder holds something this run must not mix with or delete."""


class RunFolder:
    """Writes one run's files; see the module docstring for the layout."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.batch: dict[str, str] = {}
        """What runs here (see :func:`batch_identity`), recorded in its metadata."""

    def claim(
        self,
        batch: dict[str, str],
        resume: bool = False,
        overwrite: bool = False,
        can_resume: bool = True,
    ) -> None:
        """Make the folder this run's, or raise :class:`FolderInUse`.

        ``batch`` says what runs (see :func:`batch_identity`). A missing or empty folder is free.
        A folder of an earlier ecsim run is continued with ``resume`` when it holds the same
        batch (its finished runs are kept), or cleared with ``overwrite`` (only the files ecsim
        writes go; anything else stays). Anything else is refused: ecsim never mixes two runs
        in one folder, and never deletes what it did not write.
        """
        self.batch = batch
        path = self.path
        if path.exists() and not path.is_dir():
            raise FolderInUse(f"{path} exists and is not a folder")
        runs = path / RUNS
        if runs.exists() and (runs.is_symlink() or not runs.is_dir()):
            raise FolderInUse(f"{runs} is not a folder ecsim made: choose another --out")
        empty = not path.exists() or not any(path.iterdir())
        if resume and empty:
            raise FolderInUse(f"nothing to resume in {path}: it holds no results")
        if empty:
            return
        earlier = self._earlier_batch()
        if earlier is None:
            raise FolderInUse(
                f"{path} is not empty and holds no ecsim results: choose another --out"
            )
        if resume:
            if earlier.get("command") != batch["command"]:
                what = f"the results of `{earlier.get('command', 'an earlier version')}`"
            elif earlier != batch:
                what = f"a {batch['command']} batch of another scenario, seed or horizon"
            else:
                return
            raise FolderInUse(
                f"{path} holds {what}: --resume continues only the same command on the same"
                " scenario; pass --overwrite to replace it, or choose another --out"
            )
        if overwrite:
            self._clear()
            return
        options = (
            "--resume to continue it, --overwrite to replace it"
            if can_resume
            else ("--overwrite to replace it")
        )
        raise FolderInUse(
            f"{path} already holds the results of a run: pass {options}, or choose another --out"
        )

    def _earlier_batch(self) -> dict[str, Any] | None:
        """What the folder's metadata says ran there, or None if ecsim did not write it."""
        try:
            metadata = json.loads((self.path / METADATA).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not isinstance(metadata, dict) or "ecsim" not in (metadata.get("versions") or {}):
            return None
        return metadata.get("batch") or {}

    def _clear(self) -> None:
        for name in WRITTEN:
            (self.path / name).unlink(missing_ok=True)
        for stem in FIGURE_STEMS:
            for suffix in ("png", "svg", "pdf"):
                (self.path / f"{stem}.{suffix}").unlink(missing_ok=True)
        runs = self.path / RUNS
        if runs.is_dir():
            for saved in runs.glob(f"*{RunStore.SUFFIX}"):
                if RunStore.NAME.fullmatch(saved.name):
                    saved.unlink()
            if not any(runs.iterdir()):
                runs.rmdir()

    def write_scenario(self, resolved: dict[str, Any]) -> None:
        text = yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True)
        atomic_write_text(self.path / SCENARIO, text)

    def write_metadata(self, fields: dict[str, Any]) -> None:
        atomic_write_text(self.path / METADATA, _json(fields))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.path / SUMMARY, _json(summary))

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        atomic_write_text(self.path / name, frame.to_csv(index=False, float_format="%.9g"))

    def write_parquet(self, name: str, frame: pd.DataFrame) -> None:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        atomic_write_bytes(self.path / name, buffer.getvalue())

    def write_result(self, result: Any) -> None:
        """Everything a run produced (a :class:`sim.experiment.RunResult`)."""
        self.write_summary(result.summary)
        self.write_table(TIMESERIES, result.timeseries)
        self.write_table(INCIDENTS, result.incidents)
        self.write_table(EVENTS, result.events)
        self.write_table(LATENCY, result.latency)
        if result.scenario.metrics.per_server:
            self.write_table(SERVERS, result.servers)

    @contextmanager
    def recording(
        self, resolved: dict[str, Any], command: list[str] | None = None
    ) -> Iterator[dict]:
        """Write the scenario and a ``running`` status, then the final status, whatever happens.

        The block may add fields to the yielded metadata dict (for example the wall time).
        """
        started = dt.datetime.now(dt.UTC)
        fields: dict[str, Any] = {
            "status": "running",
            "started_at": started.isoformat(timespec="seconds"),
            "versions": _versions(),
            "platform": platform.platform(),
            "command": command if command is not None else sys.argv,
            "seed": resolved.get("seed"),
            "batch": self.batch,
        }
        self.write_scenario(resolved)
        self.write_metadata(fields)
        try:
            yield fields
        except KeyboardInterrupt:
            fields["status"] = "interrupted"
            raise
        except BaseException as error:
            fields["status"] = "failed"
            fields["error"] = "".join(traceback.format_exception_only(error)).strip()
            fields["traceback"] = traceback.format_exc()
            raise
        else:
            fields["status"] = "completed"
        finally:
            fields["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self.write_metadata(fields)


class RunStore:
    """The finished runs of a batch (replications, a comparison, a sweep), one JSON file each,
    written atomically the moment each run ends: an interrupted batch keeps every finished run,
    and a resumed one runs only the others.

    A run is known by the key of what ran (its scenario, overrides and seed) and its
    replication. A file that cannot be read back (cut short by a crash, edited by hand) is
    listed in :attr:`unreadable` and its run is done again.
    """

    SUFFIX = ".json"
    NAME = re.compile(r"[0-9a-f]{16}-\d+\.json")
    """The names of the files it writes: the run's key, its replication."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.unreadable: list[Path] = []

    def load(self) -> dict[tuple[str, int], dict[str, Any]]:
        """Every readable saved run, by (key, replication)."""
        saved: dict[tuple[str, int], dict[str, Any]] = {}
        self.unreadable = []
        if not self.folder.is_dir():
            return saved
        for path in sorted(self.folder.glob(f"*{self.SUFFIX}")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                saved[(str(record["key"]), int(record["replication"]))] = record
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
                self.unreadable.append(path)
        return saved

    def save(self, record: dict[str, Any]) -> None:
        """Keep one finished run: a mapping with its ``key`` and ``replication``."""
        name = f"{record['key']}-{record['replication']}{self.SUFFIX}"
        atomic_write_text(self.folder / name, json.dumps(finite_or_none(record)) + "\n")


def batch_identity(command: str, resolved: dict[str, Any]) -> dict[str, str]:
    """What a results folder holds, to tell a batch from another: the command and a hash of
    the fully resolved scenario (seed and horizon included; the number of replications left
    out, so that more can be added)."""
    scenario = {key: value for key, value in resolved.items() if key != "replications"}
    text = json.dumps(scenario, sort_keys=True, default=str)
    return {"command": command, "scenario": hashlib.blake2b(text.encode()).hexdigest()[:16]}


def read_run(path: Path) -> dict[str, Any]:
    """A completed run folder: ``summary`` (dict), ``timeseries``, ``incidents``, ``events``,
    ``latency``, ``servers`` (empty unless the run kept a per-server time series) and the
    resolved ``scenario``."""
    import pandas as pd

    path = Path(path)
    return {
        "summary": json.loads((path / SUMMARY).read_text(encoding="utf-8")),
        "timeseries": pd.read_csv(path / TIMESERIES),
        "incidents": pd.read_csv(path / INCIDENTS),
        "events": pd.read_csv(path / EVENTS),
        "latency": pd.read_csv(path / LATENCY),
        "servers": pd.read_csv(path / SERVERS) if (path / SERVERS).exists() else pd.DataFrame(),
        "scenario": yaml.safe_load((path / SCENARIO).read_text(encoding="utf-8")),
    }
