"""The trained network run by ONNX Runtime on the CPU, for serving and scoring.

The ONNX graph is exported in memory from the loaded (and hash-verified) PyTorch module, so no new
file is trusted and a model registered before this existed runs the same way. Per call ONNX Runtime
costs a third of eager PyTorch on one window (0.18 vs 0.50 ms, one thread) and less on batches: a
served request spent a quarter of its time in PyTorch's per-operator dispatch.
Measured and compared by `benchmarks/serve.py`.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn

from har_assets.ml.inference import predict_proba

PARITY_TOLERANCE = 1e-4  # the largest probability difference from PyTorch accepted at load


class RuntimeMismatch(RuntimeError):
    """The exported graph does not reproduce the PyTorch module's probabilities."""


def export_onnx(model: nn.Module, window: int, channels: int) -> bytes:
    """The module (eval mode) as an ONNX graph with a dynamic batch axis: input `x` (n, window, channels), output
    `logits` (n, classes)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # tracing notes about shape checks and the LSTM's batch axis, checked below
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, window, channels),), buffer, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                          dynamo=False)
    return buffer.getvalue()


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32, copy=False)


class OnnxClassifier:
    """Class probabilities of scaled windows, computed by ONNX Runtime from a PyTorch module's export.

    Checked at construction against the module itself on random windows (batches of 1 and 5); a graph that
    differs by more than PARITY_TOLERANCE raises RuntimeMismatch.
    """

    name = "onnxruntime"

    def __init__(self, model: nn.Module, window: int, channels: int, threads: int | None = None) -> None:
        import onnxruntime as ort  # imported where a model is loaded: the code location does not need it

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        # no busy-waiting for work between calls: a spinning thread took a core from the client and the other
        # processes of a shared machine (one client of /predict while another process kept a core busy:
        # 255 -> 510 req/s, p99 10 -> 2.5 ms)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(export_onnx(model, window, channels), options,
                                             providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        for n in (1, 5):
            X = rng.normal(size=(n, window, channels)).astype(np.float32)
            worst = float(np.abs(self.predict_proba(X) - predict_proba(model, X)).max())
            if worst > PARITY_TOLERANCE:
                raise RuntimeMismatch(f"ONNX Runtime differs from PyTorch by {worst:.2g} on a batch of {n} "
                                      f"(tolerance {PARITY_TOLERANCE:g})")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax probabilities (n, classes) float32 of scaled windows (n, window, channels)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        return softmax(self._session.run(None, {"x": X})[0])


class TorchClassifier:
    """The same interface on the PyTorch module itself (where the export is refused)."""

    name = "torch"

    def __init__(self, model: nn.Module) -> None:
        self._model = model

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return predict_proba(self._model, X)


def cpu_classifier(model: nn.Module, window: int, channels: int, threads: int | None = None
                   ) -> tuple[OnnxClassifier | TorchClassifier, str | None]:
    """ONNX Runtime where its export reproduces the module, else PyTorch; with the reason when it fell back."""
    try:
        return OnnxClassifier(model, window, channels, threads), None
    except Exception as exc:  # an architecture the exporter cannot take still serves, only slower
        return TorchClassifier(model), f"{type(exc).__name__}: {exc}"
