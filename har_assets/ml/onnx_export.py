"""The PyTorch module exported to an ONNX graph, once, when training logs the bundle (needs torch and onnx).

Serving and scoring never import this for a model registered with its graph: they run the stored graph on
ONNX Runtime (`har_assets.ml.onnx_runtime`). Here also the fallback for a bundle without a usable graph,
which needs torch: the export in memory, else PyTorch itself (`cpu_classifier`).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn

from har_assets.ml.inference import predict_proba, predict_with_embedding
from har_assets.ml.inference_bundle import OnnxGraph
from har_assets.ml.model import CnnBiLstm, WithEmbedding
from har_assets.ml.onnx_runtime import PARITY_BATCHES, Classifier, OnnxClassifier, check_parity, parity_batches

PARITY_SEED = 0


def export_onnx(model: nn.Module, window: int, channels: int) -> bytes:
    """The module (eval mode) as an ONNX graph with a dynamic batch axis: input `x` (n, window, channels), outputs
    `logits` (n, classes) and, for a `CnnBiLstm`, `embedding` (n, features) (what a 'gru' decoder reads).

    TorchScript's exporter (dynamo=False), deprecated since torch 2.9, on purpose: torch.export's exporter
    (dynamo=True) gives the same probabilities and equally fast graphs for this CNN-BiLSTM on torch 2.13, but
    took 10 s per export against 0.1 s (every registration, and every test that registers a model), needs
    onnxscript and onnx-ir installed besides onnx, and silently fixes the batch axis to 1 when traced on a
    batch of 1. The parity check (`export_graph`) guards what the tracer warns about.
    """
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="The feature will be removed", module=r"torch\.onnx")
        # the forward's shape check, constant in a trace; and the LSTM's batch axis: both checked on two batches
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean",
                                category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        outputs = ["logits", "embedding"] if isinstance(model, CnnBiLstm) else ["logits"]
        torch.onnx.export((WithEmbedding(model) if isinstance(model, CnnBiLstm) else model).eval(),
                          (torch.zeros(1, window, channels),), buffer, input_names=["x"], output_names=outputs,
                          dynamic_axes={"x": {0: "batch"}, **{name: {0: "batch"} for name in outputs}},
                          dynamo=False)
    return buffer.getvalue()


def export_graph(model: nn.Module, window: int, channels: int) -> OnnxGraph:
    """The module's ONNX graph with PyTorch's probabilities on random scaled windows, batch by batch
    (PARITY_BATCHES); RuntimeMismatch when ONNX Runtime does not reproduce them."""
    windows = np.random.default_rng(PARITY_SEED).normal(size=(sum(PARITY_BATCHES), window, channels))
    windows = windows.astype(np.float32)
    expected = np.concatenate([predict_proba(model, X) for X in parity_batches(windows)])
    graph = OnnxGraph(export_onnx(model, window, channels), windows, expected)
    check_parity(OnnxClassifier(graph.onnx, threads=1), graph)
    return graph


class TorchClassifier:
    """The Classifier interface on the PyTorch module itself (where the export is refused)."""

    name = "torch"

    def __init__(self, model: nn.Module, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)  # process-wide: the one model a serving worker runs
        self._model = model

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return predict_proba(self._model, X)

    def predict_with_embedding(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not isinstance(self._model, CnnBiLstm):
            return predict_proba(self._model, X), None
        return predict_with_embedding(self._model, X)


def cpu_classifier(model: nn.Module, window: int, channels: int, threads: int | None = None
                   ) -> tuple[Classifier, str | None]:
    """ONNX Runtime on the module exported now where it reproduces the module, else PyTorch; with the export's
    failure when it fell back."""
    try:
        graph = export_graph(model, window, channels)
    except Exception as exc:  # an architecture the exporter cannot take still serves, only slower
        return TorchClassifier(model, threads), f"{type(exc).__name__}: {exc}"
    return OnnxClassifier(graph.onnx, threads), None

