"""Every kind of broken raw file gets an error naming the participant, the file and the problem."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from har_assets.config import PreprocessConfig
from har_assets.errors import PipelineDataError, RawDataError
from har_assets.raw.layout import ParticipantFolderError, locate_files, validate_participant_id
from har_assets.raw.reader import read_participant
from har_assets.signal.pipeline import preprocess
from har_assets_tests.rawfiles import edit_cell, write_participant

CFG = PreprocessConfig()


@pytest.fixture
def pdir(tmp_path: Path) -> Path:
    return write_participant(tmp_path / "p07", seconds=12)


def _raises(folder: Path, *patterns: str, cfg: PreprocessConfig = CFG) -> RawDataError:
    with pytest.raises(RawDataError) as info:
        read_participant(folder, cfg)
    message = str(info.value)
    assert message.startswith("participant 'p07': ")
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    return info.value


@pytest.mark.parametrize(
    ("column", "row_index", "value", "patterns"),
    [
        ("calibrated_accel_y", 2, "[1, 2, 3]", [r"column 'calibrated_accel_y', row 4", r"3 values but .* 25"]),
        ("calibrated_accel_x", 0, "[nan" + ", 1" * 24 + "]", [r"row 2", "NaN or infinite"]),
        ("calibrated_accel_z", 1, "[inf" + ", 1" * 24 + "]", [r"row 3", "NaN or infinite"]),
        ("calibrated_accel_x", 1, "[a" + ", 1" * 24 + "]", [r"row 3", "non-numeric"]),
        ("calibrated_accel_x", 1, "1, 2, 3", [r"row 3", "expected a list"]),
        ("timestamp", 3, "yesterday", ["column 'timestamp', row 5", "unreadable timestamp 'yesterday'"]),
        ("timestamp", 47, "nan", ["column 'timestamp', row 49", "time 'nan' is not a finite number"]),
        ("timestamp", 1, "-inf", ["column 'timestamp', row 3", "not a finite number"]),
        ("timestamp", 1, "-1", ["column 'timestamp', row 3", "before 2000-01-01"]),
        ("timestamp", 1, "1999-12-31 23:59:59", ["row 3", "before 2000-01-01"]),
        ("timestamp", 1, "2200-01-01 00:00:00", ["row 3", "in the future"]),
        ("timestamp", 1, "1742802739120", ["row 3", "looks like milliseconds", "must be Unix seconds"]),
        ("timestamp", 1, "1742802739120000", ["row 3", "looks like milliseconds or microseconds"]),
        ("timestamp_ms", 0, "1500", ["column 'timestamp_ms', row 2", "0-999"]),
        ("sample_time_offset", 0, "[]", ["row 2", "empty"]),
    ],
)
def test_bad_cells_name_file_column_and_row(pdir: Path, column: str, row_index: int, value: str,
                                             patterns: list[str]) -> None:
    edit_cell(pdir / "accelerometer.csv", column, row_index, value)
    err = _raises(pdir, r"accelerometer\.csv", *patterns)
    assert err.file == "accelerometer.csv"


def test_duplicated_timestamps(pdir: Path) -> None:
    table = pl.read_csv(pdir / "gyroscope.csv", infer_schema_length=0)
    pl.concat([table.head(3), table.slice(2, 1), table.slice(3)]).write_csv(pdir / "gyroscope.csv")
    _raises(pdir, r"gyroscope\.csv", "row 5", "not strictly increasing", "duplicated")


def test_timestamps_going_back(pdir: Path) -> None:
    table = pl.read_csv(pdir / "gyroscope.csv", infer_schema_length=0)
    swapped = pl.concat([table.head(2), table.slice(3, 1), table.slice(2, 1), table.slice(4)])
    swapped.write_csv(pdir / "gyroscope.csv")
    _raises(pdir, r"gyroscope\.csv", "row 5", "going back in time")


def test_missing_columns(pdir: Path) -> None:
    pl.read_csv(pdir / "gyroscope.csv").drop("calibrated_gyro_z").write_csv(pdir / "gyroscope.csv")
    _raises(pdir, r"gyroscope\.csv", "missing column.*calibrated_gyro_z")


@pytest.mark.parametrize("content", [b"", b"timestamp,timestamp_ms,sample_time_offset\n"])
def test_empty_files(pdir: Path, content: bytes) -> None:
    (pdir / "accelerometer.csv").write_bytes(content)
    _raises(pdir, r"accelerometer\.csv", "no data rows|cannot read")


def test_corrupt_xlsx(tmp_path: Path) -> None:
    folder = write_participant(tmp_path / "p07", seconds=12, fmt="xlsx")
    (folder / "gyroscope.xlsx").write_bytes(b"PK\x03\x04 this is not a workbook")
    _raises(folder, r"gyroscope\.xlsx", "cannot read file")


def test_xlsx_bad_cell(tmp_path: Path) -> None:
    folder = write_participant(tmp_path / "p07", seconds=12, fmt="xlsx")
    table = pl.read_excel(folder / "accelerometer.xlsx")
    table.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("[1, 2]"))
                       .otherwise(pl.col("calibrated_accel_x")).alias("calibrated_accel_x")
                       ).write_excel(folder / "accelerometer.xlsx")
    _raises(folder, r"accelerometer\.xlsx", "row 3", "2 values")


@pytest.mark.parametrize(
    ("rows", "patterns"),
    [
        ("2025-03-24T07:52:21Z,2025-03-24T07:52:20Z,sitting", ["row 2", "ends at or before"]),
        ("2025-03-24T07:52:21Z,not a time,sitting", ["column 'end', row 2", "unreadable"]),
        ("1742802741,NaN,sitting", ["column 'end', row 2", "not a finite number"]),
        ("1742802741000,1742802745000,sitting", ["column 'start', row 2", "looks like milliseconds"]),
        ("-5,1742802745,sitting", ["column 'start', row 2", "before 2000-01-01"]),
        ("2025-03-24T07:52:21Z,2025-03-24T07:52:25Z,", ["column 'activity'", "empty activity"]),
        ("2025-03-24T07:52:21Z,2025-03-24T07:52:25Z,sitting\n2025-03-24T07:52:24Z,2025-03-24T07:52:26Z,smoking",
         ["row 3", "overlaps the interval of row 2"]),
    ],
)
def test_bad_labels(pdir: Path, rows: str, patterns: list[str]) -> None:
    (pdir / "labels.csv").write_text("start,end,activity\n" + rows + "\n")
    _raises(pdir, r"labels\.csv", *patterns)


def test_unknown_label_when_classes_are_declared(pdir: Path) -> None:
    cfg = PreprocessConfig(activities=("sitting", "standing"))
    _raises(pdir, r"labels\.csv", "unknown activity 'hand_tapping'", cfg=cfg)


def test_labels_missing_column(pdir: Path) -> None:
    (pdir / "labels.csv").write_text("start,stop,activity\n")
    _raises(pdir, r"labels\.csv", "missing column.*end")


@pytest.mark.parametrize(
    ("content", "pattern"),
    [("{not json", "not valid JSON"), (json.dumps({"units": {"accelerometer": "furlongs"}}), "units.accelerometer"),
     (json.dumps({"unit": "g"}), "unit")],
)
def test_bad_participant_json(pdir: Path, content: str, pattern: str) -> None:
    (pdir / "participant.json").write_text(content)
    _raises(pdir, r"participant\.json", pattern)


@pytest.mark.parametrize("bad_id", ["../etc", "a b", "x" * 65, "p;rm", "", "p.01"])
def test_unsafe_participant_ids(bad_id: str) -> None:
    with pytest.raises(ParticipantFolderError, match="invalid participant id"):
        validate_participant_id(bad_id)


@pytest.mark.parametrize("reserved", ["__all__", "__p01"])
def test_reserved_participant_ids(reserved: str, tmp_path: Path) -> None:
    with pytest.raises(ParticipantFolderError, match="invalid participant id: ids starting with '__' are reserved"):
        validate_participant_id(reserved)
    with pytest.raises(ParticipantFolderError, match=f"participant '{reserved}'"):
        locate_files(write_participant(tmp_path / reserved, seconds=3))


def test_unix_seconds_are_read(pdir: Path) -> None:
    table = pl.read_csv(pdir / "accelerometer.csv", infer_schema_length=0)
    unix = table["timestamp"].str.to_datetime("%m/%d/%Y, %I:%M:%S %p", time_zone="UTC").dt.epoch("s")
    table.with_columns(timestamp=unix).write_csv(pdir / "accelerometer.csv")
    before = read_participant(write_participant(pdir.parent / "watch" / "p07", seconds=12), CFG)
    assert read_participant(pdir, CFG).accel.equals(before.accel)


def test_missing_and_ambiguous_files(pdir: Path) -> None:
    (pdir / "gyroscope.csv").rename(pdir / "gyro.csv")
    with pytest.raises(ParticipantFolderError, match=r"participant 'p07': missing required file gyroscope\.xlsx"):
        locate_files(pdir)
    (pdir / "gyro.csv").rename(pdir / "gyroscope.csv")
    (pdir / "gyroscope.xlsx").write_bytes(b"")
    with pytest.raises(ParticipantFolderError, match="ambiguous"):
        locate_files(pdir)


def test_sensors_that_never_overlap_fail_loudly(tmp_path: Path) -> None:
    folder = write_participant(tmp_path / "p07", seconds=12)
    gyro = pl.read_csv(folder / "gyroscope.csv", infer_schema_length=0)
    gyro.with_columns(pl.col("timestamp").str.replace("07:52", "09:52")).write_csv(folder / "gyroscope.csv")
    rec = read_participant(folder, CFG)
    with pytest.raises(PipelineDataError, match="participant 'p07': fusion: no span"):
        preprocess(rec, CFG)


def test_recording_shorter_than_a_window_fails_loudly(tmp_path: Path) -> None:
    rec = read_participant(write_participant(tmp_path / "p07", seconds=3), CFG)
    with pytest.raises(PipelineDataError, match="participant 'p07': windowing: no segment is long enough"):
        preprocess(rec, CFG)


def test_raw_files_are_never_modified(pdir: Path) -> None:
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in pdir.iterdir()}
    preprocess(read_participant(pdir, CFG), CFG)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in pdir.iterdir()} == before
