"""The asset store on a local folder: one object per partition, atomic replacement, what earlier versions stored."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from har_assets.config import PreprocessConfig
from har_assets.objectstore import store_path, write_atomically
from har_assets.orchestration.asset_store import RECORDING_IO, TABLE_IO, WINDOWS_IO, store_resources
from har_assets.raw.reader import read_participant
from har_assets.raw.removal import LEGACY_AUDIT, RemovalRecord, removed_ids, removed_participants, write_audit
from har_assets.signal.windowing import WindowSet
from har_assets_tests.rawfiles import write_participant

RAW = dg.AssetKey("raw_recording")


def test_a_recording_is_one_object_and_reads_back_whole(tmp_path: Path) -> None:
    rec = read_participant(write_participant(tmp_path / "raw" / "p01", seconds=5), PreprocessConfig())
    store = store_resources(str(tmp_path / "assets"))[RECORDING_IO]
    write_atomically(store.path_of(RAW, "p01"), rec.to_bytes())
    assert [p.name for p in (tmp_path / "assets" / "raw_recording").iterdir()] == ["p01.zip"]
    back = store.load(RAW, "p01")
    assert back.accel.equals(rec.accel) and back.labels.equals(rec.labels) and back.sources == rec.sources


def test_a_recording_stored_as_a_folder_by_an_earlier_version_is_still_read(tmp_path: Path) -> None:
    rec = read_participant(write_participant(tmp_path / "raw" / "p01", seconds=5), PreprocessConfig())
    folder = tmp_path / "assets" / "raw_recording" / "p01"
    folder.mkdir(parents=True)
    for name in ("accel", "gyro", "labels"):
        getattr(rec, name).write_parquet(folder / f"{name}.parquet")
    (folder / "recording.json").write_text(json.dumps({"participant": "p01", "meta": rec.meta.model_dump(mode="json"),
                                                       "sources": rec.sources}))
    back = store_resources(str(tmp_path / "assets"))[RECORDING_IO].load(RAW, "p01")
    assert back.gyro.equals(rec.gyro) and back.participant == "p01"


def test_a_failed_write_keeps_the_stored_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = store_path(tmp_path / "windows" / "p01.npz")
    write_atomically(path, b"first")

    def half_then_fail(self: Path, data: bytes) -> None:
        with open(self, "wb") as f:
            f.write(data[:2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, b"second")
    monkeypatch.undo()
    assert path.read_bytes() == b"first" and [p.name for p in (tmp_path / "windows").iterdir()] == ["p01.npz"]


def test_a_missing_partition_and_a_wrong_value_are_named(tmp_path: Path) -> None:
    stores = store_resources(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="asset windows partition 'p09' has not been materialized"):
        stores[WINDOWS_IO].load(dg.AssetKey("windows"), "p09")

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a"]), io_manager_key=TABLE_IO)
    def table() -> WindowSet:
        return WindowSet(X=np.zeros((1, 8, 6), np.float32), labels=np.array([""]), start_ms=np.zeros(1),
                         end_ms=np.zeros(1), segment=np.zeros(1, np.int64), channels=("a",) * 6)

    result = dg.materialize([table], partition_key="a", resources=stores, raise_on_error=False)
    error = str(result.get_step_failure_events()[0].step_failure_data.error)
    assert "ParquetIOManager stores DataFrame, got WindowSet" in error
    assert not (tmp_path / "table").exists() or not any((tmp_path / "table").iterdir())


def test_the_audit_reads_one_object_per_participant_and_the_legacy_lines(tmp_path: Path) -> None:
    audit = store_path(tmp_path / ".audit" / "participants")
    old = RemovalRecord("p01", "2026-01-01T00:00:00+00:00", "someone", "withdrew", str(tmp_path / ".removed" / "p01"))
    (tmp_path / ".audit").mkdir()
    (tmp_path / ".audit" / LEGACY_AUDIT).write_text(old.to_json() + "\n")
    write_audit(audit, RemovalRecord("p02", "2026-02-01T00:00:00+00:00", "sensor", "folder deleted", "x"))
    assert list(removed_participants(audit)) == ["p01", "p02"] and removed_ids(audit) == {"p01", "p02"}
    assert list(removed_participants(audit, among={"p02"})) == ["p02"]
    assert RemovalRecord.from_audit(removed_participants(audit)["p01"]) == old
    (tmp_path / ".audit" / "participants" / "p03.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"p03\.json: not JSON"):
        removed_participants(audit)


def test_a_batch_must_return_each_of_its_partitions(tmp_path: Path) -> None:
    parts = dg.StaticPartitionsDefinition(["a", "b"])

    @dg.asset(partitions_def=parts, io_manager_key=TABLE_IO, backfill_policy=dg.BackfillPolicy.single_run())
    def frames() -> dict:
        return {"a": pl.DataFrame({"x": [1]})}

    batch = {"dagster/asset_partition_range_start": "a", "dagster/asset_partition_range_end": "b"}
    result = dg.materialize([frames], tags=batch, resources=store_resources(str(tmp_path)), raise_on_error=False)
    assert "must return a dict with exactly those partitions" in str(
        result.get_step_failure_events()[0].step_failure_data.error)
