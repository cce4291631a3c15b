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


def test_loading_many_partitions_logs_once_and_names_what_is_missing(tmp_path: Path) -> None:
    """A step over many partitions (training's ALL_PARTITIONS inputs) writes a log event per step, not per partition
    (each is an event-log write); a missing partition is left out with one warning when allowed, else named."""
    keys = [f"p{i:02d}" for i in range(30)]
    parts = dg.StaticPartitionsDefinition(keys)

    @dg.asset(partitions_def=parts, io_manager_key=TABLE_IO)
    def frames(context) -> pl.DataFrame:  # unannotated: Dagster refuses a string annotation for context
        return pl.DataFrame({"p": [context.partition_key]})

    @dg.asset(ins={"frames": dg.AssetIn(metadata={"allow_missing_partitions": True})}, io_manager_key=TABLE_IO)
    def combined(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
        return pl.concat(frames.values())

    @dg.asset(ins={"frames": dg.AssetIn()}, io_manager_key=TABLE_IO)
    def strict(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
        return pl.concat(frames.values())

    stores = store_resources(str(tmp_path))
    with dg.instance_for_test() as instance:
        for key in keys[:-1]:  # the last one never materialized
            assert dg.materialize([frames], partition_key=key, instance=instance, resources=stores).success
        result = dg.materialize([frames, combined], selection=[combined], instance=instance, resources=stores)
        assert result.success and sorted(stores[TABLE_IO].load(dg.AssetKey("combined"))["p"]) == keys[:-1]
        messages = [e.message for e in instance.all_logs(result.run_id) if e.level in (10, 30) and e.message]
        assert sum(m.startswith("loading 30 partitions of frames") for m in messages) == 1
        assert not [m for m in messages if "Loading partition" in m]  # the base class logs each partition
        assert len(messages) < 30, messages
        assert any("1 partitions of frames are not materialized and were left out: p29" in m for m in messages)
        failed = dg.materialize([frames, strict], selection=[strict], instance=instance, resources=stores,
                                raise_on_error=False)
        assert "asset frames partition 'p29' has not been materialized" in str(
            failed.get_step_failure_events()[0].step_failure_data.error)
