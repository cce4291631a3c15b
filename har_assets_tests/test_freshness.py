"""One definition of stale: `har pipeline` and `new_participant_sensor` name the same participants, on a real
instance, after new files, changed files, a changed preprocessing config and a stage that failed after its
input was re-made."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from har_assets.cli import prepare_home
from har_assets.definitions import build_resources
from har_assets.home import HarHome
from har_assets.orchestration.freshness import stale_participants
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.sensors import study_sensors
from har_assets.pipeline_run import run_pipeline
from har_assets.raw.scan import scan_raw_root
from har_assets_tests.rawfiles import age, edit_cell, write_participant

new_participant_sensor = study_sensors()[0]  # as deployed (running)

PIDS = ["p01", "p02", "p03"]


class Sensor:
    """Ticks of the real sensor with the home's resources, carrying the cursor as the daemon does."""

    def __init__(self, home: HarHome, instance: dg.DagsterInstance) -> None:
        self.home, self.instance, self.cursor = home, instance, None

    def tick(self, cursor: str | bool | None = True) -> set[str]:
        """The participants this tick requests (a fresh cursor with `cursor=None`)."""
        resources = build_resources(self.home)
        ctx = dg.build_sensor_context(instance=self.instance, cursor=self.cursor if cursor is True else cursor,
                                      resources={k: resources[k] for k in ("raw_store", "participant_removal",
                                                                           "preprocessing")})
        result = new_participant_sensor(ctx)
        self.cursor = result.cursor if isinstance(result, dg.SensorResult) else ctx.cursor
        if isinstance(result, dg.SkipReason):
            return set()
        requested: set[str] = set()
        for request in result.run_requests or []:
            if request.partition_key:
                requested.add(request.partition_key)
            else:
                [subset] = {frozenset(s.get_partition_keys())
                            for s in request.asset_graph_subset.partitions_subsets_by_asset_key.values()}
                requested |= subset
        return requested


def pipeline(home: HarHome, instance: dg.DagsterInstance) -> set[str]:
    """The participants a `har pipeline` run materializes."""
    summary = run_pipeline(home, instance)
    assert not summary["failed"], summary["failed"]
    return {pid for pid, p in summary["participants"].items() if p["status"] == "materialized"}


@pytest.fixture
def study(tmp_path: Path):
    """Three unlabelled participants (scored, never trained on: no model is trained) in a home of their own."""
    home = HarHome(tmp_path / "home")
    for pid in PIDS:
        folder = write_participant(home.raw / pid, seconds=12)
        (folder / "labels.csv").unlink()
        age(folder)
    prepare_home(home, demo_participants=0, demo_minutes=1, seed=0)
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        yield home, instance


def test_the_sensor_and_the_pipeline_agree_on_what_is_stale(study) -> None:
    home, instance = study
    sensor = Sensor(home, instance)
    assert pipeline(home, instance) == set(PIDS)
    assert sensor.tick(cursor=None) == set()  # after `har pipeline`, a first tick requests nobody
    assert sensor.tick() == set()

    edit_cell(home.raw / "p02" / "gyroscope.csv", "calibrated_gyro_x", 3, "[" + ", ".join(["1.0"] * 25) + "]")
    age(home.raw / "p02")
    assert sensor.tick() == {"p02"} == pipeline(home, instance)
    assert sensor.tick(cursor=None) == set()

    (home.root / "preprocess.json").write_text(json.dumps({"window_step": 50}))  # a new config: everyone is stale
    assert sensor.tick() == set(PIDS) == pipeline(home, instance)
    assert sensor.tick() == set() and sensor.tick(cursor=None) == set()


def test_a_stage_older_than_its_input_is_stale(study) -> None:
    home, instance = study
    pipeline(home, instance)
    resources = build_resources(home)
    cfg = resources["preprocessing"].to_config()
    found = scan_raw_root(home.raw, None, settle_s=0.0).ready
    assert stale_participants(instance, found, cfg) == {}
    # raw_recording re-made alone (e.g. from the UI): its consumers were made from the previous one
    assert dg.materialize(PREPROCESSING_ASSETS, selection=["raw_recording"], partition_key="p03", instance=instance,
                          resources=resources).success
    assert stale_participants(instance, found, cfg) == {
        "p03": "a stage is older than its input (re-made since, or it failed)"}
    assert Sensor(home, instance).tick(cursor=None) == {"p03"} == pipeline(home, instance)


def test_an_unlabelled_study_gets_an_overview_that_counts_a_failing_participant(study) -> None:
    """No participant has labels (a scoring-only study): the overview has no class picture to draw, yet is made."""
    home, instance = study
    pipeline(home, instance)
    (home.raw / "p02" / "participant.json").write_text(json.dumps({"units": {"accelerometer": "g"}}))  # milli-g
    age(home.raw / "p02")
    summary = run_pipeline(home, instance)
    assert set(summary["failed"]) == {"p02"} and summary["materialized"] == 0
    assert summary["overview"]["status"] == "refreshed"
    assert summary["overview"]["participants_failing_checks"] == 1
