"""Retraining automation: evaluated tick by tick on a real instance (materializations reported runless)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from har_assets.definitions import build_definitions
from har_assets.orchestration.check_gate import PREPROCESSING_CHECKS, partitioned_specs
from har_assets.orchestration.partitions import participants
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.training import TRAINING_ASSETS
from har_assets.settings import HarSettings

ASSETS = [*PREPROCESSING_ASSETS, *TRAINING_ASSETS]
SETTINGS = HarSettings(home=Path("unused-home"), retrain_cron="0 * * * *")
DEFS = build_definitions(SETTINGS)
RETRAIN_CRON = SETTINGS.retrain_cron
CHAIN = ("scaler", "model", "model_evaluation", "registered_model")


class Ticks:
    """Successive automation evaluations at chosen times, carrying the cursor."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.cursor = None

    def at(self, when: dt.datetime) -> dict[str, int]:
        result = dg.evaluate_automation_conditions(DEFS, self.instance, evaluation_time=when, cursor=self.cursor)
        self.cursor = result.cursor
        return {key: result.get_num_requested(dg.AssetKey(key))
                for key in ("dataset_split", "normalized_windows", *CHAIN)}


def stand_in(asset: str) -> dg.AssetsDefinition:
    """An asset with the real one's key, partitions and checks that stores nothing and passes its checks."""
    specs = partitioned_specs(asset, PREPROCESSING_CHECKS[asset])

    @dg.asset(name=asset, partitions_def=participants, check_specs=specs, io_manager_key="nothing")
    def _asset() -> Iterator[dg.Output | dg.AssetCheckResult]:
        yield dg.Output(None)
        for spec in specs:
            yield dg.AssetCheckResult(check_name=spec.name, passed=True)
    return _asset


class StoresNothing(dg.ConfigurableIOManager):
    def handle_output(self, context: dg.OutputContext, obj: None) -> None: ...

    def load_input(self, context: dg.InputContext) -> None: ...


def land(instance: dg.DagsterInstance, asset: str, partitions: list[str | None], version: str | None = None) -> None:
    """Materializations as runs report them: a preprocessing asset by a real run with its checks (passed)."""
    for partition in partitions:
        if asset in PREPROCESSING_CHECKS:
            assert dg.materialize([stand_in(asset)], partition_key=partition, instance=instance,
                                  resources={"nothing": StoresNothing()}).success
            continue
        tags = {"dagster/data_version": version} if version else None
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition, tags=tags))


@pytest.fixture
def hour() -> dt.datetime:
    """Five minutes past a (future) hour, so ticks of the hourly retrain cron fall where the test says."""
    now = dt.datetime.now(dt.UTC).replace(minute=5, second=0, microsecond=0)
    return now + dt.timedelta(hours=2)


def test_retrains_once_per_interval_not_once_per_partition(hour: dt.datetime) -> None:
    minute = dt.timedelta(minutes=1)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("participants", [f"p{i}" for i in range(6)])
        ticks = Ticks(instance)
        assert sum(ticks.at(hour).values()) == 0

        land(instance, "windows", ["p0", "p1", "p2", "p3"])  # a backfill of four participants lands
        first = ticks.at(hour + minute)
        assert first["dataset_split"] == 1 and first["model"] == 0  # one split, not four

        land(instance, "dataset_split", [None], version="split-v1")
        retrain = ticks.at(hour + 2 * minute)
        assert retrain == {"dataset_split": 0, "normalized_windows": 4, "scaler": 1, "model": 1,
                           "model_evaluation": 1, "registered_model": 1}
        land(instance, "scaler", [None])
        land(instance, "normalized_windows", ["p0", "p1", "p2", "p3"])
        for asset in ("model", "model_evaluation", "registered_model"):
            land(instance, asset, [None])
        assert sum(ticks.at(hour + 3 * minute).values()) == 0

        land(instance, "windows", ["p4", "p5"])  # more participants within the same hour
        later = ticks.at(hour + 4 * minute)
        assert later == dict.fromkeys(later, 0)  # nothing until the next interval; newcomers wait for the split
        assert ticks.at(hour + 30 * minute)["dataset_split"] == 0

        next_hour = hour + dt.timedelta(hours=1)
        assert ticks.at(next_hour)["dataset_split"] == 1  # the interval passed: one re-split for both

        land(instance, "dataset_split", [None], version="split-v1")  # same data (e.g. both unlabelled)
        unchanged = ticks.at(next_hour + minute)
        assert unchanged["model"] == 0 and unchanged["scaler"] == 0
        assert unchanged["normalized_windows"] == 2  # the newcomers, with the current scaler
        land(instance, "normalized_windows", ["p4", "p5"])

        land(instance, "windows", ["p4"])  # p4's labels arrive
        assert ticks.at(next_hour + 2 * minute)["dataset_split"] == 0
        assert ticks.at(next_hour + dt.timedelta(hours=1))["dataset_split"] == 1
        land(instance, "dataset_split", [None], version="split-v2")
        changed = ticks.at(next_hour + dt.timedelta(hours=1, minutes=1))
        assert changed["scaler"] == 1 and changed["model"] == 1


