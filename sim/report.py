"""Human-readable tables of a summary, as printed by the CLI. Pure: a dict in, a string out."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_summary"]


def _ms(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    return f"{seconds * 1000:.1f}"


def _percent(fraction: float | None, digits: int = 4) -> str:
    if fraction is None or math.isnan(fraction):
        return "-"
    return f"{fraction * 100:.{digits}f}%"


def _nines(availability: float | None) -> str:
    if availability is None or math.isnan(availability):
        return "-"
    if availability >= 1.0:
        return "no failed request"
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


def format_summary(summary: dict[str, Any]) -> str:
    """The summary of one run as aligned text tables."""
    requests = summary["requests"]
    availability = summary["availability"]
    lines = [
        f"scenario {summary['scenario']}  seed {summary['seed']}  "
        f"measured {summary['measured_s']:g}s (after {summary['warmup_s']:g}s warm-up)",
        "",
        f"requests      {requests['ended']} ended, {requests['arrived']} arrived, "
        f"{requests['in_flight_at_end']} in flight at the end",
        f"outcomes      ok {requests['ok']}  timeout {requests['timeout']}  "
        f"rejected {requests['rejected']}  no_backend {requests['no_backend']}  "
        f"error {requests['error']}",
        f"attempts      {summary['attempts']} ({summary['retries']} retries, "
        f"{_fixed(summary['attempts_per_request'])} per request)",
        f"availability  {_percent(availability['request_based'])} of requests ok "
        f"({_nines(availability['request_based'])})",
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
            ]
        )
    lines += _table(["class", "requests", "ok", "failed", "availability"], rows)
    lines.append("")
    rows = [
        [
            name,
            str(group["servers"]),
            str(group["workers"]),
            _percent(group["utilization"], 1),
            _fixed(group["mean_queue_length"]),
        ]
        for name, group in summary["groups"].items()
    ]
    lines += _table(["server group", "servers", "workers", "utilization", "mean queue"], rows)
    return "\n".join(lines)


def _fixed(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"
