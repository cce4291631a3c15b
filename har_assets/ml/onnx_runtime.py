"""The trained network run by ONNX Runtime on the CPU, for serving and scoring: no torch, no onnx.

The graph is exported once, at registration, into the hash-verified bundle (`har_assets.ml.onnx_export`,
which needs torch). Loading checks the graph against the probabilities PyTorch gave at export on the
windows stored beside it (in batches of PARITY_BATCHES), on this machine's ONNX Runtime
(`har_assets.ml.bundle_runtime`).
Per call ONNX Runtime costs a third of eager PyTorch on one window (0.18 vs 0.50 ms, one thread) and less on
batches: a served request spent a quarter of its time in PyTorch's per-operator dispatch.
Measured and compared by `benchmarks/serve.py`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from har_assets.ml.inference_bundle import OnnxGraph

PARITY_TOLERANCE = 1e-4  # the largest probability difference from PyTorch accepted
PARITY_BATCHES = (1, 5)  # batch sizes the graph is checked on: its batch axis must really be dynamic


class RuntimeMismatch(RuntimeError):
    """The ONNX graph does not reproduce the PyTorch module's probabilities."""


class Classifier(Protocol):
    """Class probabilities (n, classes) float32 of scaled windows (n, window, channels)."""

    name: str

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...

    def predict_with_embedding(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and the windows' embeddings (None where the network gives none)."""
        ...


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32, copy=False)


class OnnxClassifier:
    """Class probabilities of scaled windows, computed by ONNX Runtime from a serialized ONNX graph."""

    name = "onnxruntime"

    def __init__(self, graph: bytes, threads: int | None = None) -> None:
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
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self._logits = [self._session.get_outputs()[0].name]  # a graph with an embedding output computes only this

    @property
    def intra_op_threads(self) -> int:
        """The session's intra-op thread count (0: ONNX Runtime's default, every core)."""
        return self._session.get_session_options().intra_op_num_threads

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax probabilities (n, classes) float32 of scaled windows (n, window, channels)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        return softmax(self._session.run(self._logits, {"x": X})[0])

    def predict_with_embedding(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and, from a graph exported with its `embedding` output, the windows' embeddings."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        out = self._session.run(None, {"x": X})
        return softmax(out[0]), (np.asarray(out[1], dtype=np.float32) if len(out) > 1 else None)


def parity_batches(rows: np.ndarray) -> list[np.ndarray]:
    """Parity windows (or their probabilities) split into the batches of PARITY_BATCHES."""
    return np.split(rows, np.cumsum(PARITY_BATCHES)[:-1])


def check_parity(runtime: Classifier, graph: OnnxGraph) -> None:
    """RuntimeMismatch when `runtime` differs from the probabilities PyTorch recorded with `graph` by more than
    PARITY_TOLERANCE on any of the parity batches."""
    for X, expected in zip(parity_batches(graph.parity_windows), parity_batches(graph.parity_probabilities),
                           strict=True):
        worst = float(np.abs(runtime.predict_proba(X) - expected).max())
        if worst > PARITY_TOLERANCE:
            raise RuntimeMismatch(f"ONNX Runtime differs from PyTorch by {worst:.2g} on a batch of {len(X)} "
                                  f"(tolerance {PARITY_TOLERANCE:g})")

