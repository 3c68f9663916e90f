"""A recorded trace of arrivals: last year's sale, replayed request by request.

A trace is a CSV or Parquet file with a row per arrival, in time order: a ``time`` column
(seconds from the start of the run) and, optionally, a ``class`` column naming each arrival's
request class. It is read and checked once, when the scenario is loaded, into two compact numpy
arrays (8 bytes a row for the time, one or two for the class), never a Python object per row;
the file is read in blocks, so reading costs little more memory than the arrays themselves.
"""

from __future__ import annotations

import csv
import io
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.registry import did_you_mean

__all__ = [
    "CLASS_COLUMN",
    "MAX_TRACE_ARRIVALS",
    "MAX_TRACE_CLASSES",
    "TIME_COLUMN",
    "ArrivalTrace",
    "TraceError",
    "read_trace",
]

TIME_COLUMN = "time"
CLASS_COLUMN = "class"
MAX_TRACE_ARRIVALS = 50_000_000
"""The most arrivals a trace may hold: 400 MB of times, a day at about 580 requests a second."""
MAX_TRACE_CLASSES = 1_000
"""The most distinct class names a trace may hold."""
_BLOCK_BYTES = 1 << 22
_PARQUET_BATCH_ROWS = 1 << 20


class TraceError(ValueError):
    """A trace file that cannot be replayed; the message says why and where (row numbers count
    the arrivals from 1, the header not included)."""


@dataclass(frozen=True, eq=False)
class ArrivalTrace:
    """Recorded arrivals: ``times`` in seconds of the run (non-decreasing, float64), and, when the
    trace names classes, ``class_codes`` (one per arrival) indexing ``class_names``."""

    times: np.ndarray
    class_names: tuple[str, ...] | None = None
    class_codes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.times)

    def count(self, start: float, end: float) -> int:
        """Arrivals at times in [start, end)."""
        first, last = np.searchsorted(self.times, [start, end], side="left")
        return int(last - first)

    def mean_rate(self, start: float, end: float) -> float:
        """Arrivals per second over [start, end); 0 when the interval is empty."""
        if end <= start:
            return 0.0
        return self.count(start, end) / (end - start)

    def peak_rate(self, end: float, window: float) -> float:
        """The highest arrival rate over windows [k window, (k + 1) window) before ``end``."""
        edges = np.arange(0.0, end + window, window)
        counts = np.diff(np.searchsorted(self.times, edges, side="left"))
        return float(counts.max()) / window if len(counts) else 0.0

    def class_counts(self, end: float) -> dict[str, int]:
        """Arrivals of each named class at times before ``end``; empty without a class column."""
        if self.class_codes is None or self.class_names is None:
            return {}
        within = int(np.searchsorted(self.times, end, side="left"))
        counts = np.bincount(self.class_codes[:within], minlength=len(self.class_names))
        return {name: int(count) for name, count in zip(self.class_names, counts, strict=True)}

    def first_row_of(self, name: str) -> int:
        """The row (from 1) of the first arrival of class ``name``."""
        code = self.class_names.index(name)
        return int(np.argmax(self.class_codes == code)) + 1


