"""Strict, fast reading of the Garmin-style batch export (XLSX or CSV) into a RawRecording.

Every problem raises RawDataError naming the participant, the file, the column and the row
(rows are numbered as a spreadsheet shows them: the header is row 1). A file past the ReadLimits
(`$HAR_HOME/reading.json`) is refused, an XLSX before it is decoded.
"""

from __future__ import annotations

import copy
import json
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import ValidationError

from har_assets.config import PreprocessConfig
from har_assets.errors import RawDataError
from har_assets.raw.layout import ParticipantFiles, file_sha256, locate_files
from har_assets.raw.limits import DEFAULT_LIMITS, MIB, READING_FILE, ReadLimits
from har_assets.raw.recording import (
    ACCEL_TO_SI,
    GYRO_TO_SI,
    LABEL_SCHEMA,
    ParticipantMeta,
    RawRecording,
    empty_labels,
)

TIME_COLUMNS = ("timestamp", "timestamp_ms", "sample_time_offset")
VALUE_COLUMNS = {
    "accelerometer": ("calibrated_accel_x", "calibrated_accel_y", "calibrated_accel_z"),
    "gyroscope": ("calibrated_gyro_x", "calibrated_gyro_y", "calibrated_gyro_z"),
}
# Naive formats are taken as UTC; the first that parses a cell wins.
NAIVE_FORMATS = (
    "%m/%d/%Y, %I:%M:%S %p",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.fZ",
)
AWARE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z")
FIRST_DATA_ROW = 2  # header is spreadsheet row 1
EARLIEST_MS = 946_684_800_000.0  # 2000-01-01 UTC: an earlier time is a device clock that was never set
FUTURE_MARGIN_MS = 86_400_000.0  # times up to a day ahead of now pass (clock skew, local time written as UTC)
MAX_UNIX_S = 1e11  # a larger number of "seconds" (the year 5138) is milliseconds or microseconds since the epoch
UNPACK_CHUNK = 1 << 22
REF_OVERLAP = 64  # bytes kept between chunks: more than the far-cell pattern needs to match
CELL_REF = re.compile(rb' r="([A-Za-z]*)([0-9]*)')
DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def read_participant(folder: Path, cfg: PreprocessConfig, limits: ReadLimits = DEFAULT_LIMITS) -> RawRecording:
    """Read and validate one participant folder; never modifies it."""
    files = locate_files(folder)
    return read_files(files, cfg, limits)


def read_files(files: ParticipantFiles, cfg: PreprocessConfig, limits: ReadLimits = DEFAULT_LIMITS) -> RawRecording:
    pid = files.participant
    for path in files.all:
        check_file_size(pid, path, limits)
    meta = read_meta(pid, files.meta)
    accel = read_sensor_file(pid, files.accelerometer, "accelerometer", ACCEL_TO_SI[meta.accel_unit(cfg)], limits)
    gyro = read_sensor_file(pid, files.gyroscope, "gyroscope", GYRO_TO_SI[meta.gyro_unit(cfg)], limits)
    labels = read_labels(pid, files.labels, cfg, limits) if files.labels else empty_labels()
    return RawRecording(
        participant=pid,
        accel=accel,
        gyro=gyro,
        labels=labels,
        meta=meta,
        sources={p.name: file_sha256(p) for p in files.all},
    )


