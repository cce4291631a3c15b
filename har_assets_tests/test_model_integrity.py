"""A model file never runs code: the MLflow model is logged from code (no pickle), serving loads registered versions
without running that code, checks the bundle against the content hash recorded at registration, and keeps serving
the old champion when a new one was tampered with."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from fastapi.testclient import TestClient

from har_assets.config import PreprocessConfig
from har_assets.ml.mlflow_model import DIGEST_TAG, MODEL_CODE, BundleIntegrityError, bundle_digest, load_bundle
from har_assets.raw.reader import read_participant
from har_assets.serving.api import create_app
from har_assets.serving.schemas import example_predict_payload
from har_assets.serving.settings import ServeSettings
from har_assets_tests.modelstore import ModelStore, train_bundle
from har_assets_tests.rawfiles import write_participant

CFG = PreprocessConfig()


def model_folder(store: ModelStore, version: str) -> Path:
    """The registered version's MLflow model folder in the store's (local) artifact root."""
    uri = store.client().get_model_version_download_uri(store.name, version)
    return Path(unquote(urlparse(uri).path))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """Version 1 (champion) and version 2 (no alias) of two tiny models; every model's code booby-trapped (running
    it creates a file beside the store)."""
    tmp_path = tmp_path_factory.mktemp("registry")
    recs = [read_participant(write_participant(tmp_path / "raw" / pid, seconds=s), CFG)
            for pid, s in (("p01", 30), ("p02", 25))]
    store = ModelStore(tmp_path / "mlflow")
    for seed, alias in ((0, "champion"), (1, None)):
        bundle, X = train_bundle(recs, CFG, seed=seed)
        version = store.register(bundle, X, {"macro_f1": 0.5 + seed / 10}, alias=alias)
        folder = model_folder(store, version)
        assert not (folder / "python_model.pkl").exists()  # logged from code: nothing to unpickle
        code = folder / MODEL_CODE.name
        assert "set_model(" in code.read_text()
        code.write_text(f"open({str(tmp_path / f'ran-v{version}')!r}, 'w')\n")
    return store


def test_registration_records_the_bundle_hash(registry: ModelStore) -> None:
    for version in ("1", "2"):
        recorded = registry.client().get_model_version(registry.name, version).tags[DIGEST_TAG]
        assert recorded == bundle_digest(model_folder(registry, version) / "artifacts" / "bundle")
    assert len({registry.client().get_model_version(registry.name, v).tags[DIGEST_TAG] for v in ("1", "2")}) == 2


def ran_model_code(store: ModelStore) -> list[Path]:
    return list(store.folder.parent.glob("ran-*"))


def test_loading_never_runs_the_model_code(registry: ModelStore) -> None:
    uri = registry.client().get_model_version_download_uri(registry.name, "1")
    digest = registry.client().get_model_version(registry.name, "1").tags[DIGEST_TAG]
    bundle = load_bundle(uri, digest, registry.uri)
    assert bundle.classes and not ran_model_code(registry)
    with pytest.raises(BundleIntegrityError, match="differs from"):
        load_bundle(uri, "0" * 64, registry.uri)


def test_a_tampered_version_is_refused_and_the_champion_keeps_serving(registry: ModelStore) -> None:
    body = example_predict_payload(CFG)
    with TestClient(create_app(ServeSettings(tracking_uri=registry.uri, poll_seconds=0))) as client:
        info = client.get("/model").json()
        assert info["version"] == "1" and info["verified"] is True and len(info["bundle_sha256"]) == 64
        assert client.post("/predict", json=body).status_code == 200

        scaler = model_folder(registry, "2") / "artifacts" / "bundle" / "scaler.json"
        scaler.write_text(scaler.read_text().replace("[", "[1e3, ", 1))  # someone edits the stored files
        registry.set_alias("champion", "2")
        reload = client.post("/model/reload").json()
        assert reload["changed"] is False and reload["model"]["version"] == "1"
        assert "content hash" in reload["last_error"] and "refusing to load it" in reload["last_error"]
        assert client.get("/ready").json()["last_error"] == reload["last_error"]
        assert client.post("/predict", json=body).json()["model"]["version"] == "1"  # the old champion serves on
    assert not ran_model_code(registry), "a model's code was run"

