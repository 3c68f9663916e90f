"""Every metric of a run's summary, declared once: its key, unit, direction and meaning.

The summary (``summary.json``, the flat columns of replications, comparisons and sweeps) is a
public API. Nothing guesses what a key means from the words in it: the report, ``--metric``
checks, comparison verdicts, sweep columns, plots and the README's metric table all read this
catalogue, and a test holds the summary of a run with every feature on to it, key for key.

Keys are dotted paths into the summary. Parts in angle brackets stand for names from the
scenario: ``<class>`` a request class, ``<group>`` a server group, ``<scaled>`` a group with
autoscaling, ``<server>`` a server behind the balancer, ``<shard>`` a database shard number,
``<component>`` a cause of downtime (:func:`sim.scenario.paths.downtime_causes`).

    from sim.catalogue import metric, keys_for
    metric("availability.request_based_within_latency").direction   # +1: higher is better
    keys_for(scenario)          # the flat keys a run of this scenario reports, in order
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from sim.registry import did_you_mean
from sim.request import Cause, Outcome
from sim.scenario.paths import downtime_causes

__all__ = [
    "CYCLE_METRICS",
    "HIGHER",
    "LOWER",
    "METRICS",
    "NEUTRAL",
    "UNITS",
    "Metric",
    "UnknownMetricError",
    "check_summary",
    "direction",
    "flatten",
    "keys_for",
    "metric",
]

HIGHER, LOWER, NEUTRAL = 1, -1, 0
"""Directions: higher is better, lower is better, or a fact with no better side."""

_COUNT = (0.0, math.inf)
UNITS: dict[str, tuple[float, float] | None] = {
    "s": (0.0, math.inf),
    "1/s": (0.0, math.inf),
    "fraction": (0.0, 1.0),
    "ratio": (0.0, math.inf),  # a fraction that may pass 1 (an overspent error budget)
    "nines": (0.0, math.inf),
    **dict.fromkeys(
        (
            "requests",
            "attempts",
            "servers",
            "server-hours",
            "workers",
            "incidents",
            "events",
            "operations",
        ),
        _COUNT,
    ),
    "failovers": _COUNT,
    "cycles": _COUNT,
    "sum": None,  # a sum over regenerative cycles, kept so that runs pool exactly
    "bool": None,
    "": None,  # a label: the seed, the replication
}
"""Every unit a metric may have, with the closed range its values lie in (None: no range)."""


@dataclass(frozen=True)
class Metric:
    """One summary metric. ``ok_only``: computed over requests that ended ok, so an alternative
    that fails more requests can look better on it."""

    key: str
    unit: str
    direction: int
    definition: str
    ok_only: bool = False

    @property
    def pattern(self) -> re.Pattern[str]:
        return _pattern(self.key)


LATENCY_QUANTILES = ("p50", "p90", "p95", "p99", "p99.9")


def _latency(prefix: str, what: str, ok_only: bool = True, maximum: bool = True) -> list[Metric]:
    scope = " of requests that ended ok, from arrival to answer, retries included"
    scope = scope if ok_only else ""
    metrics = [Metric(f"{prefix}.mean", "s", LOWER, f"mean {what}{scope}", ok_only)]
    metrics += [
        Metric(f"{prefix}.{q}", "s", LOWER, f"{q[1:]}th percentile of {what}{scope}", ok_only)
        for q in LATENCY_QUANTILES
    ]
    if maximum:
        metrics.append(Metric(f"{prefix}.max", "s", LOWER, f"largest {what}{scope}", ok_only))
    return metrics


def _requests(prefix: str, who: str) -> list[Metric]:
    outcome_words = {
        Outcome.OK: "ended ok",
        Outcome.TIMEOUT: "timed out at the client (after any retries)",
        Outcome.REJECTED: "were rejected by a full queue",
        Outcome.NO_BACKEND: "found no backend the balancer believed up",
        Outcome.ERROR: "failed with an error (see error_by_cause)",
        Outcome.SHED: "were shed on purpose to protect the service (see shed_by_cause)",
    }
    cause_words = {
        Cause.SERVER_CRASH: "refused by a crashed server or lost in its crash",
        Cause.UNREACHABLE: "cut off by a partition, or timed out connecting",
        Cause.BALANCER_DOWN: "failed because the balancer itself was down",
        Cause.DATABASE_FAILOVER: "found no database node to take an operation (failover)",
        Cause.DATABASE_ERROR: "had a database operation refused, lost or rejected by a node",
        Cause.CIRCUIT_OPEN: "failed at once, unsent, because the client's circuit breaker was open",
        Cause.RATE_LIMITED: "found no token in the balancer's rate limiter",
        Cause.CONCURRENCY_LIMITED: "found the balancer at its concurrency limit (for its priority)",
        Cause.QUEUE_DELAY: "waited in a server's queue longer than its shedding policy allows",
    }
    metrics = [Metric(f"{prefix}.ended", "requests", NEUTRAL, f"{who} that ended in the window")]
    for outcome in Outcome:
        better = HIGHER if outcome is Outcome.OK else LOWER
        metrics.append(
            Metric(
                f"{prefix}.{outcome.label}",
                "requests",
                better,
                f"{who} that {outcome_words[outcome]}",
            )
        )
    metrics += [
        Metric(
            f"{prefix}.error_by_cause.{cause.label}",
            "requests",
            LOWER,
            f"{who} whose error was: {cause_words[cause]}",
        )
        for cause in Cause
        if cause.outcome is Outcome.ERROR
    ]
    metrics += [
        Metric(
            f"{prefix}.shed_by_cause.{cause.label}",
            "requests",
            LOWER,
            f"{who} shed because they {cause_words[cause]}",
        )
        for cause in Cause
        if cause.outcome is Outcome.SHED
    ]
    metrics.append(
        Metric(
            f"{prefix}.good",
            "requests",
            HIGHER,
            f"{who} ok within slo.latency (every ok one when no latency is set)",
        )
    )
    return metrics


def _availability(prefix: str) -> list[Metric]:
    return [
        Metric(f"{prefix}.request_based", "fraction", HIGHER, "ok / ended"),
        Metric(
            f"{prefix}.nines",
            "nines",
            HIGHER,
            "-log10(1 - request_based): 99.9% is 3; null when no request failed",
        ),
        Metric(
            f"{prefix}.request_based_within_latency",
            "fraction",
            HIGHER,
            "good / ended: ok and within slo.latency; counts failures and slowness alike",
        ),
    ]


def _wait(prefix: str, who: str) -> list[Metric]:
    return _latency(
        prefix,
        f"time in queue before service of the attempts {who} that started service in the"
        " window (zero for those that did not wait)",
        ok_only=False,
        maximum=False,
    )


def _cycle_sums(prefix: str, what: str) -> list[Metric]:
    downtime = f"the downtime of {what} in a cycle times its likelihood ratio (X L)"
    return [
        Metric(f"{prefix}.sum", "sum", NEUTRAL, f"sum over the cycles of {downtime}"),
        Metric(f"{prefix}.sum2", "sum", NEUTRAL, f"sum of the squares of {downtime}"),
        Metric(f"{prefix}.cross", "sum", NEUTRAL, f"sum of {downtime} x T L"),
    ]


CYCLE_METRICS: tuple[Metric, ...] = (
    Metric(
        "cycles.count",
        "cycles",
        NEUTRAL,
        "regenerative cycles of a failure-biasing run (ecsim availability --method biased);"
        " the cycles.* sums of runs of one design add up to those of one run, from which the"
        " estimate and its interval follow (sim.rare_events.estimate_from_cycles)",
    ),
    Metric("cycles.simulated_s", "s", NEUTRAL, "simulated seconds (under the biased law)"),
    Metric("cycles.with_downtime", "cycles", NEUTRAL, "cycles in which the service was down"),
    Metric("cycles.largest", "sum", NEUTRAL, "the largest X L of the service in one cycle"),
    Metric("cycles.length.sum", "sum", NEUTRAL, "sum of the cycle lengths T times L (s)"),
    Metric("cycles.length.sum2", "sum", NEUTRAL, "sum of the squares of T L"),
    Metric("cycles.ratio.sum", "sum", NEUTRAL, "sum of the likelihood ratios L"),
    Metric("cycles.ratio.sum2", "sum", NEUTRAL, "sum of the squares of L"),
    *_cycle_sums("cycles.service", "the service (classes weighted by share)"),
    *_cycle_sums("cycles.all_classes", "all classes at once"),
    *_cycle_sums("cycles.classes.<class>", "the class"),
    *_cycle_sums("cycles.causes.<component>", "the service charged to the cause"),
)
"""The sufficient statistics a failure-biasing run reports (a mode of its own: a run reports
either these or the others)."""


METRICS: tuple[Metric, ...] = (
    Metric("seed", "", NEUTRAL, "the root random seed of the run"),
    Metric("replication", "", NEUTRAL, "the replication index (independent streams per index)"),
    Metric("duration_s", "s", NEUTRAL, "simulated time of the run"),
    Metric("warmup_s", "s", NEUTRAL, "start of the run left out of the summary"),
    Metric("measured_s", "s", NEUTRAL, "the measurement window: duration_s - warmup_s"),
    Metric("requests.arrived", "requests", NEUTRAL, "requests that arrived in the window"),
    *_requests("requests", "requests"),
    Metric("requests.in_flight_at_end", "requests", NEUTRAL, "requests not yet ended at the end"),
    Metric(
        "attempts",
        "attempts",
        NEUTRAL,
        "attempts sent in the window (first tries, retries, hedges)",
    ),
    Metric("retries", "attempts", LOWER, "attempts that were retries"),
    Metric(
        "attempts_per_request",
        "attempts",
        LOWER,
        "attempts / requests.arrived: the load amplification of retries and hedges",
    ),
    *_availability("availability"),
    Metric(
        "availability.time_based",
        "fraction",
        HIGHER,
        "mean over the request classes, weighted by their share of requests, of the fraction"
        " of the window each class was up (every tier on its path could serve it)",
    ),
    Metric("availability.time_based_nines", "nines", HIGHER, "-log10(1 - time_based)"),
    Metric(
        "availability.time_based_all_classes",
        "fraction",
        HIGHER,
        "fraction of the window every request class was up at once",
    ),
    Metric(
        "availability.windowed",
        "fraction",
        HIGHER,
        "good windows / all windows (time-weighted): a window of slo.window is good when at"
        " least slo.window_good of the requests that ended in it were good; overload counts",
    ),
    Metric(
        "availability.downtime_s",
        "s",
        LOWER,
        "(1 - time_based) x the window: seconds of downtime, classes weighted by share",
    ),
    Metric(
        "availability.downtime_per_year_s",
        "s",
        LOWER,
        "(1 - time_based) x one year (365.25 days)",
    ),
    Metric(
        "availability.excluding_planned",
        "fraction",
        HIGHER,
        "time_based with the downtime charged to maintenance counted as up: availability as"
        " SLAs that exclude scheduled maintenance windows count it (only with maintenance)",
    ),
    Metric(
        "availability.downtime_by_cause_s.<component>",
        "s",
        LOWER,
        "the part of downtime_s charged to one cause: balancer, servers, shard_<k>, zone_<zone>"
        " (a zone-wide failure explains every failed component) or combined (several tiers"
        " down at once); the causes sum to downtime_s",
    ),
    Metric(
        "availability.markov.value",
        "fraction",
        HIGHER,
        "steady-state availability of the design's Markov chain (null where none applies;"
        " availability.markov.reason says why)",
    ),
    Metric("availability.markov.nines", "nines", HIGHER, "-log10(1 - markov.value)"),
    Metric("availability.markov.downtime_per_year_s", "s", LOWER, "(1 - markov.value) x one year"),
    Metric(
        "availability.markov.all_classes",
        "fraction",
        HIGHER,
        "the chain's probability that every request class is up at once",
    ),
    Metric(
        "availability.markov.classes.<class>",
        "fraction",
        HIGHER,
        "the chain's availability of one class: the product of the tiers on its path",
    ),
    Metric(
        "availability.markov.phase_error",
        "fraction",
        NEUTRAL,
        "how much markov.value moves when the Erlang stages standing for fixed delays double:"
        " an estimate of the error the stages leave",
    ),
    Metric("arrival_rate_per_s", "1/s", NEUTRAL, "requests.arrived / measured_s"),
    Metric("throughput_per_s", "1/s", HIGHER, "requests.ok / measured_s"),
    *_latency("latency_s", "latency"),
    *_requests("classes.<class>.requests", "requests of the class"),
    *_availability("classes.<class>.availability"),
    Metric(
        "classes.<class>.availability.time_based",
        "fraction",
        HIGHER,
        "fraction of the window the class was up: the balancer working, at least"
        " slo.min_servers servers in rotation serving, and every shard it writes (reads)"
        " writable (readable); behind DNS, up by the share of requests that find a live"
        " balancer instance",
    ),
    Metric(
        "classes.<class>.availability.windowed",
        "fraction",
        HIGHER,
        "the class's good windows / all windows (see availability.windowed)",
    ),
    *_latency("classes.<class>.latency_s", "latency of the class"),
    *_wait("classes.<class>.wait_s", "of the class"),
    Metric("groups.<group>.servers", "servers", NEUTRAL, "servers of the group (spares aside)"),
    Metric("groups.<group>.workers", "workers", NEUTRAL, "workers of the group in all"),
    Metric(
        "groups.<group>.utilization",
        "ratio",
        NEUTRAL,
        "worker-seconds of service done in the window / (workers x window); promoted spares"
        " add workers, so a group with spares can pass 1",
    ),
    Metric(
        "groups.<group>.mean_queue_length",
        "attempts",
        LOWER,
        "attempt-seconds spent in queue in the window / window: the time-average queue",
    ),
    Metric("groups.<group>.attempts", "attempts", NEUTRAL, "attempts that reached the group"),
    Metric(
        "groups.<group>.waited_fraction",
        "fraction",
        LOWER,
        "of the attempts taken, the fraction that had to queue (Erlang C's P(wait) for M/M/c)",
    ),
    Metric(
        "groups.<group>.rejected_fraction",
        "fraction",
        LOWER,
        "attempts rejected by a full queue / attempts that reached the group (M/M/c/K blocking)",
    ),
    *_wait("groups.<group>.wait_s", "of the group"),
    Metric(
        "servers.<server>.utilization",
        "fraction",
        NEUTRAL,
        "worker-seconds of service the server did in the window / (its workers x window)",
    ),
    Metric(
        "servers.<server>.attempts",
        "attempts",
        NEUTRAL,
        "attempts sent to the server: taken, rejected or refused",
    ),
    Metric(
        "servers.<server>.errors",
        "attempts",
        LOWER,
        "answers from the server that were not ok (refused, lost, rejected, failed)",
    ),
    Metric("servers.<server>.rejected", "attempts", LOWER, "attempts its full queue rejected"),
    Metric(
        "servers.<server>.time_in_rotation",
        "fraction",
        HIGHER,
        "fraction of the window the balancer routed to it (a spare: from its promotion)",
    ),
    Metric(
        "client.<class>.circuit_opens",
        "events",
        LOWER,
        "times the class's circuit breaker opened (only with a retry budget, breaker or hedging)",
    ),
    Metric(
        "client.<class>.circuit_open_s",
        "s",
        LOWER,
        "seconds its breaker was open or half-open, sending nothing but its probes",
    ),
    Metric(
        "client.<class>.budget_denied",
        "attempts",
        NEUTRAL,
        "retries and hedges its retry budget refused (a refused retry ends the request)",
    ),
    Metric(
        "client.<class>.hedges",
        "attempts",
        NEUTRAL,
        "hedged attempts sent (counted in attempts, not in retries)",
    ),
    Metric(
        "client.<class>.hedge_wins",
        "requests",
        NEUTRAL,
        "requests whose ok answer came from a hedge rather than the attempt it hedged",
    ),
    Metric(
        "client.<class>.cancelled",
        "attempts",
        NEUTRAL,
        "attempts cancelled because another attempt of their request answered ok first",
    ),
    Metric("incidents.count", "incidents", NEUTRAL, "failures injected in the run"),
    Metric("incidents.detected", "incidents", NEUTRAL, "incidents detection noticed"),
    Metric("incidents.recovered", "incidents", NEUTRAL, "incidents over before the end"),
    Metric(
        "incidents.mean_time_to_detect_s",
        "s",
        LOWER,
        "from the failure to the first affected server taken out, over detected incidents",
    ),
    Metric(
        "incidents.mean_failover_time_s",
        "s",
        LOWER,
        "from the failure to no broken server left in rotation and no promotion pending",
    ),
    Metric("incidents.max_failover_time_s", "s", LOWER, "the longest failover time"),
    Metric(
        "incidents.mean_time_to_recover_s",
        "s",
        LOWER,
        "from the failure to the service being whole again, over recovered incidents",
    ),
    Metric(
        "incidents.failed_requests",
        "requests",
        LOWER,
        "requests that failed while any incident was open, each once (incidents.csv gives each"
        " incident's own count, so overlapping incidents share theirs)",
    ),
    Metric(
        "incidents.false_suspicions",
        "events",
        LOWER,
        "backends taken out of rotation while alive (slow, or partitioned)",
    ),
    Metric("slo.availability_target", "fraction", NEUTRAL, "slo.availability"),
    Metric("slo.availability_met", "bool", HIGHER, "availability.request_based >= the target"),
    Metric(
        "slo.error_budget_consumed",
        "ratio",
        LOWER,
        "(1 - request_based) / (1 - target): 1 is the whole error budget",
    ),
    Metric("slo.latency_s", "s", NEUTRAL, "slo.latency (null when none is set)"),
    Metric("slo.latency_percentile", "fraction", NEUTRAL, "slo.latency_percentile"),
    Metric(
        "slo.latency_observed_s",
        "s",
        LOWER,
        "that percentile of the latency of ok requests",
        ok_only=True,
    ),
    Metric("slo.latency_met", "bool", HIGHER, "latency_observed_s <= slo.latency"),
    Metric(
        "maintenance.servers_maintained",
        "servers",
        NEUTRAL,
        "servers that began maintenance in the window (one per server and rollout)",
    ),
    Metric(
        "maintenance.capacity_lost_s",
        "s",
        LOWER,
        "server-seconds out of rotation for maintenance: from each drain to the return to rotation",
    ),
    Metric(
        "maintenance.capacity_lost_fraction",
        "fraction",
        LOWER,
        "capacity_lost_s / (servers in the pool x the window)",
    ),
    Metric(
        "maintenance.attempts_cut",
        "attempts",
        LOWER,
        "attempts still on a server when maintenance stopped it (the drain timed out)",
    ),
    Metric(
        "maintenance.failed_requests",
        "requests",
        LOWER,
        "requests that failed while any maintenance was under way, whatever failed them",
    ),
    Metric(
        "autoscaling.<scaled>.scale_outs",
        "events",
        NEUTRAL,
        "scale-out decisions of the autoscaled group in the window",
    ),
    Metric("autoscaling.<scaled>.scale_ins", "events", NEUTRAL, "scale-in decisions in the window"),
    Metric("autoscaling.<scaled>.launched", "servers", NEUTRAL, "servers launched in the window"),
    Metric(
        "autoscaling.<scaled>.retired",
        "servers",
        NEUTRAL,
        "servers retired in the window (a launch cancelled while provisioning included)",
    ),
    Metric(
        "autoscaling.<scaled>.server_hours",
        "server-hours",
        LOWER,
        "server-hours provisioned in the window: from each launch (provisioning included) to"
        " the stop after the drain, what a cloud bills",
    ),
    Metric(
        "autoscaling.<scaled>.mean_servers",
        "servers",
        NEUTRAL,
        "provisioned server-seconds / window: the mean size of the group",
    ),
    Metric(
        "autoscaling.<scaled>.peak_servers",
        "servers",
        NEUTRAL,
        "the most servers provisioned at once in the window",
    ),
    Metric(
        "autoscaling.<scaled>.lagging_s",
        "s",
        LOWER,
        "time in the window during which a scale-out was under way: some server it launched"
        " not yet in service (provisioning, booting, or waiting for its health checks)",
    ),
    Metric(
        "autoscaling.<scaled>.failed_while_lagging",
        "requests",
        LOWER,
        "requests that failed while a scale-out was under way, whatever failed them: what"
        " scaling late cost",
    ),
    Metric("data.operations", "operations", NEUTRAL, "database operations sent in the window"),
    Metric("data.failed_operations", "operations", LOWER, "database operations that failed"),
    Metric("data.availability", "fraction", HIGHER, "database operations ok / sent"),
    Metric(
        "data.utilization",
        "fraction",
        NEUTRAL,
        "busy worker-seconds of the database nodes in the window / (workers x nodes x window)",
    ),
    Metric(
        "data.busiest_node_utilization",
        "fraction",
        LOWER,
        "the utilization of the busiest database node (a master taking every write and read"
        " saturates first): near 1, the database is the bottleneck",
    ),
    Metric("data.reads", "operations", NEUTRAL, "reads done by the database (cache hits are not)"),
    Metric(
        "data.stale_reads",
        "operations",
        LOWER,
        "reads that returned an older version of the key than the latest acknowledged write",
    ),
    Metric("data.stale_read_fraction", "fraction", LOWER, "stale_reads / reads"),
    Metric("data.writes", "operations", NEUTRAL, "writes acknowledged"),
    Metric(
        "data.lost_writes",
        "operations",
        LOWER,
        "acknowledged writes lost at a failover (the promoted replica never had them), or"
        " thrown away when a deposed master is demoted",
    ),
    Metric(
        "data.lost_writes_async_fallback",
        "operations",
        LOWER,
        "of lost_writes, those a master fallen back to asynchronous replication had acknowledged"
        " with no replica's acknowledgement (semi_sync, sync after an ack timeout)",
    ),
    Metric(
        "data.rpo_s",
        "s",
        LOWER,
        "the longest span of data lost at one failover: from its oldest lost write to the"
        " master's death",
    ),
    Metric(
        "data.conflicts",
        "operations",
        LOWER,
        "multi-master: writes to a key another master had written within the lag",
    ),
    Metric(
        "data.lost_updates",
        "operations",
        LOWER,
        "multi-master: earlier writes last-writer-wins silently dropped",
    ),
    Metric(
        "data.split_brain_writes",
        "operations",
        LOWER,
        "writes a deposed master took after a new one was promoted (split brain, fencing:"
        " none); thrown away when it is demoted, so counted in lost_writes too",
    ),
    Metric(
        "data.split_brain_s",
        "s",
        LOWER,
        "seconds two masters of a shard took writes at once, summed over shards",
    ),
    Metric(
        "data.ack_timeouts",
        "events",
        LOWER,
        "semi_sync, sync: times a write got no replica acknowledgement it needed within"
        " ack_timeout (writes stall until then), so that the master stopped counting on the"
        " replicas that did not answer (semi_sync: fell back to asynchronous replication)",
    ),
    Metric(
        "data.stalled_writes",
        "operations",
        LOWER,
        "writes acknowledged only at an ack timeout, having waited for it",
    ),
    Metric(
        "data.write_stall_s.total",
        "s",
        LOWER,
        "the time stalled writes waited, from being taken to the ack timeout, summed",
    ),
    Metric("data.write_stall_s.mean", "s", LOWER, "the same, per stalled write"),
    Metric(
        "data.async_fallback_s",
        "s",
        LOWER,
        "shard-seconds a semi_sync or sync master ran asynchronously after an ack timeout, until"
        " a replica caught up (or a failover replaced it)",
    ),
    Metric("data.failovers", "failovers", NEUTRAL, "master promotions"),
    Metric(
        "data.mean_failover_s",
        "s",
        LOWER,
        "mean time from a master's death to its replacement's promotion",
    ),
    Metric(
        "data.write_latency_s.mean",
        "s",
        LOWER,
        "mean time from sending a write to its acknowledgement",
    ),
    Metric("data.write_latency_s.p50", "s", LOWER, "median write latency"),
    Metric("data.write_latency_s.p99", "s", LOWER, "99th percentile of write latency"),
    Metric(
        "data.replication_lag_s.p50",
        "s",
        LOWER,
        "median lag replicas show: from a write on its master to its application on a replica,"
        " waiting for the writes before it",
    ),
    Metric("data.replication_lag_s.p99", "s", LOWER, "99th percentile of that lag"),
    *_wait("data.wait_s", "of database operations"),
    Metric("data.shards.<shard>.share", "fraction", NEUTRAL, "the shard's share of key accesses"),
    Metric("data.shards.<shard>.operations", "operations", NEUTRAL, "operations on the shard"),
    Metric("data.shards.<shard>.availability", "fraction", HIGHER, "its operations ok / sent"),
    Metric(
        "data.shards.<shard>.utilization",
        "fraction",
        NEUTRAL,
        "mean utilization of the shard's nodes in the window",
    ),
    Metric(
        "data.shards.<shard>.time_writable",
        "fraction",
        HIGHER,
        "fraction of the window the shard had a master it could write to",
    ),
    Metric(
        "data.shards.<shard>.time_readable",
        "fraction",
        HIGHER,
        "fraction of the window the shard could serve reads",
    ),
    Metric(
        "data.cache.lookups",
        "operations",
        NEUTRAL,
        "cacheable reads that asked the cache (answered, refused or timed out)",
    ),
    Metric("data.cache.hits", "operations", HIGHER, "look-ups that found their key"),
    Metric(
        "data.cache.misses",
        "operations",
        LOWER,
        "look-ups that went on to the database: key absent, or its node did not answer",
    ),
    Metric(
        "data.cache.hit_ratio",
        "fraction",
        HIGHER,
        "hits / lookups: what emerged from key popularity, capacity, writes and failures",
    ),
    Metric(
        "data.cache.failed_lookups",
        "operations",
        LOWER,
        "misses because the key's node was down or cut off (connection refused or timed out)",
    ),
    Metric("data.cache.fills", "operations", NEUTRAL, "keys put in the cache after a miss"),
    Metric(
        "data.cache.invalidations",
        "operations",
        NEUTRAL,
        "keys deleted from the cache after a write to them (invalidate on write)",
    ),
    Metric(
        "data.cache.evictions",
        "operations",
        NEUTRAL,
        "keys evicted, least recently used first, to make room for a fill",
    ),
    *CYCLE_METRICS,
)

_PLACEHOLDER = re.compile(r"<(class|group|scaled|server|shard|component)>")


@cache
def _pattern(key: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(key)
    text = ""
    for index, part in enumerate(parts):
        text += re.escape(part) if index % 2 == 0 else r"[^.]+(?:\.[^.]+)*?"
    return re.compile(f"^{text}$")


class UnknownMetricError(KeyError):
    """A key that is no summary metric; the message has a did-you-mean."""

    def __str__(self) -> str:
        return str(self.args[0])


@cache
def metric(key: str) -> Metric:
    """The catalogue entry of a flat summary key (``classes.checkout.latency_s.p99``).

    Raises :class:`UnknownMetricError` for a key that is no metric.
    """
    for entry in METRICS:
        if "<" not in entry.key and entry.key == key:
            return entry
    for entry in METRICS:
        if "<" in entry.key and entry.pattern.match(key):
            return entry
    raise UnknownMetricError(
        f"no metric {key!r} in the summary{did_you_mean(key, [m.key for m in METRICS])}"
    )


def direction(key: str) -> int:
    """+1 when higher is better, -1 when lower is better, 0 for a fact (see :class:`Metric`)."""
    return metric(key).direction


def _names(scenario: Any) -> dict[str, list[str]]:
    database = scenario.database
    return {
        "class": [request_class.name for request_class in scenario.workload.classes],
        "group": [group.name for group in scenario.servers],
        "scaled": [group.name for group in scenario.servers if group.autoscaling is not None],
        "server": [name for group in scenario.backend_groups() for name in group.server_names()],
        "shard": [str(shard) for shard in range(database.shards)] if database else [],
        "component": downtime_causes(scenario),
    }


def _expand(key: str, names: dict[str, list[str]]) -> Iterator[str]:
    found = _PLACEHOLDER.search(key)
    if found is None:
        yield key
        return
    for name in names[found.group(1)]:
        yield from _expand(key[: found.start()] + name + key[found.end() :], names)


def _planned_only(key: str) -> bool:
    """Metrics a run reports only where the scenario plans maintenance."""
    return key.startswith("maintenance.") or key == "availability.excluding_planned"


def keys_for(scenario: Any, only: frozenset[str] | None = None) -> list[str]:
    """The flat summary keys a run of ``scenario`` (a :class:`sim.scenario.Scenario`) reports,
    in catalogue order: every class, group, server and shard filled in. ``only``: the
    catalogue keys (placeholders unexpanded) a mode reports, when not all of them."""
    names = _names(scenario)
    keys = []
    for entry in METRICS:
        if entry.key.startswith("data.") and scenario.database is None:
            continue
        if entry.key.startswith("data.cache.") and scenario.database.cache is None:
            continue
        if _planned_only(entry.key) and not scenario.maintenance:
            continue
        if entry.key.startswith("client.") and not any(
            request_class.resilient for request_class in scenario.workload.classes
        ):
            continue
        if entry in CYCLE_METRICS and only is None:
            continue  # reported by failure-biasing runs only
        if only is not None and entry.key not in only:
            continue
        keys.extend(_expand(entry.key, names))
    return keys


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested summary as one flat row: ``{"latency_s": {"p99": x}}`` -> ``{"latency_s.p99": x}``.

    Numbers and booleans are kept (None as NaN); texts and lists are left out.
    """
    row: dict[str, Any] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            row.update(flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float):
            row[name] = value
        elif value is None:
            row[name] = math.nan
    return row


def check_summary(summary: dict[str, Any], scenario: Any) -> None:
    """Raise ``RuntimeError`` unless the summary's flat keys are exactly the catalogue's for
    ``scenario``: a metric reported but not declared, or declared but missing, is a bug."""
    reported, declared = set(flatten(summary)), set(keys_for(scenario))
    if reported != declared:
        extra = sorted(reported - declared)[:5]
        missing = sorted(declared - reported)[:5]
        raise RuntimeError(
            f"the summary does not match the metric catalogue: undeclared {extra},"
            f" missing {missing}"
        )
