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
    "SHED_CAUSES",
    "GoodWindows",
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
SHED_CAUSES = tuple(cause for cause in Cause if cause.outcome is Outcome.SHED)
"""The causes of the ``shed`` outcome: which protection turned the request away."""
_OK = Cause.OK


def outcome_counts(cause_counts: Sequence[int]) -> list[int]:
    """Counts per outcome (in :data:`OUTCOMES` order) from counts per cause."""
    counts = [0] * len(Outcome)
    for cause, count in zip(Cause, cause_counts, strict=True):
        counts[cause.outcome] += count
    return counts


class LatencyHistogram:
    """Counts of values in logarithmic buckets, and quantiles interpolated within a bucket.

    Bucket ``i`` holds values in (gamma**(i-1), gamma**i] with gamma = (1 + a) / (1 - a) for
    a = 0.5% (the DDSketch construction): a bucket is 1% wide, so a quantile read anywhere in
    its bucket is within :data:`WORST_RELATIVE_ERROR` (1.005%) of the exact sample quantile,
    whatever the data. Within the bucket the value is interpolated log-linearly by its rank
    there, which for the smooth distributions of many requests brings the error far below the
    quantile's own sampling error (under a fifth of it at 10^6 values, from p1 to p99.9, for
    exponential, lognormal and Pareto data: ``tests/test_metrics.py``). Values from 1
    microsecond to about 11 days fit in 2,764 buckets; smaller positive ones count as 1
    microsecond, larger ones in the last bucket; zero and below are counted apart, as exact
    zeros (an attempt that did not wait). The exact total (hence the mean) and maximum are kept
    beside the buckets.
    """

    RELATIVE_ACCURACY = 0.005
    SMALLEST_S = 1e-6
    LARGEST_S = 1e6

    _gamma = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
    WORST_RELATIVE_ERROR = _gamma - 1.0
    """The most a quantile can be off, relative to the exact sample quantile: a bucket's width."""
    _log_gamma = math.log(_gamma)
    _inverse_log_gamma = 1.0 / _log_gamma
    _offset = -math.ceil(math.log(SMALLEST_S) * _inverse_log_gamma)
    _size = math.ceil(math.log(LARGEST_S) * _inverse_log_gamma) + _offset + 1

    __slots__ = ("_count", "_counts", "_maximum", "_pending", "_total", "_zeros")

    FLUSH_EVERY = 4096
    """Values added are kept as they come and sorted into buckets this many at a time, with
    numpy: a tenth of the cost of bucketing each one (memory stays bounded by it)."""

    def __init__(
        self,
        counts: Any = None,
        total: float = 0.0,
        maximum: float | None = None,
        zeros: int = 0,
    ) -> None:
        """An empty histogram, or one made of known bucket ``counts`` (and ``zeros``) and their
        ``total``. The ``maximum`` of given counts is infinite (unknown) unless it is given."""
        self._counts = (
            np.zeros(self._size, dtype=np.int64)
            if counts is None
            else np.array(counts, dtype=np.int64)
        )
        self._zeros = zeros
        self._count = int(self._counts.sum()) + zeros
        self._total = total
        if maximum is None:
            maximum = -math.inf if counts is None else math.inf
        self._maximum = maximum
        self._pending: list[float] = []

    @classmethod
    def bucket(cls, value: float) -> int:
        """The index of the bucket that holds a positive ``value``."""
        if value > cls.SMALLEST_S:
            index = math.ceil(math.log(value) * cls._inverse_log_gamma) + cls._offset
            return index if index < cls._size else cls._size - 1
        return 0

    def add(self, value: float) -> None:
        pending = self._pending
        pending.append(value)
        if len(pending) >= self.FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        values = np.array(self._pending, dtype=float)
        self._pending.clear()
        positive = values > self.SMALLEST_S
        indices = np.ceil(np.log(values[positive]) * self._inverse_log_gamma).astype(np.int64)
        indices += self._offset
        np.minimum(indices, self._size - 1, out=indices)
        self._counts += np.bincount(indices, minlength=self._size)
        self._counts[0] += int(np.count_nonzero((values > 0.0) & ~positive))
        self._zeros += int(np.count_nonzero(values <= 0.0))
        self._count += len(values)
        self._total += math.fsum(values.tolist())
        self._maximum = max(self._maximum, float(values.max()))

    @property
    def counts(self) -> np.ndarray:
        """Values per bucket (positive values; exact zeros are in :attr:`zeros`)."""
        self._flush()
        return self._counts

    @property
    def zeros(self) -> int:
        self._flush()
        return self._zeros

    @property
    def count(self) -> int:
        self._flush()
        return self._count

    @property
    def total(self) -> float:
        self._flush()
        return self._total

    @property
    def maximum(self) -> float:
        self._flush()
        return self._maximum

    def merge(self, other: LatencyHistogram) -> None:
        self._flush()
        self._counts = self._counts + other.counts
        self._zeros += other.zeros
        self._count += other.count
        self._total += other.total
        self._maximum = max(self._maximum, other.maximum)

    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @classmethod
    def _bucket_value(cls, index: int, fraction: float) -> float:
        """The value a ``fraction`` of the way (in log scale) across bucket ``index``."""
        if index == 0:
            return cls.SMALLEST_S
        return math.exp((index - cls._offset - 1 + fraction) * cls._log_gamma)

    def distribution(self) -> tuple[list[float], list[int]]:
        """The non-empty buckets: each one's middle (within 1% of its members) and count;
        exact zeros first, as 0."""
        values, counts = ([0.0], [self.zeros]) if self.zeros else ([], [])
        for index in np.flatnonzero(self.counts).tolist():
            values.append(self._bucket_value(index, 0.5))
            counts.append(int(self._counts[index]))
        return values, counts

    def quantile(self, q: float) -> float:
        """The value at rank ceil(q * count) (the 'inverted CDF' sample quantile): within 1%,
        interpolated within its bucket by its rank there."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q * self.count))
        if rank <= self.zeros:
            return 0.0
        cumulative = np.cumsum(self.counts) + self.zeros
        index = int(np.searchsorted(cumulative, rank, side="left"))
        if index >= self._size:
            return self.maximum
        bucket_count = int(self._counts[index])
        seen = int(cumulative[index]) - bucket_count
        fraction = (rank - seen - 0.5) / bucket_count
        return min(self._bucket_value(index, fraction), self.maximum)


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


class GoodWindows:
    """Windowed availability as SRE teams measure it: the share of windows in which the SLO held.

    Every ``window_s`` the requests that ended in the window are read off the recorder's
    counters; the window is good for a class when at least ``threshold`` of its ended requests
    were good (ok within the SLO latency), and good for the service when that holds for all
    its requests together. A window in which nothing ended is good. The last window may be
    shorter: windows count by their length. Memory: a few counters per class.
    """

    def __init__(self, recorder: Recorder, threshold: float) -> None:
        self.recorder = recorder
        self.threshold = threshold
        classes = len(recorder.class_names)
        self.good_s = [0.0] * classes
        self.service_good_s = 0.0
        self.elapsed_s = 0.0
        self._start = self._counts()

    def _counts(self) -> tuple[list[int], list[int]]:
        recorder = self.recorder
        return [sum(counts) for counts in recorder.causes], list(recorder.good)

    def restart(self) -> None:
        """Count from now on (the warm-up is over)."""
        self.good_s = [0.0] * len(self.good_s)
        self.service_good_s = 0.0
        self.elapsed_s = 0.0
        self._start = self._counts()

    def close(self, length_s: float) -> None:
        """A window of ``length_s`` seconds ends now."""
        ended, good = self._counts()
        ended_before, good_before = self._start
        threshold = self.threshold
        all_ended = all_good = 0
        windows = zip(ended, good, ended_before, good_before, strict=True)
        for index, (now_ended, now_good, ended_then, good_then) in enumerate(windows):
            all_ended += now_ended - ended_then
            all_good += now_good - good_then
            if now_good - good_then >= threshold * (now_ended - ended_then):
                self.good_s[index] += length_s
        if all_good >= threshold * all_ended:
            self.service_good_s += length_s
        self.elapsed_s += length_s
        self._start = (ended, good)

    def fractions(self) -> tuple[float, list[float]]:
        """The service's and each class's fraction of good window time (NaN before any)."""
        if self.elapsed_s <= 0:
            return math.nan, [math.nan] * len(self.good_s)
        return self.service_good_s / self.elapsed_s, [g / self.elapsed_s for g in self.good_s]


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
        self.failed = 0
        """Requests that ended in anything but ``ok`` since the start of the run."""
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
        return self.failed

    def start_window(self) -> None:
        """The warm-up is over: the summary counts from now."""
        self._window_start = self.tally()
        self._measuring = True

    def arrival(self) -> None:
        """A new request arrived, and its first attempt was sent."""
        self.arrivals += 1
        self.attempts += 1

    def arrival_not_sent(self) -> None:
        """A new request arrived and failed before any attempt was sent (an open circuit)."""
        self.arrivals += 1

    def hedge(self) -> None:
        """A hedged attempt was sent beside one still waiting for its answer."""
        self.attempts += 1

    def retry(self) -> None:
        """A request was sent again after a failed attempt."""
        self.attempts += 1
        self.retries += 1

    def end(self, class_index: int, cause: Cause, latency_s: float) -> None:
        """A request ended, for ``cause``, after ``latency_s``."""
        if cause != _OK:
            self.causes[class_index][cause] += 1
            self.failed += 1
        else:
            self.causes[class_index][0] += 1  # a plain index: an enum's costs a slow lookup
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
        group_workers: Sequence[float],
        offered_rate_per_s: float,
        group_servers: dict[str, float] | None = None,
        extra: dict[str, float] | None = None,
    ) -> None:
        """End the current time-series row at ``now``.

        ``group_busy_s`` is the work started in the step per server group (utilization is that
        over the group's capacity, ``group_workers``: for an autoscaled group, its mean number
        of workers over the step); ``group_queue_lengths`` are the queues at ``now``;
        ``group_servers`` the mean number of servers of each autoscaled group over the step
        (the ``<group>.servers`` column); ``extra``: more columns of the step, last (the data
        tier's).
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
            if group_servers and name in group_servers:
                row[f"{name}.servers"] = group_servers[name]
        if extra:
            row.update(extra)
        self.rows.append(row)
        self._row_start = current
        self._row_start_s = now
