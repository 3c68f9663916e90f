"""Human-readable tables of a summary, as printed by the CLI. Pure: a dict in, a string out."""

from __future__ import annotations

import math
from typing import Any

from sim.analysis import SECONDS_PER_YEAR, mean_confidence_interval
from sim.catalogue import direction
from sim.catalogue import metric as metric_of

__all__ = [
    "format_availability",
    "format_availability_sweep",
    "format_incidents",
    "format_summary",
]


def _ms(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    return f"{seconds * 1000:.1f}"


def _percent(fraction: float | None, digits: int = 4) -> str:
    if fraction is None or math.isnan(fraction):
        return "-"
    return f"{fraction * 100:.{digits}f}%"


def _nines(availability: float | None, perfect: str = "no failed request") -> str:
    if availability is None or math.isnan(availability):
        return "-"
    if availability >= 1.0:
        return perfect
    return f"{-math.log10(1.0 - availability) + 0.0:.2f} nines"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(
        f"{cell:<{widths[i]}}" if i == 0 else f"{cell:>{widths[i]}}"
        for i, cell in enumerate(header)
    )
    lines = [line, "  ".join("-" * width for width in widths)]
    for row in rows:
        lines.append(
            "  ".join(
                f"{cell:<{widths[i]}}" if i == 0 else f"{cell:>{widths[i]}}"
                for i, cell in enumerate(row)
            )
        )
    return lines


def format_summary(summary: dict[str, Any], default_target: bool = False) -> str:
    """The summary of one run as aligned text tables; ``default_target``: the scenario set no
    ``slo.availability`` (the line says the target is the default)."""
    requests = summary["requests"]
    availability = summary["availability"]
    lines = [
        f"scenario {summary['scenario']}  seed {summary['seed']}  "
        f"measured {summary['measured_s']:g}s (after {summary['warmup_s']:g}s warm-up)",
        "",
        f"requests      {requests['ended']} ended in the window (some arrived in the warm-up),"
        f" {requests['arrived']} arrived in it, {requests['in_flight_at_end']} in flight at"
        " the end",
        f"outcomes      ok {requests['ok']}  timeout {requests['timeout']}  "
        f"rejected {requests['rejected']}  no_backend {requests['no_backend']}  "
        f"error {requests['error']}{_causes(requests['error_by_cause'])}"
        + (
            f"  shed {requests['shed']}{_causes(requests['shed_by_cause'])}"
            if requests.get("shed")
            else ""
        ),
        f"attempts      {summary['attempts']} ({summary['retries']} retries, "
        f"{_fixed(summary['attempts_per_request'])} per request)",
        f"availability  {_percent(availability['request_based'])} of requests ok "
        f"({_nines(availability['request_based'])})",
        *_time_based(availability),
        *_client(summary.get("client")),
        *_slo(summary.get("slo"), default_target),
        f"throughput    {summary['throughput_per_s']:.1f}/s ok of "
        f"{summary['arrival_rate_per_s']:.1f}/s arriving",
        "",
    ]
    header = ["latency (ms)", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"]
    keys = ["mean", "p50", "p90", "p95", "p99", "p99.9", "max"]
    rows = [["all", *(_ms(summary["latency_s"][key]) for key in keys)]]
    for name, figures in summary["classes"].items():
        rows.append([name, *(_ms(figures["latency_s"][key]) for key in keys)])
    lines += _table(header, rows)
    lines.append("")
    rows = []
    for name, figures in summary["classes"].items():
        counts = figures["requests"]
        rows.append(
            [
                name,
                str(counts["ended"]),
                str(counts["ok"]),
                str(counts["ended"] - counts["ok"]),
                _percent(figures["availability"]["request_based"]),
                _percent(figures["availability"].get("time_based")),
                _percent(figures["availability"].get("windowed")),
            ]
        )
    header = ["class", "requests", "ok", "failed", "availability", "time up", "good windows"]
    lines += _table(header, rows)
    lines.append("")
    rows = [
        [
            name,
            _count(group["servers"]),
            _count(group["workers"]),
            _percent(group["utilization"], 1),
            _fixed(group["mean_queue_length"]),
        ]
        for name, group in summary["groups"].items()
    ]
    lines += _table(["server group", "servers", "workers", "utilization", "mean queue"], rows)
    lines += _servers(summary.get("servers") or {})
    lines += _data(summary.get("data"))
    lines += _incidents(summary.get("incidents"))
    lines += _maintenance(summary.get("maintenance"), summary["availability"])
    lines += _autoscaling(summary.get("autoscaling"))
    return "\n".join(lines)


def _count(value: float) -> str:
    """A count, or a mean count (an autoscaled group's size) to two decimals."""
    return str(int(value)) if value == int(value) else f"{value:.2f}"


def _autoscaling(groups: dict[str, Any] | None) -> list[str]:
    return [
        f"autoscaling   {name}: {g['scale_outs']} scale-outs, {g['scale_ins']} scale-ins;"
        f" {g['mean_servers']:.2f} servers on average, {g['peak_servers']} at most;"
        f" {g['server_hours']:.2f} server-hours; {_seconds(g['lagging_s'])} scaling out,"
        f" {g['failed_while_lagging']} requests failed meanwhile"
        for name, g in (groups or {}).items()
    ]


def _client(client: dict[str, Any] | None) -> list[str]:
    """One line per class whose retry budget, breaker or hedging did something."""
    lines = []
    for name, figures in (client or {}).items():
        parts = []
        if figures["hedges"]:
            parts.append(
                f"{figures['hedges']} hedges ({figures['hedge_wins']} won,"
                f" {figures['cancelled']} attempts cancelled)"
            )
        if figures["circuit_opens"]:
            parts.append(
                f"circuit opened {figures['circuit_opens']} times"
                f" ({_seconds(figures['circuit_open_s'])} not closed)"
            )
        if figures["budget_denied"]:
            parts.append(f"{figures['budget_denied']} retries or hedges refused by the budget")
        if parts:
            label = "client" if not lines else ""
            lines.append(f"{label:<14}{name}: {'; '.join(parts)}")
    return lines


def _maintenance(maintenance: dict[str, Any] | None, availability: dict[str, Any]) -> list[str]:
    if not maintenance:
        return []
    return [
        f"maintenance   {maintenance['servers_maintained']} servers; capacity lost "
        f"{_seconds(maintenance['capacity_lost_s'])} of server time "
        f"({_percent(maintenance['capacity_lost_fraction'], 2)}); "
        f"{maintenance['attempts_cut']} attempts cut at a drain timeout; "
        f"{maintenance['failed_requests']} requests failed meanwhile; "
        f"{_percent(availability['excluding_planned'])} of the time up excluding planned downtime",
    ]


def _servers(servers: dict[str, Any], limit: int = 10) -> list[str]:
    """The servers that had trouble (errors, time out of rotation), or all of a small cluster.
    A server that took no attempt and was never in rotation (a spare never promoted, a server
    autoscaling never launched) had no trouble to show."""
    troubled = {
        name: server
        for name, server in servers.items()
        if server["errors"]
        or (server["attempts"] and (server["time_in_rotation"] or 0) < 1)
        or 0 < (server["time_in_rotation"] or 0) < 1
    }
    shown = servers if len(servers) <= limit else troubled
    if not shown or not troubled:
        return []
    rows = [
        [
            name,
            _percent(server["utilization"], 1),
            str(server["attempts"]),
            str(server["errors"]),
            _percent(server["time_in_rotation"], 2),
        ]
        for name, server in list(shown.items())[:limit]
    ]
    lines = ["", *_table(["server", "utilization", "attempts", "errors", "in rotation"], rows)]
    if len(shown) > limit:
        lines.append(f"... {len(shown) - limit} more in summary.json (servers)")
    return lines


def _causes(causes: dict[str, int]) -> str:
    """`` (server_crash 12, unreachable 3)``: the causes of errors that happened."""
    named = [f"{cause} {count}" for cause, count in causes.items() if count]
    return f" ({', '.join(named)})" if named else ""


def _data(data: dict[str, Any] | None) -> list[str]:
    if not data:
        return []
    latency = data["write_latency_s"]
    lag = data["replication_lag_s"]
    lines = [
        "",
        f"data          {data['operations']} operations, {data['failed_operations']} failed "
        f"({_percent(data['availability'])} ok); nodes {_percent(data['utilization'], 1)} busy,"
        f" the busiest {_percent(data['busiest_node_utilization'], 1)}",
        f"              write latency mean {_ms(latency['mean'])} ms, "
        f"p99 {_ms(latency['p99'])} ms; replication lag p50 {_ms(lag['p50'])} ms, "
        f"p99 {_ms(lag['p99'])} ms",
        f"              {data['writes']} writes, {data['lost_writes']} lost at failover "
        f"(RPO {_seconds(data['rpo_s'])}); {data['stale_reads']} stale reads of {data['reads']}; "
        f"{data['conflicts']} conflicts, {data['lost_updates']} lost updates; "
        f"{data['failovers']} failovers (mean {_seconds(data['mean_failover_s'])})",
    ]
    if data["ack_timeouts"] or data["async_fallback_s"]:
        stall = data["write_stall_s"]
        lines.append(
            f"              {data['ack_timeouts']} ack timeouts, {data['stalled_writes']} writes"
            f" stalled (mean {_seconds(stall['mean'])}); {_seconds(data['async_fallback_s'])}"
            f" fallen back to async, {data['lost_writes_async_fallback']} of the lost writes"
            " acknowledged then"
        )
    cache = data.get("cache")
    if cache is not None:
        lines.append(
            f"cache         hit ratio {_percent(cache['hit_ratio'], 2)}: {cache['hits']} hits of"
            f" {cache['lookups']} look-ups, {cache['misses']} misses to the database"
            f" ({cache['failed_lookups']} to nodes down or cut off); {cache['fills']} fills,"
            f" {cache['invalidations']} invalidations, {cache['evictions']} evictions"
        )
    rows = [
        [
            name,
            _percent(shard["share"], 1),
            str(shard["operations"]),
            _percent(shard["availability"]),
            _percent(shard["time_writable"]),
            _percent(shard["time_readable"]),
        ]
        for name, shard in data["shards"].items()
    ]
    if len(rows) > 1:
        lines.append("")
        lines += _table(["shard", "share", "operations", "ok", "writable", "readable"], rows)
    return lines


def format_incidents(incidents: list[dict[str, Any]], limit: int = 10) -> str:
    """The first ``limit`` incident records as a table (times in seconds from the start)."""
    rows = [
        [
            str(incident["incident"]),
            incident["kind"],
            incident["component"],
            _seconds(incident["failed_at_s"]),
            _seconds(incident["time_to_detect_s"]),
            _seconds(incident["failover_time_s"]),
            _seconds(incident["time_to_recover_s"]),
            str(incident["failed_requests"]),
        ]
        for incident in incidents[:limit]
    ]
    header = ["#", "kind", "component", "failed at", "detect", "failover", "recover", "failed"]
    lines = _table(header, rows)
    if len(incidents) > limit:
        lines.append(f"... {len(incidents) - limit} more in incidents.csv")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}s" if abs(value) >= 1 else f"{value * 1000:.0f}ms"


def _time_based(availability: dict[str, Any]) -> list[str]:
    if "time_based" not in availability:
        return []
    lines = [
        f"time-based    {_percent(availability['time_based'])} of the time up, classes weighted"
        f" by share ({_nines(availability['time_based'], 'never down')}; "
        f"{_seconds(availability['downtime_s'])} down in the window; all classes up "
        f"{_percent(availability['time_based_all_classes'])})"
    ]
    if not math.isnan(availability["windowed"]):
        lines.append(
            f"windowed      {_percent(availability['windowed'])} of the time in good windows"
            " (the SLO held in the window; overload counts)"
        )
    causes = {
        cause: seconds
        for cause, seconds in availability["downtime_by_cause_s"].items()
        if seconds > 0
    }
    if causes:
        lines.append(
            "down because  "
            + ", ".join(f"{cause} {_seconds(seconds)}" for cause, seconds in causes.items())
        )
    markov = availability.get("markov") or {}
    if markov.get("value") is not None:
        lines.append(
            f"markov chain  {_percent(markov['value'], 5)} in the long run "
            f"({_fixed(markov['nines'])} nines); `ecsim availability` estimates it by simulation"
        )
    return lines


_DEFAULT = " (the default; set slo.availability)"


def _slo(slo: dict[str, Any] | None, default_target: bool) -> list[str]:
    if slo is None:
        return []
    budget = slo["error_budget_consumed"]
    line = (
        f"slo           target {_percent(slo['availability_target'], 3)}"
        f"{_DEFAULT if default_target else ''}: "
        f"{'met' if slo['availability_met'] else 'missed'}, "
        f"{'-' if budget is None else f'{budget * 100:.0f}%'} of the error budget used"
    )
    if slo["latency_s"] is not None:
        line += (
            f"; p{slo['latency_percentile'] * 100:g} {_ms(slo['latency_observed_s'])} ms "
            f"vs {_ms(slo['latency_s'])} ms: {'met' if slo['latency_met'] else 'missed'}"
        )
    return [line]


def _incidents(incidents: dict[str, Any] | None) -> list[str]:
    if not incidents or not incidents["count"]:
        return []
    return [
        "",
        f"incidents     {incidents['count']} ({incidents['detected']} detected, "
        f"{incidents['false_suspicions']} false suspicions); "
        f"mean time to detect {_seconds(incidents['mean_time_to_detect_s'])}, "
        f"failover mean {_seconds(incidents['mean_failover_time_s'])} "
        f"max {_seconds(incidents['max_failover_time_s'])}, "
        f"recover {_seconds(incidents['mean_time_to_recover_s'])}; "
        f"{incidents['failed_requests']} requests failed during incidents",
    ]


def _fixed(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def _downtime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def format_availability(estimate: dict[str, Any], default_target: bool = False) -> str:
    """The long-horizon availability estimate as text (``default_target``: see
    :func:`format_summary`)."""
    value = estimate["availability"]
    markov = estimate["markov"]
    confidence = f"{estimate['confidence'] * 100:g}%"
    biased = estimate.get("method") == "biased"
    lines = [_estimated_how(estimate)]
    if estimate.get("method_note"):
        lines.append(f"method         {estimate['method_note']}")
    lines.append("")
    if value["value"] is not None and value["value"] >= 1.0:
        lines.append(
            "availability   100%: the service was never down in any replication"
            " (no failure it could not ride out)"
        )
        lines.append(f"markov chain   {_markov_line(markov)}")
        return "\n".join(lines)
    # Enough decimals to tell the interval's ends apart at five and six nines.
    digits = 5 if not value["nines"] or value["nines"] < 4.5 else int(value["nines"]) + 2
    lines += [
        f"availability   {_percent(value['value'], digits)}  ({confidence} CI "
        f"{_percent(value['low'], digits)} to {_percent(value['high'], digits)})",
        f"nines          {_fixed(value['nines'])}  ({confidence} CI "
        f"{_fixed(value['nines_low'])} to {_fixed(value['nines_high'])})",
        f"downtime/year  {_downtime(value['downtime_per_year_s'])}  ({confidence} CI "
        f"{_downtime(value['downtime_per_year_s_low'])} to "
        f"{_downtime(value['downtime_per_year_s_high'])})",
    ]
    unplanned = estimate.get("excluding_planned")
    if unplanned is not None:
        lines.append(
            f"unplanned      {_percent(unplanned['value'], digits)} excluding planned maintenance"
            f"  ({confidence} CI {_percent(unplanned['low'], digits)} to "
            f"{_percent(unplanned['high'], digits)}; "
            f"{_downtime(unplanned['downtime_per_year_s'])}/year)"
        )
    if markov["value"] is not None:
        inside = (
            value["low"] <= markov["value"] <= (value["high"] if value["high"] is not None else 1)
        )
        lines.append(
            f"markov chain   {_percent(markov['value'], 5)}  ({_fixed(markov['nines'])} nines, "
            f"{_downtime(markov['downtime_per_year_s'])}/year; "
            f"{'inside' if inside else 'outside'} the simulated CI)"
        )
    else:
        lines.append(f"markov chain   n/a: {markov['reason']}")
    lines += _slo_lines(estimate, confidence, default_target)
    lines += _class_lines(estimate, confidence)
    lines += _cause_lines(estimate, confidence)
    if biased:
        lines += [
            "",
            f"failure biasing  relative half-width {value['relative_half_width']:.1%} of the"
            f" unavailability; {estimate['cycles_with_downtime']:,} cycles saw downtime; mean"
            f" likelihood ratio {estimate['mean_likelihood_ratio']:.3f} (1 expected); largest"
            f" cycle {estimate['largest_cycle_share']:.1%} of the estimate",
        ]
        if not estimate["reliable"]:
            lines.append(
                f"warning: the interval may be too narrow: {estimate['warning']}; run more --cycles"
            )
        return "\n".join(lines)
    lines += [
        "",
        f"incidents      {estimate['incidents_per_year']:.2f} per year; "
        f"mean time to detect {_seconds(estimate['mean_time_to_detect_s'])}, "
        f"failover {_seconds(estimate['mean_failover_time_s'])}, "
        f"recover {_downtime(estimate['mean_time_to_recover_s'])}",
    ]
    return "\n".join(lines)


def _estimated_how(estimate: dict[str, Any]) -> str:
    """The line that says what an estimate simulated: scenario, seed, years or cycles."""
    if estimate.get("method") == "biased":
        how = (
            f"{estimate['cycles']:,} regenerative cycles ({estimate['simulated_years']:,.0f}"
            f" simulated years under failure biasing)"
        )
    else:
        how = f"{estimate['years']:g} simulated years in {estimate['replications']} replications"
    return f"scenario {estimate['scenario']}  seed {estimate['seed']}  {how}"


def format_availability_sweep(
    estimates: list[dict[str, Any]],
    points: list[dict[str, Any]],
    parameters: list[str],
    default_target: bool = False,
) -> str:
    """Per design of an availability sweep: its parameters, the service's availability with
    its interval, nines, downtime per year, the Markov chain's value, and the SLO verdict
    (:func:`sim.analysis.slo_verdict`; the classes whose verdict differs from the service's
    are named beside it). ``default_target``: no design sets ``slo.availability``."""
    confidence = f"{estimates[0]['confidence'] * 100:g}%"
    targets = {estimate["slo"]["target"] for estimate in estimates}
    one_target = len(targets) == 1
    rows = []
    for estimate, point in zip(estimates, points, strict=True):
        value, everything = estimate["availability"], estimate["all_classes"]
        rows.append(
            [
                *(str(point[p]) for p in parameters),
                _percent(value["value"], 5),
                f"{_percent(value['low'], 5)} to {_percent(value['high'], 5)}",
                _fixed(value["nines"]),
                _downtime(value["downtime_per_year_s"]),
                _percent(estimate["markov"]["value"], 5),
                f"{_percent(everything['value'], 5)} +-{_percent(everything['half_width'], 5)}",
                _sweep_verdict(estimate["slo"], one_target),
            ]
        )
    target = estimates[0]["slo"]
    slo = (
        f"slo {target['target'] * 100:.10g}%{' (default)' if default_target else ''}"
        if one_target
        else "slo"
    )
    header = [*parameters, "availability", f"{confidence} CI", "nines", "downtime/year"]
    lines = [
        f"{_estimated_how(estimates[0])}, for each of {len(estimates)} designs",
        "",
        *_table([*header, "markov chain", "all classes at once", slo], rows),
    ]
    for index, estimate in enumerate(estimates):
        if estimate.get("warning"):  # failure biasing's diagnostics doubt the interval
            values = ", ".join(f"{p}={points[index][p]}" for p in parameters)
            lines.append(f"warning at {values}: {estimate['warning']} (run more --cycles)")
    return "\n".join(lines)


def _sweep_verdict(slo: dict[str, Any], one_target: bool) -> str:
    verdict = slo["verdict"]
    others = [f"{name} {v}" for name, v in slo["classes"].items() if v != verdict]
    cell = verdict if one_target else f"{verdict} at {slo['target'] * 100:.10g}%"
    return f"{cell} ({', '.join(others)})" if others else cell


def _slo_lines(estimate: dict[str, Any], confidence: str, default_target: bool) -> list[str]:
    slo = estimate.get("slo")
    if slo is None:
        return []
    why = {
        "met": f"the whole {confidence} CI lies above it",
        "missed": f"the whole {confidence} CI lies below it",
        "undecided": f"the {confidence} CI straddles it; a longer run decides",
    }
    target, verdict = slo["target"], slo["verdict"]
    classes = ", ".join(f"{name} {verdict}" for name, verdict in slo["classes"].items())
    lines = [
        f"slo target     {target * 100:.10g}% ({_downtime((1 - target) * SECONDS_PER_YEAR)}"
        f" a year){_DEFAULT if default_target else ''}: {verdict}, {why[verdict]}",
        f"               by class: {classes}",
    ]
    chain = estimate["markov"]["value"]
    if chain is not None and (
        (verdict == "met" and chain < target) or (verdict == "missed" and chain >= target)
    ):
        # The interval is only as good as the run: a short one can sit wholly on one side of
        # the target while the chain, where its assumptions hold, says the other.
        side = "below" if verdict == "met" else "above"
        lines.append(
            f"               but the Markov chain puts the service {side} it"
            f" ({_percent(chain, 5)}): a longer run, or the chain's assumptions, decide"
        )
    return lines


def _class_lines(estimate: dict[str, Any], confidence: str) -> list[str]:
    markov = estimate["markov"]
    chain = {**markov["classes"], "all classes at once": markov["all_classes"]}
    everything = estimate["all_classes"]
    rows = [
        [
            name,
            _percent(value["value"], 5),
            f"{_percent(value['low'], 5)} to {_percent(value['high'], 5)}",
            _fixed(value["nines"]),
            _downtime(value["downtime_per_year_s"]),
            _percent(chain[name], 5),
        ]
        for name, value in [*estimate["classes"].items(), ("all classes at once", everything)]
    ]
    header = ["request class", "availability", f"{confidence} CI", "nines", "downtime/year"]
    return ["", *_table([*header, "markov chain"], rows)]


def _cause_lines(estimate: dict[str, Any], confidence: str) -> list[str]:
    causes = estimate["downtime_by_cause"]
    total = sum(cause["per_year_s"] for cause in causes.values())
    if total <= 0:
        return []
    rows = [
        [
            cause,
            _downtime(figures["per_year_s"]),
            f"{_downtime(figures['low'])} to {_downtime(figures['high'])}",
            f"{figures['per_year_s'] / total * 100:.1f}%",
        ]
        for cause, figures in sorted(causes.items(), key=lambda item: -item[1]["per_year_s"])
        if figures["per_year_s"] >= 0.05
    ]
    return [
        "",
        "where the minutes go (downtime per year, classes weighted by share; causes under"
        " 0.1 s left out)",
        *_table(["cause", "downtime/year", f"{confidence} CI", "share"], rows),
    ]


KEY_METRICS = (
    "availability.request_based_within_latency",
    "latency_s.mean",
    "latency_s.p50",
    "latency_s.p99",
    "latency_s.p99.9",
    "availability.request_based",
    "availability.time_based",
    "throughput_per_s",
    "attempts_per_request",
    "requests.timeout",
    "requests.rejected",
    "requests.error",
)


DATA_METRICS = (
    "data.lost_writes",
    "data.write_latency_s.mean",
    "data.rpo_s",
    "data.mean_failover_s",
)


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.6g}"


def format_intervals(name: str, replications: int, intervals: Any) -> str:
    """Key metrics of replicated runs: mean and 95% interval (a DataFrame indexed by metric)."""
    keys = [k for k in intervals.index if k in KEY_METRICS or k.endswith(".utilization")]
    rows = [
        [
            key,
            _number(intervals.loc[key, "mean"]),
            "± " + _number(intervals.loc[key, "half_width"]),
            f"[{_number(intervals.loc[key, 'low'])}, {_number(intervals.loc[key, 'high'])}]",
        ]
        for key in keys
    ]
    lines = [
        f"scenario {name}: {replications} replications, means with 95% confidence intervals",
        "",
    ]
    return "\n".join(lines + _table(["metric", "mean", "half-width", "interval"], rows))


FAILURES = "availability.request_based"
"""The comparison's measure of failures: the fraction of requests ok."""
TIE_BREAKER = "latency_s.p99"


def format_comparison(
    comparison: Any, metric: str, parameter: str, replications: int, runs: Any = None
) -> str:
    """The alternatives ranked by ``metric`` (equal means by p99 latency), with paired
    differences from the baseline, and each one's failed requests flagged where they differ
    significantly from the baseline's. With the ``runs`` (one row per alternative and
    replication), a ranking that puts an alternative above one that failed significantly fewer
    requests (paired, 95%) says so."""
    means = comparison.pivot_table(index="alternative", columns="metric", values="mean")
    verdicts = comparison.pivot_table(
        index="alternative", columns="metric", values="verdict", aggfunc="first"
    )
    ranked = comparison[comparison.metric == metric].copy()
    sign = direction(metric) or -1
    ranked["_key"] = -sign * ranked["mean"]
    if TIE_BREAKER in means.columns:
        ranked["_tie"] = ranked.alternative.map(means[TIE_BREAKER])
    else:
        ranked["_tie"] = 0.0
    ranked = ranked.sort_values(["_key", "_tie"], kind="stable")
    lines = [
        f"{parameter}: {len(ranked)} alternatives x {replications} replications, common random"
        f" numbers; differences from the baseline with 95% intervals",
        "",
    ]
    rows = []
    for rank, (_, row) in enumerate(ranked.iterrows(), start=1):
        if row.verdict == "baseline":
            difference = "baseline"
        elif math.isnan(row.difference):
            difference = "-"
        else:
            difference = f"{row.difference:+.4g} [{row.low:+.4g}, {row.high:+.4g}]"
        failed = ""
        if FAILURES in means.columns:
            failed = _fraction_failed(1 - means.loc[row.alternative, FAILURES])
            mark = {"better": " (fewer)", "worse": " (more)"}.get(
                verdicts.loc[row.alternative, FAILURES], ""
            )
            failed += mark
        rows.append(
            [str(rank), str(row.alternative), _number(row["mean"]), difference, row.verdict, failed]
        )
    lines += _table(["rank", "alternative", metric, "difference", "verdict", "failed"], rows)
    lines.append(
        "failed: requests that did not end ok; (more)/(fewer): significantly more or fewer"
        " than the baseline"
    )
    # Beside a data-tier ranking, what the data tier paid for it comes first.
    shown = (*DATA_METRICS, *KEY_METRICS) if metric.startswith("data.") else KEY_METRICS
    others = [m for m in shown if m != metric and m in means.columns][:5]
    if others:
        lines.append("")
        header = ["alternative", *others]
        table_rows = []
        for alternative in ranked.alternative:
            cells = [str(alternative)]
            for other in others:
                mark = {"better": " (+)", "worse": " (-)"}.get(verdicts.loc[alternative, other], "")
                cells.append(_number(means.loc[alternative, other]) + mark)
            table_rows.append(cells)
        lines += _table(header, table_rows)
        lines.append("(+) significantly better, (-) significantly worse than the baseline")
    flagged = _ranked_above_fewer_failures(list(ranked.alternative), runs)
    if flagged:
        warning = (
            f"warning: {', '.join(map(str, flagged))} ranked above an alternative that failed"
            " significantly fewer requests"
        )
        if metric_of(metric).ok_only:
            warning += (
                f"; {metric} counts ok requests only: rank by"
                " availability.request_based_within_latency (the default) to weigh failures too"
            )
        lines.append(warning)
    return "\n".join(lines)


def _fraction_failed(fraction: float) -> str:
    """A failed fraction with enough digits to tell 0.004% from none."""
    if math.isnan(fraction):
        return "-"
    return "0%" if fraction <= 0 else f"{fraction * 100:.3g}%"


def _ranked_above_fewer_failures(order: list[Any], runs: Any) -> list[Any]:
    """Alternatives ranked above one that failed significantly fewer requests: the paired
    difference of their fractions ok, replication by replication, has a 95% interval above
    zero for the one ranked below."""
    if runs is None or FAILURES not in runs.columns:
        return []
    ok = {
        label: group.set_index("replication")[FAILURES].astype(float)
        for label, group in runs.groupby("alternative", sort=False)
    }
    flagged = []
    for position, higher in enumerate(order):
        for lower in order[position + 1 :]:
            differences = (ok[lower] - ok[higher]).dropna().tolist()
            if len(differences) < 2:
                continue
            mean, half_width = mean_confidence_interval(differences)
            if mean - half_width > 0:
                flagged.append(higher)
                break
    return flagged


def format_sweep(table: Any, parameters: list[str]) -> str:
    """Per point of a sweep: its parameters and the mean of a few key metrics."""
    shown = [
        m
        for m in ("latency_s.p99", "availability.request_based", "throughput_per_s")
        if m in table.columns
    ]
    good = table[table.error.isna()] if "error" in table.columns else table
    rows = []
    for _, group in good.groupby("point", sort=True):
        first = group.iloc[0]
        rows.append(
            [
                *(str(first[p]) for p in parameters),
                str(len(group)),
                *(_number(group[m].mean()) for m in shown),
            ]
        )
    return "\n".join(_table([*parameters, "runs", *(f"mean {m}" for m in shown)], rows))


def _markov_line(markov: dict[str, Any]) -> str:
    if markov["value"] is None:
        return f"n/a: {markov['reason']}"
    return f"{_percent(markov['value'], 5)} ({_fixed(markov['nines'])} nines)"
