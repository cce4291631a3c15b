"""A recording read, fused, filtered and windowed a block at a time gives, bit for bit, what the whole-recording
pass gives: the same fusion stats and windows (values, labels, times, segments), with seams at gaps, at label
changes and inside filter blocks, for CSV and XLSX and sensors on different clocks; and the same errors."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import har_assets.signal.filters as filters
from har_assets.config import PreprocessConfig
from har_assets.demo import write_demo_participant
from har_assets.errors import PipelineDataError, RawDataError
from har_assets.raw.layout import locate_files
from har_assets.raw.reader import read_participant
from har_assets.raw.stream import spool_participant
from har_assets.signal.chunked import chunked_recording
from har_assets.signal.fusion import grid_steps
from har_assets.signal.pipeline import preprocess
from har_assets.signal.windowing import WindowSet
from har_assets_tests.rawfiles import T0, edit_cell, labels_table, sensor_table, write_table

SMALL_BLOCKS = {"csv_rows": 97, "xlsx_bytes": 1 << 14}  # many read blocks, seams inside batches of samples
BLOCK_S = 7.0  # fused seconds per block: 350 rows, three or four windows


def whole_and_chunked(folder: Path, cfg: PreprocessConfig, tmp: Path) -> tuple[WindowSet, list[WindowSet], bool]:
    whole, stats = preprocess(read_participant(folder, cfg), cfg)
    rec = spool_participant(locate_files(folder), cfg, tmp / "spool", **SMALL_BLOCKS)
    chunked = chunked_recording(rec.participant, rec.accel, rec.gyro, rec.labels, cfg, block_s=BLOCK_S)
    assert chunked.stats == stats
    return whole, list(chunked.blocks()), rec.accel.median_interval() != rec.gyro.median_interval()


def assert_identical(whole: WindowSet, blocks: list[WindowSet]) -> None:
    for field in ("X", "labels", "start_ms", "end_ms", "segment"):
        joined = np.concatenate([getattr(b, field) for b in blocks])
        assert joined.dtype == getattr(whole, field).dtype, field
        np.testing.assert_array_equal(joined, getattr(whole, field), err_msg=field)
    assert all(b.channels == whole.channels for b in blocks)


def seams(blocks: list[WindowSet]) -> dict[str, int]:
    """How many block seams fall at a gap (segment change) and at a label change."""
    pairs = [(a, b) for a, b in itertools.pairwise(blocks) if len(a) and len(b)]
    return {"gap": sum(a.segment[-1] != b.segment[0] for a, b in pairs),
            "label": sum(a.labels[-1] != b.labels[0] for a, b in pairs)}


@pytest.fixture(autouse=True)
def small_filter_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs longer than 2,000 samples are filtered in blocks, so block seams of the filters are crossed too."""
    monkeypatch.setattr(filters, "FILTER_BLOCK", 2000)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("gravity", ["keep", "remove", "separate"])
def test_a_demo_recording_chunked_is_the_whole_pass(tmp_path: Path, fmt: str, gravity: str) -> None:
    folder = tmp_path / "p001"
    write_demo_participant(folder, 0, seed=5, minutes=8, fmt=fmt)
    whole, blocks, _ = whole_and_chunked(folder, PreprocessConfig(gravity=gravity), tmp_path)
    assert len(blocks) > 50 and len(whole) > 200
    assert_identical(whole, blocks)
    found = seams(blocks)
    assert found["gap"] >= 1 and found["label"] >= 1, found


@pytest.mark.parametrize("target_hz", [50.0, 30.0])  # 30: a period of 33.33 ms, whose products round
def test_sensors_on_different_clocks_with_gaps_at_seams(tmp_path: Path, target_hz: float) -> None:
    """Accelerometer at 100 Hz (low-passed before resampling), gyroscope at 40 Hz starting 7 ms later (low-passed
    only for the 30 Hz grid), each with its own gap, and labels that change every 20 s."""
    folder = tmp_path / "p"
    folder.mkdir()
    write_table(sensor_table("accelerometer", 240, gap_after_s=100, gap_s=3), folder / "accelerometer.csv")
    write_table(sensor_table("gyroscope", 240, start=T0 + dt.timedelta(milliseconds=7), hz=40, per_row=20,
                             gap_after_s=170, gap_s=1.5), folder / "gyroscope.csv")
    bouts = [(s, s + 20.0, ("sitting", "walking", "hand_tapping")[i % 3]) for i, s in enumerate(range(0, 240, 20))]
    labels_table(T0, bouts).write_csv(folder / "labels.csv")
    cfg = PreprocessConfig(gravity="separate", target_hz=target_hz)
    whole, blocks, different_clocks = whole_and_chunked(folder, cfg, tmp_path)
    assert different_clocks
    assert_identical(whole, blocks)
    assert seams(blocks)["gap"] >= 2 and seams(blocks)["label"] >= 1


def test_an_unlabelled_recording(tmp_path: Path) -> None:
    folder = tmp_path / "u"
    write_demo_participant(folder, 1, seed=2, minutes=3, fmt="csv", labeled=False)
    whole, blocks, _ = whole_and_chunked(folder, PreprocessConfig(), tmp_path)
    assert_identical(whole, blocks)
    assert not any(b.labeled.any() for b in blocks)


