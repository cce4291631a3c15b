"""Everything serving needs, kept together: weights, architecture, preprocessing config, scaler, classes.

A bundle is a folder; it is logged inside the MLflow model so that serving uses exactly the
preprocessing the model was trained with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from har_assets.config import PreprocessConfig
from har_assets.ml.hyperparams import ModelConfig
from har_assets.ml.inference import predict_proba
from har_assets.ml.model import CnnBiLstm, build_model
from har_assets.ml.scaler import ChannelScaler


@dataclass
class ModelBundle:
    model: CnnBiLstm
    model_config: ModelConfig
    preprocess: PreprocessConfig
    scaler: ChannelScaler
    classes: list[str]

    def __post_init__(self) -> None:
        if tuple(self.scaler.channels) != tuple(self.preprocess.channels):
            raise ValueError(f"scaler channels {self.scaler.channels} differ from the preprocessing channels "
                             f"{self.preprocess.channels}")

    def predict_windows(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) of *unscaled* windows as the preprocessing produces them."""
        return predict_proba(self.model, self.scaler.transform(X))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / "weights.pt")
        (folder / "model_config.json").write_text(self.model_config.model_dump_json(indent=2))
        (folder / "preprocess_config.json").write_text(self.preprocess.model_dump_json(indent=2))
        self.scaler.save(folder / "scaler.json")
        (folder / "classes.json").write_text(json.dumps(self.classes))

    @classmethod
    def load(cls, folder: Path) -> ModelBundle:
        model_config = ModelConfig.model_validate_json((folder / "model_config.json").read_text())
        preprocess = PreprocessConfig.from_stored((folder / "preprocess_config.json").read_text())
        classes = json.loads((folder / "classes.json").read_text())
        model = build_model(model_config, len(preprocess.channels), len(classes))
        model.load_state_dict(torch.load(folder / "weights.pt", map_location="cpu", weights_only=True))
        model.eval()
        return cls(model=model, model_config=model_config, preprocess=preprocess,
                   scaler=ChannelScaler.load(folder / "scaler.json"), classes=classes)
