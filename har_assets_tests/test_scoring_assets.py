"""participant_predictions / participant_drift on a real Dagster instance with a champion in a temporary
MLflow registry, the drift checks, and parity between the batch asset and POST /predict."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from har_assets.config import GravityMode, PreprocessConfig
from har_assets.definitions import build_resources
from har_assets.home import HarHome
from har_assets.inference.drift import DriftThresholds, drift_report
from har_assets.ml.scaler import ChannelScaler
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS, raw_recording
from har_assets.orchestration.scoring import (
    SCORING_ASSETS,
    DriftThresholdsResource,
    build_scoring_resources,
)
from har_assets.raw.reader import read_participant
from har_assets.serving.api import create_app
from har_assets.serving.settings import ServeSettings
from har_assets.signal.pipeline import preprocess
from har_assets_tests.modelstore import ModelStore, train_bundle
from har_assets_tests.rawfiles import write_participant

# gravity kept as channels of its own, so the seed's failure (gravity in the serving data, none in the
# training data) survives preprocessing and the drift checks must catch it
CFG = PreprocessConfig(gravity=GravityMode.SEPARATE)
LINEAR = "har-linear-acceleration"  # a model trained on data without gravity


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> HarHome:
    home = HarHome(tmp_path_factory.mktemp("home"))
    write_participant(home.raw / "p01", seconds=30, gap_after_s=12, gap_s=3)
    write_participant(home.raw / "p02", seconds=25)
    (write_participant(home.raw / "p03", seconds=20) / "labels.csv").unlink()  # unlabelled: scored, not trained on
    return home


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, home: HarHome) -> ModelStore:
    """Champion of har-activity trained on p01+p02; champion of LINEAR trained on them with gravity removed."""
    store = ModelStore(tmp_path_factory.mktemp("mlflow"))
    recs = [read_participant(home.raw / pid, CFG) for pid in ("p01", "p02")]
    bundle, X = train_bundle(recs, CFG)
    store.register(bundle, X, {"macro_f1": 0.5})
    for rec in recs:
        rec.accel = rec.accel.with_columns(pl.col("z") - 9.80665)  # as if the watch exported linear acceleration
    linear, X = train_bundle(recs, CFG)
    ModelStore(store.folder, name=LINEAR).register(linear, X, {"macro_f1": 0.5})
    return store


@pytest.fixture(scope="module")
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("participants", ["p01", "p02", "p03"])
        yield inst


def materialize(home: HarHome, instance: dg.DagsterInstance, pid: str, store: ModelStore, model_name: str
                ) -> dg.ExecuteInJobResult:
    resources = {**build_resources(home), **build_scoring_resources(),
                 "mlflow_tracking": MlflowTracking(tracking_uri=store.uri, registered_model_name=model_name)}
    return dg.materialize([raw_recording, *SCORING_ASSETS], partition_key=pid, instance=instance,
                          resources=resources, raise_on_error=False)


@pytest.fixture(scope="module")
def scored(home: HarHome, instance: dg.DagsterInstance, store: ModelStore) -> dict[str, dg.ExecuteInJobResult]:
    return {pid: materialize(home, instance, pid, store, "har-activity") for pid in ("p01", "p03")}


def test_predictions_timeline(home: HarHome, scored: dict) -> None:
    for pid, result in scored.items():
        assert result.success, pid
        frame = pl.read_parquet(home.assets / "participant_predictions" / f"{pid}.parquet")
        windows, _ = preprocess(read_participant(home.raw / pid, CFG), CFG)
        assert frame.height == len(windows) > 0
        assert frame["start_ms"].to_list() == windows.start_ms.tolist()
        proba = frame.select("p_hand_tapping", "p_sitting").to_numpy()
        np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
        assert frame["confidence"].to_list() == pytest.approx(proba.max(axis=1).tolist())
        assert frame["label"].to_list() == np.array(["hand_tapping", "sitting"])[proba.argmax(axis=1)].tolist()
        assert set(frame["model_version"]) == {"1"} and str(frame["start"].dtype) == "Datetime(time_unit='ms', " \
            "time_zone='UTC')"

        meta = result.asset_materializations_for_node("participant_predictions")[0].metadata
        assert meta["windows"].value == frame.height and meta["model"].value == "har-activity v1"
        # a model registered without a decoder labels each window alone: decoded and per-window labels agree
        assert frame["window_label"].to_list() == frame["label"].to_list()
        assert meta["switches_per_hour"].value == meta["switches_per_hour_window_by_window"].value >= 0
        assert meta["orientation"].value == {"applied": False, "rotation_deg": 0.0, "moving_windows": 0}
        shares = meta["class_shares"].value
        assert set(shares) == {"hand_tapping", "sitting"} and sum(shares.values()) == pytest.approx(1, abs=1e-3)
        table = meta["class_share_table"]
        assert [c.name for c in table.schema.columns] == ["class", "windows", "share", "mean confidence"]
        assert sum(r.data["windows"] for r in table.records) == frame.height
        assert meta["dagster/row_count"].value == frame.height
        assert {c.name for c in meta["dagster/column_schema"].schema.columns} >= {"start", "label", "confidence"}
        png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", meta["timeline"].value)
        assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")
        assert len(base64.b64decode(png.group(1))) == meta["timeline_bytes"].value <= 60_000
    segments = scored["p01"].asset_materializations_for_node("participant_predictions")[0].metadata["segments"]
    assert segments.value == 2  # the gap splits p01's recording


def test_drift_passes_for_data_like_the_training_data(home: HarHome, scored: dict) -> None:
    result = scored["p01"]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()
              if c.asset_key == dg.AssetKey("participant_drift")}
    assert set(checks) == {"acceleration_magnitude_matches_training", "channel_statistics_match_training",
                           "predicted_classes_not_collapsed"}
    assert all(c.passed for c in checks.values()), {n: c.metadata["detail"].value for n, c in checks.items()}
    table = pl.read_parquet(home.assets / "participant_drift" / "p01.parquet")
    assert table["channel"].to_list() == list(CFG.channels) and not table["drifted"].any()
    meta = result.asset_materializations_for_node("participant_drift")[0].metadata
    assert 0.5 < meta["magnitude_ratio"].value < 2


def test_drift_check_fails_when_gravity_is_absent_in_training(home: HarHome, instance: dg.DagsterInstance,
                                                              store: ModelStore) -> None:
    result = materialize(home, instance, "p02", store, LINEAR)
    assert result.success  # the report materializes; its checks fail loudly
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    magnitude = checks["acceleration_magnitude_matches_training"]
    assert not magnitude.passed and magnitude.severity == dg.AssetCheckSeverity.ERROR
    assert "gravity present in the serving data but absent in the training data" in magnitude.metadata["detail"].value
    channels = checks["channel_statistics_match_training"]
    assert not channels.passed and "grav_z" in channels.metadata["detail"].value


def test_no_champion_fails_clearly(home: HarHome, instance: dg.DagsterInstance, store: ModelStore) -> None:
    result = materialize(home, instance, "p02", store, "never-registered")
    assert not result.success
    [failure] = result.get_step_failure_events()
    text = failure.step_failure_data.user_failure_data.description
    assert "no version of registered model 'never-registered' has the alias 'champion'" in text


def watch_payload(folder: Path) -> dict:
    """A participant's raw samples exactly as the files hold them (milli-g, deg/s), as /predict takes them."""
    as_is = read_participant(folder, PreprocessConfig(accel_unit="m/s^2", gyro_unit="rad/s"))  # no conversion
    return {sensor: {"timestamps_ms": frame["t_ms"].to_list(), "x": frame["x"].to_list(), "y": frame["y"].to_list(),
                     "z": frame["z"].to_list(), "unit": unit}
            for sensor, frame, unit in (("accelerometer", as_is.accel, "milli-g"), ("gyroscope", as_is.gyro, "deg/s"))}


