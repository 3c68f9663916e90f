"""The ``ecsim`` command line: parse arguments, call the library, print; no model logic here.

Exit codes: 0 success, 2 a mistake in the input (scenario file, option), 1 an internal error,
130 interrupted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from sim import __version__
from sim.analysis import finite_or_none
from sim.distributions import DISTRIBUTIONS
from sim.experiment import run as run_scenario
from sim.model.balancing import BALANCING_POLICIES
from sim.reliability import estimate_availability
from sim.report import format_availability, format_incidents, format_summary
from sim.results import RunFolder, new_run_folder
from sim.scenario import DETECTORS, FAILURE_MODELS, ScenarioError, load_scenario
from sim.units import parse_duration

__all__ = ["main"]

USER_ERROR = 2


class LazyProgressBar:
    """A progress bar on stderr that appears only once a run has taken a couple of seconds."""

    def __init__(self, label: str, delay_s: float = 2.0) -> None:
        self.label = label
        self.delay_s = delay_s
        self.started = time.perf_counter()
        self.bar = None
        self.shown = 0

    def __call__(self, fraction: float) -> None:
        if self.bar is None:
            if not sys.stderr.isatty() or time.perf_counter() - self.started < self.delay_s:
                return
            self.bar = click.progressbar(length=100, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        done = int(fraction * 100)
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(USER_ERROR)


def _load(path: str, overrides: tuple[str, ...] = ()):
    try:
        return load_scenario(path, overrides)
    except ScenarioError as error:
        click.echo(f"error: {error.source} is not a valid scenario:", err=True)
        for problem in error.problems:
            click.echo(f"  {error.source}: {problem}", err=True)
        sys.exit(USER_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecsim")
def main() -> None:
    """ecsim: simulate a replicated e-commerce cluster and measure its latency and availability.

    \b
    Example:
      ecsim run scenarios/baseline.yaml
    """


def _scenario_options(function):
    """The options every command that runs a scenario shares."""
    function = click.option(
        "--out",
        type=click.Path(file_okay=False),
        help="Run folder to write (default: results/<scenario>-<time>-seed<seed>).",
    )(function)
    function = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY.PATH=VALUE",
        help="Override a scenario key, e.g. servers[0].count=6 (repeatable).",
    )(function)
    function = click.option(
        "--seed", type=click.IntRange(min=0), help="Root random seed (default: the scenario's)."
    )(function)
    return click.argument("scenario_file", type=click.Path(dir_okay=False))(function)


def _prepare(scenario_file, seed, overrides, out, extra=()):
    """The validated scenario (seed and overrides applied) and its run folder."""
    if seed is not None:
        overrides = (*overrides, f"seed={seed}")
    scenario = _load(scenario_file, (*overrides, *extra))
    folder = RunFolder(
        Path(out) if out else new_run_folder(Path("results"), scenario.name, scenario.seed)
    )
    return scenario, folder


def _execute(folder: RunFolder, scenario, work):
    """Run ``work(metadata)`` while the folder records the run; errors become clean exits."""
    try:
        with folder.recording(scenario.to_dict()) as metadata:
            return work(metadata)
    except KeyboardInterrupt:
        click.echo(f"interrupted; partial run folder: {folder.path}", err=True)
        sys.exit(130)
    except OSError as error:
        _fail(f"cannot write the run folder {folder.path}: {error.strerror or error}")
    except Exception as error:  # an ecsim bug, not a user mistake: keep the details on disk
        click.echo(
            f"internal error: {type(error).__name__}: {error}\n"
            f"the traceback is in {folder.path / 'metadata.json'}; please report it",
            err=True,
        )
        sys.exit(1)


@main.command()
@_scenario_options
@click.option("--duration", help="Simulated duration, e.g. 10m (default: the scenario's).")
@click.option("--quiet", is_flag=True, help="Do not print the summary table.")
def run(scenario_file, seed, overrides, out, duration, quiet) -> None:
    """Run one scenario, print its summary and write a run folder.

    \b
    Examples:
      ecsim run scenarios/baseline.yaml
      ecsim run scenarios/flash_sale.yaml --seed 7 --duration 20m --set servers[0].count=6
    """
    extra = ()
    if duration is not None:
        try:
            parse_duration(duration)
        except ValueError as error:
            _fail(f"--duration: {error}")
        extra = (f"duration={duration}",)
    scenario, folder = _prepare(scenario_file, seed, overrides, out, extra)

    def work(metadata):
        progress = LazyProgressBar(f"simulating {scenario.name}")
        try:
            result = run_scenario(scenario, progress=progress)
        finally:
            progress.close()
        metadata["wall_time_s"] = result.wall_time_s
        folder.write_result(result)
        return result

    result = _execute(folder, scenario, work)
    if not quiet:
        click.echo(format_summary(finite_or_none(result.summary)))
        if len(result.incidents):
            click.echo("")
            records = finite_or_none(result.incidents.to_dict("records"))
            click.echo(format_incidents(records))
        click.echo("")
    click.echo(f"run folder: {folder.path}  ({result.wall_time_s:.1f}s wall time)")


@main.command()
@_scenario_options
@click.option(
    "--years",
    type=click.FloatRange(min=0, min_open=True),
    default=1000.0,
    show_default=True,
    help="Simulated years in all, split over the replications.",
)
@click.option(
    "--replications",
    type=click.IntRange(min=2),
    default=10,
    show_default=True,
    help="Independent replications, for the confidence interval.",
)
def availability(scenario_file, seed, overrides, out, years, replications) -> None:
    """Estimate time-based availability over centuries: failures, detection and repair only.

    No request is simulated, so a thousand years take seconds. Prints the availability with a
    95% confidence interval, in nines and downtime per year, and the Markov-chain value where
    the design allows one.

    \b
    Examples:
      ecsim availability scenarios/four_nines.yaml
      ecsim availability scenarios/four_nines.yaml --years 5000 --set servers[0].count=3
    """
    scenario, folder = _prepare(scenario_file, seed, overrides, out)

    def work(metadata):
        progress = LazyProgressBar(f"simulating {years:g} years of {scenario.name}")
        try:
            estimate = estimate_availability(scenario, years, replications, progress=progress)
        finally:
            progress.close()
        metadata["wall_time_s"] = estimate["wall_time_s"]
        folder.write_summary({k: v for k, v in estimate.items() if k != "wall_time_s"})
        return estimate

    estimate = _execute(folder, scenario, work)
    click.echo(format_availability(finite_or_none(estimate)))
    click.echo("")
    click.echo(f"run folder: {folder.path}  ({estimate['wall_time_s']:.1f}s wall time)")


@main.command()
@click.argument("scenario_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(scenario_files) -> None:
    """Check scenario files without running them; exit 2 if any is invalid.

    \b
    Example:
      ecsim validate scenarios/*.yaml
    """
    failed = False
    for path in scenario_files:
        try:
            load_scenario(path)
        except ScenarioError as error:
            failed = True
            for problem in error.problems:
                click.echo(f"{error.source}: {problem}", err=True)
        else:
            click.echo(f"{path}: ok")
    if failed:
        sys.exit(USER_ERROR)


@main.command(name="list")
def list_kinds() -> None:
    """List the balancing policies, distributions, failure models and detectors a scenario can name.

    \b
    Example:
      ecsim list
    """
    click.echo("balancing policies (balancer.policy): " + ", ".join(BALANCING_POLICIES.names()))
    click.echo("distributions (kind): " + ", ".join(DISTRIBUTIONS.names()))
    click.echo("failure models (failures[].kind): " + ", ".join(FAILURE_MODELS.names()))
    click.echo("failure detectors (balancer.detection): " + ", ".join(DETECTORS.names()))
