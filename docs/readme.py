"""Regenerate every number in the README from the command that produces it.

Each generated part of README.md sits between ``<!-- begin: NAME -->`` and ``<!-- end: NAME -->``
and holds the command and what it printed, so a reader can run the same command and get the
same answer (runs are pure functions of scenario and seed; wall times vary with the machine).

    python docs/readme.py                    # every block (about 15 minutes on 2 cores)
    python docs/readme.py four-nines slow-server
    python docs/readme.py --quick --readme /tmp/README.md   # short horizons: the test suite

The ``metrics`` block is the metric catalogue (``sim/catalogue.py``) as a table, and the
``limits`` block the bounds in the code: the YAML reader's, every scenario field's upper bound
(read from the specs), the command-line options' and the run's.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
import types
import typing
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import annotated_types  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from sim import cli, overrides, yaml_reader  # noqa: E402
from sim.catalogue import METRICS  # noqa: E402
from sim.model import monitor, server, timing, write_log  # noqa: E402
from sim.results import atomic_write_text  # noqa: E402
from sim.scenario import Scenario, advice, root, trace  # noqa: E402

EXAMPLES = sorted((ROOT / "scenarios").glob("*.yaml"))


def _run(command: list[str]) -> tuple[str, float]:
    """Run an ecsim command from the project folder; its standard output and wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=3600
    )
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{done.stderr}")
    return done.stdout, time.perf_counter() - started


IN_PROCESS = False
"""Run ecsim commands in this process (``--quick``, for the test suite: no interpreter start
per command), rather than as a user would, in a fresh one."""


def _ecsim(arguments: list[str], out: Path) -> tuple[str, float]:
    if not IN_PROCESS:
        return _run([sys.executable, "-m", "sim", *arguments, "--out", str(out)])
    from click.testing import CliRunner

    started = time.perf_counter()
    result = CliRunner().invoke(cli.main, [*arguments, "--out", str(out)])
    if result.exit_code != 0:
        raise RuntimeError(f"ecsim {shlex.join(arguments)} failed:\n{result.output}")
    return result.stdout, time.perf_counter() - started


def _shown(arguments: list[str]) -> str:
    return "ecsim " + shlex.join(arguments)


def _output(text: str) -> str:
    """Printed output without the line naming the (temporary) run folder."""
    lines = [line for line in text.rstrip().splitlines() if not line.startswith("run folder:")]
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def _command_block(arguments: list[str], out: Path, note: str = "") -> str:
    text, wall_s = _ecsim(arguments, out)
    return (
        f"```\n$ {_shown(arguments)}\n{_output(text)}\n```\n\n"
        f"({wall_s:.0f} s wall time on this machine{note}.)"
    )


# -- the blocks ------------------------------------------------------------------------------


def metrics(quick: bool, work: Path) -> str:
    rows = ["| key | unit | better | definition |", "| --- | --- | --- | --- |"]
    better = {1: "higher", -1: "lower", 0: ""}
    for entry in METRICS:
        definition = entry.definition + (" (ok requests only)" if entry.ok_only else "")
        unit = entry.unit.replace("|", "/")
        rows.append(f"| `{entry.key}` | {unit} | {better[entry.direction]} | {definition} |")
    return "\n".join(rows)


def _unit_of(constraints, annotation) -> str:
    """What a field's number is in (" s" for a duration, "/s" for a rate), from the unit parser
    in its type (see ``sim.spec``): in the field's metadata, where pydantic moves a plain
    field's, or inside an optional type."""
    for constraint in constraints:
        unit = getattr(getattr(constraint, "func", None), "unit", None)
        if unit:
            return unit
    if typing.get_origin(annotation) is typing.Annotated:
        return _unit_of(annotation.__metadata__, None)
    for inner in typing.get_args(annotation):
        unit = _unit_of((), inner)
        if unit:
            return unit
    return ""


