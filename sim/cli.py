"""The ``ecsim`` command line: parse arguments, call the library, print; no model logic here.

Exit codes: 0 success, 2 a mistake in the input (scenario file, option), 1 an internal error,
130 interrupted.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sim import __version__
from sim.catalogue import direction, keys_for
from sim.distributions import DISTRIBUTIONS
from sim.executors import (
    SCHEDULER_VARIABLE,
    ExecutorError,
    make_executor,
    one_thread_for_numerics,
)
from sim.model.balancing import BALANCING_POLICIES
from sim.model.server import QueueOverflowError
from sim.model.timing import StalledClockError
from sim.overrides import parse_alternatives, read_alternatives, read_points
from sim.registry import did_you_mean
from sim.report import (
    format_availability,
    format_availability_sweep,
    format_comparison,
    format_incidents,
    format_intervals,
    format_summary,
    format_sweep,
)
from sim.scenario import (
    BALANCER_REDUNDANCY,
    DETECTORS,
    FAILURE_MODELS,
    REPLICATION_KINDS,
    ScenarioError,
    load_scenario,
)
from sim.scenario.advice import advise
from sim.units import parse_duration, parse_fraction

if TYPE_CHECKING:
    from sim.results import RunFolder

__all__ = ["main"]

USER_ERROR = 2
MAX_SEED = 2**63 - 1
MAX_WORKERS = 1024
MAX_REPLICATIONS = 100_000
MAX_YEARS = 1_000_000.0
MAX_POINTS = 10_000
"""The most points a sweep or availability comparison runs (each one replications times)."""


class FiniteFloatRange(click.FloatRange):
    """A float option within a range; unlike click's, ``nan`` is refused (it is in no range),
    and text that is no number is told so (click says "not a valid float range")."""

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                self.fail(
                    f"{value!r} is not a number (expected one in the range"
                    f" {self._describe_range()}).",
                    param,
                    ctx,
                )
        number = super().convert(value, param, ctx)
        if number != number:  # nan compares false with every bound
            self.fail(
                f"{value!r} is not a number in the range {self._describe_range()}.", param, ctx
            )
        return number


class LazyProgressBar:
    """Progress on stderr once a run has taken a couple of seconds: a bar on a terminal, and
    elsewhere (a log, CI) a line every ``every_s`` seconds of wall time, with the time left."""

    def __init__(self, label: str, delay_s: float = 2.0, every_s: float = 10.0) -> None:
        self.label = label
        self.delay_s = delay_s
        self.every_s = every_s
        self.started = time.perf_counter()
        self.last_line = self.started
        self.bar = None
        self.shown = 0

    def __call__(self, fraction: float) -> None:
        now = time.perf_counter()
        elapsed = now - self.started
        if elapsed < self.delay_s:
            return
        if not sys.stderr.isatty():
            if now - self.last_line >= self.every_s and fraction < 1:
                self.last_line = now
                left = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
                click.echo(
                    f"{self.label}: {fraction:.1%} of the simulated time after {elapsed:.0f} s,"
                    f" about {left:.0f} s left",
                    err=True,
                )
            return
        if self.bar is None:
            self.bar = click.progressbar(length=1000, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        done = int(fraction * 1000)
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
        scenario = load_scenario(path, overrides)
    except ScenarioError as error:
        click.echo(f"error: {error.source} is not a valid scenario:", err=True)
        for problem in error.problems:
            click.echo(f"  {error.source}: {problem}", err=True)
        sys.exit(USER_ERROR)
    _warn(path, scenario)
    return scenario


def _warn(where: str, scenario, skip=()) -> None:
    """What looks unintended in a valid scenario, on stderr (see sim.scenario.advice); the
    warnings in ``skip`` were given already."""
    for advice in advise(scenario):
        if advice not in skip:
            click.echo(f"warning: {where}: {advice}", err=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop as for Ctrl-C (finished runs kept, workers ended), exit 143."""


def _terminate(signum, frame) -> None:
    raise Terminated()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecsim")
def main() -> None:
    """ecsim: simulate a replicated e-commerce cluster and measure its latency and availability.

    \b
    Example:
      ecsim run scenarios/baseline.yaml
    """
    signal.signal(signal.SIGTERM, _terminate)


def entry() -> None:
    """The ``ecsim`` command (and ``python -m sim``): a process of its own, whose BLAS is kept
    to one thread (:func:`sim.executors.one_thread_for_numerics`). Calling :func:`main` from
    another program (click's test runner, a notebook) leaves that program's threads alone."""
    one_thread_for_numerics()
    main(prog_name="ecsim")


def _timing_options(function):
    """How long to simulate, for commands that run requests."""
    function = click.option(
        "--warmup", help="Warm-up left out of the summary, e.g. 1m (default: the scenario's)."
    )(function)
    return click.option(
        "--duration", help="Simulated duration, e.g. 10m (default: the scenario's)."
    )(function)


