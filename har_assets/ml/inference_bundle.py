"""The parts of a model bundle that inference reads, without torch: architecture and preprocessing config,
scaler, classes, the recording decoder (`har_assets.ml.decoding`), the calibration and out-of-distribution model
(`har_assets.ml.reliability`) and the ONNX graph exported at registration
with its parity record.

A bundle folder holds these files plus the PyTorch weights (`har_assets.ml.bundle.ModelBundle`, which needs
torch, reads and writes the whole folder). Serving and scoring read only this part and run the graph on ONNX
Runtime (`har_assets.ml.onnx_runtime`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from har_assets.config import PreprocessConfig
from har_assets.ml.decoding import Decoder
from har_assets.ml.hyperparams import ModelConfig
from har_assets.ml.reliability import Reliability
from har_assets.ml.scaler import ChannelScaler

WEIGHTS_FILE = "weights.pt"
MODEL_CONFIG_FILE = "model_config.json"
PREPROCESS_FILE = "preprocess_config.json"
SCALER_FILE = "scaler.json"
CLASSES_FILE = "classes.json"
GRAPH_FILE = "model.onnx"
PARITY_FILE = "onnx_parity.npz"  # scaled windows and PyTorch's probabilities of them, recorded at export


@dataclass(frozen=True)
class OnnxGraph:
    """The network as an ONNX graph (input `x`: scaled windows (n, window, channels); output `logits`), and
    what PyTorch answered on a few windows at export, for any runtime to check itself against."""

    onnx: bytes
    parity_windows: np.ndarray  # (n, window, channels) float32, scaled
    parity_probabilities: np.ndarray  # (n, classes) float32, from the PyTorch module

    def write(self, folder: Path) -> None:
        (folder / GRAPH_FILE).write_bytes(self.onnx)
        np.savez(folder / PARITY_FILE, windows=self.parity_windows, probabilities=self.parity_probabilities)

    @classmethod
    def read(cls, folder: Path) -> OnnxGraph | None:
        """The folder's graph; None when it has none (registered before graphs were, or the export was refused)."""
        if not (folder / GRAPH_FILE).is_file():
            return None
        if not (folder / PARITY_FILE).is_file():
            raise ValueError(f"{folder} holds {GRAPH_FILE} without its parity record {PARITY_FILE}")
        with np.load(folder / PARITY_FILE, allow_pickle=False) as parity:
            windows, probabilities = parity["windows"], parity["probabilities"]
        return cls((folder / GRAPH_FILE).read_bytes(), windows, probabilities)


def check_channels(scaler: ChannelScaler, preprocess: PreprocessConfig) -> None:
    """ValueError unless the scaler was fit on the channels the preprocessing produces, in that order."""
    if tuple(scaler.channels) != tuple(preprocess.channels):
        raise ValueError(f"scaler channels {scaler.channels} differ from the preprocessing channels "
                         f"{preprocess.channels}")


@dataclass(frozen=True)
class InferenceBundle:
    """Everything of a bundle but the PyTorch module."""

    model_config: ModelConfig
    preprocess: PreprocessConfig
    scaler: ChannelScaler
    classes: list[str]
    graph: OnnxGraph | None  # None: no graph was exported at registration
    decoder: Decoder  # Decoder.per_window() for a bundle written before decoders existed
    reliability: Reliability  # Reliability.uncalibrated() for a bundle written before calibration existed

    def __post_init__(self) -> None:
        check_channels(self.scaler, self.preprocess)

    @property
    def window_shape(self) -> tuple[int, int]:
        """(window_size, channels) of the windows the model takes."""
        return self.preprocess.window_size, len(self.preprocess.channels)

    def write(self, folder: Path) -> None:
        """Write these parts into the bundle folder (the weights are ModelBundle's)."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MODEL_CONFIG_FILE).write_text(self.model_config.model_dump_json(indent=2))
        (folder / PREPROCESS_FILE).write_text(self.preprocess.model_dump_json(indent=2))
        self.scaler.save(folder / SCALER_FILE)
        (folder / CLASSES_FILE).write_text(json.dumps(self.classes))
        if self.graph is not None:
            self.graph.write(folder)
        self.decoder.write(folder)
        self.reliability.write(folder)

    @classmethod
    def read(cls, folder: Path) -> InferenceBundle:
        return cls(model_config=ModelConfig.model_validate_json((folder / MODEL_CONFIG_FILE).read_text()),
                   preprocess=PreprocessConfig.from_stored((folder / PREPROCESS_FILE).read_text()),
                   scaler=ChannelScaler.load(folder / SCALER_FILE),
                   classes=json.loads((folder / CLASSES_FILE).read_text()),
                   graph=OnnxGraph.read(folder), decoder=Decoder.read(folder),
                   reliability=Reliability.read(folder))
