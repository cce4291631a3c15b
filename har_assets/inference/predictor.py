"""The one inference path: a registered model version plus exactly the preprocessing it was trained with.

`Predictor` follows an alias (default `champion`) or pins a version of a registered MLflow model.
`refresh()` loads a new version completely and then swaps one reference, so a caller that took
`predictor.require()` keeps using the same immutable `LoadedModel` until it is done, while new
callers get the new one. Raw samples become windows through `har_assets.signal.pipeline.preprocess_samples`
and probabilities through the bundle's scaler and its ONNX graph on ONNX Runtime (`har_assets.ml.onnx_runtime`);
nothing here re-implements preprocessing, and nothing here needs torch or onnx for a model registered with its
graph.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from har_assets.config import AccelUnit, GyroUnit, PreprocessConfig
from har_assets.inference.names import DEFAULT_ALIAS, DEFAULT_MODEL_NAME
from har_assets.ml.bundle_runtime import bundle_runtime
from har_assets.ml.decoding import class_indices
from har_assets.ml.inference_bundle import InferenceBundle
from har_assets.ml.mlflow_model import DIGEST_TAG, verified_bundle
from har_assets.ml.onnx_runtime import Classifier
from har_assets.ml.orientation import Alignment
from har_assets.ml.person_adaptation import adapt_to_labels
from har_assets.ml.reliability import Assessment
from har_assets.raw.recording import (
    ACCEL_TO_SI,
    GYRO_TO_SI,
    RawRecording,
)
from har_assets.redaction import redact, without_credentials
from har_assets.signal.fusion import FusionStats, SensorSamples
from har_assets.signal.pipeline import preprocess_samples
from har_assets.signal.windowing import WindowSet

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """No model version can be served (no such alias/version, or it failed to load)."""


@dataclass(frozen=True)
class WindowPredictions:
    """Class probabilities of the windows of one recording, decoded whole (the model's `Decoder`), with the
    windows themselves, each window's own probabilities and how the device frame was aligned."""

    classes: list[str]
    windows: WindowSet
    fusion: FusionStats
    proba: np.ndarray  # (n, classes) float32, decoded (smoothed over time unless per window), then calibrated
    window_proba: np.ndarray  # (n, classes) float32, each window classified alone (after alignment)
    alignment: Alignment
    assessment: Assessment  # the label-free accuracy estimate and out-of-distribution flags
    embedding: np.ndarray | None = None  # (n, features) the windows' embeddings, where the model gives them
    causal: bool = False  # decoded forward-only: each window's answer uses no later window

    @property
    def ood_score(self) -> np.ndarray | None:
        """Each window's out-of-distribution score (None: the model has no OOD model)."""
        return None if self.assessment.ood is None else self.assessment.ood.window

    @cached_property
    def true_index(self) -> np.ndarray:
        """Class index of each window's own label (-1: unlabelled or a class the model lacks)."""
        return class_indices(self.windows.labels.astype(str), self.classes)

    def adapted_to_labels(self) -> WindowPredictions:
        """The person's own labelled windows used for the rest of the recording (`person_adaptation`): labelled
        windows keep their label, windows like them lean towards it. Unchanged without labels or embeddings."""
        if self.embedding is None or not (self.true_index >= 0).any():
            return self
        return replace(self, proba=adapt_to_labels(self.proba, self.embedding, self.true_index))

    @property
    def start_ms(self) -> np.ndarray:
        return self.windows.start_ms

    @property
    def end_ms(self) -> np.ndarray:
        return self.windows.end_ms

    @property
    def label_index(self) -> np.ndarray:
        return self.proba.argmax(axis=1)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=str)[self.label_index]

    @property
    def confidence(self) -> np.ndarray:
        return self.proba.max(axis=1)

    def class_shares(self) -> dict[str, float]:
        """Share of windows predicted as each class (every class listed, in model order)."""
        counts = np.bincount(self.label_index, minlength=len(self.classes))
        return {c: float(n / max(len(self.proba), 1)) for c, n in zip(self.classes, counts, strict=True)}


