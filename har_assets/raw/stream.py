"""A sensor file read in blocks of rows, in memory bounded by a block, never by the recording.

Each block is checked as the whole-file reader checks a file (`sensor_samples`, `check_increasing` across
blocks), so an error names the participant, file, field and spreadsheet row as it does. Where a file has
several problems, the streamed read reports the first block's; the whole read may report another first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from har_assets.config import PreprocessConfig
from har_assets.errors import RawDataError
from har_assets.raw.layout import ParticipantFiles, file_sha256
from har_assets.raw.limits import DEFAULT_LIMITS, READING_FILE, ReadLimits
from har_assets.raw.reader import (
    FIRST_DATA_ROW,
    check_file_size,
    check_increasing,
    check_xlsx,
    read_labels,
    read_meta,
    sensor_samples,
)
from har_assets.raw.recording import ACCEL_TO_SI, GYRO_TO_SI, ParticipantMeta, empty_labels
from har_assets.raw.spool import SampleSpool
from har_assets.raw.xlsx_stream import iter_xlsx_chunks

CSV_BLOCK_ROWS = 20_000  # rows of a CSV block: 5,000 s of 25-sample batches at 100 Hz, ~20 MB of text
XLSX_BLOCK_BYTES = 1 << 21  # worksheet XML per XLSX block (~2,000 rows); the reader's working set is 10-20x it


def _csv_blocks(pid: str, path: Path, rows: int) -> Iterator[tuple[int, pl.DataFrame]]:
    frame = pl.scan_csv(path, infer_schema=False, truncate_ragged_lines=True)
    first = FIRST_DATA_ROW
    try:
        for block in frame.collect_batches(chunk_size=rows):
            if block.height:
                yield first, block
                first += block.height
    except RawDataError:
        raise
    except Exception as exc:  # polars raises many types for malformed CSV
        raise RawDataError(pid, path.name, f"cannot read file ({type(exc).__name__}: {exc})") from exc


def iter_table_blocks(pid: str, path: Path, limits: ReadLimits = DEFAULT_LIMITS,
                      csv_rows: int = CSV_BLOCK_ROWS, xlsx_bytes: int = XLSX_BLOCK_BYTES
                      ) -> Iterator[tuple[int, pl.DataFrame]]:
    """(first spreadsheet row, block) of a sheet/CSV with every cell as text and stripped column names, as
    `load_table` reads it whole; refuses a file past the limits and one with no data rows."""
    check_file_size(pid, path, limits)
    if path.suffix == ".xlsx":
        check_xlsx(pid, path, limits)
        blocks = iter_xlsx_chunks(pid, path, xlsx_bytes)
    else:
        blocks = _csv_blocks(pid, path, csv_rows)
    seen = 0
    for _, block in blocks:
        if path.suffix == ".xlsx":  # rows without a value left out, the rest numbered on, as read_excel does
            block = block.filter(~pl.all_horizontal(pl.all().is_null()))
        if not block.height:
            continue
        if seen + block.height > limits.max_rows:
            raise RawDataError(pid, path.name, f"more than {limits.max_rows:,} data rows (raise {READING_FILE} "
                               "max_rows to read it)")
        yield FIRST_DATA_ROW + seen, block.rename({c: c.strip() for c in block.columns})
        seen += block.height
    if seen == 0:
        raise RawDataError(pid, path.name, "file has no data rows")


def iter_sensor_blocks(pid: str, path: Path, sensor: str, to_si: float, limits: ReadLimits = DEFAULT_LIMITS,
                       **block_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(t_ms, xyz) of consecutive blocks of a sensor file's samples (SI units, strictly increasing time across
    blocks): what `read_sensor_file` returns, a block at a time. A time that repeats one more than a block back is
    reported as going back in time (the whole-file reader may call it duplicated), at the same row."""
    before = np.empty(0)
    for first, block in iter_table_blocks(pid, path, limits, **block_size):
        samples = sensor_samples(pid, path.name, block, sensor, to_si, first)
        check_increasing(pid, path.name, samples, before)
        before = samples["t_ms"].to_numpy()
        yield before, samples.select("x", "y", "z").to_numpy()


@dataclass(frozen=True)
class SpooledRecording:
    """A participant read as `read_files` reads it, with each sensor's samples spooled to disk."""

    participant: str
    accel: SampleSpool
    gyro: SampleSpool
    labels: pl.DataFrame
    meta: ParticipantMeta
    sources: dict[str, str]


def spool_participant(files: ParticipantFiles, cfg: PreprocessConfig, folder: Path,
                      limits: ReadLimits = DEFAULT_LIMITS, **block_size: int) -> SpooledRecording:
    """Read and validate one participant's files a block at a time, spooling the sensors under `folder`."""
    pid = files.participant
    for path in files.all:
        check_file_size(pid, path, limits)
    meta = read_meta(pid, files.meta)
    spools = {}
    for sensor, path, to_si in (("accelerometer", files.accelerometer, ACCEL_TO_SI[meta.accel_unit(cfg)]),
                                ("gyroscope", files.gyroscope, GYRO_TO_SI[meta.gyro_unit(cfg)])):
        blocks = iter_sensor_blocks(pid, path, sensor, to_si, limits, **block_size)
        spools[sensor] = SampleSpool.write(folder / sensor, blocks, cfg.max_gap_s * 1000.0)
    labels = read_labels(pid, files.labels, cfg, limits) if files.labels else empty_labels()
    return SpooledRecording(pid, spools["accelerometer"], spools["gyroscope"], labels, meta,
                            {p.name: file_sha256(p) for p in files.all})