def _folder_options(function):
    """What to do with an --out folder that already holds results."""
    function = click.option(
        "--overwrite",
        is_flag=True,
        help="Replace the results already in the --out folder (only files ecsim wrote go).",
    )(function)
    return click.option(
        "--resume",
        is_flag=True,
        help="Continue the batch in the --out folder: keep its finished runs, run the others.",
    )(function)


def _scenario_options(function):
    """The options every command that runs a scenario shares."""
    function = click.option(
        "--out",
        type=click.Path(file_okay=False),
        help="Run folder to write (default: results/<scenario>-<time>-seed<seed>); a folder that"
        " already holds results needs --resume or --overwrite.",
    )(function)
    function = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY.PATH=VALUE",
        help="Override a scenario key, e.g. servers[0].count=6 (repeatable).",
    )(function)
    function = click.option(
        "--seed",
        type=click.IntRange(0, MAX_SEED),
        help="Root random seed (default: the scenario's).",
    )(function)
    return click.argument("scenario_file", type=click.Path(dir_okay=False))(function)


def _prepare(
    scenario_file,
    seed,
    overrides,
    out,
    command,
    extra=(),
    duration=None,
    warmup=None,
    resume=False,
    overwrite=False,
):
    """The validated scenario (seed, timing and overrides applied) and its claimed run folder.

    ``command`` names what runs (``run``, ``replications``, ``compare``...), or is a function
    of the scenario that does: a folder is resumed only by the same command on the same
    scenario.
    """

    if resume and out is None:
        _fail("--resume needs --out: the folder of the batch to resume")
    if resume and overwrite:
        _fail("give --resume or --overwrite, not both")
    for option, value in (("--duration", duration), ("--warmup", warmup)):
        if value is not None:
            try:
                parse_duration(value)
            except ValueError as error:
                _fail(f"{option}: {error}")
    timing = tuple(
        f"{key}={value}"
        for key, value in (("duration", duration), ("warmup", warmup))
        if value is not None
    )
    if seed is not None:
        overrides = (*overrides, f"seed={seed}")
    scenario = _load(scenario_file, (*overrides, *timing, *extra))
    from sim.results import RUNS, FolderInUse, RunFolder, RunStore, batch_identity, new_run_folder

    folder = RunFolder(
        Path(out) if out else new_run_folder(Path("results"), scenario.name, scenario.seed)
    )
    name = command(scenario) if callable(command) else command
    try:
        folder.claim(
            batch_identity(name, scenario.to_dict()),
            resume=resume,
            overwrite=overwrite,
            can_resume=name != "run",
        )
    except FolderInUse as error:
        _fail(str(error))
    if resume:
        unreadable = RunStore(folder.path / RUNS)
        unreadable.load()
        for path in unreadable.unreadable:
            click.echo(f"warning: {path} cannot be read back; that run is done again", err=True)
    return scenario, folder


def _execute(folder: RunFolder, scenario, work):
    """Run ``work(metadata)`` while the folder records the run; errors become clean exits."""
    from sim.experiment import BatchError
    from sim.results import RUNS, RunStore

    try:
        with folder.recording(scenario.to_dict()) as metadata:
            return work(metadata)
    except KeyboardInterrupt as interruption:
        kept = len(RunStore(folder.path / RUNS).load())
        click.echo(f"interrupted; partial run folder: {folder.path}", err=True)
        if kept:
            click.echo(
                f"{kept} finished run(s) kept in {folder.path / RUNS}: run the same command"
                " with --resume to finish the batch",
                err=True,
            )
        sys.exit(143 if isinstance(interruption, Terminated) else 130)
    except BatchError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except OSError as error:
        _fail(f"cannot write the run folder {folder.path}: {error.strerror or error}")
    except click.ClickException as error:  # a user mistake found on the way: exit 2
        _fail(error.format_message())
    except (StalledClockError, QueueOverflowError) as error:  # the scenario cannot run
        _fail(str(error))
    except Exception as error:  # an ecsim bug, not a user mistake: keep the details on disk
        click.echo(
            f"internal error: {type(error).__name__}: {error}\n"
            f"the traceback is in {folder.path / 'metadata.json'}; please report it",
            err=True,
        )
        sys.exit(1)


def _plot_option(function):
    return click.option(
        "--plot", is_flag=True, help="Draw the figures that fit the results into the run folder."
    )(function)


def _draw(folder: Path, out: Path | None = None, fmt: str = "png") -> None:
    from sim.figures import NothingToDraw, draw_folder

    try:
        for path in draw_folder(folder, out, fmt):
            click.echo(f"figure: {path}")
    except NothingToDraw as error:
        click.echo(f"no figure: {error}", err=True)
    except (KeyError, ValueError) as error:  # results with nothing drawable in them
        click.echo(f"no figure: {type(error).__name__}: {error}", err=True)


def _points_options(function):
    """The designs or points a batch runs: a grid of values, or the rows of a CSV file."""
    function = click.option(
        "--points",
        "points_file",
        type=click.Path(dir_okay=False, exists=True),
        help="A CSV file of points instead of a grid: a column per key path, a row per point.",
    )(function)
    return click.option(
        "--param",
        "params",
        multiple=True,
        metavar="KEY.PATH=V1,V2,...",
        help="A parameter and its values (repeatable: the full grid is run).",
    )(function)


