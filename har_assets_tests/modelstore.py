"""A real registered model in a temporary MLflow store, trained in a second on tiny generated participants."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from har_assets.config import PreprocessConfig
from har_assets.ml.bundle import ModelBundle
from har_assets.ml.decoding import DECODING_FILE
from har_assets.ml.hyperparams import ModelConfig, TrainConfig
from har_assets.ml.inference_bundle import GRAPH_FILE, PARITY_FILE
from har_assets.ml.mlflow_model import ARTIFACT_KEY, DIGEST_TAG, bundle_digest, log_bundle, record_digest
from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.training import train_model
from har_assets.raw.reader import read_participant
from har_assets.raw.recording import RawRecording
from har_assets.signal.pipeline import preprocess
from har_assets_tests.rawfiles import write_participant

MODEL_NAME = "har-activity"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
TINY = ModelConfig(conv_filters=8, kernel_size=5, conv_layers=2, lstm_units=8, dropout=0.0)


def train_bundle(recordings: list[RawRecording], cfg: PreprocessConfig, seed: int = 0, epochs: int = 2
                 ) -> tuple[ModelBundle, np.ndarray]:
    """A tiny model trained on the labelled windows of `recordings` (scaler fit on them); also returns X."""
    sets = [preprocess(r, cfg)[0] for r in recordings]
    X = np.concatenate([w.X for w in sets])
    labels = np.concatenate([w.labels for w in sets])
    keep = labels != ""
    X, labels = X[keep], labels[keep]
    classes = sorted(set(labels.tolist()))
    y = np.searchsorted(classes, labels)
    scaler = ChannelScaler.fit(X, cfg.channels)
    result = train_model(scaler.transform(X), y, None, None, classes, TINY,
                         TrainConfig(epochs=epochs, batch_size=16, lr=3e-3, seed=seed, device="cpu"), scaler=scaler)
    return ModelBundle(model=result.model, model_config=TINY, preprocess=cfg, scaler=scaler, classes=classes), X


@contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """Use `uri` as MLflow's global tracking URI, then restore exactly what was there: mlflow.set_tracking_uri
    also writes $MLFLOW_TRACKING_URI, and an explicit URI left behind would override other tests' settings."""
    env = os.environ.get(TRACKING_ENV)
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if env is None:
            os.environ.pop(TRACKING_ENV, None)
        else:
            os.environ[TRACKING_ENV] = env


@dataclass
class ModelStore:
    """A temporary MLflow tracking + registry store (SQLite; artifacts under the same folder)."""

    folder: Path
    name: str = MODEL_NAME

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.folder / 'mlflow.db'}"

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def experiment_id(self) -> str:
        client = self.client()
        found = client.get_experiment_by_name("tests")
        if found is not None:
            return found.experiment_id
        return client.create_experiment("tests", artifact_location=(self.folder / "artifacts").as_uri())

    def register(self, bundle: ModelBundle, example: np.ndarray, metrics: dict[str, float],
                 alias: str | None = "champion") -> str:
        """Log the bundle in a run with `metrics`, register it as a new version; optionally give it `alias`."""
        experiment = self.experiment_id()
        with _tracking(self.uri), mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_metrics(metrics)
            info = log_bundle(bundle, example[:2])
        version = self._register(info.model_uri, self.name, run.info.run_id)
        if alias:
            self.set_alias(alias, str(version))
        return str(version)

    def register_copy(self, version: str, name: str) -> str:
        """Register the model logged for `version` of this store's model again, under `name` (no new run)."""
        mv = self.client().get_model_version(self.name, version)
        return self._register(mv.source, name, mv.run_id)

    def _register(self, source: str, name: str, run_id: str | None) -> str:
        """A new version of `name` (created if needed) in *this* store's registry: through an explicit client,
        because MLflow's global registry URI may still point at another test's store."""
        client = self.client()
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        with _tracking(self.uri):  # MLflow resolves a `models:/m-…` source through the global tracking URI
            version = client.create_model_version(name, source, run_id=run_id)
        record_digest(client, name, version)  # as the registry does
        return str(version.version)

    def set_alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(self.name, alias, version)

    def bundle_folder(self, version: str) -> Path:
        """The registered version's bundle folder in the store's (local) artifact root."""
        uri = self.client().get_model_version_download_uri(self.name, version)
        return Path(unquote(urlparse(uri).path)) / "artifacts" / ARTIFACT_KEY

    def remove_graph(self, version: str) -> None:
        """Make `version` what a version registered before ONNX graphs were exported is: its bundle without the
        graph, under the content hash of those files."""
        folder = self.bundle_folder(version)
        (folder / GRAPH_FILE).unlink()
        (folder / PARITY_FILE).unlink()
        self.client().set_model_version_tag(self.name, version, DIGEST_TAG, bundle_digest(folder))


    def remove_decoder(self, version: str) -> None:
        """Make `version` what a version registered before recordings were decoded whole is: its bundle without
        decoding.json, under the content hash of those files."""
        folder = self.bundle_folder(version)
        (folder / DECODING_FILE).unlink()
        self.client().set_model_version_tag(self.name, version, DIGEST_TAG, bundle_digest(folder))


def two_versions(folder: Path, cfg: PreprocessConfig) -> tuple[ModelStore, list[ModelBundle]]:
    """Two tiny models trained on two written participants and registered in `folder/mlflow`; version 1 is the
    champion."""
    recs = [read_participant(write_participant(folder / "raw" / p, seconds=s), cfg) for p, s in (("p01", 30),
                                                                                              ("p02", 25))]
    store = ModelStore(folder / "mlflow")
    bundles = []
    for seed in (0, 1):
        bundle, X = train_bundle(recs, cfg, seed=seed)
        store.register(bundle, X, {"macro_f1": 0.5}, alias="champion" if seed == 0 else None)
        bundles.append(bundle)
    return store, bundles
