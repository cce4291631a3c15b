"""The training half of the graph through a real Dagster instance, real training and a temporary MLflow store.

One module-scoped `har pipeline` run (7 participants: 5 labelled, 1 unlabelled, 1 with a broken
file) trains a tiny model; the tests read what it left behind, and the registry tests train more.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from har_assets.cli import summary_text
from har_assets.config import PreprocessConfig
from har_assets.definitions import ASSETS, build_definitions, build_resources
from har_assets.home import HarHome
from har_assets.ml.hyperparams import DecodingConfig, ModelConfig, TrainConfig
from har_assets.ml.mlflow_model import DIGEST_TAG
from har_assets.ml.split import DatasetSplit, SplitConfig
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.resources import PreprocessingResource
from har_assets.orchestration.training import dataset_split, model, model_evaluation, registered_model
from har_assets.orchestration.training_records import ModelEvaluation, RegisteredModel, TrainedModel
from har_assets.orchestration.training_resources import TrainingResource
from har_assets.pipeline_run import run_pipeline
from har_assets.settings import HarSettings
from har_assets.signal.windowing import WindowSet
from har_assets_tests.rawfiles import edit_cell
from har_assets_tests.trainfiles import write_two_class_participant

pytestmark = pytest.mark.slow

LABELLED = ["p01", "p02", "p03", "p04", "p05"]
TINY = ModelConfig(conv_filters=8, conv_layers=2, lstm_units=8, dropout=0.1)
GOOD = TrainConfig(epochs=4, batch_size=16, lr=3e-3, patience=4, device="cpu")
WITH_VALIDATION = SplitConfig(validation_share=0.2)  # the early-stopping path (the default split has no validation)
BAD = TrainConfig(epochs=1, batch_size=16, lr=1e-6, patience=1, device="cpu")
# bad as served too: an untrained network's windows each alone (a GRU learns the labels even from its random
# embeddings of these tiny people)
BAD_DECODING = DecodingConfig(orientation="none", smoothing="none")
TRAINING_RUN = [model, model_evaluation, registered_model]


class Trained:
    """What the pipeline run left: home, instance, resources, summary and the stored asset values."""

    def __init__(self, home: HarHome, instance: dg.DagsterInstance, resources: dict, summary: dict) -> None:
        self.home, self.instance, self.resources, self.summary = home, instance, resources, summary
        json_io = resources["har_json"]
        self.split = DatasetSplit.model_validate(json_io.stored_json(dg.AssetKey("dataset_split")))
        self.model, self.evaluation, self.registered = (
            json_io.stored_json(dg.AssetKey(a)) for a in ("model", "model_evaluation", "registered_model"))
        self.client = MlflowClient(resources["mlflow_tracking"].tracking_uri)

    def windows(self, asset: str, pid: str) -> WindowSet:
        return WindowSet.load(self.home.assets / asset / f"{pid}.npz")

    def materialize(self, selection: list, train: TrainConfig, **resources) -> dg.ExecuteInJobResult:
        decoding = BAD_DECODING if train is BAD else None
        res = {**self.resources, "training": TrainingResource.from_configs(WITH_VALIDATION, TINY, train, decoding),
               **resources}
        return dg.materialize(ASSETS, selection=selection, instance=self.instance, resources=res,
                              raise_on_error=False)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models train as fast on one thread, and a busy 2-core machine does not stall them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("training")
    home = HarHome(root / "home")
    for i, pid in enumerate(LABELLED):
        write_two_class_participant(home.raw / pid, gain=0.8 + 0.1 * i)
    write_two_class_participant(home.raw / "u01", labelled=False)
    write_two_class_participant(home.raw / "bad01")
    edit_cell(home.raw / "bad01" / "gyroscope.csv", "calibrated_gyro_y", 2, "[1, 2]")
    store = root / "mlflow"
    resources = {
        "preprocessing": PreprocessingResource.from_config(PreprocessConfig(window_step=50)),
        "training": TrainingResource.from_configs(WITH_VALIDATION, TINY, GOOD),
        "mlflow_tracking": MlflowTracking(tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
                                          artifact_location=(store / "artifacts").as_uri()),
    }
    with dg.instance_for_test() as instance:
        summary = run_pipeline(home, instance, resources=resources)
        yield Trained(home, instance, {**build_resources(home), **resources}, summary)


def test_pipeline_registers_a_champion_and_reports_test_metrics(trained: Trained) -> None:
    m = trained.summary["model"]
    assert m["status"] == "trained" and m["version"] == 1 and m["champion"] and m["decision"] == "promoted"
    assert m["test"]["macro_f1"] == pytest.approx(trained.evaluation["macro_f1"])
    # one macro-F1: the champion gate scored the candidate on the very windows and figure the evaluation reports
    assert trained.registered["candidate"]["macro_f1"] == pytest.approx(trained.evaluation["macro_f1"], abs=1e-9)
    assert trained.registered["candidate"]["n"] == trained.evaluation["n"]
    assert m["test"]["macro_f1"] > m["test"]["baselines"]["stratified"]["macro_f1"]
    assert set(m["test"]["per_participant_accuracy"]) == set(trained.split.test)
    # each test recording decoded whole with the decoder learned from the training people, every step reported
    evaluation = trained.evaluation
    assert evaluation["decoding"]["smoothing"] == "gru" and evaluation["decoding"]["sequence_inputs"] == "embedding"
    assert set(evaluation["steps"]) == {"window", "aligned", "decoded", "causal"}
    assert evaluation["steps"]["decoded"] == pytest.approx(evaluation["macro_f1"])
    assert set(evaluation["alignment"]) == set(trained.split.test)
    assert evaluation["timeline"]["switches_per_hour_true"] >= 0 and 0 <= evaluation["timeline"][
        "minutes_correct_share"] <= 1
    # calibrated on the training people out of fold; each test person assessed as an unlabelled person would be
    calibration = evaluation["calibration"]
    assert calibration["calibrated"] and calibration["fitted_on"]["people"] == len(trained.split.train)
    assert set(calibration["estimate_errors"]) == set(trained.split.test)
    model_meta = trained.instance.fetch_materializations(dg.AssetKey("model"), limit=1).records[0]
    assert model_meta.asset_materialization.metadata["calibration_temperature"].value == calibration["temperature"]
    text = summary_text(trained.summary)
    assert "har-activity v1" in text and "champion" in text and "macro-F1" in text
    assert "macro-F1 each window alone" in text and "switches per hour" in text
    json.dumps(trained.summary)  # --json must be able to print it


def test_pipeline_scores_every_participant_with_the_champion(trained: Trained) -> None:
    people = trained.summary["participants"]
    assert set(people) == {*LABELLED, "u01"}  # bad01 failed its preprocessing and is not scored
    for pid, p in people.items():
        pred = p["predictions"]
        assert pred["status"] == "scored" and pred["model_version"] == "1", pid
        assert pred["windows"] == p["windows"], f"{pid}: scoring must keep every window"
        assert pred["dominant_class"] in trained.model["classes"] and 0 < pred["mean_confidence"] <= 1
        assert 0 <= pred["estimated_accuracy"] <= 1 and pred["flagged"] == bool(pred["flag_reasons"]), pid
    assert "v1: " in summary_text(trained.summary)
    again = run_pipeline(trained.home, trained.instance, resources=trained.resources)
    assert {p["predictions"]["status"] for p in again["participants"].values()} == {"up-to-date"}, \
        "same files, same champion: Dagster requests nothing"
    assert again["model"]["status"] == "up-to-date" and again["overview"]["status"] == "up-to-date"


def test_broken_participant_fails_clearly_and_is_left_out(trained: Trained) -> None:
    assert trained.summary["failed"]["bad01"] == ("participant 'bad01': gyroscope.csv, column 'calibrated_gyro_y', "
                                                  "row 4: list has 2 values but sample_time_offset has 25")
    mat = trained.instance.fetch_materializations(dg.AssetKey("dataset_split"), limit=1).records[0]
    assert mat.asset_materialization.metadata["missing_windows"].value == ["bad01"]
    result = dg.materialize(ASSETS, selection=["normalized_windows"], partition_key="bad01",
                            instance=trained.instance, resources=trained.resources, raise_on_error=False)
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "windows partition 'bad01' has not been materialized" in str(error)


def test_split_is_by_participant_and_excludes_unlabelled(trained: Trained) -> None:
    split = trained.split
    roles = [set(split.train), set(split.validation), set(split.test)]
    assert all(a.isdisjoint(b) for i, a in enumerate(roles) for b in roles[i + 1:])
    assert set().union(*roles) == set(LABELLED)
    assert (len(split.train), len(split.validation), len(split.test)) == (3, 1, 1)
    assert split.unlabelled == ["u01"]
    assert set(split.fingerprints) == set(LABELLED)


def test_scaler_statistics_come_from_training_participants_only(trained: Trained) -> None:
    scaler = json.loads((trained.home.assets / "scaler" / "__all__.json").read_text())["value"]
    train = [trained.windows("windows", p) for p in trained.split.train]
    X = np.concatenate([ws.X[ws.labeled] for ws in train]).astype(np.float64)
    np.testing.assert_allclose(scaler["mean"], X.reshape(-1, X.shape[2]).mean(axis=0), rtol=1e-6, atol=1e-9)
    std = X.reshape(-1, X.shape[2]).std(axis=0)
    np.testing.assert_allclose(scaler["std"], np.where(std > 1e-12, std, 1.0), rtol=1e-6)  # constant channels: 1
    everyone = [trained.windows("windows", p) for p in LABELLED]
    X_all = np.concatenate([ws.X[ws.labeled] for ws in everyone]).reshape(-1, X.shape[2])
    assert not np.allclose(scaler["std"], X_all.std(axis=0), rtol=1e-3)  # the gains differ per person
    mat = trained.instance.fetch_materializations(dg.AssetKey("scaler"), limit=1).records[0].asset_materialization
    assert mat.metadata["fit_on_participants"].value == trained.split.train


def test_unlabelled_participant_gets_normalized_windows(trained: Trained) -> None:
    raw, normalized = trained.windows("windows", "u01"), trained.windows("normalized_windows", "u01")
    assert not raw.labeled.any() and len(normalized) == len(raw)
    scaler = json.loads((trained.home.assets / "scaler" / "__all__.json").read_text())["value"]
    np.testing.assert_allclose(normalized.X, (raw.X - scaler["mean"]) / scaler["std"], rtol=1e-4, atol=1e-4)
    assert "u01" not in json.dumps(trained.client.get_run(trained.model["mlflow_run_id"]).data.params)


def test_training_run_is_tracked_in_mlflow(trained: Trained) -> None:
    run = trained.client.get_run(trained.model["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    params, metrics = run.data.params, run.data.metrics
    assert params["split.test"] == ",".join(trained.split.test) and params["train.epochs"] == "4"
    assert params["model.lstm_units"] == "8" and params["preprocess.window_step"] == "50"
    assert params["classes"] == "hand_tapping,sitting"
    raw = trained.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_recording"), asset_partitions=["p01"]), limit=1
    ).records[0].asset_materialization
    assert not [k for k in (*params, *metrics) if k.rsplit(".", 1)[-1] in trained.split.train]  # nobody by name
    lineage = trained.client.download_artifacts(run.info.run_id, "inputs/data_versions.json")
    assert json.loads(Path(lineage).read_text())["p01"]["raw_data_version"] == raw.tags["dagster/data_version"]
    history = trained.client.get_metric_history(run.info.run_id, "val_macro_f1")
    assert [m.step for m in history] == list(range(1, trained.model["epochs_run"] + 1))
    assert metrics["test_macro_f1"] == pytest.approx(trained.evaluation["macro_f1"])
    assert "baseline_stratified_macro_f1" in metrics and "importance.gyro_x" in metrics
    artifacts = {a.path for a in trained.client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/classification_report.txt"} <= artifacts
    inputs = {a.path for a in trained.client.list_artifacts(run.info.run_id, "inputs")}
    assert "inputs/data_versions.json" in inputs
    version = trained.client.get_model_version_by_alias("har-activity", "champion")
    digest = version.tags[DIGEST_TAG]  # recorded at registration, from the training run's own record
    assert digest == run.data.tags[DIGEST_TAG] and len(digest) == 64
    champion = trained.resources["mlflow_tracking"].load_bundle("models:/har-activity@champion", digest)
    assert champion.classes == ["hand_tapping", "sitting"]
    ws = trained.windows("windows", trained.split.test[0])
    assert champion.predict_windows(ws.X).shape == (len(ws), 2)


def test_evaluation_metadata_shows_confusion_matrix_and_baselines(trained: Trained) -> None:
    mat = trained.instance.fetch_materializations(dg.AssetKey("model_evaluation"), limit=1).records[0]
    meta = mat.asset_materialization.metadata
    image = meta["confusion_matrix"].value
    assert image.startswith("![confusion matrix](data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1].rstrip(")")).startswith(b"\x89PNG")
    assert meta["baseline_most_frequent_macro_f1"].value < meta["macro_f1"].value
    people = meta["per_participant"]  # a table the UI renders natively
    assert [r.data["participant"] for r in people.records] == sorted(trained.split.test)
    assert all(isinstance(r.data["accuracy"], float) for r in people.records)
    evaluation = trained.evaluation
    assert set(evaluation["permutation_importance"]) == set(PreprocessConfig().channels)
    assert sum(map(sum, evaluation["confusion_matrix"])) == evaluation["n"]
    check = trained.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("model_evaluation"), "beats_dummy_baselines")])
    assert next(iter(check.values())).status.value == "SUCCEEDED"


def test_training_records_are_stored_as_their_types(trained: Trained) -> None:
    json_io = trained.resources["har_json"]
    for asset, kind in (("model", TrainedModel), ("model_evaluation", ModelEvaluation),
                        ("registered_model", RegisteredModel)):
        doc = json.loads((trained.home.assets / asset / "__all__.json").read_text())
        assert doc["type"] == kind.__name__, asset
        assert json_io.stored(dg.AssetKey(asset), kind).model_dump(mode="json") == doc["value"], asset


def test_training_leaves_mlflow_process_globals_alone(trained: Trained) -> None:
    store = trained.resources["mlflow_tracking"].tracking_uri
    assert mlflow.get_tracking_uri() != store and mlflow.get_registry_uri() != store
    assert store not in (os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_REGISTRY_URI"))


def test_worse_model_is_registered_without_the_alias(trained: Trained) -> None:
    tracking: MlflowTracking = trained.resources["mlflow_tracking"]
    assert int(tracking.champion().version) == 1
    assert trained.materialize(TRAINING_RUN, BAD).success
    registered = trained.resources["har_json"].stored_json(dg.AssetKey("registered_model"))
    assert registered["version"] == 2 and not registered["champion"]
    assert int(tracking.champion().version) == 1
    tags = trained.client.get_model_version("har-activity", "2").tags
    assert tags["har.decision"] == "not_promoted" and tags["har.previous_champion_version"] == "1"
    assert "does not beat 'champion' v1" in tags["har.reason"]
    assert float(tags["har.test_macro_f1"]) < float(tags["har.previous_champion_test_macro_f1"])
    assert trained.client.get_run(registered["mlflow_run_id"]).data.tags["har.registry_decision"] == "not_promoted"


def test_better_model_takes_the_alias(trained: Trained) -> None:
    base: MlflowTracking = trained.resources["mlflow_tracking"]
    tracking = MlflowTracking(tracking_uri=base.tracking_uri, artifact_location=base.artifact_location,
                              registered_model_name="har-activity-b")
    assert trained.materialize(TRAINING_RUN, BAD, mlflow_tracking=tracking).success
    assert int(tracking.champion().version) == 1  # the first version of a name is champion by default
    assert trained.materialize(TRAINING_RUN, GOOD, mlflow_tracking=tracking).success
    assert int(tracking.champion().version) == 2
    tags = trained.client.get_model_version("har-activity-b", "2").tags
    assert tags["har.decision"] == "promoted" and tags["har.previous_champion_version"] == "1"
    assert float(tags["har.test_macro_f1"]) > float(tags["har.previous_champion_test_macro_f1"])
    assert trained.client.get_model_version("har-activity-b", "1").tags["har.decision"] == "promoted"


def test_too_few_labelled_participants_fail_the_split_clearly(trained: Trained) -> None:
    cfg = TrainingResource.from_configs().split.model_dump() | {"test": LABELLED[:4], "validation": [LABELLED[4]]}
    training = TrainingResource(split=cfg)
    result = dg.materialize(ASSETS, selection=[dataset_split], instance=trained.instance,
                            resources={**trained.resources, "training": training}, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "too few labelled participants to split" in failure.description and "train" in failure.description
    assert failure.metadata["split_impossible"].value is True  # `har pipeline` reports "not trained", not an error


def test_definitions_wire_training_jobs_and_sensor(trained: Trained) -> None:
    defs = build_definitions(HarSettings(home=trained.home.root))
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("train_and_evaluate")
    assert {n.name for n in job.graph.node_defs} == {"model", "model_evaluation", "registered_model"}
    assert defs.resolve_job_def("hyperparameter_search")
    assert defs.resolve_sensor_def("retrain_on_new_data")
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert {k for k, s in specs.items() if s.group_name == "training"} == {
        "study_participants", "dataset_split", "scaler", "normalized_windows", "model", "model_evaluation",
        "registered_model"}
    assert "hyperparameter_search" not in specs  # opt-in job: never part of "Materialize all"


def test_json_io_refuses_unknown_types(tmp_path: Path) -> None:
    from har_assets.orchestration.json_io import decode, encode

    assert decode(encode({"a": [1, 2]})) == {"a": [1, 2]}
    with pytest.raises(TypeError, match="cannot store object"):
        encode(object())


def test_hyperparameter_search_resumes_its_study_with_nested_runs(trained: Trained, tmp_path: Path) -> None:
    import optuna

    from har_assets.orchestration.tuning import OptunaStorage, hyperparameter_search_job

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    resources = {**trained.resources, "optuna_storage": OptunaStorage(url=storage),
                 "training": TrainingResource.from_configs(model=TINY, train=GOOD)}

    def search(n_trials: int) -> dg.ExecuteInJobResult:
        space = {"study_name": "tiny", "n_trials": n_trials, "epochs": 2, "gravity": ["REMOVE", "SEPARATE"],
                 "window_step": [100], "conv_filters": [4, 8], "lstm_units": [4], "kernel_size": [3]}
        return hyperparameter_search_job.execute_in_process(
            run_config={"ops": {"optuna_study": {"config": space}}}, instance=trained.instance, resources=resources)

    first = search(1)
    assert first.success
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 1
    second = search(2)  # resumes the stored study: one more trial, not two
    assert second.success
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(t.params["gravity"] in ("remove", "separate") and 0 <= t.value <= 1 for t in trials)
    tracking: MlflowTracking = trained.resources["mlflow_tracking"]
    parents = trained.client.search_runs([tracking.experiment_id()], "tags.`har.optuna_study` = 'tiny'")
    assert len(parents) == 1 and parents[0].data.metrics["best_val_macro_f1"] == max(t.value for t in trials)
    children = trained.client.search_runs(
        [tracking.experiment_id()], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    assert sorted(r.data.tags["har.optuna_trial"] for r in children) == ["0", "1"]
    assert all(r.data.params["gravity"] in ("remove", "separate") for r in children)
