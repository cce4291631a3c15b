"""Retraining automation: the conditions evaluated tick by tick, and `retrain_when_it_pays` sensed, on a real
instance (materializations by real runs of stand-ins that store nothing, or reported runless)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import torch

from har_assets.cli import summary_text
from har_assets.config import PreprocessConfig
from har_assets.definitions import build_definitions
from har_assets.home import HarHome
from har_assets.ml.hyperparams import ModelConfig, TrainConfig
from har_assets.ml.split import SplitConfig
from har_assets.orchestration.check_gate import PREPROCESSING_CHECKS, partitioned_specs
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.partitions import participants
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.resources import PreprocessingResource
from har_assets.orchestration.retrain_trigger import REASON_TAG
from har_assets.orchestration.training import TRAINING_ASSETS
from har_assets.orchestration.training_resources import TrainingResource
from har_assets.pipeline_run import run_pipeline
from har_assets.settings import HarSettings
from har_assets_tests.trainfiles import write_two_class_participant

pytestmark = pytest.mark.slow

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


def run_of(instance: dg.DagsterInstance, asset: str, partition: str | None = None, deps: Sequence[str] = (),
           tags: dict[str, str] | None = None, **metadata: Any) -> dg.DagsterRun:
    """A real run of an asset with the real one's key, partitions and checks (passed) that stores nothing and reports
    `metadata`; Dagster records what it read of `deps` (their data versions and events)."""
    specs = partitioned_specs(asset, PREPROCESSING_CHECKS[asset]) if asset in PREPROCESSING_CHECKS else []

    @dg.asset(name=asset, partitions_def=participants if partition else None, deps=list(deps), check_specs=specs,
              io_manager_key="nothing")
    def _asset() -> Iterator[dg.Output | dg.AssetCheckResult]:
        yield dg.Output(None, metadata=metadata)
        for spec in specs:
            yield dg.AssetCheckResult(check_name=spec.name, passed=True)

    result = dg.materialize([_asset], partition_key=partition, instance=instance,
                            resources={"nothing": StoresNothing()}, tags=tags)
    assert result.success
    return result.dagster_run


class StoresNothing(dg.ConfigurableIOManager):
    def handle_output(self, context: dg.OutputContext, obj: None) -> None: ...

    def load_input(self, context: dg.InputContext) -> None: ...


def land(instance: dg.DagsterInstance, asset: str, partitions: list[str | None], version: str | None = None) -> None:
    """Materializations as runs report them: a preprocessing asset by a real run with its checks (passed)."""
    for partition in partitions:
        if asset in PREPROCESSING_CHECKS:
            run_of(instance, asset, partition)
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
        assert changed["scaler"] == 1 and changed["normalized_windows"] == 6
        assert changed["model"] == 0  # a model exists: retrain_when_it_pays decides whether to retrain it


def test_conditions_explain_themselves() -> None:
    specs = {s.key: s for s in DEFS.resolve_all_asset_specs()}
    labels = {a.key.to_user_string(): specs[a.key].automation_condition.get_label() for a in TRAINING_ASSETS}
    assert labels["dataset_split"] == f"re-split on new windows, at most once per '{RETRAIN_CRON}'"
    assert labels["scaler"] == "refit: the split changed"
    assert labels["model"] == "the first model: a split and no model yet"
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
    assert stopped.get_sensor_def("retrain_when_it_pays").default_status == dg.DefaultSensorStatus.STOPPED
    assert stopped.get_sensor_def("new_participant_sensor").default_status == dg.DefaultSensorStatus.STOPPED
    assert stopped.get_sensor_def("score_with_champion").default_status == dg.DefaultSensorStatus.RUNNING


# ------------------------------------------------------------------------------------------ retrain_when_it_pays

RETRAIN = DEFS.get_sensor_def("retrain_when_it_pays")  # the thresholds' defaults: 10 minutes, 3 people
FIRST = ["S01", "S02", "S03", "S04"]
NOTHING_NEW = "no retraining: 0.0 new labelled minutes < 10; 0 newly flagged people < 3"


def sense(instance: dg.DagsterInstance, cursor: str | None) -> tuple[dg.SensorResult | dg.SkipReason, str | None]:
    """One tick of the sensor, as the daemon evaluates it: its answer and its next cursor."""
    result = RETRAIN(dg.build_sensor_context(instance=instance, cursor=cursor))
    return result, result.cursor if isinstance(result, dg.SensorResult) else cursor


def skipped(result: dg.SensorResult | dg.SkipReason) -> str:
    assert isinstance(result, dg.SkipReason), result
    return result.skip_message or ""


def report_split(instance: dg.DagsterInstance, version: str, train: list[str], test: list[str]) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "dataset_split", metadata={"train": train, "validation": [], "test": test},
        tags={"dagster/data_version": version}))


def refit(instance: dg.DagsterInstance, fingerprint: str, normalize: list[str]) -> None:
    """The scaler fit on the latest split and these participants normalized with it (what retrain_on_new_data
    requests when the split changed)."""
    run_of(instance, "scaler", deps=["dataset_split"], scaler_fingerprint=fingerprint)
    for pid in normalize:
        run_of(instance, "normalized_windows", pid, deps=["windows", "scaler"], scaler_fingerprint=fingerprint)


def launched_training() -> dg.JobDefinition:
    """A job that materializes `model` (a stand-in), as one launched from the UI."""
    @dg.asset(name="model")
    def stand_in() -> None: ...

    job = dg.define_asset_job("train_and_evaluate", selection=[stand_in])
    return dg.Definitions(assets=[stand_in], jobs=[job]).resolve_job_def("train_and_evaluate")


def train(instance: dg.DagsterInstance, tags: dict[str, str] | None = None) -> dg.DagsterRun:
    return run_of(instance, "model", deps=["dataset_split", "scaler", "normalized_windows"], tags=tags)


@pytest.fixture
def trained() -> Iterator[dg.DagsterInstance]:
    """Four participants with 2 labelled minutes each, split, normalized and trained on."""
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("participants", [*FIRST, "S07", "S20", "S21", "S22"])
        for pid in FIRST:
            run_of(instance, "windows", pid, labelled_minutes=2.0)
        report_split(instance, "v1", train=FIRST[:3], test=FIRST[3:])
        refit(instance, "f1", FIRST)
        train(instance)
        yield instance


def test_the_first_model_is_not_its_business() -> None:
    with dg.instance_for_test() as instance:
        result, _ = sense(instance, None)
        assert skipped(result) == "no model yet: the first one trains with the first split"


def test_retrains_once_when_enough_labelled_minutes_reached_the_split(trained: dg.DagsterInstance) -> None:
    instance = trained
    result, cursor = sense(instance, None)
    assert skipped(result) == NOTHING_NEW
    run_of(instance, "windows", "S03", labelled_minutes=7.0)  # S03's labels grew by 5 minutes
    assert skipped(sense(instance, cursor)[0]) == NOTHING_NEW  # not in a split yet: the model would not see them
    report_split(instance, "v2", train=FIRST[:3], test=FIRST[3:])
    refit(instance, "f2", FIRST)
    result, cursor = sense(instance, cursor)
    assert skipped(result) == "no retraining: 5.0 new labelled minutes (S03 +5.0) < 10; 0 newly flagged people < 3"

    run_of(instance, "windows", "S07", labelled_minutes=7.5)  # a new labelled participant
    report_split(instance, "v3", train=[*FIRST[:3], "S07"], test=FIRST[3:])
    enough = "12.5 new labelled minutes (S03 +5.0, S07 +7.5) >= 10"
    assert skipped(sense(instance, cursor)[0]) == f"{enough}; waiting: the scaler is not yet fit on the latest split"
    run_of(instance, "scaler", deps=["dataset_split"], scaler_fingerprint="f3")
    assert skipped(sense(instance, cursor)[0]) == (
        f"{enough}; waiting: normalized_windows of S01, S02, S03, S04, S07 not yet made with the current scaler")
    for pid in [*FIRST, "S07"]:
        run_of(instance, "normalized_windows", pid, deps=["windows", "scaler"], scaler_fingerprint="f3")
    in_flight = instance.create_run_for_job(launched_training())  # e.g. "Materialize all", not started yet
    assert skipped(sense(instance, cursor)[0]) == (
        f"{enough}; waiting: model being materialized (run {in_flight.run_id[:8]})")
    instance.report_run_failed(in_flight)

    result, cursor = sense(instance, cursor)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests
    assert request.tags[REASON_TAG] == enough and request.run_key == cursor
    assert skipped(sense(instance, cursor)[0]) == f"already requested for this evidence ({cursor}): {enough}"

    run = train(instance, tags=request.tags)  # the run the daemon launches for the request
    assert instance.get_run_by_id(run.run_id).tags[REASON_TAG] == enough
    assert skipped(sense(instance, cursor)[0]) == NOTHING_NEW  # trained on this split: nothing asks again


def flag(instance: dg.DagsterInstance, pid: str, **metadata: Any) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization("participant_predictions", partition=pid,
                                                                metadata=metadata))


def test_retrains_once_when_enough_people_became_flagged(trained: dg.DagsterInstance) -> None:
    instance = trained
    flag(instance, "S01", flagged=False)
    flag(instance, "S02")  # scored without the figure: not flagged
    for pid in ("S20", "S21"):
        flag(instance, pid, flagged=True)
    result, cursor = sense(instance, None)
    assert skipped(result) == "no retraining: 0.0 new labelled minutes < 10; 2 newly flagged people (S20, S21) < 3"
    flag(instance, "S22", flagged=True)
    result, cursor = sense(instance, cursor)
    # the same data would train the same model: flagged people alone ask for their labels, not for a retrain
    assert skipped(result) == ("no retraining: 0.0 new labelled minutes < 10; 3 newly flagged people (S20, S21, S22) "
                               "but no labelled minutes changed: the same data would train the same model; their "
                               "labels would help (har labels request S20)")
    run_of(instance, "windows", "S03", labelled_minutes=3.0)  # a minute of S03's labels answered
    report_split(instance, "v2", train=FIRST[:3], test=FIRST[3:])
    refit(instance, "f2", FIRST)
    result, cursor = sense(instance, cursor)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests
    assert request.tags[REASON_TAG] == "3 newly flagged people: S20, S21, S22, with 1.0 new labelled minutes"
    assert skipped(sense(instance, cursor)[0]).startswith("already requested for this evidence")
    train(instance, tags=request.tags)
    flag(instance, "S20", flagged=True)  # scored again after the retrain, still flagged: not new
    assert skipped(sense(instance, cursor)[0]) == NOTHING_NEW


def test_har_pipeline_says_why_it_retrained_or_not(tmp_path: Path) -> None:
    """`har pipeline` asks the sensor's question once the conditions are done, and reports the answer."""
    home, people = HarHome(tmp_path / "home"), ["p01", "p02", "p03", "p04"]
    for i, pid in enumerate(people):
        write_two_class_participant(home.raw / pid, gain=0.8 + 0.1 * i)
    resources = {
        "preprocessing": PreprocessingResource.from_config(PreprocessConfig(window_step=50)),
        "training": TrainingResource.from_configs(SplitConfig(), ModelConfig(conv_filters=8, conv_layers=2,
                                                                              lstm_units=8, dropout=0.1),
                                                  TrainConfig(epochs=2, batch_size=16, patience=2, device="cpu")),
        "mlflow_tracking": MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                                          artifact_location=(tmp_path / "artifacts").as_uri()),
    }
    settings = HarSettings(home=home.root, retrain_min_labelled_minutes=10, retrain_min_flagged_people=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models train as fast on one thread, and a busy machine does not stall them
    try:
        with dg.instance_for_test() as instance:
            first = run_pipeline(home, instance, resources=resources, settings=settings)
            assert first["model"]["version"] == 1
            assert "model: the first model, trained with the first split" in summary_text(first)

            for pid in people[:3]:  # as if scored again and flagged: the latest predictions, now flagged
                [latest] = instance.fetch_materializations(dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey("participant_predictions"), asset_partitions=[pid]), limit=1).records
                flag(instance, pid, **{**latest.asset_materialization.metadata, "flagged": True})
            second = run_pipeline(home, instance, resources=resources, settings=settings)
            reason = second["model"]["retraining"]
            assert second["model"]["status"] == "up-to-date" and second["model"].get("version") == 1
            assert reason.startswith("no retraining: ") and ("3 newly flagged people (p01, p02, p03) but no labelled "
                                                              "minutes changed") in reason
            assert f"model: {reason}" in summary_text(second)
            assert not [r for r in instance.get_runs() if REASON_TAG in r.tags]  # nothing was asked of Dagster
            third = run_pipeline(home, instance, resources=resources, settings=settings)
            assert third["model"]["status"] == "up-to-date" and third["model"]["retraining"] == reason
    finally:
        torch.set_num_threads(threads)