def test_conditions_explain_themselves() -> None:
    specs = {s.key: s for s in DEFS.resolve_all_asset_specs()}
    labels = {a.key.to_user_string(): specs[a.key].automation_condition.get_label() for a in TRAINING_ASSETS}
    assert labels["dataset_split"] == f"re-split on new windows, at most once per '{RETRAIN_CRON}'"
    assert labels["scaler"] == "retrain: the split changed"
    assert labels["model"] == "retrain: the split changed"
    assert labels["model_evaluation"] == "after model updates"
    retrain_sensor = DEFS.get_sensor_def("retrain_on_new_data")
    selection = retrain_sensor.asset_selection.resolve(ASSETS)
    assert {k.to_user_string() for k in selection} == set(labels)
    assert retrain_sensor.run_tags == {"har/trigger": "automation: new labelled data"}


def test_scores_when_the_recording_or_the_champion_changes(hour: dt.datetime) -> None:
    minute = dt.timedelta(minutes=1)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("participants", ["p0", "p1"])
        cursor = None

        def tick(n: int) -> dict[str, int]:
            nonlocal cursor
            result = dg.evaluate_automation_conditions(DEFS, instance, evaluation_time=hour + n * minute, cursor=cursor)
            cursor = result.cursor
            return {key: result.get_num_requested(dg.AssetKey(key))
                    for key in ("participant_predictions", "participant_drift")}

        land(instance, "raw_recording", ["p0", "p1"])
        assert tick(0) == {"participant_predictions": 0, "participant_drift": 0}  # no champion yet

        land(instance, "registered_model", [None], version="har-activity@champion=v1")
        assert tick(1) == {"participant_predictions": 2, "participant_drift": 2}  # the drift report rides along
        land(instance, "participant_predictions", ["p0", "p1"])
        land(instance, "participant_drift", ["p0", "p1"])
        assert tick(2) == {"participant_predictions": 0, "participant_drift": 0}

        land(instance, "registered_model", [None], version="har-activity@champion=v1")  # the incumbent stayed
        assert tick(4)["participant_predictions"] == 0
        land(instance, "raw_recording", ["p1"])  # p1's files changed
        assert tick(5)["participant_predictions"] == 1
        land(instance, "participant_predictions", ["p1"])
        land(instance, "participant_drift", ["p1"])
        assert tick(6)["participant_predictions"] == 0
        land(instance, "registered_model", [None], version="har-activity@champion=v2")  # a better model won
        assert tick(7)["participant_predictions"] == 2


def test_the_retrain_cron_comes_from_the_settings_when_the_definitions_are_built() -> None:
    defs = build_definitions(HarSettings(home=Path("unused-home"), retrain_cron="*/15 * * * *"))
    split = {s.key: s for s in defs.resolve_all_asset_specs()}[dg.AssetKey("dataset_split")]
    assert split.automation_condition.get_label() == "re-split on new windows, at most once per '*/15 * * * *'"
    assert "'*/15 * * * *'" in defs.get_sensor_def("retrain_on_new_data").description
    stopped = build_definitions(HarSettings(home=Path("unused-home"), autostart_retrain=False, autostart_sensor=False))
    assert stopped.get_sensor_def("retrain_on_new_data").default_status == dg.DefaultSensorStatus.STOPPED
    assert stopped.get_sensor_def("new_participant_sensor").default_status == dg.DefaultSensorStatus.STOPPED
    assert stopped.get_sensor_def("score_with_champion").default_status == dg.DefaultSensorStatus.RUNNING
