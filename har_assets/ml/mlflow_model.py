"""The model bundle as an MLflow model: logged once by training, loaded by evaluation and serving.

The MLflow model is a pyfunc whose only artifact is the bundle folder (weights, architecture,
preprocessing config, scaler, classes, the ONNX graph exported at logging). It is logged "from code"
(`har_assets/ml/mlflow_pyfunc.py`, no pickle): for MLflow's own tools, its `predict` takes unscaled
windows (n, window_size, channels) and returns class probabilities on ONNX Runtime. Our evaluation,
registry, scoring and API run no code of the model: `verified_bundle` checks the bundle's content
hash against the one the registry recorded for the version (`DIGEST_TAG`), so a file changed after
registration is refused; serving and scoring then read its JSON and ONNX graph without torch
(`InferenceBundle`), evaluation and the champion gate its weights with `torch.load(weights_only=True)`
(`load_bundle`). Importing this module needs no torch.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import Schema, TensorSpec

if TYPE_CHECKING:
    from har_assets.ml.bundle import ModelBundle

ARTIFACT_KEY = "bundle"
MODEL_CODE = Path(__file__).with_name("mlflow_pyfunc.py")  # the pyfunc's code, stored with each logged model
DIGEST_TAG = "har.bundle_sha256"  # on the training run, and on every registered version made from it


class BundleIntegrityError(RuntimeError):
    """A model's bundle differs from the content hash recorded for it."""


def bundle_digest(folder: Path) -> str:
    """sha256 over the bundle's files: each relative path and its content's sha256, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def signature_for(bundle: ModelBundle) -> ModelSignature:
    size, channels = bundle.preprocess.window_size, len(bundle.preprocess.channels)
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, size, channels), name="windows")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(bundle.classes)), name="probabilities")]),
    )


def log_bundle(bundle: ModelBundle, input_example: np.ndarray, name: str = "model") -> ModelInfo:
    """Log the bundle (its ONNX graph exported now) as an MLflow model from code in the active run (signature and
    input example included); the run's tag DIGEST_TAG holds the bundle's content hash, for the registry to record
    on each version made from it."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / ARTIFACT_KEY
        bundle.save(folder)
        mlflow.set_tag(DIGEST_TAG, bundle_digest(folder))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={ARTIFACT_KEY: str(folder)},
            # named, not inferred: MLflow's inference (a trial load in a subprocess) missed onnxruntime
            pip_requirements=[f"har-assets[serve]=={metadata.version('har-assets')}"],
            signature=signature_for(bundle),
            input_example=np.asarray(input_example, dtype=np.float32),
        )


@contextmanager
def verified_bundle(model_uri: str, expected_digest: str | None = None, tracking_uri: str | None = None
                    ) -> Iterator[Path]:
    """The bundle folder of a logged or registered model (`models:/m-…`, `models:/name/3`, …; from `tracking_uri`'s
    store, default MLflow's current one), downloaded for the block; BundleIntegrityError when `expected_digest` is
    given and the files differ from it."""
    with tempfile.TemporaryDirectory(prefix="har-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp,
                                                         tracking_uri=tracking_uri, registry_uri=tracking_uri))
        folder = local / "artifacts" / ARTIFACT_KEY
        if not folder.is_dir():
            raise BundleIntegrityError(f"{model_uri} holds no model bundle (artifacts/{ARTIFACT_KEY})")
        if expected_digest is not None and (found := bundle_digest(folder)) != expected_digest:
            raise BundleIntegrityError(
                f"{model_uri}: the bundle's content hash {found[:12]}… differs from {expected_digest[:12]}… "
                "recorded at registration: its files were changed since; refusing to load it")
        yield folder


def load_bundle(model_uri: str, expected_digest: str | None = None, tracking_uri: str | None = None) -> ModelBundle:
    """The whole bundle, PyTorch module included (needs torch), of a verified model (see `verified_bundle`),
    without unpickling anything."""
    from har_assets.ml.bundle import ModelBundle  # torch: evaluation and the champion gate, not serving

    with verified_bundle(model_uri, expected_digest, tracking_uri) as folder:
        return ModelBundle.load(folder)


def run_digest(client: mlflow.MlflowClient, run_id: str | None) -> str | None:
    """The bundle content hash the training run recorded (None for runs logged before hashes existed)."""
    return client.get_run(run_id).data.tags.get(DIGEST_TAG) if run_id else None


def record_digest(client: mlflow.MlflowClient, name: str, version: ModelVersion) -> str | None:
    """Record the content hash of the version's bundle (its run's) on the version, once, at registration."""
    digest = version.tags.get(DIGEST_TAG) or run_digest(client, version.run_id)
    if digest and DIGEST_TAG not in version.tags:
        client.set_model_version_tag(name, version.version, DIGEST_TAG, digest)
    return digest
