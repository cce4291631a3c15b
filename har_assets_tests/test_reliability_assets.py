"""How far to trust the model on a person without labels, end to end: a calibrated champion in a real MLflow
registry, scoring on a real Dagster instance, the label request and the export through the real `har` command, the
user's answers appended to labels.csv and used, and the API's answer."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import dagster as dg
import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from har_assets.config import PreprocessConfig
from har_assets.definitions import build_resources
from har_assets.demo import write_demo_dataset
from har_assets.home import HarHome
from har_assets.inference.label_request import COLUMNS
from har_assets.inference.predictor import Predictor
from har_assets.ml.bundle import ModelBundle
from har_assets.ml.experiment import ExperimentResult, run_experiment
from har_assets.ml.hyperparams import DecodingConfig, TrainConfig
from har_assets.ml.split import DatasetSplit
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.preprocessing import raw_recording
from har_assets.orchestration.scoring import SCORING_ASSETS, build_scoring_resources
from har_assets.raw.device_changes import milli_g_read_as_g
from har_assets.raw.reader import read_participant
from har_assets.serving.api import create_app
from har_assets.serving.settings import ServeSettings
from har_assets.signal.pipeline import preprocess
from har_assets_tests.modelstore import TINY, ModelStore
from har_assets_tests.test_scoring_assets import watch_payload

CFG = PreprocessConfig()
TRAIN, TEST, UNLABELLED = ["p001", "p002", "p004", "p005"], ["p006"], "p007"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> HarHome:
    home = HarHome(tmp_path_factory.mktemp("home"))
    write_demo_dataset(home.raw, 7, seed=3, minutes=3.0, fmt="csv", unlabeled=1)
    return home


@pytest.fixture(scope="module")
def experiment(home: HarHome) -> ExperimentResult:
    """A model trained on four demo people, calibrated on them out of fold (two more models), tested on one."""
    windows = {p: preprocess(read_participant(home.raw / p, CFG), CFG)[0] for p in [*TRAIN, *TEST]}
    exp = run_experiment(windows, DatasetSplit(train=TRAIN, validation=[], test=TEST), TINY,
                         TrainConfig(epochs=3, batch_size=16, lr=3e-3, device="cpu"),
                         DecodingConfig(smoothing="hmm", calibration_folds=2))
    assert exp.reliability.calibrated and exp.test is not None
    return exp


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, experiment: ExperimentResult) -> ModelStore:
    """The experiment's model registered as the champion, its reliability in the bundle."""
    store = ModelStore(tmp_path_factory.mktemp("mlflow"))
    bundle = ModelBundle(model=experiment.train.model, model_config=TINY, preprocess=CFG, scaler=experiment.scaler,
                         classes=experiment.classes, decoder=experiment.decoder, reliability=experiment.reliability)
    store.register(bundle, np.broadcast_to(experiment.scaler.mean, (2, CFG.window_size, len(CFG.channels))),
                   {"macro_f1": experiment.test["macro_f1"]})
    return store


@pytest.fixture(scope="module")
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("participants", [UNLABELLED, *TEST])
        yield inst


def score(home: HarHome, instance: dg.DagsterInstance, store: ModelStore, pid: str) -> dg.ExecuteInJobResult:
    resources = {**build_resources(home), **build_scoring_resources(),
                 "mlflow_tracking": MlflowTracking(tracking_uri=store.uri, registered_model_name=store.name)}
    result = dg.materialize([raw_recording, *SCORING_ASSETS], partition_key=pid, instance=instance,
                            resources=resources)
    assert result.success
    return result


