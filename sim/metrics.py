"""Streaming recorders: what the simulation observes, in memory that does not grow with requests.

Metrics watch and never act. The model calls a :class:`Recorder` when a request arrives, when an
attempt is sent and when a request ends; the recorder keeps counters, log-bucketed latency
histograms and one row per time step, so a run of a billion requests needs no more memory than a
run of a thousand. Turning these into tables and summaries is the job of :mod:`sim.analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.request import Cause, Outcome

__all__ = [
    "ERROR_CAUSES",
    "OUTCOMES",
    "LatencyHistogram",
    "Measurement",
    "Recorder",
    "Tally",
    "outcome_counts",
]

OUTCOMES = tuple(outcome.label for outcome in Outcome)
"""Every way a request's life can end; each request ends exactly once, with one of these."""
ERROR_CAUSES = tuple(cause for cause in Cause if cause.outcome is Outcome.ERROR)
"""The causes of the ``error`` outcome, which the summary and time series split it into."""
_OK = Cause.OK


def outcome_counts(cause_counts: Sequence[int]) -> list[int]:
    """Counts per outcome (in :data:`OUTCOMES` order) from counts per cause."""
    counts = [0] * len(Outcome)
    for cause, count in zip(Cause, cause_counts, strict=True):
        counts[cause.outcome] += count
    return counts