def _upper_bounds(constraints, annotation) -> list[str]:
    bounds = []
    unit = _unit_of(constraints, annotation)
    for constraint in constraints:
        if isinstance(constraint, annotated_types.Le):
            bounds.append(f"≤ {constraint.le:,}{unit}")
        elif isinstance(constraint, annotated_types.Lt):
            bounds.append(f"< {constraint.lt:,}{unit}")
        elif isinstance(constraint, annotated_types.MaxLen):
            what = "characters" if annotation is str else "items"
            bounds.append(f"at most {constraint.max_length:,} {what}")
    return bounds


def _registry_of(constraints):
    """The registry of an extension-point field (see ``sim.spec.registered``), if it is one."""
    for constraint in constraints:
        registry = getattr(getattr(constraint, "func", None), "registry", None)
        if registry is not None:
            return registry
    return None


def _specs_in(annotation) -> list[tuple[type[BaseModel], str]]:
    """The spec classes a field holds, each with the key-path suffix that reaches it (an
    extension point's kinds are listed apart, by :func:`_field_bounds`)."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, "")]
    if origin is typing.Annotated:
        if _registry_of(annotation.__metadata__) is not None:
            return []
        return _specs_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [found for inner in typing.get_args(annotation) for found in _specs_in(inner)]
    if origin is list:
        return [(spec, "[]" + rest) for spec, rest in _specs_in(typing.get_args(annotation)[0])]
    if origin is dict:
        return [(spec, ".NAME" + rest) for spec, rest in _specs_in(typing.get_args(annotation)[1])]
    return []


def _registries_in(annotation, metadata) -> list:
    found = [_registry_of(metadata)]
    stack = [annotation]
    while stack:
        current = stack.pop()
        if typing.get_origin(current) is typing.Annotated:
            found.append(_registry_of(current.__metadata__))
        stack.extend(typing.get_args(current))
    return [registry for registry in found if registry is not None]


def _field_bounds(
    spec: type[BaseModel], path: str, rows: dict[str, str], registries: dict, within: tuple = ()
) -> None:
    """Every bounded field under ``spec``, by key path; the extension points met on the way
    (distributions, policies, detectors, failure models) are gathered in ``registries``."""
    for name, field in spec.model_fields.items():
        key = f"{path}{field.alias or name}"
        bounds = _upper_bounds(field.metadata, field.annotation)
        if bounds:
            rows.setdefault(key, ", ".join(bounds))
        for registry in _registries_in(field.annotation, field.metadata):
            registries.setdefault(registry.what, registry)
        for inner, suffix in _specs_in(field.annotation):
            if inner not in within:
                _field_bounds(inner, f"{key}{suffix}.", rows, registries, (*within, spec))


def _key(key: str) -> str:
    """A key path in code style; ``a distribution `erlang`: k`` keeps its prose."""
    prose, _, path = key.rpartition(": ")
    return f"{prose}: `{path}`" if prose else f"`{path}`"


def limits(quick: bool, work: Path) -> str:
    rows: dict[str, str] = {}
    registries: dict = {}
    _field_bounds(Scenario, "", rows, registries)
    done: set[str] = set()
    while len(done) < len(registries):  # a kind may hold another extension point
        for what, registry in list(registries.items()):
            if what in done:
                continue
            done.add(what)
            for kind in registry.names():
                _field_bounds(registry.get(kind), f"{what} `{kind}`: ", rows, registries)
    reading = [
        f"at most {yaml_reader.MAX_BYTES:,} bytes of UTF-8 text, from a regular file (not a"
        " pipe or a device)",
        f"nesting at most {yaml_reader.MAX_DEPTH} levels deep",
        f"at most {yaml_reader.MAX_VALUES:,} values once aliases are expanded; no alias inside"
        " the node it names",
        f"numbers of at most {yaml_reader.MAX_DIGITS} digits; no tags (`!!binary`, `!!python/...`)",
        f"an arrival trace of at most {trace.MAX_TRACE_ARRIVALS:,} rows and"
        f" {trace.MAX_TRACE_CLASSES:,} class names",
    ]
    options = {
        "--seed": f"0 to {cli.MAX_SEED:,}",
        "--workers": f"1 to {cli.MAX_WORKERS:,}",
        "--replications, --max-replications": f"at most {cli.MAX_REPLICATIONS:,}",
        "--years": f"more than 0, at most {cli.MAX_YEARS:,.0f}, a number (not nan or inf)",
        "--param, --points": f"at most {cli.MAX_POINTS:,} points, each key path once",
        "--set": f"key paths at most {overrides.MAX_PATH_PARTS} keys deep",
    }
    running = [
        f"a queue without `queue_capacity` that passes {server.MAX_QUEUE:,} waiting attempts,"
        " or that many writes waiting for a new master, ends the run with exit code 2",
        f"{timing.STALL_EVENTS:,} events without simulated time moving end the run with exit"
        " code 2, naming the callbacks involved",
        f"a shard remembers at most {write_log.MAX_PENDING:,} writes some replica lacks",
        f"a run estimated at more than {advice.LONG_RUN_S / 60:.0f} minutes of work (at"
        f" {advice.REQUESTS_PER_S:,} requests and {advice.EVENTS_PER_S:,} probes, heartbeats"
        " or failures a second) is warned about, with the estimate",
        f"at most {root.MAX_ROWS:,} time-series rows, per-server rows or SLO windows",
        f"events.csv and incidents.csv keep the first {monitor.MAX_RECORDED:,} rows; the"
        " summary counts every incident",
    ]
    return "\n".join(
        [
            "Scenario files are read within bounds:",
            "",
            *[f"- {line}" for line in reading],
            "",
            "Scenario fields, upper bounds (lower bounds are in the messages):",
            "",
            "| key | bound |",
            "| --- | --- |",
            *[f"| {_key(key)} | {bound} |" for key, bound in rows.items()],
            "",
            "Options:",
            "",
            *[f"- `{option}`: {bound}" for option, bound in options.items()],
            "",
            "Runs:",
            "",
            *[f"- {line}" for line in running],
        ]
    )


def four_nines(quick: bool, work: Path) -> str:
    arguments = ["availability", "scenarios/four_nines.yaml"]
    if quick:
        arguments += ["--years", "20", "--replications", "2"]
    return _command_block(arguments, work / "four-nines")


def trading_system(quick: bool, work: Path) -> str:
    arguments = ["availability", "scenarios/trading_system.yaml"]
    if quick:
        arguments += ["--years", "2", "--replications", "2"]
    return _command_block(arguments, work / "trading-system")


def trading_system_changes(quick: bool, work: Path) -> str:
    arguments = [
        "availability",
        "scenarios/trading_system.yaml",
        "--points",
        "scenarios/trading_system_changes.csv",
    ]
    if quick:
        arguments += ["--years", "2", "--replications", "2", "--workers", "1"]
    return _command_block(arguments, work / "trading-system-changes", " on 2 cores")


def long_horizon(quick: bool, work: Path) -> str:
    command = [sys.executable, "benchmarks/long_horizon.py"]
    if quick:
        command += ["--years", "2", "--crude-years", "20", "--cycles", "200", "--repeats", "1"]
    text, _ = _run(command)
    return f"```\n$ python benchmarks/long_horizon.py\n{text.rstrip()}\n```"


def slow_server(quick: bool, work: Path) -> str:
    arguments = [
        "compare",
        "scenarios/slow_server.yaml",
        "--balancers",
        "round_robin,least_connections,power_of_two_choices,least_response_time",
        "--replications",
        "2" if quick else "5",
    ]
    if quick:
        arguments += ["--duration", "90s", "--warmup", "10s", "--set", "failures[0].at=30s"]
    return _command_block(arguments, work / "slow-server")


def replication(quick: bool, work: Path) -> str:
    arguments = [
        "compare",
        "scenarios/checkout_replication.yaml",
        "--vary",
        "database.replication.mode=async,semi_sync,sync",
        "--metric",
        "data.lost_writes",
        "--replications",
        "2" if quick else "8",
    ]
    if quick:
        arguments += ["--duration", "60s", "--warmup", "10s", "--set", "failures[0].at=30s"]
    return _command_block(arguments, work / "replication")


def overload_cures(quick: bool, work: Path) -> str:
    arguments = [
        "compare",
        "scenarios/overload_retries.yaml",
        "--alternatives",
        "scenarios/overload_retries_cures.csv",
        "--metric",
        "availability.request_based",
        "--replications",
        "2" if quick else "5",
    ]
    if quick:
        arguments += ["--duration", "60s", "--warmup", "10s"]
    return _command_block(arguments, work / "overload-cures")


def examples(quick: bool, work: Path) -> str:
    rows = [
        "| scenario | wall time | requests | ok | p99 | time-based availability | incidents |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path in EXAMPLES:
        out = work / f"example-{path.stem}"
        arguments = ["run", f"scenarios/{path.name}", "--quiet"]
        if quick:
            arguments += ["--duration", "5s", "--warmup", "0s"]
        _, wall_s = _ecsim(arguments, out)
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        requests = summary["requests"]
        availability = summary["availability"]
        p99 = summary["latency_s"]["p99"]
        rows.append(
            f"| `{path.name}` | {wall_s:.0f} s | {requests['ended']:,} |"
            f" {availability['request_based'] * 100:.3f}% |"
            f" {'-' if p99 is None else f'{p99 * 1000:.0f} ms'} |"
            f" {availability['time_based'] * 100:.3f}% | {summary['incidents']['count']} |"
        )
    command = "for f in scenarios/*.yaml; do ecsim run $f --quiet; done"
    return f"`{command}` on this machine:\n\n" + "\n".join(rows)


def benchmark(quick: bool, work: Path) -> str:
    command = [sys.executable, "benchmarks/throughput.py"]
    if quick:
        command += ["--requests", "20000", "--repeats", "1", "--memory-requests", "10000"]
    text, _ = _run(command)
    return f"```\n$ python benchmarks/throughput.py\n{text.rstrip()}\n```"


def policies_benchmark(quick: bool, work: Path) -> str:
    command = [sys.executable, "benchmarks/policies.py"]
    if quick:
        command += ["--requests", "5000", "--repeats", "1"]
    text, _ = _run(command)
    return f"```\n$ python benchmarks/policies.py\n{text.rstrip()}\n```"


def sweep_benchmark(quick: bool, work: Path) -> str:
    command = [sys.executable, "benchmarks/sweep_throughput.py"]
    if quick:
        command += ["--duration", "20s", "--replications", "1"]
    text, _ = _run(command)
    return f"```\n$ python benchmarks/sweep_throughput.py\n{text.rstrip()}\n```"


BLOCKS: dict[str, Callable[[bool, Path], str]] = {
    "metrics": metrics,
    "limits": limits,
    "four-nines": four_nines,
    "trading-system": trading_system,
    "trading-system-changes": trading_system_changes,
    "slow-server": slow_server,
    "replication": replication,
    "overload-cures": overload_cures,
    "examples": examples,
    "benchmark": benchmark,
    "policies-benchmark": policies_benchmark,
    "sweep-benchmark": sweep_benchmark,
    "long-horizon": long_horizon,
}


def _marker(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- begin: {re.escape(name)} -->\n)(.*?)(\n<!-- end: {re.escape(name)} -->)", re.S
    )


def block(text: str, name: str) -> str:
    """The current content of block ``name`` in README ``text``."""
    found = _marker(name).search(text)
    if found is None:
        raise KeyError(f"the README has no block {name!r}")
    return found.group(2)


def regenerate(readme: Path, names: list[str], quick: bool = False) -> None:
    global IN_PROCESS
    IN_PROCESS = quick
    text = readme.read_text(encoding="utf-8")
    for name in names:
        block(text, name)  # every block must exist before anything runs
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            started = time.perf_counter()
            content = BLOCKS[name](quick, Path(folder))
            found = _marker(name).search(text)
            text = text[: found.start(2)] + content + text[found.end(2) :]
            print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    atomic_write_text(readme, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("blocks", nargs="*", help=f"some of {', '.join(BLOCKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="short horizons (for tests)")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    arguments = parser.parse_args()
    unknown = [name for name in arguments.blocks if name not in BLOCKS]
    if unknown:
        parser.error(f"unknown block(s) {', '.join(unknown)}; known: {', '.join(BLOCKS)}")
    regenerate(arguments.readme, arguments.blocks or list(BLOCKS), arguments.quick)


if __name__ == "__main__":
    main()
