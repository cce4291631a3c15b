"""new_participant_sensor: new, changed, still-being-written and invalid folders; restarts."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from har_assets.config import PreprocessConfig
from har_assets.orchestration.participant_removal import ParticipantRemoval
from har_assets.orchestration.resources import PreprocessingResource, RawStore
from har_assets.orchestration.sensors import study_sensors
from har_assets_tests.rawfiles import age, edit_cell, write_participant

new_participant_sensor = study_sensors()[0]  # as deployed (running)


def tick(instance: dg.DagsterInstance, root: Path, cursor: str | None):
    state = root.parent / f"{root.name}-state"  # assets, archive and audit of removals, beside the raw root
    removal = ParticipantRemoval(assets=str(state / "assets"), archive=str(state / "removed"),
                                 audit_dir=str(state / "audit"))
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                  resources={"raw_store": RawStore(root=str(root)), "participant_removal": removal,
                                             "preprocessing": PreprocessingResource.from_config(PreprocessConfig())})
    result = new_participant_sensor(ctx)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return result, result.cursor
    return result, ctx.cursor


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        yield inst


def test_new_participants_become_partitions_and_runs(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    for pid in ("p01", "p02"):
        age(write_participant(tmp_path / pid, seconds=12))
    result, cursor = tick(instance, tmp_path, None)
    assert isinstance(result, dg.SensorResult)
    assert result.dynamic_partitions_requests[0].partition_keys == ["p01", "p02"]
    [backfill] = result.run_requests  # several participants at once: one backfill, batched by the backfill policy
    assert backfill.requires_backfill_daemon()
    subsets = backfill.asset_graph_subset.partitions_subsets_by_asset_key
    assert {k.to_user_string() for k in subsets} == {"raw_recording", "fused_recording", "filtered_recording",
                                                      "windows"}
    assert all(sorted(s.get_partition_keys()) == ["p01", "p02"] for s in subsets.values())
    # a restart with the stored cursor requests nothing again
    again, _ = tick(instance, tmp_path, cursor)
    assert isinstance(again, dg.SkipReason) and "2 unchanged" in again.skip_message
    assert sorted(instance.get_dynamic_partitions("participants")) == ["p01", "p02"]


def test_folder_still_being_written_waits_for_next_tick(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    write_participant(tmp_path / "p01", seconds=12)  # mtime = now
    first, cursor = tick(instance, tmp_path, None)
    assert isinstance(first, dg.SkipReason) and "still being written (p01)" in first.skip_message
    assert instance.get_dynamic_partitions("participants") == []
    second, _ = tick(instance, tmp_path, cursor)  # sizes and mtimes unchanged since the last tick
    assert isinstance(second, dg.SensorResult) and [r.partition_key for r in second.run_requests] == ["p01"]


def test_changed_content_is_requested_again_but_a_touch_is_not(tmp_path: Path,
                                                                instance: dg.DagsterInstance) -> None:
    folder = write_participant(tmp_path / "p01", seconds=12)
    age(folder)
    first, cursor = tick(instance, tmp_path, None)
    old_key = first.run_requests[0].run_key
    age(folder, 60)  # mtime changes, content does not
    touched, cursor = tick(instance, tmp_path, cursor)
    assert isinstance(touched, dg.SkipReason)
    edit_cell(folder / "labels.csv", "activity", 0, "standing")
    age(folder, 30)
    changed, cursor = tick(instance, tmp_path, cursor)
    assert isinstance(changed, dg.SensorResult)
    assert changed.run_requests[0].partition_key == "p01" and changed.run_requests[0].run_key != old_key
    assert not changed.dynamic_partitions_requests  # the partition exists already


def test_invalid_folders_are_reported_not_fatal(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    age(write_participant(tmp_path / "p01", seconds=12))
    age(write_participant(tmp_path / "bad name", seconds=12))
    incomplete = write_participant(tmp_path / "p02", seconds=12)
    (incomplete / "gyroscope.csv").unlink()
    (tmp_path / "stray.txt").write_text("not a folder")
    result, cursor = tick(instance, tmp_path, None)
    assert [r.partition_key for r in result.run_requests] == ["p01"]
    skip, _ = tick(instance, tmp_path, cursor)
    assert "bad name: participant 'bad name': invalid participant id" in skip.skip_message
    assert "p02: participant 'p02': missing required file gyroscope" in skip.skip_message
    state = json.loads(cursor)
    assert set(state["requested"]) == {"p01"}


def test_missing_raw_root(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    result, _ = tick(instance, tmp_path / "nowhere", None)
    assert isinstance(result, dg.SkipReason)