class LatencyHistogram:
    """Counts of values in logarithmic buckets: every quantile within 1% of the exact one.

    Bucket ``i`` holds values in (gamma**(i-1), gamma**i] with gamma = (1 + a) / (1 - a) for a
    relative accuracy a; reporting 2 gamma**i / (gamma + 1) for a bucket is then within a of any
    value in it (the DDSketch construction). Values from 1 microsecond to about 11 days fit in
    under 1,400 buckets; smaller ones are counted as 1 microsecond, larger ones in the last bucket.
    The exact total (hence the mean) and maximum are kept beside the buckets.
    """

    RELATIVE_ACCURACY = 0.01
    SMALLEST_S = 1e-6
    LARGEST_S = 1e6

    _gamma = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
    _inverse_log_gamma = 1.0 / math.log(_gamma)
    _offset = -math.ceil(math.log(SMALLEST_S) * _inverse_log_gamma)
    _size = math.ceil(math.log(LARGEST_S) * _inverse_log_gamma) + _offset + 1

    __slots__ = ("count", "counts", "maximum", "total")

    def __init__(
        self, counts: list[int] | None = None, total: float = 0.0, maximum: float | None = None
    ) -> None:
        """An empty histogram, or one made of known bucket ``counts`` and their ``total``.

        The ``maximum`` of given counts is infinite (unknown) unless it is given.
        """
        self.counts = list(counts) if counts is not None else [0] * self._size
        self.count = sum(self.counts)
        self.total = total
        if maximum is None:
            maximum = -math.inf if counts is None else math.inf
        self.maximum = maximum

    @classmethod
    def bucket(cls, value: float) -> int:
        """The index of the bucket that holds ``value``."""
        if value > cls.SMALLEST_S:
            index = math.ceil(math.log(value) * cls._inverse_log_gamma) + cls._offset
            return index if index < cls._size else cls._size - 1
        return 0

    def add(self, value: float) -> None:
        self.counts[self.bucket(value)] += 1
        self.count += 1
        self.total += value
        if value > self.maximum:
            self.maximum = value

    def merge(self, other: LatencyHistogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.total += other.total
        self.maximum = max(self.maximum, other.maximum)

    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def distribution(self) -> tuple[list[float], list[int]]:
        """The non-empty buckets: each one's value (within 1% of its members) and count."""
        values, counts = [], []
        for index, count in enumerate(self.counts):
            if count:
                values.append(
                    self.SMALLEST_S
                    if index == 0
                    else 2 * self._gamma ** (index - self._offset) / (self._gamma + 1)
                )
                counts.append(count)
        return values, counts

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
                    return min(self.SMALLEST_S, self.maximum)
                estimate = 2 * self._gamma ** (index - self._offset) / (self._gamma + 1)
                return min(estimate, self.maximum)
        return self.maximum


_SMALLEST_S = LatencyHistogram.SMALLEST_S
_INVERSE_LOG_GAMMA = LatencyHistogram._inverse_log_gamma
_OFFSET = LatencyHistogram._offset
_SIZE = LatencyHistogram._size
_ceil = math.ceil
_log = math.log


@dataclass(frozen=True)
class Tally:
    """What a recorder had counted by some moment; the difference of two is a period's count."""

    arrivals: int
    attempts: int
    retries: int
    causes: tuple[tuple[int, ...], ...]
    """Requests ended, per class and per :class:`Cause`."""
    latency_counts: np.ndarray
    """Latency bucket counts, one row per request class."""
    latency_total_s: tuple[float, ...]
    good: tuple[int, ...]
    """Per class: requests ok within the SLO latency."""

    def since(self, earlier: Tally) -> Tally:
        return Tally(
            self.arrivals - earlier.arrivals,
            self.attempts - earlier.attempts,
            self.retries - earlier.retries,
            tuple(
                tuple(x - y for x, y in zip(a, b, strict=True))
                for a, b in zip(self.causes, earlier.causes, strict=True)
            ),
            self.latency_counts - earlier.latency_counts,
            tuple(
                x - y for x, y in zip(self.latency_total_s, earlier.latency_total_s, strict=True)
            ),
            tuple(x - y for x, y in zip(self.good, earlier.good, strict=True)),
        )


@dataclass(frozen=True)
class Measurement:
    """The counts of the measurement window, per request class."""

    class_names: list[str]
    arrivals: int
    attempts: int
    retries: int
    causes: list[list[int]]
    """Requests ended, per class and per :class:`Cause`."""
    latency: list[LatencyHistogram]
    good: list[int]


class Recorder:
    """Counters and histograms of one run, and a time series; the model reports, it records.

    Everything is counted from the start of the run; the measurement window and each row of
    the time series are differences of two tallies, so the per-request work is a handful of
    increments. Requests count where they *end*, arrivals where they arrive.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        group_names: Sequence[str],
        good_within_s: float = math.inf,
    ) -> None:
        """``good_within_s`` is the SLO latency: an ok request at most this slow is *good*."""
        self.class_names = list(class_names)
        self.good_within_s = good_within_s
        self.group_names = list(group_names)
        classes = len(self.class_names)
        self.arrivals = 0
        self.attempts = 0
        self.retries = 0
        self.causes = [[0] * len(Cause) for _ in range(classes)]
        self.latency_counts = [[0] * _SIZE for _ in range(classes)]
        self.latency_total_s = [0.0] * classes
        self.window_maximum_s = [-math.inf] * classes
        self.good = [0] * classes
        self.rows: list[dict[str, Any]] = []
        self._measuring = False
        self._window_start = self.tally()
        self._row_start = self._window_start
        self._row_start_s = 0.0

    def tally(self) -> Tally:
        return Tally(
            self.arrivals,
            self.attempts,
            self.retries,
            tuple(tuple(counts) for counts in self.causes),
            np.array(self.latency_counts, dtype=np.int64),
            tuple(self.latency_total_s),
            tuple(self.good),
        )

    def failed_total(self) -> int:
        """Requests that ended in anything but ``ok`` since the start of the run."""
        return sum(sum(counts) - counts[_OK] for counts in self.causes)

    def start_window(self) -> None:
        """The warm-up is over: the summary counts from now."""
        self._window_start = self.tally()
        self._measuring = True

    def arrival(self) -> None:
        """A new request arrived, and its first attempt was sent."""
        self.arrivals += 1
        self.attempts += 1

    def retry(self) -> None:
        """A request was sent again after a failed attempt."""
        self.attempts += 1
        self.retries += 1

    def end(self, class_index: int, cause: Cause, latency_s: float) -> None:
        """A request ended, for ``cause``, after ``latency_s``."""
        self.causes[class_index][cause] += 1
        if cause == _OK:
            # The bucket computation of LatencyHistogram.bucket, inlined: the hottest line.
            if latency_s > _SMALLEST_S:
                index = _ceil(_log(latency_s) * _INVERSE_LOG_GAMMA) + _OFFSET
                if index >= _SIZE:
                    index = _SIZE - 1
            else:
                index = 0
            self.latency_counts[class_index][index] += 1
            self.latency_total_s[class_index] += latency_s
            if latency_s <= self.good_within_s:
                self.good[class_index] += 1
            if self._measuring and latency_s > self.window_maximum_s[class_index]:
                self.window_maximum_s[class_index] = latency_s

    def measurement(self) -> Measurement:
        """The counts of the measurement window, from the end of the warm-up to now."""
        window = self.tally().since(self._window_start)
        return Measurement(
            self.class_names,
            window.arrivals,
            window.attempts,
            window.retries,
            [list(counts) for counts in window.causes],
            [
                LatencyHistogram(counts.tolist(), total, maximum)
                for counts, total, maximum in zip(
                    window.latency_counts,
                    window.latency_total_s,
                    self.window_maximum_s,
                    strict=True,
                )
            ],
            list(window.good),
        )

    def close_row(
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
        current = self.tally()
        step = current.since(self._row_start)
        width = now - self._row_start_s
        row: dict[str, Any] = {
            "time_s": self._row_start_s,
            "offered_rate_per_s": offered_rate_per_s,
            "arrivals": step.arrivals,
            "attempts": step.attempts,
        }
        totals = [sum(column) for column in zip(*step.causes, strict=True)]
        row.update(zip(OUTCOMES, outcome_counts(totals), strict=True))
        for cause in ERROR_CAUSES:
            row[f"error.{cause.label}"] = totals[cause]
        latency = LatencyHistogram(
            step.latency_counts.sum(axis=0).tolist(), math.fsum(step.latency_total_s)
        )
        row["p99_latency_s"] = latency.quantile(0.99)
        row["mean_latency_s"] = latency.mean()
        for name, busy, queued, workers in zip(
            self.group_names, group_busy_s, group_queue_lengths, group_workers, strict=True
        ):
            row[f"{name}.utilization"] = busy / (workers * width) if width > 0 else math.nan
            row[f"{name}.queue_length"] = queued
        self.rows.append(row)
        self._row_start = current
        self._row_start_s = now