def _executor_options(function):
    """Where batches of runs execute."""
    function = click.option(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help=f"Run on this Dask cluster (or set {SCHEDULER_VARIABLE}).",
    )(function)
    return click.option(
        "--workers",
        type=click.IntRange(1, MAX_WORKERS),
        help="Local worker processes (default: all cores; 1 runs in this process).",
    )(function)


def _make_executor(workers, scheduler):
    try:
        return make_executor(workers, scheduler)
    except ExecutorError as error:
        _fail(str(error))


class BatchProgress:
    """Progress of a batch of runs on stderr: a bar with ETA on a terminal, and elsewhere (a
    log, CI) a line every ``every_s`` seconds of wall time with the runs finished so far."""

    def __init__(self, total: int, label: str, every_s: float = 10.0) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.started = time.perf_counter()
        self.bar = None
        self._stop = threading.Event()
        if sys.stderr.isatty():
            self.bar = click.progressbar(length=total, label=label, file=sys.stderr)
            self.bar.__enter__()
        else:
            threading.Thread(
                target=self._log, args=(every_s,), name="ecsim-progress", daemon=True
            ).start()

    def __call__(self, done: int) -> None:
        self.done += done
        if self.bar is not None:
            self.bar.update(done)

    def _log(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            elapsed = time.perf_counter() - self.started
            click.echo(
                f"{self.label}: {self.done}/{self.total} runs finished after {elapsed:.0f} s",
                err=True,
            )

    def close(self) -> None:
        self._stop.set()
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _run_batch(work, total: int, label: str, executor):
    progress = BatchProgress(total, label)
    try:
        result = work(progress)
    except BaseException:
        executor.terminate()  # an interrupted batch leaves no worker behind
        raise
    finally:
        progress.close()
    executor.close()
    return result


@main.command()
@_scenario_options
@_timing_options
@click.option(
    "--replications",
    type=click.IntRange(1, MAX_REPLICATIONS),
    help="Independent replications (default: the scenario's); more than one gives every metric"
    " a 95% confidence interval.",
)
@click.option(
    "--precision",
    help="Add replications until the metric's 95% interval is within this much of its mean,"
    " e.g. 5%.",
)
@click.option(
    "--precision-metric",
    default="latency_s.p99",
    show_default=True,
    help="The metric --precision is about (a summary key, dotted).",
)
@click.option(
    "--max-replications",
    type=click.IntRange(2, MAX_REPLICATIONS),
    default=100,
    show_default=True,
    help="The most replications --precision may run.",
)
@_folder_options
@_executor_options
@_plot_option
@click.option("--quiet", is_flag=True, help="Do not print the summary table.")
def run(
    scenario_file,
    seed,
    overrides,
    out,
    duration,
    warmup,
    replications,
    precision,
    precision_metric,
    max_replications,
    resume,
    overwrite,
    workers,
    scheduler,
    plot,
    quiet,
) -> None:
    """Run a scenario, print its summary and write a run folder.

    With several replications (or --precision) every metric is reported as a mean with a 95%
    confidence interval, and replications.csv holds one row per replication; each finished
    replication is kept in runs/ as it ends, so --resume finishes an interrupted batch.

    \b
    Examples:
      ecsim run scenarios/baseline.yaml
      ecsim run scenarios/flash_sale.yaml --seed 7 --duration 20m --set servers[0].count=6
      ecsim run scenarios/baseline.yaml --replications 10
      ecsim run scenarios/baseline.yaml --precision 2% --precision-metric latency_s.p99
    """

    extra = (f"replications={replications}",) if replications is not None else ()

    def command(scenario) -> str:
        batch = scenario.replications > 1 or precision is not None
        if resume and not batch:
            _fail("--resume continues a batch of replications; this is a single run")
        return "replications" if batch else "run"

    scenario, folder = _prepare(
        scenario_file, seed, overrides, out, command, extra, duration, warmup, resume, overwrite
    )
    from sim.analysis import finite_or_none
    from sim.experiment import run as run_scenario

    if scenario.replications > 1 or precision is not None:
        _run_replications(
            scenario,
            folder,
            precision,
            precision_metric,
            max_replications,
            workers,
            scheduler,
            quiet,
            plot,
        )
        return

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
        default = scenario.slo.availability_is_default
        click.echo(format_summary(finite_or_none(result.summary), default))
        if len(result.incidents):
            click.echo("")
            records = finite_or_none(result.incidents.to_dict("records"))
            click.echo(format_incidents(records))
        click.echo("")
    click.echo(f"run folder: {folder.path}  ({result.wall_time_s:.1f}s wall time)")
    if plot:
        _draw(folder.path)


def _run_replications(
    scenario, folder, precision, metric, cap, workers, scheduler, quiet, plot
) -> None:
    from sim.experiment import (
        confidence_intervals,
        precise_enough,
        replicate,
        replicate_to_precision,
    )
    from sim.results import RUNS

    target = None
    if precision is not None:
        try:
            target = parse_fraction(precision)
        except ValueError as error:
            _fail(f"--precision: {error}")
        if target <= 0:
            _fail("--precision: expected a relative half-width above 0%, e.g. 5%")
        _check_metric(scenario, metric, "--precision-metric")
    executor = _make_executor(workers, scheduler)
    count = scenario.replications if target is None else min(max(5, scenario.replications), cap)
    store = folder.path / RUNS

    def work(metadata):
        def batch(progress):
            if target is None:
                return replicate(scenario, count, executor=executor, progress=progress, store=store)
            return replicate_to_precision(
                scenario,
                metric,
                target,
                start=count,
                cap=cap,
                executor=executor,
                progress=progress,
                store=store,
            )

        started = time.perf_counter()
        frame = _run_batch(batch, count, f"replicating {scenario.name}", executor)
        intervals = confidence_intervals(frame)
        metadata["wall_time_s"] = time.perf_counter() - started
        metadata["executor"] = executor.name
        folder.write_table("replications.csv", frame)
        summary = {
            "scenario": scenario.name,
            "seed": scenario.seed,
            "replications": len(frame),
            "confidence": 0.95,
            "metrics": {
                name: {k: row[k] for k in ("mean", "half_width", "low", "high")}
                for name, row in intervals.iterrows()
            },
        }
        if target is not None:
            summary["precision"] = {
                "metric": metric,
                "target": target,
                "reached": precise_enough(frame, metric, target),
            }
        folder.write_summary(summary)
        return intervals, metadata["wall_time_s"], frame

    intervals, wall_time_s, frame = _execute(folder, scenario, work)
    if not quiet:
        click.echo(format_intervals(scenario.name, len(frame), intervals))
        click.echo("")
    if plot:
        click.echo(
            "no figure: a batch of replications keeps no single run's time series; run one"
            " replication (--replications 1) to plot it",
            err=True,
        )
    if target is not None and not precise_enough(frame, metric, target):
        row = intervals.loc[metric]
        reached = abs(row["half_width"] / row["mean"]) if row["mean"] else float("inf")
        click.echo(
            f"warning: --precision {target:.1%} not reached for {metric}: the interval is"
            f" +-{reached:.1%} of the mean after {len(frame)} replications (the cap,"
            " --max-replications)",
            err=True,
        )
    click.echo(f"run folder: {folder.path}  ({wall_time_s:.1f}s wall time)")


@main.command()
@_scenario_options
@click.option(
    "--balancers",
    help="Balancing policies to compare, the first as baseline: round_robin,least_connections",
)
@click.option(
    "--vary",
    metavar="KEY.PATH=V1,V2,...",
    help="Compare values of any key instead, the first as baseline: servers[0].count=6,8,10",
)
@click.option(
    "--alternatives",
    "alternatives_file",
    type=click.Path(dir_okay=False, exists=True),
    help="A CSV file of alternatives instead, the first row as baseline: a column per key path"
    " (a blank cell keeps the scenario's value) and an optional 'alternative' column naming"
    " each row.",
)
@click.option(
    "--replications",
    type=click.IntRange(2, MAX_REPLICATIONS),
    help="Replications per alternative (default: the scenario's, at least 5).",
)
@click.option(
    "--metric",
    default="availability.request_based_within_latency",
    show_default=True,
    help="The metric the table is ranked by (any summary key; the default counts failed and"
    " slow requests alike: requests ok within slo.latency).",
)
@_timing_options
@_folder_options
@_executor_options
@_plot_option
def compare(
    scenario_file,
    seed,
    overrides,
    out,
    balancers,
    vary,
    alternatives_file,
    replications,
    metric,
    duration,
    warmup,
    resume,
    overwrite,
    workers,
    scheduler,
    plot,
) -> None:
    """Compare alternatives on common random numbers, with paired confidence intervals.

    Replication i of every alternative sees the same arrivals, the same work and the same
    failures; each metric's difference from the baseline gets a 95% interval and a verdict.
    Writes runs.csv, comparison.csv and summary.json.

    \b
    Examples:
      ecsim compare scenarios/slow_server.yaml \\
          --balancers round_robin,least_connections,power_of_two_choices
      ecsim compare scenarios/baseline.yaml --vary servers[0].count=6,8,10 --replications 10
      ecsim compare scenarios/overload_retries.yaml \\
          --alternatives scenarios/overload_retries_cures.csv
    """

    if sum(option is not None for option in (balancers, vary, alternatives_file)) != 1:
        _fail("give one of --balancers, --vary or --alternatives")
    if alternatives_file is not None:
        path = "alternative"
        alternatives = _read_alternatives(alternatives_file)
    else:
        if balancers is not None:
            path, values = "balancer.policy", [name.strip() for name in balancers.split(",")]
        else:
            try:
                path, values = parse_alternatives(vary)
            except ValueError as error:
                _fail(f"--vary: {error}")
        alternatives = {_label(value): {path: value} for value in values}
        if len(alternatives) < len(values):
            _fail("compare needs distinct alternatives; a value is given twice")
    if len(alternatives) < 2:
        _fail("compare needs at least two alternatives")
    scenario, folder = _prepare(
        scenario_file, seed, overrides, out, "compare", (), duration, warmup, resume, overwrite
    )
    from sim.experiment import compare as run_comparison
    from sim.experiment import with_overrides
    from sim.results import RUNS

    for label, changes in alternatives.items():
        try:
            variant = with_overrides(scenario, changes)
        except ScenarioError as error:
            click.echo(f"error: alternative {label!r} is not a valid scenario:", err=True)
            for problem in error.problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(USER_ERROR)
        _check_metric(variant, metric, "--metric")
        _warn(f"alternative {label}", variant, skip=advise(scenario))
    if direction(metric) == 0:
        _fail(
            f"--metric: {metric} is a fact with no better side (see the metric table in the"
            " README): rank by a metric where higher or lower is better"
        )
    count = replications or max(5, scenario.replications)
    executor = _make_executor(workers, scheduler)

    def work(metadata):
        started = time.perf_counter()
        runs, comparison = _run_batch(
            lambda progress: run_comparison(
                scenario,
                alternatives,
                count,
                executor=executor,
                progress=progress,
                store=folder.path / RUNS,
            ),
            count * len(alternatives),
            f"comparing {len(alternatives)} alternatives",
            executor,
        )
        metadata["wall_time_s"] = time.perf_counter() - started
        metadata["executor"] = executor.name
        folder.write_table("runs.csv", runs)
        folder.write_table("comparison.csv", comparison)
        folder.write_summary(
            {
                "scenario": scenario.name,
                "seed": scenario.seed,
                "parameter": path,
                "baseline": next(iter(alternatives)),
                "metric": metric,
                "replications": count,
                "confidence": 0.95,
                "common_random_numbers": True,
                "comparison": comparison.to_dict("records"),
            }
        )
        return runs, comparison, metadata["wall_time_s"]

    runs, comparison, wall_time_s = _execute(folder, scenario, work)
    click.echo(format_comparison(comparison, metric, path, count, runs))
    click.echo("")
    click.echo(f"run folder: {folder.path}  ({wall_time_s:.1f}s wall time)")
    if plot:
        _draw(folder.path)


@main.command()
@_scenario_options
@_points_options
@click.option(
    "--replications",
    type=click.IntRange(1, MAX_REPLICATIONS),
    help="Replications per point (default: the scenario's).",
)
@_timing_options
@_folder_options
@_executor_options
@_plot_option
def sweep(
    scenario_file,
    seed,
    overrides,
    out,
    params,
    points_file,
    replications,
    duration,
    warmup,
    resume,
    overwrite,
    workers,
    scheduler,
    plot,
) -> None:
    """Run a grid of parameter values (or listed points) x replications into one tidy table.

    One row per point and replication, one column per parameter and per metric, in
    sweep.parquet and sweep.csv. Every finished run is saved as it completes: Ctrl-C keeps
    them, and --resume skips them. Every point is checked before anything runs; a run that
    fails is reported with its parameters and the others go on (exit 1 when none succeeded).

    \b
    Examples:
      ecsim sweep scenarios/baseline.yaml --param servers[0].count=4,6,8 --replications 5
      ecsim sweep scenarios/baseline.yaml --points points.csv
      ecsim sweep scenarios/flash_sale.yaml --param servers[0].count=8,10 \\
          --param balancer.policy=round_robin,least_connections --out results/sizing --resume
    """

    if bool(params) == bool(points_file):
        _fail("give --param (a grid) or --points (a CSV file of points)")
    swept = _parse_params(params)
    extra = (f"replications={replications}",) if replications else ()
    scenario, folder = _prepare(
        scenario_file, seed, overrides, out, "sweep", extra, duration, warmup, resume, overwrite
    )
    from sim.experiment import sweep as run_sweep
    from sim.results import RUNS

    swept, points = _sweep_points(scenario, swept, points_file)
    store = folder.path / RUNS
    executor = _make_executor(workers, scheduler)
    total = len(points) * scenario.replications

    def work(metadata):
        started = time.perf_counter()
        table = _run_batch(
            lambda progress: run_sweep(
                scenario,
                points,
                scenario.replications,
                executor=executor,
                store=store,
                progress=progress,
            ),
            total,
            f"sweeping {len(points)} points",
            executor,
        )
        metadata["wall_time_s"] = time.perf_counter() - started
        metadata["executor"] = executor.name
        folder.write_table("sweep.csv", table)
        folder.write_parquet("sweep.parquet", table)
        return table, metadata["wall_time_s"]

    table, wall_time_s = _execute(folder, scenario, work)
    click.echo(format_sweep(table, list(swept)))
    failed = table[table.error.notna()]
    for _, row in failed.drop_duplicates("point").iterrows():
        values = ", ".join(f"{p}={row[p]}" for p in swept)
        click.echo(f"point {row.point} ({values}) failed: {row.error}", err=True)
    click.echo("")
    click.echo(f"run folder: {folder.path}  ({wall_time_s:.1f}s wall time, {len(table)} runs)")
    if len(failed) == len(table):
        click.echo("error: every run of the sweep failed", err=True)
        sys.exit(1)
    if plot:
        _draw(folder.path)


def _parse_params(params: tuple[str, ...]) -> dict[str, list]:
    """The swept key paths and their values; each path once, the grid within MAX_POINTS."""
    swept = {}
    for text in params:
        try:
            path, values = parse_alternatives(text)
        except ValueError as error:
            _fail(f"--param: {error}")
        if path in swept:
            _fail(f"--param: {path} is given twice; list all its values in one --param")
        swept[path] = values
    points = math.prod(len(values) for values in swept.values())
    if swept and points > MAX_POINTS:
        _fail(f"--param: the grid has {points:,} points, more than {MAX_POINTS:,}")
    return swept


def _sweep_points(scenario, swept: dict, points_file: str | None) -> tuple[list[str], list[dict]]:
    """The swept key paths and the points (a grid, or the rows of a points file), every point
    checked as a scenario before anything runs (exit 2 naming each invalid one)."""
    from sim.experiment import grid, with_overrides

    if points_file:
        points = _read_points(points_file)
        swept = dict.fromkeys(points[0])
    else:
        points = grid(swept)
    invalid = []
    for index, point in enumerate(points):
        values = ", ".join(f"{p}={v}" for p, v in point.items())
        try:
            variant = with_overrides(scenario, point)
        except ScenarioError as error:
            invalid += [f"point {index} ({values}): {problem}" for problem in error.problems]
        else:
            _warn(f"point {index} ({values})", variant, skip=advise(scenario))
    if invalid:
        click.echo("error: some points are not valid scenarios:", err=True)
        for line in invalid[:20]:
            click.echo(f"  {line}", err=True)
        sys.exit(USER_ERROR)
    return list(swept), points


def _read_points(path: str, option: str = "--points", blank_keeps: bool = False) -> list[dict]:
    """:func:`sim.overrides.read_points`, failing with the option's name."""
    try:
        return read_points(path, blank_keeps, MAX_POINTS)
    except ValueError as error:
        _fail(f"{option}: {error}")


def _check_metric(scenario, metric: str, option: str) -> None:
    """Fail at once, not after the whole batch, when ``metric`` is not a summary key of this
    scenario (the metric catalogue knows them all without running anything)."""
    known = keys_for(scenario)
    if metric not in known:
        close = did_you_mean(metric, known)
        _fail(f"{option}: no metric {metric!r} in the summary of this scenario{close}")


def _label(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _read_alternatives(path: str) -> dict[str, dict]:
    """:func:`sim.overrides.read_alternatives`, failing with the option's name."""
    try:
        return read_alternatives(path, MAX_POINTS)
    except ValueError as error:
        _fail(f"--alternatives: {error}")


@main.command()
@_scenario_options
@click.option(
    "--years",
    type=FiniteFloatRange(min=0, max=MAX_YEARS, min_open=True),
    default=1000.0,
    show_default=True,
    help="Simulated years in all per design, split over the replications.",
)
@click.option(
    "--replications",
    type=click.IntRange(2, MAX_REPLICATIONS),
    default=10,
    show_default=True,
    help="Independent replications per design, for the confidence interval.",
)
@_points_options
@click.option(
    "--method",
    type=click.Choice(["auto", "crude", "biased"]),
    default="auto",
    show_default=True,
    help="crude: replications of simulated years, on the executor; biased: failure biasing on"
    " regenerative cycles, for five and six nines where only coinciding failures take the"
    " service down (the cycles shared by the replications, on the executor, and pooled);"
    " auto: biased when the Markov chain puts the unavailability below 1e-5 and no single"
    " failure takes a class down (at every design of a sweep), else crude.",
)
@click.option(
    "--cycles",
    type=click.IntRange(30, 10_000_000),
    default=20_000,
    show_default=True,
    help="Regenerative cycles of the biased method, in all per design.",
)
@_folder_options
@_executor_options
@_plot_option
def availability(
    scenario_file,
    seed,
    overrides,
    out,
    years,
    replications,
    params,
    points_file,
    method,
    cycles,
    resume,
    overwrite,
    workers,
    scheduler,
    plot,
) -> None:
    """Estimate time-based availability over centuries: failures, detection and repair only.

    No request is simulated, so a thousand years take seconds. Prints the service's and each
    request class's availability with a 95% confidence interval, in nines and downtime per
    year, the downtime per year by cause, and the Markov-chain value where the design allows
    one. With --param or --points, one such estimate per design, in a tidy table
    (sweep.csv, sweep.parquet; --plot draws the availability curve).

    \b
    Examples:
      ecsim availability scenarios/four_nines.yaml
      ecsim availability scenarios/four_nines.yaml --years 5000 --set servers[0].count=3
      ecsim availability scenarios/four_nines.yaml --param servers[0].standby.count=0,1,2,3 --plot
    """

    swept = _parse_params(params)
    if params and points_file:
        _fail("give --param (a grid) or --points (a CSV file of points), not both")
    scenario, folder = _prepare(
        scenario_file, seed, overrides, out, "availability", (), None, None, resume, overwrite
    )
    from sim.analysis import SECONDS_PER_YEAR, finite_or_none
    from sim.experiment import BatchError, with_overrides
    from sim.experiment import sweep as run_sweep
    from sim.rare_events import biased_report
    from sim.reliability import availability_report
    from sim.results import RUNS

    if scenario.balancer.panic_threshold:
        click.echo(
            "warning: balancer.panic_threshold: in panic the balancer sends dead members their"
            " share of requests, which time-based availability does not count (a class is up"
            " while slo.min_servers serve); `ecsim run` shows the cost in requests",
            err=True,
        )
    detection = scenario.balancer.detection
    if detection.suspects_healthy_backends():
        share = detection.false_suspicion_share()
        how_often = (
            ""
            if share is None
            else f" (each about {share * 100:.2g}% of its time, in"
            f" {detection.false_suspicion_rate() * SECONDS_PER_YEAR:,.0f} suspicions a year)"
        )
        click.echo(
            "warning: balancer.detection: lost or late heartbeats take healthy backends out of"
            f" rotation{how_often}; the long-horizon mode and the Markov chain simulate no such"
            " false suspicion and count that time as up; `ecsim run` simulates and counts them"
            " (incidents.false_suspicions)",
            err=True,
        )
    for index, failure in enumerate(scenario.failures):
        if failure.kind == "pause":
            click.echo(
                f"warning: failures[{index}] (pause on {failure.target.describe()}): the"
                " long-horizon mode detects through sampled delays, which never suspect a paused"
                " server, so a pause costs nothing there; `ecsim run` simulates the false"
                " suspicions and failovers pauses cause",
                err=True,
            )
        elif failure.kind != "crash_repair":
            click.echo(
                f"warning: failures[{index}] ({failure.kind} on {failure.target.describe()}) is a"
                f" one-off: it happens once in each of the {replications} replications, so over"
                f" {years:g} years it weighs almost nothing; the long-horizon estimate is for"
                " the crash_repair entries (`ecsim run` shows what a one-off costs)",
                err=True,
            )
    names, points = (
        _sweep_points(scenario, swept, points_file) if swept or points_file else ([], [{}])
    )
    designs = [with_overrides(scenario, point) for point in points]
    note = _choose_method(designs, points, method)
    if note is not None and names:
        click.echo(f"method: {note}", err=True)
    if note is not None and cycles < replications:
        _fail(
            f"--cycles {cycles} cannot be shared by --replications {replications}: each run"
            " needs a cycle at least"
        )
    executor = _make_executor(workers, scheduler)
    what = (
        f"failure biasing, {cycles:,} cycles of {scenario.name}"
        if note is not None
        else f"simulating {years:g} years of {scenario.name}"
    )
    label = what + (f" at {len(points)} designs" if names else "")

    def work(metadata):
        started = time.perf_counter()
        table = _run_batch(
            lambda progress: run_sweep(
                scenario,
                points,
                replications,
                executor=executor,
                store=folder.path / RUNS,
                progress=progress,
                years=None if note is not None else years / replications,
                cycles=-(-cycles // replications) if note is not None else None,
            ),
            len(points) * replications,
            label,
            executor,
        )
        metadata["wall_time_s"] = time.perf_counter() - started
        metadata["executor"] = executor.name
        failed = table[table.error.notna()]
        if len(failed):
            raise BatchError([f"point {row.point}: {row.error}" for row in failed.itertuples()])
        report = (
            (lambda design, rows: {**biased_report(design, rows), "method_note": note})
            if note is not None
            else (lambda design, rows: availability_report(design, years, replications, rows))
        )
        estimates = [
            {**report(design, table[table.point == index]), "point": point}
            for index, (design, point) in enumerate(zip(designs, points, strict=True))
        ]
        if names:
            folder.write_table("sweep.csv", table)
            folder.write_parquet("sweep.parquet", table)
            folder.write_summary({"mode": "availability", "designs": estimates})
        else:
            folder.write_summary(estimates[0])
        return estimates, metadata["wall_time_s"]

    estimates, wall_time_s = _execute(folder, scenario, work)
    default = all(design.slo.availability_is_default for design in designs)
    if names:
        click.echo(format_availability_sweep(estimates, points, names, default))
    else:
        click.echo(format_availability(finite_or_none(estimates[0]), default))
    click.echo("")
    click.echo(f"run folder: {folder.path}  ({wall_time_s:.1f}s wall time)")
    if plot:
        _draw(folder.path)


UNAVAILABILITY_FOR_BIASING = 1e-5
"""Below this unavailability (by the Markov chain) ``--method auto`` uses failure biasing."""


def _choose_method(designs: list, points: list[dict], method: str) -> str | None:
    """Why failure biasing runs (the text printed), or None for crude simulation. A sweep
    runs one method at every design: biased only when each of them allows it."""
    from sim.rare_events import biasing_applies, single_failure_outage
    from sim.reliability import markov_availability

    def where(index: int, holds_for=None) -> str:
        """Which design a reason is about: none to name for one design, or every design
        when ``holds_for(design)`` gives a reason for each (a single balancer nobody swept)."""
        if len(designs) == 1:
            return ""
        if holds_for is not None and all(holds_for(design) for design in designs):
            return " at every design"
        values = ", ".join(f"{p}={v}" for p, v in points[index].items())
        return f" at point {index} ({values})"

    if method == "crude":
        return None
    chains = []
    for index, design in enumerate(designs):
        reason = biasing_applies(design)
        if method == "biased":
            if reason:
                _fail(f"--method biased{where(index)}: {reason}")
            alone = single_failure_outage(design)
            if alone:
                click.echo(
                    f"warning: {alone}{where(index)}: such outages come often enough for crude"
                    " simulation (--method crude), and failure biasing only adds variance",
                    err=True,
                )
            continue
        if reason:
            click.echo(
                "method: crude simulation (failure biasing cannot run"
                f"{where(index, biasing_applies)}: {reason})",
                err=True,
            )
            return None
        reason = single_failure_outage(design)
        if reason:
            _say_crude(f"{reason}{where(index, single_failure_outage)}")
            return None
        markov = markov_availability(design)["value"]
        if markov is None or 1 - markov >= UNAVAILABILITY_FOR_BIASING:
            if len(designs) > 1:
                _say_crude(
                    f"the Markov chain puts the unavailability{where(index)} above"
                    f" {UNAVAILABILITY_FOR_BIASING:g}"
                )
            return None
        chains.append(1 - markov)
    if method == "biased":
        return "failure biasing on regenerative cycles (--method biased)"
    return (
        f"failure biasing on regenerative cycles, chosen because the Markov chain puts the"
        f" unavailability at {_range(chains)}, below {UNAVAILABILITY_FOR_BIASING:g}, where"
        " crude simulation sees too few coincident failures (--method crude forces it)"
    )


def _say_crude(why: str) -> None:
    click.echo(
        f"method: crude simulation ({why}: outages come often enough to count, and failure"
        " biasing would only add variance)",
        err=True,
    )


def _range(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2g}" if low == high else f"{low:.2g} to {high:.2g}"


@main.command()
@click.argument("results_folder", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--out", type=click.Path(file_okay=False), help="Where to write (default: the folder)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "svg", "pdf"]),
    default="png",
    show_default=True,
    help="Image format.",
)
@click.option(
    "--metric",
    help="What a comparison chart leads with (default: its ranking metric) or a sweep's"
    " availability curve shows (default: availability.request_based).",
)
def plot(results_folder, out, fmt, metric) -> None:
    """Draw the figures that fit a run, comparison or sweep folder.

    A run gets its latency CDF per class, its time series with failures shaded and its
    incident timeline; a comparison its chart of alternatives; a sweep its availability curve
    against the first swept parameter (on a nines scale, with 95% bands, the Markov chain's
    line where the design has one, and the SLO target).

    \b
    Examples:
      ecsim plot results/flash_sale_crash-20261125-101500-seed20261125
      ecsim plot results/sizing --format svg --out docs/images
      ecsim plot results/spares --metric availability.time_based
    """
    from sim.figures import NothingToDraw, draw_folder

    try:
        written = draw_folder(Path(results_folder), Path(out) if out else None, fmt, metric)
    except NothingToDraw as error:
        _fail(str(error))
    except KeyError as error:
        _fail(f"cannot read the results in {results_folder}: no {error} in them")
    except (OSError, ValueError, TypeError, AttributeError) as error:
        # A damaged or hand-edited file: a summary that is not a mapping, a missing column.
        _fail(f"cannot read the results in {results_folder}: {error}")
    for path in written:
        click.echo(f"figure: {path}")


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
            scenario = load_scenario(path)
        except ScenarioError as error:
            failed = True
            for problem in error.problems:
                click.echo(f"{error.source}: {problem}", err=True)
        else:
            click.echo(f"{path}: ok")
            _warn(path, scenario)
    if failed:
        sys.exit(USER_ERROR)


@main.command(name="list")
def list_kinds() -> None:
    """List the balancing policies, distributions, failure models, detectors, balancer redundancy
    and replication kinds a scenario can name.

    \b
    Example:
      ecsim list
    """
    click.echo("balancing policies (balancer.policy): " + ", ".join(BALANCING_POLICIES.names()))
    click.echo("distributions (kind): " + ", ".join(DISTRIBUTIONS.names()))
    click.echo("failure models (failures[].kind): " + ", ".join(FAILURE_MODELS.names()))
    click.echo("failure detectors (balancer.detection): " + ", ".join(DETECTORS.names()))
    click.echo(
        "balancer redundancy (balancer.redundancy): " + ", ".join(BALANCER_REDUNDANCY.names())
    )
    click.echo("replication kinds (database.replication): " + ", ".join(REPLICATION_KINDS.names()))
