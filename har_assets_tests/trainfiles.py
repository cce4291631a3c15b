"""Small learnable raw participants for training tests: two activities that differ in motion.

`sitting` is the watch at rest (gravity on z, a slow 0.5 Hz sway of 20 milli-g); `hand_tapping`
adds a 4 Hz, 300 milli-g oscillation on x and a 60 deg/s one on the gyroscope. A per-participant
gain varies the amplitudes, so a model has to generalise a little across people.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from har_assets_tests.rawfiles import COLUMNS, T0, labels_table, write_table

HZ = 100.0
PER_ROW = 25


def _signal(sensor: str, t_s: np.ndarray, tapping: np.ndarray, gain: float) -> tuple[np.ndarray, ...]:
    sway = 20 * np.sin(2 * np.pi * 0.5 * t_s)
    tap = np.where(tapping, np.sin(2 * np.pi * 4.0 * t_s), 0.0) * gain
    if sensor == "accelerometer":
        return sway + 300 * tap, 0.5 * sway + 60 * tap, 1000 + 0 * t_s
    return 2 * sway / 20 + 60 * tap, 30 * tap, 0 * t_s


def _table(sensor: str, seconds: float, start: dt.datetime, gain: float) -> pl.DataFrame:
    n = int(seconds * HZ) // PER_ROW * PER_ROW
    t_ms = np.arange(n) * (1000.0 / HZ)
    t_s = t_ms / 1000 + (start - T0).total_seconds()
    values = _signal(sensor, t_s, t_s >= seconds / 2, gain)
    rows = []
    for r in range(n // PER_ROW):
        sl = slice(r * PER_ROW, (r + 1) * PER_ROW)
        batch_start = start + dt.timedelta(milliseconds=float(t_ms[sl][0]))
        row = {
            "timestamp": batch_start.strftime("%m/%d/%Y, %I:%M:%S %p"),
            "timestamp_ms": batch_start.microsecond // 1000,
            "sample_time_offset": "[" + ", ".join(map(str, np.round(t_ms[sl] - t_ms[sl][0]).astype(int))) + "]",
        }
        for col, v in zip(COLUMNS[sensor], values, strict=True):
            row[col] = "[" + ", ".join(f"{x:.2f}" for x in v[sl]) + "]"
        rows.append(row)
    return pl.DataFrame(rows)


def write_two_class_participant(folder: Path, seconds: float = 40.0, *, gain: float = 1.0,
                                labelled: bool = True) -> Path:
    """First half `sitting`, second half `hand_tapping` (labels.csv only if `labelled`)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_table(_table("accelerometer", seconds, T0, gain), folder / "accelerometer.csv")
    write_table(_table("gyroscope", seconds, T0 + dt.timedelta(milliseconds=7), gain), folder / "gyroscope.csv")
    if labelled:
        half = seconds / 2
        labels_table(T0, [(0.5, half, "sitting"), (half, seconds - 0.5, "hand_tapping")]).write_csv(
            folder / "labels.csv")
    return folder