def read_meta(pid: str, path: Path | None) -> ParticipantMeta:
    if path is None:
        return ParticipantMeta()
    try:
        return ParticipantMeta.model_validate(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise RawDataError(pid, path.name, f"not valid JSON ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise RawDataError(pid, path.name, f"invalid metadata: {problems}") from exc


def check_file_size(pid: str, path: Path, limits: ReadLimits) -> None:
    """Refuse a file larger on disk than `max_file_mb`, before anything reads it."""
    size = path.stat().st_size
    if size > limits.max_file_mb * MIB:
        raise RawDataError(pid, path.name, f"file is {size / MIB:,.1f} MiB, more than {limits.max_file_mb:g} MiB "
                           f"(raise {READING_FILE} max_file_mb to read it)")


def _above(limit: str, alphabet: str, end: str) -> str:
    """Regex for a string over `alphabet` that, read as a number, exceeds `limit` (digits, or column letters):
    a longer one (its first len(limit) + 1 characters), or one as long (so followed by `end`) and greater at the
    first difference."""
    parts = [f"[{alphabet}]{{{len(limit) + 1}}}"]
    for i, char in enumerate(limit):
        greater = alphabet[alphabet.index(char) + 1:]
        if greater:
            parts.append(f"{limit[:i]}[{greater}][{alphabet}]{{{len(limit) - i - 1}}}{end}")
    return "|".join(parts)


def _column_name(number: int) -> str:
    """Spreadsheet letters of a 1-based column number (1: A, 27: AA)."""
    name = ""
    while number:
        number, rest = divmod(number - 1, 26)
        name = LETTERS[rest] + name
    return name


def _far_cell_pattern(limits: ReadLimits) -> re.Pattern[bytes]:
    """A cell or row reference (`r="AH2"`, `r="3000002"`) past the last data row or column the limits allow."""
    rows = _above(str(limits.max_rows + FIRST_DATA_ROW - 1), DIGITS, '"')
    columns = _above(_column_name(limits.max_columns), LETTERS, "[0-9]")  # the decoder takes lower case too
    return re.compile(rf' r="(?:[A-Za-z]*(?P<row>{rows})|(?P<column>(?i:{columns})))'.encode())


def _far_cell_problem(window: bytes, found: re.Match[bytes], limits: ReadLimits) -> str:
    letters, digits = CELL_REF.match(window, found.start()).groups()  # type: ignore[union-attr]  # as found does
    if found["row"]:
        return (f"the sheet has a cell in row {int(digits):,}, past {limits.max_rows:,} data rows "
                f"(raise {READING_FILE} max_rows to read it)")
    return (f"the sheet has a cell in column {letters.decode().upper()}, past column "
            f"{_column_name(limits.max_columns)} (raise {READING_FILE} max_columns to read it)")


def check_xlsx(pid: str, path: Path, limits: ReadLimits) -> None:
    """Refuse, without decoding it, a workbook that unpacks past the limits (a decompression bomb) or references a
    cell past the last row or column allowed (the decoder allocates the whole rectangle up to it). Every member is
    inflated as a stream, to the real end of its data whatever its header declares, in constant memory."""
    file = path.name
    budget = min(limits.max_xlsx_mb * MIB, limits.max_xlsx_ratio * path.stat().st_size)

    def too_big(size: int) -> RawDataError:
        if size > limits.max_xlsx_mb * MIB:
            excess = f"more than {limits.max_xlsx_mb:g} MiB (raise {READING_FILE} max_xlsx_mb to read it)"
        else:
            excess = (f"more than {limits.max_xlsx_ratio:g} times its size on disk, as a decompression bomb does "
                      f"(raise {READING_FILE} max_xlsx_ratio to read it)")
        return RawDataError(pid, file, f"workbook unpacks to {excess}")

    far = _far_cell_pattern(limits)
    try:
        with zipfile.ZipFile(path) as book:
            members = book.infolist()
            declared = sum(m.file_size for m in members)
            if declared > budget:
                raise too_big(declared)
            unpacked = 0
            for member in members:
                whole = copy.copy(member)
                whole.file_size = 1 << 62  # read to the end of the compressed data, not to the declared size
                tail = b""
                with book.open(whole) as stream:
                    while chunk := stream.read(UNPACK_CHUNK):
                        unpacked += len(chunk)
                        if unpacked > budget:
                            raise too_big(unpacked)
                        window = tail + chunk
                        if found := far.search(window):
                            raise RawDataError(pid, file, _far_cell_problem(window, found, limits))
                        tail = chunk[-REF_OVERLAP:]
    except RawDataError:
        raise
    except Exception as exc:  # zipfile and zlib raise many types for corrupt archives
        raise RawDataError(pid, file, f"cannot read file ({type(exc).__name__}: {exc})") from exc


def load_table(pid: str, path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> pl.DataFrame:
    """Load a sheet/CSV with every cell as text (types are checked column by column afterwards)."""
    if path.suffix == ".xlsx":
        check_xlsx(pid, path, limits)
    try:
        if path.suffix == ".xlsx":
            table = pl.read_excel(path, engine="calamine", infer_schema_length=0)
        else:
            table = pl.read_csv(path, infer_schema_length=0, n_rows=limits.max_rows + 1, truncate_ragged_lines=True)
    except Exception as exc:  # the readers raise many types for corrupt files
        raise RawDataError(pid, path.name, f"cannot read file ({type(exc).__name__}: {exc})") from exc
    if table.height == 0:
        raise RawDataError(pid, path.name, "file has no data rows")
    check_rows(pid, path.name, table, limits)
    return table.rename({c: c.strip() for c in table.columns})


def check_rows(pid: str, file: str, table: pl.DataFrame, limits: ReadLimits) -> None:
    """Refuse a table of more than `max_rows` data rows (read with at most one row more)."""
    if table.height > limits.max_rows:
        raise RawDataError(pid, file, f"more than {limits.max_rows:,} data rows (raise {READING_FILE} max_rows "
                           "to read it)")


def _first_bad_row(mask: pl.Series, first_row: int = FIRST_DATA_ROW) -> int:
    """The spreadsheet row of a table's first True, the table's first row being `first_row`."""
    return int(np.flatnonzero(mask.to_numpy())[0]) + first_row


def parse_utc_ms(values: pl.Series) -> pl.Series:
    """Epoch milliseconds (Float64, null where unparseable) from text timestamps or Unix seconds."""
    text = values.cast(pl.String).str.strip_chars()
    unix_s = text.cast(pl.Float64, strict=False)
    parsed = [unix_s * 1000.0]
    for fmt in NAIVE_FORMATS:
        dt = text.str.to_datetime(fmt, strict=False, time_unit="ms")
        parsed.append(dt.dt.epoch("ms").cast(pl.Float64))
    for fmt in AWARE_FORMATS:
        dt = text.str.to_datetime(fmt, strict=False, time_unit="ms", time_zone="UTC")
        parsed.append(dt.dt.epoch("ms").cast(pl.Float64))
    return pl.select(pl.coalesce(parsed)).to_series()


def parse_times(pid: str, file: str, values: pl.Series, unreadable: str, first_row: int = FIRST_DATA_ROW
                ) -> pl.Series:
    """`parse_utc_ms` of a time column, refusing at the first bad cell: non-finite, milliseconds (or finer) where
    the contract has Unix seconds, unreadable (the message is `unreadable`, `{value}` standing for the cell), before
    2000 or in the future."""

    def first_of(bad: pl.Series, problem: str) -> None:
        bad = bad.fill_null(False)
        if bad.any():
            row = _first_bad_row(bad, first_row)
            value = values[row - first_row]
            raise RawDataError(pid, file, problem.format(value=repr(value)), field=values.name, row=row)

    number = values.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    first_of(~number.is_finite(), "time {value} is not a finite number")
    first_of(number > MAX_UNIX_S, "time {value} looks like milliseconds or microseconds since the epoch; "
                                  "numeric times must be Unix seconds")
    parsed = parse_utc_ms(values)
    first_of(parsed.is_null(), f"unreadable {unreadable}")
    first_of(parsed < EARLIEST_MS, "time {value} is before 2000-01-01: not a plausible recording time "
                                   "(a device clock that was never set?)")
    first_of(parsed > time.time() * 1000 + FUTURE_MARGIN_MS, "time {value} is in the future")
    return parsed


def _parse_list_cells(pid: str, file: str, table: pl.DataFrame, column: str, first_row: int) -> pl.Series:
    """Parse `[0, 40, 80]` or `["0","40","80"]` cells into a list[f64] column."""
    text = table[column].cast(pl.String).str.strip_chars()
    bracketed = text.str.starts_with("[") & text.str.ends_with("]")
    if not bracketed.fill_null(False).all():
        row = _first_bad_row(~bracketed.fill_null(False), first_row)
        raise RawDataError(pid, file, f"expected a list like [0, 40, 80], got {text[row - first_row]!r}",
                           field=column, row=row)
    items = (
        text.str.slice(1, text.str.len_chars() - 2)
        .str.replace_all('"', "", literal=True)
        .str.split(",")
        .list.eval(pl.element().str.strip_chars().cast(pl.Float64, strict=False))
    )
    bad = items.list.eval(pl.element().is_null()).list.any()
    if bad.any():
        row = _first_bad_row(bad, first_row)
        raise RawDataError(pid, file, f"list holds an empty or non-numeric item: {text[row - first_row]!r}",
                           field=column, row=row)
    return items


def read_sensor_file(pid: str, path: Path, sensor: str, to_si: float,
                     limits: ReadLimits = DEFAULT_LIMITS) -> pl.DataFrame:
    """Explode one batch export into samples: t_ms, x, y, z in SI units, strictly increasing time."""
    samples = sensor_samples(pid, path.name, load_table(pid, path, limits), sensor, to_si)
    check_increasing(pid, path.name, samples)
    return samples.drop("row")


def sensor_samples(pid: str, file: str, table: pl.DataFrame, sensor: str, to_si: float,
                   first_row: int = FIRST_DATA_ROW) -> pl.DataFrame:
    """Validate rows of a batch export (the first being spreadsheet row `first_row`) and explode them into
    samples: t_ms, x, y, z in SI units, and the row each came from. Time order is `check_increasing`'s."""
    value_columns = VALUE_COLUMNS[sensor]
    missing = [c for c in (*TIME_COLUMNS, *value_columns) if c not in table.columns]
    if missing:
        raise RawDataError(pid, file, f"missing column(s) {', '.join(missing)}; found {', '.join(table.columns)}")

    start = parse_times(pid, file, table["timestamp"], "timestamp {value} (expected e.g. '03/24/2025, 07:52:19 AM', "
                        "'2025-03-24 07:52:19' or Unix seconds)", first_row)
    ms = table["timestamp_ms"].cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    bad_ms = ms.is_null() | ~ms.is_finite().fill_null(False) | (ms < 0) | (ms >= 1000)
    if bad_ms.any():
        row = _first_bad_row(bad_ms, first_row)
        raise RawDataError(pid, file, f"timestamp_ms must be a number of milliseconds 0-999, got "
                           f"{table['timestamp_ms'][row - first_row]!r}", field="timestamp_ms", row=row)

    offsets = _parse_list_cells(pid, file, table, "sample_time_offset", first_row)
    n_per_row = offsets.list.len()
    if (n_per_row == 0).any():
        raise RawDataError(pid, file, "empty batch", field="sample_time_offset",
                           row=_first_bad_row(n_per_row == 0, first_row))
    lists = {}
    for axis, column in zip("xyz", value_columns, strict=True):
        values = _parse_list_cells(pid, file, table, column, first_row)
        mismatch = values.list.len() != n_per_row
        if mismatch.any():
            row = _first_bad_row(mismatch, first_row)
            raise RawDataError(pid, file, f"list has {values.list.len()[row - first_row]} values but "
                               f"sample_time_offset has {n_per_row[row - first_row]}", field=column, row=row)
        lists[axis] = values

    samples = pl.DataFrame(
        {
            "row": pl.int_range(first_row, table.height + first_row, eager=True),
            "t_ms": start + ms,
            "offset": offsets,
            **lists,
        }
    ).explode(["offset", "x", "y", "z"])
    samples = samples.with_columns(pl.col("t_ms") + pl.col("offset"))
    for axis, column in zip("xyz", value_columns, strict=True):
        bad = ~samples[axis].is_finite()
        if bad.any():
            row = int(samples["row"].filter(bad)[0])
            raise RawDataError(pid, file, "value is NaN or infinite", field=column, row=row)
    bad_t = ~samples["offset"].is_finite()
    if bad_t.any():
        raise RawDataError(pid, file, "offset is NaN or infinite", field="sample_time_offset",
                           row=int(samples["row"].filter(bad_t)[0]))
    return samples.select("t_ms", *(pl.col(a) * to_si for a in "xyz"), "row")


def check_increasing(pid: str, file: str, samples: pl.DataFrame, before: np.ndarray | None = None) -> None:
    """Refuse sample times that are not strictly increasing, naming the row. `before`: the times of the
    samples read just before these (a streamed file's previous chunk), which these must follow."""
    times = samples["t_ms"].to_numpy()
    if before is not None and before.size:
        times = np.concatenate((before, times))
    step = np.diff(times)
    not_increasing = np.flatnonzero(step <= 0)
    if not_increasing.size:
        i = int(not_increasing[0])
        if np.isin(times[i + 1], times[: i + 1]):
            kind = "duplicated: this sample time already occurred"
        else:
            kind = f"going back in time by {-step[i]:g} ms"
        row = samples["row"][i + 1 - (times.size - samples.height)]
        raise RawDataError(pid, file, f"sample timestamps not strictly increasing ({kind})",
                           field="sample_time_offset", row=int(row))


def read_labels(pid: str, path: Path, cfg: PreprocessConfig, limits: ReadLimits = DEFAULT_LIMITS) -> pl.DataFrame:
    """Read `start,end,activity` (ISO-8601 UTC) into sorted, non-overlapping half-open intervals."""
    file = path.name
    try:
        table = pl.read_csv(path, infer_schema_length=0, n_rows=limits.max_rows + 1, truncate_ragged_lines=True)
    except Exception as exc:
        raise RawDataError(pid, file, f"cannot read file ({type(exc).__name__}: {exc})") from exc
    check_rows(pid, file, table, limits)
    table = table.rename({c: c.strip() for c in table.columns})
    missing = [c for c in ("start", "end", "activity") if c not in table.columns]
    if missing:
        raise RawDataError(pid, file, f"missing column(s) {', '.join(missing)}; found {', '.join(table.columns)}")
    if table.height == 0:
        return empty_labels()
    out = {}
    for column in ("start", "end"):
        out[f"{column}_ms"] = parse_times(pid, file, table[column], "ISO-8601 time {value}")
    activity = table["activity"].str.strip_chars()
    blank = activity.is_null() | (activity == "")
    if blank.any():
        raise RawDataError(pid, file, "empty activity", field="activity", row=_first_bad_row(blank))
    if cfg.activities is not None:
        unknown = ~activity.is_in(list(cfg.activities))
        if unknown.any():
            row = _first_bad_row(unknown)
            raise RawDataError(pid, file, f"unknown activity {activity[row - FIRST_DATA_ROW]!r}; allowed: "
                               f"{', '.join(cfg.activities)}", field="activity", row=row)
    labels = pl.DataFrame({**out, "activity": activity}).with_columns(
        row=pl.int_range(FIRST_DATA_ROW, table.height + FIRST_DATA_ROW)
    )
    empty = labels["end_ms"] <= labels["start_ms"]
    if empty.any():
        raise RawDataError(pid, file, "interval ends at or before its start", field="end",
                           row=_first_bad_row(empty))
    labels = labels.sort("start_ms")
    overlap = (labels["start_ms"] < labels["end_ms"].shift(1)).fill_null(False)
    if overlap.any():
        i = int(np.flatnonzero(overlap.to_numpy())[0])
        raise RawDataError(pid, file, f"interval overlaps the interval of row {labels['row'][i - 1]}",
                           field="start", row=int(labels["row"][i]))
    return labels.select(list(LABEL_SCHEMA)).cast(LABEL_SCHEMA)