def test_api_and_batch_asset_agree(home: HarHome, store: ModelStore, scored: dict) -> None:
    with TestClient(create_app(ServeSettings(tracking_uri=store.uri, poll_seconds=0))) as client:
        for pid in scored:
            frame = pl.read_parquet(home.assets / "participant_predictions" / f"{pid}.parquet")
            r = client.post("/predict", json=watch_payload(home.raw / pid))
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model"]["version"] == frame["model_version"][0]
            assert [w["label"] for w in body["windows"]] == frame["label"].to_list()
            assert [w["start_ms"] for w in body["windows"]] == frame["start_ms"].to_list()
            assert [w["end_ms"] for w in body["windows"]] == frame["end_ms"].to_list()
            api = np.array([[w["probabilities"][c] for c in body["classes"]] for w in body["windows"]])
            batch = frame.select(f"p_{c}" for c in body["classes"]).to_numpy()
            np.testing.assert_allclose(api, batch, rtol=0, atol=1e-6)


def _report(X: np.ndarray, scaler: ChannelScaler, shares: dict[str, float] | None = None, n: int = 10):
    return drift_report(X, scaler, shares or {"a": 0.5, "b": 0.5}, n, DriftThresholds())


def test_drift_report_names_unit_mix_ups(home: HarHome) -> None:
    windows, _ = preprocess(read_participant(home.raw / "p02", CFG), CFG)
    X = windows.X
    scaler = ChannelScaler.fit(X, CFG.channels)
    same = _report(X, scaler)
    assert all(o.passed for o in same.outcomes) and same.magnitude_ratio == pytest.approx(1)

    acc = [i for i, c in enumerate(CFG.channels) if c.startswith(("acc_", "grav_"))]
    gyro = [i for i, c in enumerate(CFG.channels) if c.startswith("gyro_")]
    thousandth = X.copy()
    thousandth[:, :, acc] /= 1000  # a g export read as milli-g
    outcome = _report(thousandth, scaler).outcomes[0]
    assert not outcome.passed and "unit mix-up (milli-g vs g, factor 0.001)" in outcome.detail

    radians_as_degrees = X.copy()
    radians_as_degrees[:, :, gyro] *= 180 / np.pi
    outcomes = {o.name: o for o in _report(radians_as_degrees, scaler).outcomes}
    assert outcomes["acceleration_magnitude_matches_training"].passed
    assert not outcomes["channel_statistics_match_training"].passed
    assert "gyro_x (mean shift" in outcomes["channel_statistics_match_training"].detail

    collapsed = {o.name: o for o in _report(X, scaler, {"a": 0.95, "b": 0.05}, n=200).outcomes}
    assert not collapsed["predicted_classes_not_collapsed"].passed
    assert "'a' takes 95.0% of 200 windows" in collapsed["predicted_classes_not_collapsed"].detail
    assert {o.name: o for o in _report(X, scaler, {"a": 0.95, "b": 0.05}, n=5).outcomes}[
        "predicted_classes_not_collapsed"].passed  # too few windows to judge


def test_scoring_assets_wire_into_the_code_location(home: HarHome, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MLFLOW_TRACKING_URI", "HAR_MODEL_NAME", "HAR_MODEL_ALIAS"):
        monkeypatch.delenv(var, raising=False)
    defs = dg.Definitions(assets=[*PREPROCESSING_ASSETS, *SCORING_ASSETS],
                          resources={**build_resources(home), **build_scoring_resources()})
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("participant_predictions")).parent_keys == {
        dg.AssetKey("raw_recording"), dg.AssetKey("registered_model")}
    assert len(graph.get(dg.AssetKey("participant_drift")).check_keys) == 3
    tracking = build_resources(home)["mlflow_tracking"]
    assert tracking.tracking_uri == f"sqlite:///{home.root}/mlflow/mlflow.db"
    assert (tracking.registered_model_name, tracking.champion_alias) == ("har-activity", "champion")


def test_thresholds_resource_mirrors_the_thresholds() -> None:
    custom = DriftThresholds(max_mean_shift=2.5, max_class_share=0.8)
    resource = DriftThresholdsResource(**custom.model_dump())
    assert resource.to_thresholds() == custom
    assert set(DriftThresholdsResource.model_fields) >= set(DriftThresholds.model_fields)
