"""POST /predict decodes a recording whole with the served model's own decoder (its frame aligned, smoothed over
time; forward-only with ?causal=true), and a version registered before decoders existed is served window by
window, exactly as it was trained. Real models in a temporary MLflow registry, real HTTP through TestClient."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from har_assets.config import PreprocessConfig
from har_assets.ml.experiment import fit_decoder
from har_assets.ml.hyperparams import DecodingConfig
from har_assets.raw.reader import read_participant
from har_assets.serving.api import create_app
from har_assets.serving.settings import ServeSettings
from har_assets.signal.pipeline import preprocess
from har_assets_tests.modelstore import ModelStore, train_bundle
from har_assets_tests.rawfiles import write_participant

CFG = PreprocessConfig()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Version 1: a tiny model with the default decoder (the GRU over its embeddings, trained on its training
    people; an upright reference turned 20° from where the generated watch's gravity lies, so every request is
    turned); version 2: the same model registered as before decoders existed (no decoding files)."""
    raw = tmp_path_factory.mktemp("raw")
    recs = [read_participant(write_participant(raw / pid, seconds=s), CFG) for pid, s in (("p01", 40), ("p02", 30))]
    bundle, X = train_bundle(recs, CFG, seed=0, epochs=3)
    windows = {r.participant: preprocess(r, CFG)[0] for r in recs}
    config = DecodingConfig(orientation_min_sway=1e-3, sequence_length=4, sequence_epochs=3)
    decoder = fit_decoder(config, windows, list(windows), bundle.classes, bundle.model, bundle.scaler)
    a = np.radians(20)
    decoder = dataclasses.replace(decoder, upright_reference=np.array([0.0, np.sin(a), np.cos(a)]))
    decoded = dataclasses.replace(bundle, decoder=decoder)
    store = ModelStore(tmp_path_factory.mktemp("mlflow"))
    store.register(decoded, X, {"macro_f1": 0.5})
    old = store.register(bundle, X, {"macro_f1": 0.5}, alias=None)
    store.remove_decoder(old)
    return {"store": store, "bundle": decoded, "old_version": old, "raw": raw}


def payload(folder: Path) -> dict:
    watch = read_participant(folder, PreprocessConfig(accel_unit="m/s^2", gyro_unit="rad/s"))  # file numbers as is
    return {sensor: {"timestamps_ms": frame["t_ms"].to_list(), "x": frame["x"].to_list(), "y": frame["y"].to_list(),
                     "z": frame["z"].to_list(), "unit": unit}
            for sensor, frame, unit in (("accelerometer", watch.accel, "milli-g"), ("gyroscope", watch.gyro, "deg/s"))}


def probabilities(body: dict) -> np.ndarray:
    return np.array([[w["probabilities"][c] for c in body["classes"]] for w in body["windows"]])


def test_predict_decodes_the_recording_whole_offline_and_causally(served: dict, tmp_path: Path) -> None:
    folder = write_participant(tmp_path / "p09", seconds=40)
    bundle = served["bundle"]
    ws, _ = preprocess(read_participant(folder, CFG), CFG)
    expected = bundle.decoder.decode(ws.X, ws.segment, CFG.channels, bundle.predict_with_embedding)
    with TestClient(create_app(ServeSettings(tracking_uri=served["store"].uri, poll_seconds=0))) as client:
        offline = client.post("/predict", json=payload(folder))
        causal = client.post("/predict?causal=true", json=payload(folder))
        info = client.get("/model").json()
    assert offline.status_code == 200 and causal.status_code == 200, offline.text + causal.text
    body = offline.json()
    assert body["decoding"] == {"smoothing": "gru", "causal": False, "orientation": "upright", "applied": True,
                                "rotation_deg": pytest.approx(20, abs=2), "moving_windows": len(ws)}
    np.testing.assert_allclose(probabilities(body), expected.proba, rtol=0, atol=1e-4)  # ONNX Runtime vs PyTorch
    assert [w["window_label"] for w in body["windows"]] == [
        bundle.classes[i] for i in expected.window_proba.argmax(axis=1)]
    forward = bundle.decoder.smooth(expected.window_proba, ws.segment, causal=True, embedding=expected.embedding)
    assert causal.json()["decoding"]["causal"] is True
    np.testing.assert_allclose(probabilities(causal.json()), forward, rtol=0, atol=1e-4)
    assert not np.allclose(forward, expected.proba, atol=1e-3)  # the causal model is another model
    assert info["decoding"]["smoothing"] == "gru" and info["decoding"]["upright_reference"][1] > 0.3


def test_a_version_registered_before_decoders_is_served_window_by_window(served: dict, tmp_path: Path) -> None:
    folder = write_participant(tmp_path / "p10", seconds=30)
    bundle = served["bundle"]
    ws, _ = preprocess(read_participant(folder, CFG), CFG)
    settings = ServeSettings(tracking_uri=served["store"].uri, poll_seconds=0, version=served["old_version"])
    with TestClient(create_app(settings)) as client:
        r = client.post("/predict", json=payload(folder))
        assert client.get("/model").json()["verified"] is True  # the hash of exactly the files it was saved with
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decoding"] == {"smoothing": "none", "causal": False, "orientation": "none", "applied": False,
                                "rotation_deg": 0.0, "moving_windows": 0}
    np.testing.assert_allclose(probabilities(body), bundle.predict_windows(ws.X), rtol=0, atol=1e-6)
    assert all(w["label"] == w["window_label"] for w in body["windows"])


def test_causal_is_a_boolean(served: dict, tmp_path: Path) -> None:
    with TestClient(create_app(ServeSettings(tracking_uri=served["store"].uri, poll_seconds=0))) as client:
        r = client.post("/predict?causal=sometimes", json=payload(write_participant(tmp_path / "p11", seconds=12)))
    assert r.status_code == 422 and "causal" in r.text