def har(home: HarHome, store: ModelStore, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri, "HAR_HOME": str(home.root)}
    return subprocess.run([sys.executable, "-m", "har_assets.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_evaluation_reports_calibration_on_the_test_people(experiment: ExperimentResult) -> None:
    report = experiment.test
    cal = report["calibration"]
    assert cal["calibrated"] and cal["temperature"] > 0
    assert 0 <= cal["ece_calibrated"] <= 1 and 0 <= cal["ece_uncalibrated"] <= 1
    assert cal["fitted_on"]["people"] == len(TRAIN)  # every training person held out once
    person = report["per_participant"][TEST[0]]
    assert 0 <= person["estimated_accuracy_low"] <= person["estimated_accuracy"] <= person["estimated_accuracy_high"]
    assert cal["estimate_errors"][TEST[0]] == pytest.approx(person["estimated_accuracy"] - person["accuracy"],
                                                            abs=1e-4)


def test_unlabelled_person_gets_an_estimate_flags_and_a_label_request(home: HarHome, instance: dg.DagsterInstance,
                                                                       store: ModelStore) -> None:
    result = score(home, instance, store, UNLABELLED)
    meta = result.asset_materializations_for_node("participant_predictions")[0].metadata
    assert meta["calibrated"].value is True
    low, high = (float(v) for v in meta["estimated_accuracy_band"].value.split(" - "))
    assert 0 <= low <= meta["estimated_accuracy"].value <= high <= 1
    reasons = meta["flag_reasons"].value
    assert meta["flagged"].value == bool(reasons)
    assert (meta["estimated_accuracy"].value < 0.8) == any(r.startswith("estimated accuracy") for r in reasons)
    assert isinstance(meta["ood_flag"].value, bool) and 0 <= meta["unlike_training_share"].value <= 1
    assert "labelled_minutes" not in meta  # nobody labelled this person
    request = meta["label_request"].value
    assert [c.name for c in request.schema.columns] == list(COLUMNS)
    assert 1 <= len(request.records) <= 6 and 0 < meta["label_request_minutes"].value <= 3.5
    frame = pl.read_parquet(home.assets / "participant_predictions" / f"{UNLABELLED}.parquet")
    proba = frame.select(c for c in frame.columns if c.startswith("p_")).to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert frame["ood_score"].null_count() == 0 and frame["ood_score"].is_finite().all()


def test_units_read_wrongly_are_flagged_as_outside_the_training_data(home: HarHome, store: ModelStore) -> None:
    predictor = Predictor(store.uri, store.name)
    predictor.refresh()
    model = predictor.require()
    recording = read_participant(home.raw / UNLABELLED, CFG)
    wrong = model.predict_recording(milli_g_read_as_g(recording)).assessment
    assert wrong is not None and wrong.ood is not None and wrong.flagged
    assert wrong.ood.unlike_share > 0.9 and any("unlike" in r for r in wrong.reasons)
    right = model.predict_recording(recording).assessment
    assert right is not None and right.ood is not None
    assert right.ood.unlike_share < wrong.ood.unlike_share


def test_label_request_answered_then_used_for_that_person(home: HarHome, instance: dg.DagsterInstance,
                                                          store: ModelStore) -> None:
    done = har(home, store, "labels", "request", UNLABELLED, "--minutes", "1")
    assert done.returncode == 0, done.stderr
    path = home.root / "label_requests" / f"{UNLABELLED}.csv"
    assert str(path) in done.stdout and not (home.raw / UNLABELLED / "label_requests").exists()
    assert done.stdout.count("model's guess: ") == 2  # each span listed, without pandas (a dev-only package)
    request = pl.read_csv(path, infer_schema_length=0)
    assert tuple(request.columns) == COLUMNS and request.height == 2  # 1 minute in 30-second spans
    assert (request["activity"].fill_null("") == "").all()  # left for the user
    assert all(ISO_UTC.match(v) for v in [*request["start"], *request["end"]])
    # the user answers (here: the model's guess is right) and appends the whole rows to a new labels.csv
    answered = request.with_columns(activity=pl.col("model_guess"))
    (home.raw / UNLABELLED / "labels.csv").write_text(answered.write_csv())
    result = score(home, instance, store, UNLABELLED)
    meta = result.asset_materializations_for_node("participant_predictions")[0].metadata
    assert meta["adapted_to_labels"].value is True and 0.5 <= meta["labelled_minutes"].value <= 1.1
    frame = pl.read_parquet(home.assets / "participant_predictions" / f"{UNLABELLED}.parquet")
    start = pl.Series(answered["start"]).str.to_datetime(time_unit="ms", time_zone="UTC")
    end = pl.Series(answered["end"]).str.to_datetime(time_unit="ms", time_zone="UTC")
    assert frame["personal_label"].null_count() == 0  # every window's label once the person's minutes are used
    for s, e, label in zip(start, end, answered["activity"], strict=True):
        inside = frame.filter((pl.col("start") >= s) & (pl.col("end") <= e))
        assert inside.height > 0 and set(inside["personal_label"]) == {label}


def test_unknown_participant_gets_a_clear_error(home: HarHome, store: ModelStore) -> None:
    done = har(home, store, "labels", "request", "nobody")
    assert done.returncode == 2 and "no raw folder" in done.stderr and "nobody" in done.stderr
    done = har(home, store, "labels", "request", "../etc")
    assert done.returncode == 2 and "invalid participant id" in done.stderr
    done = har(home, store, "predictions", "export", TRAIN[0])
    assert done.returncode == 2 and "no stored timeline" in done.stderr


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_predictions_export(home: HarHome, instance: dg.DagsterInstance, store: ModelStore, fmt: str) -> None:
    score(home, instance, store, TEST[0])
    done = har(home, store, "predictions", "export", TEST[0], "--format", fmt)
    assert done.returncode == 0, done.stderr
    path = home.root / "exports" / f"{TEST[0]}.{fmt}"
    stored = pl.read_parquet(home.assets / "participant_predictions" / f"{TEST[0]}.parquet")
    exported = pl.read_csv(path) if fmt == "csv" else pl.read_parquet(path)
    classes = [c for c in exported.columns if c.startswith("p_")]
    assert exported.columns == ["start", "end", "segment", "activity", "confidence", "window_label",
                                "personal_label", *classes, "ood_score", "model_name", "model_version"]
    assert exported.height == stored.height and exported["activity"].to_list() == stored["label"].to_list()
    np.testing.assert_allclose(exported.select(classes).to_numpy().sum(axis=1), 1, atol=1e-5)
    if fmt == "csv":
        assert all(ISO_UTC.match(v) for v in exported["start"])
        parsed = exported["start"].str.to_datetime(time_unit="ms", time_zone="UTC")
        assert parsed.to_list() == stored["start"].to_list()
    else:
        assert exported["start"].to_list() == stored["start"].to_list()


def test_api_answers_with_its_reliability(home: HarHome, store: ModelStore) -> None:
    with TestClient(create_app(ServeSettings(tracking_uri=store.uri, poll_seconds=0))) as client:
        body = client.post("/predict", json=watch_payload(home.raw / UNLABELLED)).json()
        info = client.get("/model").json()
    rel = body["reliability"]
    assert rel["calibrated"] is True and info["calibration"]["calibrated"] is True
    assert 0 <= rel["estimated_accuracy_low"] <= rel["estimated_accuracy"] <= rel["estimated_accuracy_high"] <= 1
    assert isinstance(rel["ood_flag"], bool) and rel["flagged"] == bool(rel["flag_reasons"])
    assert all(isinstance(w["ood_score"], float) for w in body["windows"])
