"""Everything serving needs, kept together: weights, architecture, preprocessing config, scaler, classes, and the
network exported to ONNX.

A bundle is a folder; it is logged inside the MLflow model so that serving uses exactly the
preprocessing the model was trained with. This class (training, evaluation, the champion gate) needs
torch; serving and scoring read the folder's other parts without it (`har_assets.ml.inference_bundle`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from har_assets.config import PreprocessConfig
from har_assets.ml.decoding import Decoder
from har_assets.ml.hyperparams import ModelConfig
from har_assets.ml.inference import predict_proba, predict_with_embedding
from har_assets.ml.inference_bundle import WEIGHTS_FILE, InferenceBundle, check_channels
from har_assets.ml.model import CnnBiLstm, build_model
from har_assets.ml.onnx_export import export_graph
from har_assets.ml.reliability import Reliability
from har_assets.ml.scaler import ChannelScaler

log = logging.getLogger(__name__)


@dataclass
class ModelBundle:
    model: CnnBiLstm
    model_config: ModelConfig
    preprocess: PreprocessConfig
    scaler: ChannelScaler
    classes: list[str]
    decoder: Decoder = field(default_factory=Decoder.per_window)
    reliability: Reliability = field(default_factory=Reliability.uncalibrated)

    def __post_init__(self) -> None:
        check_channels(self.scaler, self.preprocess)

    @property
    def window_shape(self) -> tuple[int, int]:
        """(window_size, channels) of the windows the model takes."""
        return self.preprocess.window_size, len(self.preprocess.channels)

    def predict_windows(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) of *unscaled* windows as the preprocessing produces them."""
        return predict_proba(self.model, self.scaler.transform(X))

    def predict_with_embedding(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and embeddings of *unscaled* windows (what `Decoder.decode` takes)."""
        return predict_with_embedding(self.model, self.scaler.transform(X))

    def save(self, folder: Path) -> str | None:
        """Write the bundle folder, with the network exported to ONNX and checked against it (`export_graph`);
        returns why the folder holds no graph (the export was refused), None when it holds one."""
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / WEIGHTS_FILE)
        try:
            graph, refused = export_graph(self.model, *self.window_shape), None
        except Exception as exc:  # an architecture the exporter cannot take still serves, on PyTorch
            graph, refused = None, f"{type(exc).__name__}: {exc}"
            log.warning("the bundle holds no ONNX graph, serving it needs PyTorch: %s", refused)
        InferenceBundle(model_config=self.model_config, preprocess=self.preprocess, scaler=self.scaler,
                        classes=self.classes, graph=graph, decoder=self.decoder,
                        reliability=self.reliability).write(folder)
        return refused

    @classmethod
    def load(cls, folder: Path) -> ModelBundle:
        """The folder's bundle, its weights read with torch.load(weights_only=True) (no pickled code)."""
        part = InferenceBundle.read(folder)
        model = build_model(part.model_config, len(part.preprocess.channels), len(part.classes))
        model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        model.eval()
        return cls(model=model, model_config=part.model_config, preprocess=part.preprocess, scaler=part.scaler,
                   classes=part.classes, decoder=part.decoder, reliability=part.reliability)
