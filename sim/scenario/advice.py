"""Warnings about scenarios that are valid but probably not what their author meant.

Validation refuses what cannot run; this module points at what runs but likely answers another
question than the one asked: a failure scheduled after the run ends, a client that never gives
up, a replication mode that cannot do what it says, a cluster offered more work than it can do.
Every command that loads a scenario prints these, in one place, before it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.scenario.database import MASTER_SLAVE_ONLY
from sim.scenario.failures import ZoneOutageSpec
from sim.scenario.root import Scenario
from sim.scenario.workload import RateProfile

__all__ = ["LONG_RUN_S", "LONG_TIMEOUT_S", "REQUESTS_PER_S", "Advice", "advise", "work_of"]

LONG_TIMEOUT_S = 600.0
"""A client timeout beyond ten minutes: real clients give up within seconds to a minute."""

REQUESTS_PER_S = 50_000
"""Simulated requests a second of work on one core, a prudent figure for the estimate (the
README's examples run at 50,000 to 90,000 a second); a database operation counts as three."""
EVENTS_PER_S = 200_000
"""Other simulated events (probes, heartbeats, failures) a second of work on one core: a
heartbeat detector on ten backends runs about 250,000 a second."""
LONG_RUN_S = 300.0
"""A run estimated to take longer than five minutes is warned about, with the estimate."""


@dataclass(frozen=True)
class Advice:
    """One warning: the key path it is about, and what looks wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def advise(scenario: Scenario) -> list[Advice]:
    """What looks unintended in ``scenario`` (an empty list when nothing does)."""
    return [
        *_late_failures(scenario),
        *_long_timeouts(scenario),
        *_idle_resilience(scenario),
        *_replication(scenario),
        *_database_detection(scenario),
        *_overload(scenario),
        *_idle_trace(scenario),
        *_long_run(scenario),
    ]


def work_of(scenario: Scenario) -> tuple[float, float]:
    """Requests and database operations a run is expected to simulate: the open-loop
    arrivals over the duration (the integral of the rate profile), plus at most one request
    per closed-loop user per think and service time."""
    workload = scenario.workload
    requests = 0.0
    if workload.arrivals is not None and workload.arrivals.trace is not None:
        requests += workload.arrivals.trace.arrivals().count(0.0, scenario.duration)
    elif workload.arrivals is not None:
        requests += RateProfile(workload.arrivals).cumulative(scenario.duration)
    if workload.sessions is not None:
        by_name = {request_class.name: request_class for request_class in workload.classes}
        steps = workload.sessions.steps
        cycle = sum(
            workload.sessions.think_time.mean() + by_name[step].service_time.mean()
            for step in steps
        )
        cycles = scenario.duration / cycle if cycle > 0 else 0.0
        requests += workload.sessions.users * cycles * len(steps)
    shares = (
        workload.arrival_mix(scenario.duration)
        if workload.arrivals is not None
        else [1 / len(workload.classes)] * len(workload.classes)
    )
    operations_per_request = sum(
        share * (c.database.reads + c.database.writes) if c.database else 0.0
        for share, c in zip(shares, workload.classes, strict=True)
    )
    return requests, requests * operations_per_request


def background_events(scenario: Scenario) -> float:
    """Events a run simulates besides requests: the probes or heartbeats of the balancer's
    detector (one per backend and interval) and the failures and repairs of every
    ``crash_repair`` component (about 20 events each: crash, detection, failover, repair,
    rejoin)."""
    detection = scenario.balancer.detection
    backends = sum(len(group.server_names()) for group in scenario.backend_groups())
    events = backends * scenario.duration / detection.interval
    for failure in scenario.failures:
        if failure.kind == "crash_repair":
            cycle = failure.time_to_failure.mean() + failure.time_to_repair.mean()
            components = (
                1
                if failure.target.zone or failure.target.balancer
                else _count(scenario, failure.target)
            )
            events += 20 * components * scenario.duration / max(cycle, 1e-9)
    return events


def _count(scenario: Scenario, target) -> int:
    """How many servers a server or group target names (database and cache nodes included)."""
    if target.server is not None:
        return 1
    groups = {group.name: len(group.server_names()) for group in scenario.servers}
    if scenario.database is not None:
        groups["db"] = scenario.database.shards * scenario.database.nodes_per_shard()
        if scenario.database.cache is not None:
            groups["cache"] = scenario.database.cache.nodes
    return groups.get(target.group, 1)


def _long_run(scenario: Scenario) -> list[Advice]:
    requests, operations = work_of(scenario)
    events = background_events(scenario)
    seconds = (requests + 3 * operations) / REQUESTS_PER_S + events / EVENTS_PER_S
    if seconds <= LONG_RUN_S:
        return []
    data = f" and {operations:,.0f} database operations" if operations else ""
    other = f" and {events:,.0f} probes, failures and repairs" if events > 1e6 else ""
    return [
        Advice(
            "duration",
            f"this run simulates about {requests:,.0f} requests{data}{other}: about"
            f" {_amount(seconds / 60)} minutes of work at {REQUESTS_PER_S:,} requests and"
            f" {EVENTS_PER_S:,} other events a second; a shorter --duration, a lower rate or"
            " longer intervals give a first answer sooner",
        )
    ]


def _amount(value: float) -> str:
    """A count for a message: digits up to a billion, then powers of ten."""
    return f"{value:,.0f}" if value < 1e9 else f"{value:.2g}"


def _late_failures(scenario: Scenario) -> list[Advice]:
    advice = []
    for index, failure in enumerate(scenario.failures):
        at = failure.starts_at()
        if at is not None and at >= scenario.duration:
            what = "zone outage" if isinstance(failure, ZoneOutageSpec) else failure.kind
            advice.append(
                Advice(
                    f"failures[{index}].at",
                    f"this {what} starts at {at:g}s, after the run ends ({scenario.duration:g}s):"
                    " it never happens in `ecsim run`",
                )
            )
    return advice


def _long_timeouts(scenario: Scenario) -> list[Advice]:
    advice = []
    for index, request_class in enumerate(scenario.workload.classes):
        timeout = request_class.timeout
        if timeout is None:
            continue
        if timeout >= scenario.duration:
            reason = f"longer than the whole run ({scenario.duration:g}s): no request can time out"
        elif timeout > LONG_TIMEOUT_S:
            reason = "over ten minutes, where real clients give up within seconds to a minute;"
            reason += " is it in the right unit?"
        else:
            continue
        advice.append(
            Advice(
                f"workload.classes[{index}].timeout",
                f"a client timeout of {timeout:g}s is {reason}",
            )
        )
    return advice


def _idle_resilience(scenario: Scenario) -> list[Advice]:
    """Client resilience that can never act: hedges due after the deadline, a budget for a
    class that never retries nor hedges."""
    advice = []
    for index, request_class in enumerate(scenario.workload.classes):
        hedging, timeout = request_class.hedging, request_class.timeout
        if hedging is not None and timeout is not None and hedging.delay >= timeout:
            advice.append(
                Advice(
                    f"workload.classes[{index}].hedging.delay",
                    f"a hedging delay of {hedging.delay:g}s is not shorter than the timeout"
                    f" ({timeout:g}s): no hedge is ever sent",
                )
            )
        retries = request_class.retries
        if retries.budget is not None and not retries.max_retries and hedging is None:
            advice.append(
                Advice(
                    f"workload.classes[{index}].retries.budget",
                    "a retry budget for a class that neither retries (retries.max is 0) nor"
                    " hedges does nothing",
                )
            )
    return advice


def _replication(scenario: Scenario) -> list[Advice]:
    database = scenario.database
    if database is None:
        return []
    replication = database.replication
    if (
        replication.kind == "master_slave"
        and replication.mode != "async"
        and not replication.replicas
    ):
        return [
            Advice(
                "database.replication.mode",
                f"{replication.mode} with no replica acknowledges every write at once, as async"
                " does: give it replicas, or write mode: async",
            )
        ]
    if (
        replication.kind == "master_slave"
        and replication.mode == "async"
        and "ack_timeout" in replication.model_fields_set
    ):
        return [
            Advice(
                "database.replication.ack_timeout",
                "has no effect with mode: async (the master never waits for an acknowledgement):"
                " it is a semi_sync and sync key",
            )
        ]
    if replication.kind == "multi_master":
        return [
            Advice(
                f"database.replication.{key}",
                "has no effect with multi_master (every node takes writes, acknowledged at"
                " once; reads go to any node; no one is promoted): it is a master_slave key",
            )
            for key in MASTER_SLAVE_ONLY
            if key in replication.model_fields_set
        ]
    return []


def _database_detection(scenario: Scenario) -> list[Advice]:
    """The data tier's detection is a delay drawn from the detector's law, in every mode."""
    database = scenario.database
    if database is None or not database.detection.suspects_healthy_backends():
        return []
    return [
        Advice(
            "database.detection",
            "in the long-horizon mode (ecsim availability) the data tier's detection is a delay"
            " drawn from the detector's law, which lost or late heartbeats shape, but it never"
            " suspects a healthy database node: those false suspicions (and the failovers they"
            " would start) are simulated by ecsim run only",
        )
    ]


def _idle_trace(scenario: Scenario) -> list[Advice]:
    """A trace whose times do not fit the run: no arrival in the measured window (Unix
    timestamps rather than seconds from the start), most arrivals after the end of the run
    (milliseconds rather than seconds), or a trace that ends well before the run does (the
    rates of the summary then average over idle time)."""
    arrivals = scenario.workload.arrivals
    if arrivals is None or arrivals.trace is None:
        return []
    trace = arrivals.trace.arrivals()
    first, last, total = float(trace.times[0]), float(trace.times[-1]), len(trace.times)
    span = f"its arrivals run from {first:,.3f}s to {last:,.3f}s"
    if not trace.count(scenario.warmup, scenario.duration):
        return [
            Advice(
                "workload.arrivals.trace",
                f"no arrival of the trace falls between the warm-up ({scenario.warmup:g}s) and"
                f" the end of the run ({scenario.duration:g}s): {span}; times are seconds from"
                " the start of the run (subtract the first timestamp; divide milliseconds by"
                " 1000)",
            )
        ]
    within = trace.count(0.0, scenario.duration)
    if within < 0.5 * total:
        return [
            Advice(
                "workload.arrivals.trace",
                f"only {within:,} of the trace's {total:,} arrivals fall within the run"
                f" ({scenario.duration:g}s): {span} (times in milliseconds? they are seconds)",
            )
        ]
    if scenario.duration - last > 0.1 * scenario.duration:
        return [
            Advice(
                "workload.arrivals.trace",
                f"the trace ends at {last:,.3f}s, {scenario.duration - last:,.1f}s before the run"
                " does: nothing arrives after it, and the summary's rates average over that"
                " idle time (a shorter duration, or a lower speed, fits the trace)",
            )
        ]
    return []


PEAK_WINDOW_S = 60.0
"""A trace's peak rate is its busiest minute."""


def _overload(scenario: Scenario) -> list[Advice]:
    """Open-loop work beyond the capacity of the servers behind the balancer, at the highest
    rate of the profile (of a trace: its busiest minute): queues then grow for as long as that
    rate lasts."""
    arrivals = scenario.workload.arrivals
    if arrivals is None:
        return []
    if arrivals.trace is not None:
        peak = arrivals.trace.arrivals().peak_rate(scenario.duration, PEAK_WINDOW_S)
    else:
        peak = max(
            [
                arrivals.rate,
                *(change.rate for change in arrivals.profile if change.at < scenario.duration),
            ]
        )
    mix = scenario.workload.arrival_mix(scenario.duration)
    work_per_request = sum(
        share * c.service_time.mean()
        for share, c in zip(mix, scenario.workload.classes, strict=True)
    )
    # An autoscaled group can grow to its max: overload is work beyond that.
    capacity = sum(
        (g.autoscaling.maximum if g.autoscaling else g.count) * g.workers * g.speed
        for g in scenario.backend_groups()
    )
    offered = peak * work_per_request
    if capacity <= 0 or offered <= capacity:
        return []
    return [
        Advice(
            "workload.arrivals",
            f"at its peak ({peak:g}/s) the workload needs {offered:.3g} workers busy all the time,"
            f" and the servers have {capacity:g}: {_amount(offered / capacity * 100)}% of"
            " capacity, so queues"
            " grow while that rate lasts (intended for an overload study?)",
        )
    ]
