"""Assets and MLflow artifacts on an object store (`HAR_ASSETS_URI=s3://...`), against a real S3 server
(SeaweedFS): participants materialized to S3 and read back by training and scoring, a failed run that keeps
the stored objects, and a removal that archives them."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import pytest
import s3fs

from har_assets.definitions import build_resources
from har_assets.ml.hyperparams import TrainConfig
from har_assets.orchestration.asset_store import store_resources
from har_assets.orchestration.participant_removal import (
    ParticipantRemoval,
    purge_everywhere,
    remove_from_instance,
    restore_to_instance,
)
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.training_resources import TrainingResource
from har_assets.pipeline_run import run_pipeline
from har_assets.settings import HarSettings
from har_assets_tests.modelstore import TINY
from har_assets_tests.objectstore_server import S3Server, seaweedfs
from har_assets_tests.rawfiles import edit_cell
from har_assets_tests.trainfiles import write_two_class_participant

PIDS = ["p01", "p02", "p03", "p04"]
PREFIX = "study"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server, pytest.MonkeyPatch.context() as env:
        for name, value in server.env().items():
            env.setenv(name, value)
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        for _ in range(100):  # `weed mini` creates the bucket just after it starts serving
            if fs.exists(server.bucket):
                break
            time.sleep(0.2)
        yield server


@pytest.fixture
def study(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A home whose assets live in s3://har/study, with its own instance and local MLflow store."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HAR_ASSETS_URI", f"s3://{s3.bucket}/{PREFIX}")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = HarSettings(home=tmp_path / "home").har_home()  # the asset store from HAR_ASSETS_URI, as `har` reads it
    for i, pid in enumerate(PIDS):
        write_two_class_participant(home.raw / pid, seconds=30, gain=0.8 + 0.1 * i)
    fs = s3fs.S3FileSystem()
    if fs.exists(f"{s3.bucket}/{PREFIX}"):  # each test starts from an empty prefix
        fs.rm(f"{s3.bucket}/{PREFIX}", recursive=True)
    with dg.instance_for_test() as instance:
        yield home, instance, fs


def objects(fs, prefix: str) -> list[str]:
    fs.invalidate_cache()
    return sorted(p.removeprefix(f"har/{PREFIX}/") for p in fs.find(f"har/{PREFIX}/{prefix}"))


def test_pipeline_stores_on_s3_and_reads_back_for_training_and_scoring(study) -> None:
    home, instance, fs = study
    training = {"training": TrainingResource.from_configs(model=TINY, train=TrainConfig(epochs=2, device="cpu"))}
    summary = run_pipeline(home, instance, resources=training)
    assert summary["failed"] == {} and summary["materialized"] == len(PIDS)
    assert summary["model"]["status"] == "trained" and summary["model"]["champion"]
    assert {p["predictions"]["status"] for p in summary["participants"].values()} == {"scored"}

    assert objects(fs, "raw_recording") == [f"raw_recording/{p}.zip" for p in PIDS]
    assert objects(fs, "windows") == [f"windows/{p}.npz" for p in PIDS]
    assert objects(fs, "participant_predictions") == [f"participant_predictions/{p}.parquet" for p in PIDS]
    assert objects(fs, "dataset_split") == ["dataset_split/__all__.json"]
    assert any(p.endswith("weights.pt") for p in objects(fs, ".mlflow")), "the model's artifacts belong on S3 too"
    assert not (home.root / "assets").exists() and not (home.mlflow / "artifacts").exists()

    store = store_resources(home.assets_uri())
    windows = store["har_windows"].load(dg.AssetKey("windows"), "p01")
    predictions = store["har_tables"].load(dg.AssetKey("participant_predictions"), "p01")
    assert len(windows) > 0 and predictions.height > 0
    assert store["har_json"].stored_json(dg.AssetKey("registered_model"))["version"] == 1

    again = run_pipeline(home, instance, resources=training)
    assert again["up_to_date"] == len(PIDS) and again["materialized"] == 0 and again["model"]["status"] == "up-to-date"

    # a broken file fails its run loudly and the objects stored before stay as they were
    before = {p: fs.info(f"har/{PREFIX}/{p}")["ETag"] for p in objects(fs, "") if "/p01." in p}
    edit_cell(home.raw / "p01" / "gyroscope.csv", "calibrated_gyro_y", 2, "[1, 2]")
    broken = run_pipeline(home, instance, resources=training)
    assert "list has 2 values" in broken["failed"]["p01"]
    assert {p: fs.info(f"har/{PREFIX}/{p}")["ETag"] for p in objects(fs, "") if "/p01." in p} == before


def test_removal_archives_objects_and_audits_on_s3(study) -> None:
    home, instance, fs = study
    resources = store_resources(home.assets_uri())
    instance.add_dynamic_partitions("participants", ["p01", "p02"])
    for pid in ("p01", "p02"):
        assert dg.materialize(PREPROCESSING_ASSETS, partition_key=pid, instance=instance,
                              resources={**build_resources(home), **resources}).success
    removal = ParticipantRemoval.for_home(home)
    record = remove_from_instance(instance, removal, "p02", by="test", reason="withdrew consent")
    assert record is not None and {f["asset"] for f in record.files} == {
        "raw_recording", "fused_recording", "filtered_recording", "windows"}
    assert instance.get_dynamic_partitions("participants") == ["p01"]
    assert not [p for p in objects(fs, "") if "/p02." in p and not p.startswith(".")]
    archived = objects(fs, ".removed")
    assert len(archived) == 4 and all(p.startswith(".removed/p02-") for p in archived)
    assert objects(fs, ".audit/participants") == [".audit/participants/p02.json"]
    [history] = objects(fs, ".audit/history")
    assert history.startswith(".audit/history/p02/") and history.endswith("-removed.json")
    assert removal.removed() == {"p02": removal.removed({"p02"})["p02"]} and removal.removed_ids() == {"p02"}
    assert dt.datetime.fromisoformat(removal.removed()["p02"]["removed_at"]) <= dt.datetime.now(dt.UTC)
    assert resources["har_windows"].exists(dg.AssetKey("windows"), "p01")  # nobody else's objects moved

    restore_to_instance(instance, removal, "p02", by="test")  # moved back on the store, the same objects
    assert sorted(p for p in objects(fs, "") if "/p02." in p and not p.startswith(".")) == sorted(
        f"{f['asset']}/{Path(f['path']).name}" for f in record.files)
    for prefix in (".removed", ".audit/participants"):  # (SeaweedFS may keep an empty folder's marker)
        assert not [p for p in objects(fs, prefix) if "p02" in p], prefix
    remove_from_instance(instance, removal, "p02", by="test", reason="withdrew consent")
    purged = purge_everywhere(instance, removal, build_resources(home)["mlflow_tracking"], "p02", by="test")
    assert purged["deleted"]["files"]
    assert not [p for p in objects(fs, "") if "p02" in p and not p.startswith(".audit")]  # archive included
