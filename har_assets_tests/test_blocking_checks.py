"""A failed blocking check stops every consumer across runs: automation, scoring by hand, training's split.

Five participants are preprocessed on a real instance; then p01's watch export is re-declared as g
although it is milli-g. Its raw_recording is stored (the output precedes its checks) with the
blocking magnitude check failed, while its earlier windows are still on disk.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import pytest

from har_assets.definitions import ASSETS, build_definitions, build_resources
from har_assets.home import HarHome
from har_assets.orchestration.check_gate import failed_blocking_checks
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.scoring import SCORING_ASSETS
from har_assets.orchestration.training import dataset_split
from har_assets.pipeline_run import _failure_message
from har_assets.settings import HarSettings
from har_assets_tests.trainfiles import write_two_class_participant

PIDS = ["p01", "p02", "p03", "p04", "p05"]
DEFS = build_definitions(HarSettings(home=Path("unused-home")))
EXPECTED = "participant 'p01': blocking check raw_recording.accel_magnitude_plausible failed: "


class Cohort:
    def __init__(self, home: HarHome, instance: dg.DagsterInstance) -> None:
        self.home, self.instance, self.resources = home, instance, build_resources(home)

    def preprocess(self, pid: str) -> dg.ExecuteInJobResult:
        return dg.materialize(PREPROCESSING_ASSETS, partition_key=pid, instance=self.instance,
                              resources=self.resources, raise_on_error=False)

    def materialize(self, selection: list, partition: str | None = None) -> dg.ExecuteInJobResult:
        return dg.materialize(ASSETS, selection=selection, partition_key=partition, instance=self.instance,
                              resources=self.resources, raise_on_error=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    home = HarHome(tmp_path_factory.mktemp("home"))
    for i, pid in enumerate(PIDS):
        write_two_class_participant(home.raw / pid, seconds=20, gain=0.8 + 0.1 * i)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("participants", PIDS)
        cohort = Cohort(home, instance)
        assert all(cohort.preprocess(pid).success for pid in PIDS)
        (home.raw / "p01" / "participant.json").write_text(json.dumps({"units": {"accelerometer": "g"}}))
        cohort.broken = cohort.preprocess("p01")
        yield cohort


def test_the_failure_names_participant_check_and_values(cohort: Cohort) -> None:
    assert not cohort.broken.success
    message = _failure_message(cohort.broken)  # what `har pipeline` prints
    assert message.startswith(EXPECTED) and "is the unit really g" in message
    assert "median_magnitude_m_s2=9809" in message, message
    assert (cohort.home.assets / "raw_recording" / "p01.zip").is_file()  # stored: the output precedes its checks


def test_the_failure_is_remembered_per_participant(cohort: Cohort) -> None:
    failed = failed_blocking_checks(cohort.instance, PIDS)
    assert list(failed) == ["p01"]
    [check] = failed["p01"]
    assert (check.asset, check.check) == ("raw_recording", "accel_magnitude_plausible")


def test_scoring_automation_skips_the_failed_participant(cohort: Cohort) -> None:
    first = dg.evaluate_automation_conditions(DEFS, cohort.instance)  # no champion yet: nothing to score
    assert first.get_requested_partitions(dg.AssetKey("participant_predictions")) == set()
    cohort.instance.report_runless_asset_event(dg.AssetMaterialization(
        "registered_model", tags={"dagster/data_version": "har-activity@champion=v1"}))
    result = dg.evaluate_automation_conditions(DEFS, cohort.instance, cursor=first.cursor)
    assert result.get_requested_partitions(dg.AssetKey("participant_predictions")) == set(PIDS) - {"p01"}


def test_scoring_by_hand_is_refused(cohort: Cohort) -> None:
    result = cohort.materialize(SCORING_ASSETS[:1], "p01")
    assert not result.success
    [failure] = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(EXPECTED) and "not scored" in description
    assert not (cohort.home.assets / "participant_predictions" / "p01.parquet").exists()


def test_training_splits_without_the_failed_participant(cohort: Cohort) -> None:
    assert (cohort.home.assets / "windows" / "p01.npz").exists()  # from the earlier, good recording
    result = cohort.materialize([dataset_split])
    assert result.success
    meta = result.asset_materializations_for_node("dataset_split")[0].metadata
    assert meta["excluded_failed_checks"].value == {"p01": ["raw_recording.accel_magnitude_plausible"]}
    split = cohort.resources["har_json"].stored_json(dg.AssetKey("dataset_split"))
    assert "p01" not in split["train"] + split["validation"] + split["test"] + split["unlabelled"]
    assert sorted(split["train"] + split["validation"] + split["test"]) == PIDS[1:]


def test_a_fixed_recording_flows_again(cohort: Cohort) -> None:
    (cohort.home.raw / "p01" / "participant.json").unlink()
    time.sleep(0.01)
    assert cohort.preprocess("p01").success
    assert failed_blocking_checks(cohort.instance, PIDS) == {}
    assert cohort.materialize([dataset_split]).success
    split = cohort.resources["har_json"].stored_json(dg.AssetKey("dataset_split"))
    assert sorted(split["train"] + split["validation"] + split["test"]) == PIDS