@dataclass(frozen=True)
class LoadedModel:
    """One registered model version, loaded: immutable, safe to share between threads.

    The network sits in eval mode on its device; `predict_proba` then changes no module state, so
    concurrent requests run their forward passes side by side without a lock.
    """

    name: str
    version: str
    alias: str | None
    run_id: str | None
    metrics: dict[str, float]
    bundle: InferenceBundle
    runtime: Classifier  # runs the network on scaled windows
    runtime_note: str | None = None  # why the runtime is not the bundle's own ONNX graph (None: it is)
    bundle_sha256: str | None = None  # checked against the registry's record; None: registered unverified
    loaded_at: float = field(default_factory=time.time)

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return self.bundle.preprocess

    @property
    def classes(self) -> list[str]:
        return list(self.bundle.classes)

    @property
    def window_shape(self) -> tuple[int, int]:
        return self.bundle.window_shape

    def predict_recording(self, raw: RawRecording) -> WindowPredictions:
        """Preprocess with the model's own config (the assets' code path), align the person's frame, classify every
        window, decode the recording whole (`har_assets.ml.decoding`), calibrate the probabilities and assess how
        far to trust them (`har_assets.ml.reliability`).

        Raises PipelineDataError when no window can be cut (too short, gaps, sensors not overlapping).
        """
        return self.predict_samples(SensorSamples.of(raw.accel), SensorSamples.of(raw.gyro), raw.labels,
                                    raw.participant)

    def predict_samples(self, accel: SensorSamples, gyro: SensorSamples, labels: pl.DataFrame | None = None,
                        participant: str = "request", causal: bool = False) -> WindowPredictions:
        """`predict_recording` on both sensors' samples (SI units) without building tables: what a request costs.
        `causal`: decode forward-only (a streaming client's answer: no window uses a later one)."""
        windows, stats = preprocess_samples(participant, accel, gyro, labels, self.bundle.preprocess)
        channels, reliability = self.bundle.preprocess.channels, self.bundle.reliability
        out = self.bundle.decoder.decode(windows.X, windows.segment, channels, self.classify, causal=causal)
        proba = reliability.calibrate(out.proba)
        return WindowPredictions(classes=self.classes, windows=windows, fusion=stats, proba=proba,
                                 window_proba=out.window_proba, alignment=out.alignment, causal=causal,
                                 embedding=out.embedding, assessment=reliability.assess(proba, windows.X, channels))

    def classify(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and embeddings of unscaled windows (what the model's decoder reads)."""
        return self.runtime.predict_with_embedding(self.bundle.scaler.transform(np.asarray(X, dtype=np.float32)))

    def predict_windows(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (n, classes) of preprocessed but *unscaled* windows (n, window_size, channels), each window
        alone: no alignment, no smoothing (POST /predict/windows)."""
        return self.runtime.predict_proba(self.bundle.scaler.transform(np.asarray(X, dtype=np.float32)))

    def warm_up(self) -> None:
        """One short recording through a request's path (preprocessing and the model), so that the first request
        pays no first-call costs (lazy imports, allocations, kernel choice): the Predictor serves a model only after
        this."""
        cfg = self.bundle.preprocess
        n = int((cfg.window_size + 10) / cfg.target_hz * 100)  # a little over one window at 100 Hz
        t = 1.7e12 + np.arange(n) * 10.0
        still = np.column_stack([np.zeros(n), np.zeros(n), np.full(n, 1000.0)])
        self.predict_samples(*request_samples(t, still, AccelUnit.MILLI_G, t + 3.0, np.zeros((n, 3)),
                                              GyroUnit.DEG_PER_S))

    def info(self) -> dict[str, Any]:
        cfg = self.bundle.preprocess
        return {
            "name": self.name, "version": self.version, "alias": self.alias, "run_id": self.run_id,
            "metrics": self.metrics, "classes": self.classes, "channels": list(cfg.channels),
            "window_size": cfg.window_size, "target_hz": cfg.target_hz,
            "preprocess_config": cfg.model_dump(mode="json"),
            "decoding": self.bundle.decoder.describe(),
            "calibration": {"calibrated": self.bundle.reliability.calibrated,
                            "temperature": self.bundle.reliability.temperature,
                            "estimate_band": self.bundle.reliability.estimate_band,
                            "out_of_distribution_model": self.bundle.reliability.ood is not None},
            "model_config": self.bundle.model_config.model_dump(mode="json"),
            "bundle_sha256": self.bundle_sha256, "verified": self.bundle_sha256 is not None,
            "runtime": self.runtime.name, "runtime_note": self.runtime_note,
            "loaded_at": self.loaded_at,
        }


def sensor_samples(t_ms: np.ndarray, xyz: np.ndarray, to_si: float) -> SensorSamples:
    """One sensor's samples in SI units, converted exactly as the raw-file reader converts."""
    t = np.asarray(t_ms, dtype=np.float64)
    values = np.asarray(xyz, dtype=np.float64)
    if values.shape != (t.size, 3):
        raise ValueError(f"expected {t.size} samples of x, y, z; got shape {values.shape}")
    if t.size < 2 or not np.all(np.diff(t) > 0):
        raise ValueError("timestamps must be at least two, strictly increasing")
    return SensorSamples(t, values * to_si)  # the reader's conversion, in float64 as there (the raw schema's types)


def request_samples(accel_t: np.ndarray, accel_xyz: np.ndarray, accel_unit: AccelUnit, gyro_t: np.ndarray,
                    gyro_xyz: np.ndarray, gyro_unit: GyroUnit) -> tuple[SensorSamples, SensorSamples]:
    """Both sensors' samples (SI units) from the watch's units, epoch ms."""
    return (sensor_samples(accel_t, accel_xyz, ACCEL_TO_SI[AccelUnit(accel_unit)]),
            sensor_samples(gyro_t, gyro_xyz, GYRO_TO_SI[GyroUnit(gyro_unit)]))


def load_model_version(tracking_uri: str, name: str, version: str, alias: str | None = None,
                       threads: int | None = None) -> LoadedModel:
    """Load one registered version (bundle, run metrics) from the given MLflow store, never unpickling anything;
    a version whose bundle differs from the content hash recorded at registration is refused
    (BundleIntegrityError). A version registered without a hash (before hashes existed) loads unverified.
    It runs its ONNX graph on ONNX Runtime with `threads` intra-op threads, without torch; a version without a
    usable graph needs torch (RuntimeUnavailable otherwise; see har_assets.ml.bundle_runtime)."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    mv = client.get_model_version(name, version)
    digest = mv.tags.get(DIGEST_TAG)
    with verified_bundle(client.get_model_version_download_uri(name, mv.version), digest, tracking_uri) as folder:
        bundle = InferenceBundle.read(folder)
        runtime, note = bundle_runtime(folder, bundle, threads, f"version {mv.version} of registered model '{name}'")
    try:
        metrics = dict(client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
    except MlflowException:  # the run was deleted: the model still serves
        metrics = {}
    return LoadedModel(name=name, version=str(mv.version), alias=alias, run_id=mv.run_id, metrics=metrics,
                       bundle=bundle, bundle_sha256=digest, runtime=runtime, runtime_note=note)


class Predictor:
    """The model being served: follows `alias` of registered model `name`, or pins `version`."""

    def __init__(self, tracking_uri: str, name: str = DEFAULT_MODEL_NAME, alias: str = DEFAULT_ALIAS,
                 version: str | None = None, threads: int | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.threads = threads  # intra-op threads of the inference runtime (None: its default)
        self.name = name
        self.alias = None if version else alias
        self.version = version
        self.last_error: str | None = None
        self._model: LoadedModel | None = None
        self._listeners: list[Callable[[LoadedModel], None]] = []
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def target(self) -> str:
        return f"models:/{self.name}/{self.version}" if self.version else f"models:/{self.name}@{self.alias}"

    @property
    def model(self) -> LoadedModel | None:
        """The model now served (None before one was loaded)."""
        return self._model

    def on_swap(self, listener: Callable[[LoadedModel], None]) -> None:
        """Call `listener(model)` with the model served now, if any, and with each one swapped in later."""
        with self._refresh_lock:
            self._listeners.append(listener)
            if self._model is not None:
                listener(self._model)

    def require(self) -> LoadedModel:
        """The model now served; keep the returned object for the whole request."""
        model = self._model
        if model is None:
            raise ModelUnavailable(f"no model is loaded: {self.last_error or 'not loaded yet'}")
        return model

    def resolve(self) -> str:
        """The version the target points to now; ModelUnavailable if there is none."""
        if self.version:
            return self.version
        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        try:
            return str(client.get_model_version_by_alias(self.name, self.alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise ModelUnavailable(f"no version of registered model '{self.name}' has the alias "
                                       f"'{self.alias}' in {self.tracking_uri} ({exc.message})") from exc
            raise ModelUnavailable(f"cannot read the registry at {self.tracking_uri}: {exc.message}") from exc

    def refresh(self) -> bool:
        """Load the version the target points to if it is not the one served; True if the model changed.

        On failure the model served so far (if any) stays in place and `last_error` says why (see `_failed`).
        """
        with self._refresh_lock:
            try:
                version = self.resolve()
                current = self._model
                if current is not None and current.version == version:
                    self.last_error = None
                    return False
                loaded = load_model_version(self.tracking_uri, self.name, version, self.alias, self.threads)
                loaded.warm_up()
            except ModelUnavailable as exc:
                self._failed(str(exc))
                return False
            except Exception as exc:  # a broken version must not take the service down
                self._failed(f"loading {self.target} failed: {type(exc).__name__}: {exc}")
                return False
            self._model = loaded  # the swap: one reference assignment
            self.last_error = None
            for listener in self._listeners:
                listener(loaded)
            return True

    def _failed(self, reason: str) -> None:
        """`last_error`, which /ready shows to anyone, without the tracking URI, its host or credentials; the log
        (once per new reason) keeps the hosts, not the credentials."""
        public = redact(reason, self.tracking_uri)
        if public != self.last_error:
            log.warning("%s", without_credentials(reason))
        self.last_error = public

    def start_polling(self, interval_s: float) -> None:
        """Call refresh() every interval_s seconds in a daemon thread until stop_polling()."""
        if interval_s <= 0 or self._poller is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.refresh()

        self._poller = threading.Thread(target=loop, name="har-model-poller", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)
            self._poller = None
