"""The synthetic demo data honours the raw data contract, is deterministic and is realistically awkward.

Files are parsed here with plain polars/openpyxl, independently of the project's reader.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import openpyxl
import polars as pl
import pytest

from har_assets.demo import ACTIVITIES, write_demo_dataset, write_demo_participant

MINUTES = 3.0
TIME_COLUMNS = ["timestamp", "timestamp_ms", "sample_time_offset"]
COLUMNS = {
    "accelerometer": [*TIME_COLUMNS, "calibrated_accel_x", "calibrated_accel_y", "calibrated_accel_z"],
    "gyroscope": [*TIME_COLUMNS, "calibrated_gyro_x", "calibrated_gyro_y", "calibrated_gyro_z"],
}
WATCH = re.compile(r"^\d{2}/\d{2}/2025, \d{2}:\d{2}:\d{2} [AP]M$")
ISO = re.compile(r"^2025-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
UNIX = re.compile(r"^\d{10}$")
LABEL_TIME = re.compile(r"^2025-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SENSORS = ("accelerometer", "gyroscope")


@pytest.fixture(scope="module")
def csv_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo_csv")
    assert write_demo_dataset(root, 3, seed=7, minutes=MINUTES, fmt="csv", unlabeled=1) == ["p001", "p002", "p003"]
    return root


@pytest.fixture(scope="module")
def xlsx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo_xlsx")
    write_demo_dataset(root, 3, seed=7, minutes=MINUTES, fmt="xlsx")
    return root


def read_text_table(path: Path) -> pl.DataFrame:
    """Every cell as text, from a CSV or the single sheet of an XLSX."""
    if path.suffix == ".csv":
        return pl.read_csv(path, infer_schema_length=0)
    book = openpyxl.load_workbook(path, read_only=True)
    assert book.sheetnames == ["Sheet1"]
    rows = list(book.active.iter_rows(values_only=True))
    book.close()
    return pl.DataFrame([[None if v is None else str(v) for v in row] for row in rows[1:]],
                        schema=[str(c) for c in rows[0]], orient="row")


def parse_list(cell: str) -> list[float]:
    assert cell.startswith("[") and cell.endswith("]"), cell
    if '"' in cell:
        items = json.loads(cell)
        assert all(isinstance(x, str) for x in items)
        return [float(x) for x in items]
    return [float(x) for x in cell[1:-1].split(", ")]


def batch_start_ms(table: pl.DataFrame) -> np.ndarray:
    """Epoch ms of each batch start from `timestamp` (any of the three styles) + `timestamp_ms`."""
    text = table["timestamp"]
    if text.str.contains(r"^\d+$").all():
        seconds = text.cast(pl.Int64) * 1000
    else:
        fmt = "%m/%d/%Y, %I:%M:%S %p" if text.str.contains("/").all() else "%Y-%m-%d %H:%M:%S"
        seconds = text.str.to_datetime(fmt, time_unit="ms").dt.epoch("ms")
    return (seconds + table["timestamp_ms"].cast(pl.Int64)).to_numpy()


def sensor_samples(path: Path) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    """Sample times (epoch ms) and (n, 3) values of one sensor file, plus its raw text table."""
    table = read_text_table(path)
    starts = batch_start_ms(table)
    value_columns = table.columns[3:]
    times, values = [], []
    for start, row in zip(starts, table.select("sample_time_offset", *value_columns).iter_rows(), strict=True):
        offsets = parse_list(row[0])
        axes = [parse_list(cell) for cell in row[1:]]
        assert all(len(a) == len(offsets) for a in axes), "list lengths differ within a row"
        assert offsets[0] == 0
        times.extend(start + np.array(offsets))
        values.extend(zip(*axes, strict=True))
    return np.array(times), np.array(values), table


def read_labels(path: Path) -> pl.DataFrame:
    labels = pl.read_csv(path, infer_schema_length=0)
    assert labels.columns == ["start", "end", "activity"]
    for column in ("start", "end"):
        assert labels[column].str.contains(LABEL_TIME.pattern).all()
    return labels.with_columns(
        (pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_unit="ms").dt.epoch("ms")).alias(f"{c}_ms")
        for c in ("start", "end")
    )


def gaps(times: np.ndarray, min_s: float) -> list[tuple[float, float]]:
    step = np.diff(times)
    return [(times[i], times[i + 1]) for i in np.flatnonzero(step > min_s * 1000)]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path, csv_root: Path) -> None:
    write_demo_dataset(tmp_path / "again", 3, seed=7, minutes=MINUTES, fmt="csv", unlabeled=1)
    for pid in ("p001", "p002", "p003"):
        names = sorted(p.name for p in (csv_root / pid).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "again" / pid).iterdir())
        for name in names:
            assert (csv_root / pid / name).read_bytes() == (tmp_path / "again" / pid / name).read_bytes(), name
    write_demo_dataset(tmp_path / "other", 1, seed=8, minutes=MINUTES, fmt="csv")
    for name in ("accelerometer.csv", "gyroscope.csv", "labels.csv"):
        assert (csv_root / "p001" / name).read_bytes() != (tmp_path / "other" / "p001" / name).read_bytes()


def test_xlsx_deterministic_and_same_content_as_csv(tmp_path: Path, xlsx_root: Path, csv_root: Path) -> None:
    write_demo_participant(tmp_path / "p001", 0, seed=7, minutes=MINUTES, fmt="xlsx")
    for sensor in SENSORS:
        first = read_text_table(xlsx_root / "p001" / f"{sensor}.xlsx")
        assert first.equals(read_text_table(tmp_path / "p001" / f"{sensor}.xlsx"))
        # p001 uses the watch timestamp style in both formats: the cells are the same text
        assert first.equals(read_text_table(csv_root / "p001" / f"{sensor}.csv"))


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_exact_columns_and_list_cells(fmt: str, csv_root: Path, xlsx_root: Path) -> None:
    root = csv_root if fmt == "csv" else xlsx_root
    for pid in ("p001", "p002", "p003"):
        assert not (root / pid / f"accelerometer.{'xlsx' if fmt == 'csv' else 'csv'}").exists()
        for sensor in SENSORS:
            table = read_text_table(root / pid / f"{sensor}.{fmt}")
            assert table.columns == COLUMNS[sensor]
            assert table["timestamp_ms"].cast(pl.Int64).is_between(0, 999).all()
            lengths = table["sample_time_offset"].map_elements(lambda c: len(parse_list(c)), return_dtype=pl.Int64)
            assert lengths.max() == 25 and lengths.min() >= 1  # Garmin-style batches, shorter only at session ends
            assert (lengths == 25).mean() > 0.95
            for column in table.columns[3:]:
                n = table[column].map_elements(lambda c: len(parse_list(c)), return_dtype=pl.Int64)
                assert (n == lengths).all(), f"{pid} {sensor} {column}"
            quoted = table[table.columns[3]].str.starts_with('["')
            # accelerometer lists are written [0, 10, 20], gyroscope lists as JSON strings ["0","10","20"]
            assert quoted.all() if sensor == "gyroscope" else not quoted.any()


def test_timestamp_styles(csv_root: Path, xlsx_root: Path) -> None:
    styles = {pid: read_text_table(csv_root / pid / "accelerometer.csv")["timestamp"]
              for pid in ("p001", "p002", "p003")}
    assert styles["p001"].str.contains(WATCH.pattern).all()
    assert styles["p002"].str.contains(ISO.pattern).all()
    assert styles["p003"].str.contains(UNIX.pattern).all()
    for pid in ("p001", "p002", "p003"):  # both sensors of a participant use the same style
        gyro = read_text_table(csv_root / pid / "gyroscope.csv")["timestamp"]
        assert gyro.str.contains([WATCH, ISO, UNIX][int(pid[-1]) - 1].pattern).all()
        assert read_text_table(xlsx_root / pid / "gyroscope.xlsx")["timestamp"].str.contains(WATCH.pattern).all()


def test_two_clocks_strictly_increasing_with_gaps(csv_root: Path) -> None:
    for pid in ("p001", "p002", "p003"):
        times = {}
        for sensor in SENSORS:
            t, _, table = sensor_samples(csv_root / pid / f"{sensor}.csv")
            step = np.diff(t)
            assert (step > 0).all(), f"{pid} {sensor}: sample times not strictly increasing"
            inside = step[step < 500]
            assert 9.0 <= np.median(inside) <= 11.0  # ~100 Hz
            assert inside.std() > 0.5  # jitter
            assert gaps(t, 5.0), f"{pid} {sensor}: no gap of 5 s or more"
            assert gaps(t, 5.0)[0][1] - gaps(t, 5.0)[0][0] <= 62_000
            times[sensor] = (t, batch_start_ms(table))
        (acc, acc_batches), (gyro, gyro_batches) = times["accelerometer"], times["gyroscope"]
        assert acc[0] != gyro[0]  # own start offsets
        assert len(np.intersect1d(acc_batches, gyro_batches)) < 0.2 * len(acc_batches)  # batches out of phase
        assert abs(acc.size - gyro.size) < 0.05 * acc.size
        # the same watch-off gap shows in both sensors
        assert abs(gaps(acc, 5.0)[0][0] - gaps(gyro, 5.0)[0][0]) < 2000


def test_labels_inside_recording_never_overlap_nor_span_a_gap(csv_root: Path) -> None:
    assert not (csv_root / "p003" / "labels.csv").exists()  # unlabeled: scored, not trained on
    for pid in ("p001", "p002"):
        labels = read_labels(csv_root / pid / "labels.csv")
        assert labels.height >= 3
        assert set(labels["activity"]) <= set(ACTIVITIES)
        start, end = labels["start_ms"].to_numpy(), labels["end_ms"].to_numpy()
        assert (end > start).all() and (np.diff(start) > 0).all()
        assert (start[1:] >= end[:-1]).all(), "overlapping intervals"
        assert ((end - start) >= 15_000).all() and ((end - start) <= 61_000).all()
        for sensor in SENSORS:
            t, _, _ = sensor_samples(csv_root / pid / f"{sensor}.csv")
            assert t[0] < start.min() and end.max() < t[-1]
            for gap_start, gap_end in gaps(t, 0.5):
                assert not ((start < gap_end) & (end > gap_start)).any(), f"{pid}: a label spans a {sensor} gap"


def test_every_class_occurs_across_three_short_participants(csv_root: Path, xlsx_root: Path) -> None:
    labels = pl.concat([read_labels(xlsx_root / pid / "labels.csv") for pid in ("p001", "p002", "p003")])
    assert set(labels["activity"]) == set(ACTIVITIES)
    assert len(ACTIVITIES) == 11


def test_unit_override_participant_writes_g(csv_root: Path) -> None:
    assert json.loads((csv_root / "p003" / "participant.json").read_text()) == {"units": {"accelerometer": "g"}}
    for pid in ("p001", "p002", "p003"):
        _, acc, _ = sensor_samples(csv_root / pid / "accelerometer.csv")
        median = np.median(np.linalg.norm(acc, axis=1))
        if pid == "p003":
            assert 0.9 < median < 1.1
        else:
            assert not (csv_root / pid / "participant.json").exists()
            assert 900 < median < 1100  # milli-g


def test_long_participant_does_every_activity_with_distinct_motion(tmp_path: Path) -> None:
    write_demo_participant(tmp_path / "p001", 4, seed=3, minutes=10, fmt="csv")
    labels = read_labels(tmp_path / "p001" / "labels.csv")
    assert set(labels["activity"]) == set(ACTIVITIES)  # each class appears once it has room for 11 bouts
    assert labels["activity"].value_counts()["count"].max() <= 2  # roughly balanced
    pauses = labels["start_ms"].to_numpy()[1:] - labels["end_ms"].to_numpy()[:-1]
    assert (pauses > 0).any() and (pauses == 0).any()  # unlabelled transitions between some bouts only
    t, acc, _ = sensor_samples(tmp_path / "p001" / "accelerometer.csv")
    magnitude = np.linalg.norm(acc, axis=1)

    def spread(activity: str) -> float:
        rows = labels.filter(pl.col("activity") == activity)
        inside = np.zeros(t.size, dtype=bool)
        for a, b in zip(rows["start_ms"], rows["end_ms"], strict=True):
            inside |= (t >= a + 2000) & (t < b - 2000)
        return float(magnitude[inside].std())

    assert max(spread("sitting"), spread("standing")) < 60  # still: noise and sway only
    assert min(spread("hand_tapping"), spread("hand_scratching")) > 2 * max(spread("sitting"), spread("standing"))


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "p002").mkdir()
    with pytest.raises(FileExistsError, match="p002"):
        write_demo_dataset(tmp_path, 3, minutes=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p002"]  # nothing written, no leftovers
    with pytest.raises(FileExistsError, match="p002"):
        write_demo_participant(tmp_path / "p002", 1, seed=0, minutes=1, fmt="csv")
    assert not any((tmp_path / "p002").iterdir())


def test_still_classes_differ_by_posture_as_on_real_people(tmp_path: Path) -> None:
    """Sitting and standing are told apart, across people, by where gravity points and hardly by motion:
    a nearest-centroid rule on each window's mean acceleration, trained on the other participants,
    separates them with gravity kept and fails with gravity removed (as on real recordings)."""
    from har_assets.config import PreprocessConfig
    from har_assets.raw.reader import read_participant
    from har_assets.signal.pipeline import preprocess

    ids = write_demo_dataset(tmp_path, 4, seed=5, minutes=8.0, fmt="csv")

    def still_windows(gravity: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        cfg = PreprocessConfig(gravity=gravity)
        out = {}
        for pid in ids:
            ws, _ = preprocess(read_participant(tmp_path / pid, cfg), cfg)
            keep = np.isin(ws.labels, ["sitting", "standing"])
            out[pid] = ws.X[keep][:, :, :3].mean(axis=1), ws.labels[keep] == "standing"
        return out

    def held_out_accuracy(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> float:
        right = total = 0
        for pid, (X, y) in data.items():
            Xtr = np.concatenate([data[q][0] for q in data if q != pid])
            ytr = np.concatenate([data[q][1] for q in data if q != pid])
            centroids = np.stack([Xtr[~ytr].mean(axis=0), Xtr[ytr].mean(axis=0)])
            pred = np.linalg.norm(X[:, None, :] - centroids[None], axis=2).argmin(axis=1) == 1
            right, total = right + int((pred == y).sum()), total + len(y)
        return right / total

    assert held_out_accuracy(still_windows("keep")) > 0.97  # the demo data before posture-true watches: 0.92
    assert held_out_accuracy(still_windows("remove")) < 0.7


def test_a_recording_longer_than_one_worksheet_is_refused_as_xlsx(tmp_path: Path) -> None:
    """A worksheet holds 1,048,576 rows (about 72.8 h of 25-sample batches at 100 Hz); xlsxwriter would drop the
    rest silently."""
    from datetime import datetime

    from har_assets.demo import XLSX_MAX_ROWS, _write_xlsx

    with pytest.raises(ValueError, match="do not fit one worksheet"):
        _write_xlsx(pl.DataFrame({"timestamp": ["03/24/2025, 07:52:19 AM"] * XLSX_MAX_ROWS}), tmp_path / "a.xlsx",
                    datetime(2025, 3, 24))
    assert not (tmp_path / "a.xlsx").exists()
