"""The registered MLflow model's code ("models from code": MLflow stores this file, not a pickle).

For MLflow's own tools (`mlflow.pyfunc.load_model`, `mlflow models serve`): `predict` takes unscaled windows
(n, window_size, channels) as the preprocessing produces them and returns class probabilities (n, classes),
computed by the bundle's scaler and its ONNX graph on ONNX Runtime, without torch. Our API and scoring assets
never run this file (`har_assets.inference.predictor`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext

from har_assets.ml.bundle_runtime import bundle_runtime
from har_assets.ml.inference_bundle import InferenceBundle
from har_assets.ml.mlflow_model import ARTIFACT_KEY
from har_assets.ml.onnx_runtime import Classifier


class HarOnnxModel(PythonModel):
    """The bundle in the model's artifacts, on ONNX Runtime."""

    bundle: InferenceBundle
    runtime: Classifier

    def load_context(self, context: PythonModelContext) -> None:
        folder = Path(context.artifacts[ARTIFACT_KEY])
        self.bundle = InferenceBundle.read(folder)
        self.runtime, _ = bundle_runtime(folder, self.bundle, None, "this MLflow model")

    def predict(self, context: PythonModelContext, model_input: dict[str, np.ndarray],
                params: dict[str, Any] | None = None) -> np.ndarray:
        """Probabilities (n, classes) of the unscaled windows; MLflow passes the signature's named tensor as
        {"windows": array}."""
        X = np.asarray(model_input["windows"], dtype=np.float32)
        return self.runtime.predict_proba(self.bundle.scaler.transform(X))


set_model(HarOnnxModel())
