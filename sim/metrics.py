"""Streaming recorders: what the simulation observes, in memory that does not grow with requests.

Metrics watch and never act. The model calls a :class:`Recorder` when a request arrives, when an
attempt is sent and when a request ends; the recorder keeps counters, log-bucketed latency
histograms and one row per time step, so a run of a billion requests needs no more memory than a
run of a thousand. Turning these into tables and summaries is the job of :mod:`sim.analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ERROR",
    "NO_BACKEND",
    "OK",
    "OUTCOMES",
    "REJECTED",
    "TIMEOUT",
    "LatencyHistogram",
    "Recorder",
]

OUTCOMES = ("ok", "timeout", "rejected", "no_backend", "error")
"""Every way a request's life can end; each request ends exactly once, with one of these."""
OK, TIMEOUT, REJECTED, NO_BACKEND, ERROR = range(len(OUTCOMES))


class LatencyHistogram:
    """Counts of values in logarithmic buckets: every quantile within 1% of the exact one.

    Bucket ``i`` holds values in (gamma**(i-1), gamma**i] with gamma = (1 + a) / (1 - a) for a
    relative accuracy a; reporting 2 gamma**i / (gamma + 1) for a bucket is then within a of any
    value in it (the DDSketch construction). Values from 1 microsecond to about 11 days fit in
    under 1,400 buckets; smaller ones are counted as 1 microsecond, larger ones in the last bucket.
    The exact mean, minimum and maximum are kept beside the buckets.
    """

    RELATIVE_ACCURACY = 0.01
    SMALLEST_S = 1e-6
    LARGEST_S = 1e6

    _gamma = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
    _inverse_log_gamma = 1.0 / math.log(_gamma)
    _offset = -math.ceil(math.log(SMALLEST_S) * _inverse_log_gamma)
    _size = math.ceil(math.log(LARGEST_S) * _inverse_log_gamma) + _offset + 1

    __slots__ = ("count", "counts", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.counts = [0] * self._size
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf

    @classmethod
    def bucket(cls, value: float) -> int:
        """The index of the bucket that holds ``value``."""
        if value > cls.SMALLEST_S:
            index = math.ceil(math.log(value) * cls._inverse_log_gamma) + cls._offset
            return index if index < cls._size else cls._size - 1
        return 0

    def add(self, value: float) -> None:
        self.add_in(self.bucket(value), value)

    def add_in(self, index: int, value: float) -> None:
        """Add ``value`` whose bucket index is already known (saves a logarithm)."""
        self.counts[index] += 1
        self.count += 1
        self.total += value
        if value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value

    def merge(self, other: LatencyHistogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """The value at rank ceil(q * count) (the 'inverted CDF' sample quantile), within 1%."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index, bucket_count in enumerate(self.counts):
            seen += bucket_count
            if seen >= rank:
                if index == 0:
                    return self.minimum
                estimate = 2 * self._gamma ** (index - self._offset) / (self._gamma + 1)
                return min(max(estimate, self.minimum), self.maximum)
        return self.maximum

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        return [self.quantile(q) for q in qs]


_SMALLEST_S = LatencyHistogram.SMALLEST_S
_INVERSE_LOG_GAMMA = LatencyHistogram._inverse_log_gamma
_OFFSET = LatencyHistogram._offset
_SIZE = LatencyHistogram._size
_ceil = math.ceil
_log = math.log


class Recorder:
    """Counters, histograms and a time series for one run; the model reports, it records.

    Requests count in the summary when they *end* inside the measurement window, that is at or
    after the warm-up; the time series covers the whole run. Time-series rows are closed by the
    model at every step, with the server groups' busy and queue time accumulated over the step.
    """

    def __init__(self, class_names: Sequence[str], group_names: Sequence[str], warmup_s: float):
        self.class_names = list(class_names)
        self.group_names = list(group_names)
        self.warmup_s = warmup_s
        classes = len(self.class_names)
        self.outcomes = [[0] * len(OUTCOMES) for _ in range(classes)]
        self.latency = [LatencyHistogram() for _ in range(classes)]
        self.arrivals = 0
        self.attempts = 0
        self.retries = 0
        self.rows: list[dict[str, Any]] = []
        self._new_bin(0.0)

    def _new_bin(self, start_s: float) -> None:
        self._bin_start = start_s
        self._bin_arrivals = 0
        self._bin_attempts = 0
        self._bin_outcomes = [0] * len(OUTCOMES)
        self._bin_latency = LatencyHistogram()

    def arrival(self, now: float) -> None:
        """A new request arrived, and its first attempt was sent."""
        self._bin_arrivals += 1
        self._bin_attempts += 1
        if now >= self.warmup_s:
            self.arrivals += 1
            self.attempts += 1

    def retry(self, now: float) -> None:
        """A request was sent again after a failed attempt."""
        self._bin_attempts += 1
        if now >= self.warmup_s:
            self.attempts += 1
            self.retries += 1

    def end(self, class_index: int, outcome: int, latency_s: float, now: float) -> None:
        """A request ended with ``outcome`` (an index into OUTCOMES) after ``latency_s``."""
        self._bin_outcomes[outcome] += 1
        if outcome == OK:
            # The bucket index is computed once for both histograms: this is the hottest
            # line of a run.
            if latency_s > _SMALLEST_S:
                index = _ceil(_log(latency_s) * _INVERSE_LOG_GAMMA) + _OFFSET
                if index >= _SIZE:
                    index = _SIZE - 1
            else:
                index = 0
            self._bin_latency.add_in(index, latency_s)
            if now >= self.warmup_s:
                self.outcomes[class_index][OK] += 1
                self.latency[class_index].add_in(index, latency_s)
        elif now >= self.warmup_s:
            self.outcomes[class_index][outcome] += 1

    def close_bin(
        self,
        now: float,
        group_busy_s: Sequence[float],
        group_queue_lengths: Sequence[int],
        group_workers: Sequence[int],
        offered_rate_per_s: float,
    ) -> None:
        """End the current time-series row at ``now``.

        ``group_busy_s`` is the work started in the step per server group (utilization is that
        over the group's capacity); ``group_queue_lengths`` are the queues at ``now``.
        """
        width = now - self._bin_start
        row: dict[str, Any] = {
            "time_s": self._bin_start,
            "offered_rate_per_s": offered_rate_per_s,
            "arrivals": self._bin_arrivals,
            "attempts": self._bin_attempts,
        }
        for name, count in zip(OUTCOMES, self._bin_outcomes, strict=True):
            row[name] = count
        row["p99_latency_s"] = self._bin_latency.quantile(0.99)
        row["mean_latency_s"] = self._bin_latency.mean()
        for name, busy, queued, workers in zip(
            self.group_names, group_busy_s, group_queue_lengths, group_workers, strict=True
        ):
            row[f"{name}.utilization"] = busy / (workers * width) if width > 0 else math.nan
            row[f"{name}.queue_length"] = queued
        self.rows.append(row)
        self._new_bin(now)
