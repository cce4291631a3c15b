"""Participants leaving a study: `har participants remove` and a deleted raw folder, on a real instance."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest

from har_assets.cli import main, prepare_home
from har_assets.definitions import ASSETS, build_definitions, build_resources
from har_assets.home import HarHome
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.sensors import study_sensors
from har_assets.orchestration.training import dataset_split
from har_assets.settings import HarSettings
from har_assets_tests.rawfiles import age
from har_assets_tests.trainfiles import write_two_class_participant

new_participant_sensor = study_sensors()[0]  # as deployed (running)

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
        assert dg.materialize(ASSETS, selection=[dataset_split], instance=instance, resources=resources).success
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
    before = dg.evaluate_automation_conditions(build_definitions(HarSettings(home=home.root)), instance)

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
    assert "p02" in split_members(resources)  # the stored split still names the removed participant
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)  # past the next tick of the hourly retrain cron
    after = dg.evaluate_automation_conditions(build_definitions(HarSettings(home=home.root)), instance,
                                              cursor=before.cursor, evaluation_time=later)
    assert after.get_num_requested(dg.AssetKey("dataset_split")) == 1
    assert dg.materialize(ASSETS, selection=[dataset_split], instance=instance, resources=resources).success
    assert split_members(resources) == ["p01", "p03", "p04"]

    # its folder is still there: the sensor skips it instead of registering it again
    for folder in home.raw.iterdir():
        age(folder)  # settled, whatever the time since the fixture wrote them
    first = new_participant_sensor(dg.build_sensor_context(instance=instance, resources=sensor_resources(study)))
    assert isinstance(first, dg.SkipReason)  # p01, p03, p04 are up to date; p02 is not registered again
    assert "1 removed from the study, skipped (p02)" in first.skip_message
    assert "0 stale, 3 of them up to date" in first.skip_message

    assert main(["participants", "remove", "nobody", "--reason", "typo"]) == 2
    assert "'nobody' is not a registered participant" in capsys.readouterr().err


def _tick(study, cursor: str | None) -> tuple[dg.SensorResult | dg.SkipReason, str | None]:
    _, instance, _ = study
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=sensor_resources(study))
    result = new_participant_sensor(context)
    return result, result.cursor if isinstance(result, dg.SensorResult) else context.cursor


def test_a_renamed_folder_makes_the_participant_missing_and_back_as_it_was(study) -> None:
    home, instance, _ = study
    for folder in home.raw.iterdir():
        age(folder)
    first, cursor = _tick(study, None)  # a fresh cursor: the four are up to date, nothing requested or added
    assert isinstance(first, dg.SkipReason) and "0 stale, 4 of them up to date" in first.skip_message
    kept = {p: digest(p) for p in stored(home, "p03")}
    assert len(kept) == 4

    (home.raw / "p03").rename(home.raw / "p03-renamed-by-mistake")  # an invalid id: skipped, not a participant
    gone, cursor = _tick(study, cursor)
    assert isinstance(gone, dg.SensorResult) and not gone.run_requests and not gone.dynamic_partitions_requests
    by_asset = {e.asset_key.to_user_string(): e for e in gone.asset_events}
    assert by_asset["raw_recording"].partition == "p03"
    assert by_asset["raw_recording"].metadata["raw_folder"].value == "missing"
    assert by_asset["study_participants"].metadata["missing"].value == ["p03"]
    assert instance.get_dynamic_partitions("participants") == PIDS  # still registered
    assert {p: digest(p) for p in stored(home, "p03")} == kept  # every byte kept, nothing archived
    assert not Path(home.audit_dir()).exists()

    again, cursor = _tick(study, cursor)  # still missing: reported once, not every tick
    assert isinstance(again, dg.SkipReason) and "1 missing (assets kept): p03" in again.skip_message

    (home.raw / "p03-renamed-by-mistake").rename(home.raw / "p03")
    back, cursor = _tick(study, cursor)
    assert isinstance(back, dg.SensorResult) and not back.run_requests  # the same files: nothing to redo
    [observed, registry] = back.asset_events
    assert observed.partition == "p03" and observed.metadata["raw_folder"].value == "present"
    assert registry.metadata["returned"].value == ["p03"]
    quiet, _ = _tick(study, cursor)
    assert isinstance(quiet, dg.SkipReason) and "missing" not in quiet.skip_message


@pytest.mark.parametrize("accident", ["emptied", "unmounted"])
def test_an_empty_or_missing_raw_root_changes_nothing(study, accident: str) -> None:
    home, instance, _ = study
    for folder in home.raw.iterdir():
        age(folder)
    _, cursor = _tick(study, None)
    before = {p: digest(p) for p in home.assets.rglob("*") if p.is_file()}
    aside = home.root / "raw-volume"
    home.raw.rename(aside)
    if accident == "emptied":
        home.raw.mkdir()
    result, after = _tick(study, cursor)
    assert isinstance(result, dg.SkipReason)
    assert "participant(s) are registered in this home: is the raw volume mounted" in result.skip_message
    assert after == cursor
    assert instance.get_dynamic_partitions("participants") == PIDS
    assert {p: digest(p) for p in home.assets.rglob("*") if p.is_file()} == before

    # the headless job refuses the same way, and writes no demo data into the user's raw root
    code = main(["pipeline", "--home", str(home.root)])
    assert code == 2
    assert not home.raw.exists() or not any(home.raw.iterdir())
    assert {p: digest(p) for p in home.assets.rglob("*") if p.is_file()} == before


def test_remove_restore_and_purge(study, capsys: pytest.CaptureFixture[str]) -> None:
    home, instance, _ = study
    kept = {p.name: digest(p) for p in stored(home, "p02")}
    assert main(["participants", "remove", "p02", "--reason", "withdrew consent"]) == 0
    assert "Undo: har participants restore p02" in capsys.readouterr().out
    assert not stored(home, "p02")

    assert main(["participants", "restore", "p02"]) == 0
    assert {p.name: digest(p) for p in stored(home, "p02")} == kept  # back byte for byte
    assert "p02" in instance.get_dynamic_partitions("participants")
    assert not (Path(home.audit_dir()) / "p02.json").exists()
    actions = [json.loads(p.read_text())["action"] for p in sorted((Path(home.audit_dir()).parent / "history" / "p02")
                                                                   .iterdir())]
    assert actions == ["removed", "restored"]
    assert main(["participants", "restore", "p02"]) == 2  # not removed any more
    assert "'p02' is not a removed participant" in capsys.readouterr().err

    assert main(["participants", "purge", "p02", "--yes"]) == 2  # still in the study
    assert "remove it first" in capsys.readouterr().err
    assert main(["participants", "remove", "p02", "--reason", "withdrew consent"]) == 0
    archive = Path(json.loads((Path(home.audit_dir()) / "p02.json").read_text())["archived_to"])
    assert archive.is_dir()
    picture = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("fused_recording"), asset_partitions=["p02"]),
        limit=1).records[0].asset_materialization.metadata["plot"].value
    marker = picture.split("base64,")[1][200:260]  # a piece of p02's picture as the event log stores it
    capsys.readouterr()
    assert main(["participants", "purge", "p02"]) == 2  # asks for --yes first
    assert main(["participants", "purge", "p02", "--yes"]) == 0
    assert "purged 'p02'" in capsys.readouterr().out
    assert not archive.exists() and not stored(home, "p02")
    for key in ("raw_recording", "fused_recording", "filtered_recording", "windows"):
        assert not instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=["p02"]), limit=1).records
        assert instance.fetch_materializations(  # nobody else's history goes
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=["p01"]), limit=1).records
    storage = [p for p in home.dagster_home.rglob("*") if p.is_file()]
    assert not [p for p in storage if marker.encode() in p.read_bytes()], "p02's picture is still stored"
    record = json.loads((Path(home.audit_dir()) / "p02.json").read_text())
    assert record["purged_at"] and record["deleted"]["files"] and record["deleted"]["dagster"]["runs_deleted"]
    assert main(["participants", "restore", "p02"]) == 2  # final
    assert "was purged" in capsys.readouterr().err
