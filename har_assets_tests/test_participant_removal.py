"""Participants leaving a study: `har participants remove` and a deleted raw folder, on a real instance."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from har_assets.cli import main, prepare_home
from har_assets.definitions import build_definitions, build_resources
from har_assets.home import HarHome
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.sensors import new_participant_sensor
from har_assets.orchestration.training import dataset_split
from har_assets.pipeline_run import ALL_ASSETS, _split_has_unregistered
from har_assets_tests.rawfiles import age
from har_assets_tests.trainfiles import write_two_class_participant

PIDS = ["p01", "p02", "p03", "p04"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Four preprocessed participants and a split, in a home with its own local instance."""
    home = HarHome(tmp_path / "home")
    for i, pid in enumerate(PIDS):
        write_two_class_participant(home.raw / pid, seconds=20, gain=0.8 + 0.1 * i)
    prepare_home(home, demo_participants=0, demo_minutes=1, seed=0)
    monkeypatch.setenv("HAR_HOME", str(home.root))  # restored after the test: the CLI sets both
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster_home))
    resources = build_resources(home)
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        instance.add_dynamic_partitions("participants", PIDS)
        for pid in PIDS:
            assert dg.materialize(PREPROCESSING_ASSETS, partition_key=pid, instance=instance,
                                  resources=resources).success
        assert dg.materialize(ALL_ASSETS, selection=[dataset_split], instance=instance, resources=resources).success
        yield home, instance, resources


def stored(home: HarHome, pid: str) -> list[Path]:
    """The participant's files in the asset store (not in its archive, .removed)."""
    return [p for p in home.assets.glob(f"*/{pid}*") if not p.parent.name.startswith(".")]


def sensor_resources(study) -> dict:
    _, _, resources = study
    return {k: resources[k] for k in ("raw_store", "participant_removal", "preprocessing")}


def split_members(resources: dict) -> list[str]:
    split = resources["har_json"].stored_json(dg.AssetKey("dataset_split"))
    return sorted(p for role in ("train", "validation", "test", "unlabelled") for p in split[role])


def test_har_participants_remove(study, capsys: pytest.CaptureFixture[str]) -> None:
    home, instance, resources = study
    kept = digest(home.assets / "windows" / "p01.npz")
    before = dg.evaluate_automation_conditions(build_definitions(home), instance)

    assert main(["participants", "remove", "p02", "--reason", "withdrew consent"]) == 0
    assert "removed 'p02' (withdrew consent): partition deleted" in capsys.readouterr().out

    assert instance.get_dynamic_partitions("participants") == ["p01", "p03", "p04"]
    assert not stored(home, "p02"), "p02's stored assets must leave the asset store"
    [entry] = [json.loads(p.read_text()) for p in Path(home.audit_dir()).iterdir()]
    assert entry["participant"] == "p02" and entry["reason"] == "withdrew consent"
    archived = {f["asset"] for f in entry["files"]}
    assert archived == {"raw_recording", "fused_recording", "filtered_recording", "windows"}
    assert all(Path(f["path"]).exists() and f["bytes"] > 0 for f in entry["files"])  # archived, not lost
    assert digest(home.assets / "windows" / "p01.npz") == kept  # nobody else's data touched
    assert (home.raw / "p02").is_dir()  # the study's raw folder is never touched

    [registry] = instance.fetch_materializations(dg.AssetKey("study_participants"), limit=5).records
    meta = registry.asset_materialization.metadata
    assert meta["removed"].value == ["p02"] and meta["reasons"].value == {"p02": "withdrew consent"}

    # the split follows: the automation re-splits, and the split is made without p02
    assert _split_has_unregistered(instance, resources)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)  # past the next tick of the hourly retrain cron
    after = dg.evaluate_automation_conditions(build_definitions(home), instance, cursor=before.cursor,
                                              evaluation_time=later)
    assert after.get_num_requested(dg.AssetKey("dataset_split")) == 1
    assert dg.materialize(ALL_ASSETS, selection=[dataset_split], instance=instance, resources=resources).success
    assert split_members(resources) == ["p01", "p03", "p04"]
    assert not _split_has_unregistered(instance, resources)

    # its folder is still there: the sensor skips it instead of registering it again
    for folder in home.raw.iterdir():
        age(folder)  # settled, whatever the time since the fixture wrote them
    first = new_participant_sensor(dg.build_sensor_context(instance=instance, resources=sensor_resources(study)))
    assert isinstance(first, dg.SkipReason)  # p01, p03, p04 are up to date; p02 is not registered again
    assert "1 removed from the study, skipped (p02)" in first.skip_message
    assert "0 stale, 3 of them up to date" in first.skip_message

    assert main(["participants", "remove", "nobody", "--reason", "typo"]) == 2
    assert "'nobody' is not a registered participant" in capsys.readouterr().err


def test_a_deleted_raw_folder_removes_the_participant(study) -> None:
    home, instance, _ = study
    for folder in home.raw.iterdir():
        age(folder)
    context = dg.build_sensor_context(instance=instance, resources=sensor_resources(study))
    first = new_participant_sensor(context)  # a fresh cursor: the four are up to date, nothing requested or added
    assert isinstance(first, dg.SkipReason) and "0 stale, 4 of them up to date" in first.skip_message
    cursor = context.cursor

    shutil.rmtree(home.raw / "p03")
    result = new_participant_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                            resources=sensor_resources(study)))
    assert isinstance(result, dg.SensorResult) and not result.run_requests
    [delete] = result.dynamic_partitions_requests
    assert isinstance(delete, dg.DeleteDynamicPartitionsRequest) and list(delete.partition_keys) == ["p03"]
    [event] = result.asset_events
    assert event.asset_key == dg.AssetKey("study_participants") and event.metadata["removed"].value == ["p03"]
    assert not stored(home, "p03")
    assert [json.loads(p.read_text())["by"] for p in Path(home.audit_dir()).iterdir()] == ["new_participant_sensor"]

    # an empty raw root (an unmounted volume) removes nobody
    for folder in home.raw.iterdir():
        shutil.rmtree(folder)
    guarded = new_participant_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor,
                                                             resources=sensor_resources(study)))
    # p03's removal is audited but its partition still registered here (the test applies no requests): it is
    # deleted again; nobody else is
    assert [list(r.partition_keys) for r in guarded.dynamic_partitions_requests] == [["p03"]]
    assert [p.name for p in (home.assets / "windows").iterdir()] and (home.assets / "windows" / "p01.npz").exists()
