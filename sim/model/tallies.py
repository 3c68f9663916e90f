"""What the servers did: running totals per group, per server and per request class.

Servers keep plain running counters (work started, waits, attempts); this module reads them.
Everything counts from the start of the run, and the measurement window and each time-series
row are differences of two readings, as in :class:`sim.metrics.Recorder`: no per-request work
beyond the servers' own increments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import simpy

from sim.metrics import LatencyHistogram
from sim.model.balancing import Backend
from sim.model.server import Server
from sim.scenario import ServerGroupSpec

__all__ = ["GROUP_TOTALS", "SERVER_COLUMNS", "ServerTallies"]

GROUP_TOTALS = ("busy_time_s", "wait_time_s", "accepted", "queued", "rejected")
"""Running totals per server group: worker-seconds of service done, attempt-seconds waited in
queue, attempts accepted, attempts that had to queue, attempts rejected by a full queue."""

SERVER_COLUMNS = (
    "time_s",
    "server",
    "group",
    "utilization",
    "attempts",
    "errors",
    "rejected",
    "queue_length",
    "in_rotation_s",
)
"""The per-server time series (``servers.csv``): one row per server and step."""


class ServerTallies:
    """Reads the counters of ``servers`` (and the balancer's view of them, ``backends``)."""

    def __init__(
        self,
        env: simpy.Environment,
        groups: Sequence[ServerGroupSpec],
        servers: Sequence[Server],
        backends: Sequence[Backend],
        queue_waits: dict[str, list[LatencyHistogram]],
    ) -> None:
        self.env = env
        self.groups = list(groups)
        self.servers = list(servers)
        """Every server, database nodes included (their group is ``db``)."""
        self.backend_of = {backend.server: backend for backend in backends}
        self.queue_waits = queue_waits
        """Per group (and ``db``), per class: the waits of the attempts that queued."""
        self.per_server_rows: list[dict[str, Any]] = []
        self._window: dict[str, Any] | None = None
        self.scaled: dict[str, Callable[[], float]] = {}
        """Per autoscaled group, its provisioned server-seconds so far: such a group's size
        (and so its workers) is the mean over the window, not its ``count``."""

    # -- per group ------------------------------------------------------------------------

    def group_totals(self) -> list[dict[str, float]]:
        """Running totals per server group since the start (see :data:`GROUP_TOTALS`)."""
        totals = {group.name: dict.fromkeys(GROUP_TOTALS, 0.0) for group in self.groups}
        for server in self.servers:
            group = totals.get(server.group)
            if group is None:  # a database node
                continue
            group["busy_time_s"] += server.busy_time_so_far()
            group["wait_time_s"] += server.wait_time_so_far()
            group["accepted"] += sum(server.accepted)
            group["queued"] += sum(server.queued)
            group["rejected"] += server.rejected
        return [totals[group.name] for group in self.groups]

    def group_queue_lengths(self) -> list[int]:
        """Attempts waiting in the queues of each group right now."""
        lengths = {group.name: 0 for group in self.groups}
        for server in self.servers:
            if server.group in lengths:
                lengths[server.group] += len(server.queue)
        return [lengths[group.name] for group in self.groups]

    def group_workers(self) -> list[int]:
        """Total workers per group, the denominator of utilization."""
        return [group.count * group.workers for group in self.groups]

    # -- queueing waits -------------------------------------------------------------------

    def wait_totals(self) -> dict[str, list[tuple[Any, ...]]]:
        """Per group (and ``db``), per class: bucket counts and total of the waits so far, and
        the attempts taken and queued (the difference did not wait)."""
        tallies = {}
        for group, histograms in self.queue_waits.items():
            members = [server for server in self.servers if server.group == group]
            tallies[group] = [
                (
                    np.array(histogram.counts),
                    histogram.total,
                    sum(server.accepted[index] for server in members),
                    sum(server.queued[index] for server in members),
                )
                for index, histogram in enumerate(histograms)
            ]
        return tallies

    # -- per server -----------------------------------------------------------------------

    def server_totals(self) -> dict[str, dict[str, float]]:
        """Per server: running totals since the start."""
        now = self.env.now
        totals = {}
        for server in self.servers:
            backend = self.backend_of.get(server)
            totals[server.name] = {
                "busy_time_s": server.busy_time_so_far(),
                "attempts": server.attempts,
                "errors": backend.errors if backend is not None else 0,
                "rejected": server.rejected,
                "in_rotation_s": backend.rotation_time(now) if backend is not None else 0.0,
            }
        return totals

    def close_server_rows(self, start: float, previous: dict[str, dict[str, float]]) -> dict:
        """Append one row per server for the step [start, now]; return the totals now."""
        now = self.env.now
        current = self.server_totals()
        width = now - start
        for server in self.servers:
            mine, before = current[server.name], previous[server.name]
            self.per_server_rows.append(
                {
                    "time_s": start,
                    "server": server.name,
                    "group": server.group,
                    "utilization": (mine["busy_time_s"] - before["busy_time_s"])
                    / (server.workers * width)
                    if width > 0
                    else math.nan,
                    "attempts": mine["attempts"] - before["attempts"],
                    "errors": mine["errors"] - before["errors"],
                    "rejected": mine["rejected"] - before["rejected"],
                    "queue_length": len(server.queue),
                    "in_rotation_s": mine["in_rotation_s"] - before["in_rotation_s"],
                }
            )
        return current

    # -- the measurement window -----------------------------------------------------------

    def start_window(self) -> None:
        self._window = {
            "groups": self.group_totals(),
            "waits": self.wait_totals(),
            "servers": self.server_totals(),
            "server_s": {group: read() for group, read in self.scaled.items()},
            "start_s": self.env.now,
        }

    def _mean_servers(self, spec: ServerGroupSpec) -> float:
        """The mean size of an autoscaled group over the window so far."""
        then = self._window["server_s"][spec.name] if self._window else 0.0
        width = self.env.now - (self._window["start_s"] if self._window else 0.0)
        return (self.scaled[spec.name]() - then) / width if width > 0 else float(spec.count)

    def measured_groups(self) -> list[dict[str, Any]]:
        """Per server group: name, servers, workers and its totals over the window."""
        current = self.group_totals()
        start = (
            self._window["groups"]
            if self._window
            else [dict.fromkeys(GROUP_TOTALS, 0.0)] * len(current)
        )
        measured = []
        for spec, workers, now, then in zip(
            self.groups, self.group_workers(), current, start, strict=True
        ):
            servers: float = spec.count
            if spec.name in self.scaled:
                servers = self._mean_servers(spec)
                workers = servers * spec.workers
            measured.append(
                {
                    "name": spec.name,
                    "servers": servers,
                    "workers": workers,
                    **{key: now[key] - then[key] for key in GROUP_TOTALS},
                }
            )
        return measured

    def measured_waits(self) -> dict[str, list[LatencyHistogram]]:
        """Per group (and ``db``), per class: the time in queue of the attempts that started
        service in the window, zero for those that started at once."""
        now = self.wait_totals()
        then = self._window["waits"] if self._window else None
        measured = {}
        for group, rows in now.items():
            earlier = then[group] if then else [(0, 0.0, 0, 0)] * len(rows)
            measured[group] = [
                LatencyHistogram(
                    (counts - counts_then).tolist(),
                    total - total_then,
                    math.inf,
                    zeros=(accepted - accepted_then) - (queued - queued_then),
                )
                for (counts, total, accepted, queued), (
                    counts_then,
                    total_then,
                    accepted_then,
                    queued_then,
                ) in zip(rows, earlier, strict=True)
            ]
        return measured

    def measured_servers(self, measured_s: float) -> dict[str, dict[str, Any]]:
        """Per server (database nodes aside): what it did in the window."""
        now = self.server_totals()
        then = self._window["servers"] if self._window else None
        measured = {}
        for server in self.servers:
            if server not in self.backend_of:
                continue
            mine = now[server.name]
            before = then[server.name] if then else dict.fromkeys(mine, 0.0)
            measured[server.name] = {
                "group": server.group,
                "utilization": (mine["busy_time_s"] - before["busy_time_s"])
                / (server.workers * measured_s),
                "attempts": int(mine["attempts"] - before["attempts"]),
                "errors": int(mine["errors"] - before["errors"]),
                "rejected": int(mine["rejected"] - before["rejected"]),
                "time_in_rotation": (mine["in_rotation_s"] - before["in_rotation_s"]) / measured_s,
            }
        return measured