def raised(read) -> RawDataError:
    with pytest.raises(RawDataError) as caught:
        read()
    return caught.value


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("column, value", [
    ("calibrated_accel_y", "[1.0, 2.0]"),  # a list shorter than the offsets
    ("timestamp", "yesterday"),
    ("sample_time_offset", "[0, 10, nan]"),
])
def test_a_bad_cell_deep_in_a_file_is_named_as_the_whole_read_names_it(tmp_path: Path, column: str, value: str,
                                                                         fmt: str) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    write_table(sensor_table("accelerometer", 120), folder / "accelerometer.csv")
    write_table(sensor_table("gyroscope", 120, start=T0 + dt.timedelta(milliseconds=7)), folder / f"gyroscope.{fmt}")
    edit_cell(folder / "accelerometer.csv", column, 300, value)
    if fmt == "xlsx":
        write_table(pl.read_csv(folder / "accelerometer.csv", infer_schema_length=0), folder / "accelerometer.xlsx")
        (folder / "accelerometer.csv").unlink()
    cfg = PreprocessConfig()
    whole = raised(lambda: read_participant(folder, cfg))
    streamed = raised(lambda: spool_participant(locate_files(folder), cfg, tmp_path / "spool", **SMALL_BLOCKS))
    assert (streamed.participant, streamed.file, streamed.field, streamed.row, streamed.problem) == (
        whole.participant, whole.file, whole.field, whole.row, whole.problem)
    assert whole.row == 302


def test_time_going_back_across_a_block_seam(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    acc = sensor_table("accelerometer", 60)
    acc = acc.with_columns(pl.when(pl.int_range(pl.len()) == SMALL_BLOCKS["csv_rows"])  # a block's first row
                           .then(pl.lit(acc["timestamp"][0])).otherwise(pl.col("timestamp")).alias("timestamp"))
    write_table(acc, folder / "accelerometer.csv")
    write_table(sensor_table("gyroscope", 60, start=T0 + dt.timedelta(milliseconds=7)), folder / "gyroscope.csv")
    cfg = PreprocessConfig()
    whole = raised(lambda: read_participant(folder, cfg))
    streamed = raised(lambda: spool_participant(locate_files(folder), cfg, tmp_path / "spool", **SMALL_BLOCKS))
    assert (streamed.field, streamed.row) == (whole.field, whole.row) == ("sample_time_offset",
                                                                          SMALL_BLOCKS["csv_rows"] + 2)
    assert "not strictly increasing" in streamed.problem


def test_grid_times_stay_inside_their_span() -> None:
    """However k * period rounds, the grid of a span holds no time before its first or after its last sample.
    Spans starting and ending on whole 100 ms, where a 30 Hz grid meets them exactly (the rounded product fell
    outside the span in 703 of these 8,000 before `grid_steps`)."""
    rng = np.random.default_rng(3)
    for period in (1000 / 30, 1000 / 48, 1000 / 7, 20.0):
        for lo in rng.integers(16_000_000_000, 18_000_000_000, 2000) * 100.0:
            hi = lo + rng.integers(0, 50) * 100.0
            k0, n = grid_steps(lo, hi, period)
            grid = (k0 + np.arange(n)) * period
            assert (grid >= lo).all() and (grid <= hi).all()
            assert (k0 - 1) * period < lo and (k0 + n) * period > hi


def test_too_short_for_a_window_fails_as_the_whole_pass_fails(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    write_table(sensor_table("accelerometer", 3), folder / "accelerometer.csv")
    write_table(sensor_table("gyroscope", 3, start=T0 + dt.timedelta(milliseconds=7)), folder / "gyroscope.csv")
    cfg = PreprocessConfig()
    with pytest.raises(PipelineDataError) as whole:
        preprocess(read_participant(folder, cfg), cfg)
    rec = spool_participant(locate_files(folder), cfg, tmp_path / "spool")
    with pytest.raises(PipelineDataError) as chunked:
        chunked_recording(rec.participant, rec.accel, rec.gyro, rec.labels, cfg)
    assert str(chunked.value) == str(whole.value) and "no segment is long enough" in str(whole.value)
    with pytest.raises(ValueError, match="split at gaps over 500 ms"):
        chunked_recording(rec.participant, rec.accel, rec.gyro, rec.labels, PreprocessConfig(max_gap_s=2.0))


def test_an_empty_csv_row_is_refused_as_the_whole_read_refuses_it(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    write_table(sensor_table("accelerometer", 60), folder / "accelerometer.csv")
    write_table(sensor_table("gyroscope", 60, start=T0 + dt.timedelta(milliseconds=7)), folder / "gyroscope.csv")
    lines = (folder / "accelerometer.csv").read_text().splitlines(keepends=True)
    (folder / "accelerometer.csv").write_text("".join([*lines[:150], ",,,,,\n", *lines[150:]]))
    cfg = PreprocessConfig()
    whole = raised(lambda: read_participant(folder, cfg))
    streamed = raised(lambda: spool_participant(locate_files(folder), cfg, tmp_path / "spool", **SMALL_BLOCKS))
    assert (streamed.file, streamed.field, streamed.row, streamed.problem) == (
        whole.file, whole.field, whole.row, whole.problem)
    assert whole.row == 151