def read_trace(path: Path, speed: float = 1.0) -> ArrivalTrace:
    """The arrivals of the CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file at
    ``path``, with times divided by ``speed`` (2 replays the trace twice as fast).

    Raises :class:`TraceError` when the file is missing or unreadable, lacks a ``time`` column,
    has a missing, negative, infinite or decreasing time, a missing class, more than
    :data:`MAX_TRACE_ARRIVALS` rows or :data:`MAX_TRACE_CLASSES` class names, or no rows.
    """
    try:
        status = path.stat()
    except OSError as error:
        raise TraceError(f"cannot read the trace: {error.strerror}") from None
    if not stat.S_ISREG(status.st_mode):
        raise TraceError("the trace is not a regular file (a pipe, a device or a folder)")
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        batches, columns = _parquet_batches(path)
    elif name.endswith((".csv", ".csv.gz", ".csv.bz2")):
        batches, columns = _csv_batches(path)
    else:
        raise TraceError(
            "a trace is a CSV (.csv, .csv.gz, .csv.bz2) or Parquet (.parquet, .pq) file"
        )
    if TIME_COLUMN not in columns:
        raise TraceError(
            f"no {TIME_COLUMN!r} column{did_you_mean(TIME_COLUMN, columns)}; the columns are:"
            f" {', '.join(columns) or 'none'}"
        )
    builder = _TraceBuilder(with_classes=CLASS_COLUMN in columns)
    import pyarrow as pa

    try:
        for batch in batches:
            builder.add(batch)
    except (pa.ArrowException, OSError) as error:
        raise TraceError(f"cannot read the trace: {_first_line(error)}") from None
    return builder.build(speed)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _csv_batches(path: Path):
    """The header's column names, and a reader of the time (and class) columns in blocks."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            head = stream.read(_BLOCK_BYTES)
    except (pa.ArrowException, OSError) as error:
        raise TraceError(f"cannot read the trace: {_first_line(error)}") from None
    try:
        first_line = head.decode("utf-8-sig").splitlines()[:1]
    except UnicodeDecodeError:
        raise TraceError("not a UTF-8 text CSV file") from None
    columns = [name.strip() for name in next(csv.reader(io.StringIO(*first_line)), [])]
    wanted = [name for name in (TIME_COLUMN, CLASS_COLUMN) if name in columns]
    if TIME_COLUMN not in columns:
        return iter(()), columns
    try:
        reader = pa_csv.open_csv(
            str(path),
            read_options=pa_csv.ReadOptions(block_size=_BLOCK_BYTES),
            convert_options=pa_csv.ConvertOptions(
                include_columns=wanted,
                column_types={TIME_COLUMN: pa.float64(), CLASS_COLUMN: pa.string()},
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowException, OSError) as error:
        raise TraceError(f"cannot read the trace as CSV: {_first_line(error)}") from None
    return reader, columns


def _parquet_batches(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(str(path))
    except (pa.ArrowException, OSError) as error:
        raise TraceError(f"cannot read the trace as Parquet: {_first_line(error)}") from None
    columns = list(file.schema_arrow.names)
    if TIME_COLUMN in columns:
        time_type = file.schema_arrow.field(TIME_COLUMN).type
        if not (pa.types.is_integer(time_type) or pa.types.is_floating(time_type)):
            raise TraceError(
                f"the {TIME_COLUMN!r} column holds {time_type}, not numbers: give seconds from"
                " the start of the run"
            )
    wanted = [name for name in (TIME_COLUMN, CLASS_COLUMN) if name in columns]
    return file.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=wanted), columns


class _TraceBuilder:
    """Checks each block of rows as it comes and keeps only compact arrays of them."""

    def __init__(self, with_classes: bool) -> None:
        self.with_classes = with_classes
        self.rows = 0
        self.last_time = 0.0
        self.times: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.names: dict[str, int] = {}

    def add(self, batch) -> None:
        import pyarrow as pa

        if batch.num_rows == 0:
            return
        if self.rows + batch.num_rows > MAX_TRACE_ARRIVALS:
            raise TraceError(f"more than {MAX_TRACE_ARRIVALS:,} arrivals")
        column = batch.column(TIME_COLUMN)
        if column.null_count:
            raise TraceError(f"row {self._row(column.is_null())}: no time")
        times = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(times) | (times < 0)
        if bad.any():
            index = int(np.argmax(bad))
            raise TraceError(
                f"row {self.rows + index + 1}: time {times[index]:g}; times are seconds >= 0"
                " from the start of the run"
            )
        previous = np.concatenate(([self.last_time], times[:-1]))
        backwards = times < previous
        if backwards.any():
            index = int(np.argmax(backwards))
            raise TraceError(
                f"row {self.rows + index + 1}: time {times[index]:g} s is before the previous"
                f" {previous[index]:g} s; a trace lists its arrivals in time order"
            )
        if self.with_classes:
            self.codes.append(self._codes(batch.column(CLASS_COLUMN)))
        self.times.append(times)
        self.last_time = float(times[-1])
        self.rows += batch.num_rows

    def _row(self, mask) -> int:
        return self.rows + int(np.argmax(mask.to_numpy(zero_copy_only=False))) + 1

    def _codes(self, column) -> np.ndarray:
        import pyarrow as pa

        if column.null_count:
            raise TraceError(f"row {self._row(column.is_null())}: no class")
        encoded = column.cast(pa.string()).dictionary_encode()
        codes = []
        for name in encoded.dictionary.to_pylist():
            name = name.strip()
            if name not in self.names:
                if len(self.names) >= MAX_TRACE_CLASSES:
                    raise TraceError(f"more than {MAX_TRACE_CLASSES:,} class names")
                self.names[name] = len(self.names)
            codes.append(self.names[name])
        lookup = np.array(codes, dtype=np.uint16)
        return lookup[encoded.indices.to_numpy(zero_copy_only=False)]

    def build(self, speed: float) -> ArrivalTrace:
        if not self.rows:
            raise TraceError("the trace holds no arrivals")
        times = np.concatenate(self.times)
        self.times.clear()
        if speed != 1.0:
            times /= speed
        if not self.with_classes:
            return ArrivalTrace(times)
        codes = np.concatenate(self.codes)
        if len(self.names) <= 256:
            codes = codes.astype(np.uint8)
        return ArrivalTrace(times, tuple(self.names), codes)
