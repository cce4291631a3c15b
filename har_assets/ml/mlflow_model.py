"""The model bundle as an MLflow model: logged once by training, loaded by evaluation and serving.

The MLflow model is a pyfunc whose only artifact is the bundle folder (weights, architecture,
preprocessing config, scaler, classes). Its `predict` takes unscaled windows
(n, window_size, channels) as the preprocessing produces them and returns class probabilities.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import Schema, TensorSpec

from har_assets.ml.bundle import ModelBundle

ARTIFACT_KEY = "bundle"


class HarPyfuncModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: loads the bundle from the model's artifacts."""

    bundle: ModelBundle

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: np.ndarray | dict,
                params: dict | None = None) -> np.ndarray:
        if isinstance(model_input, dict):  # a named tensor input arrives as {"windows": array}
            model_input = model_input["windows"]
        return self.bundle.predict_windows(np.asarray(model_input, dtype=np.float32))


def signature_for(bundle: ModelBundle) -> ModelSignature:
    size, channels = bundle.preprocess.window_size, len(bundle.preprocess.channels)
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, size, channels), name="windows")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(bundle.classes)), name="probabilities")]),
    )


def log_bundle(bundle: ModelBundle, input_example: np.ndarray, name: str = "model") -> ModelInfo:
    """Log the bundle as an MLflow model in the active run (signature and input example included)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / ARTIFACT_KEY
        bundle.save(folder)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=HarPyfuncModel(),
            artifacts={ARTIFACT_KEY: str(folder)},
            signature=signature_for(bundle),
            input_example=np.asarray(input_example, dtype=np.float32),
        )


def load_bundle(model_uri: str) -> ModelBundle:
    """The bundle of a logged or registered model (`runs:/…/model`, `models:/name@champion`, …)."""
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().bundle
