"""A small GRU over the window embeddings of one gap-free segment, run in numpy: serving needs no torch for it.

Trained by `har_assets.ml.sequence_model` (torch); this module holds its weights and runs the forward pass with
PyTorch's GRU equations (gates r, z, n in that order), one direction or two, then a linear head per window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


@dataclass(frozen=True)
class GruDirection:
    w_ih: np.ndarray  # (3 * hidden, inputs)
    w_hh: np.ndarray  # (3 * hidden, hidden)
    b_ih: np.ndarray  # (3 * hidden,)
    b_hh: np.ndarray  # (3 * hidden,)

    def run(self, x: np.ndarray, reverse: bool = False) -> np.ndarray:
        """Hidden states (T, hidden) of inputs (T, inputs), from a zero state."""
        hidden = self.w_hh.shape[1]
        gates_x = x @ self.w_ih.T + self.b_ih  # every step's input part at once
        out = np.empty((x.shape[0], hidden), dtype=np.float64)
        h = np.zeros(hidden)
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        for t in steps:
            gh = self.w_hh @ h + self.b_hh
            r = _sigmoid(gates_x[t, :hidden] + gh[:hidden])
            z = _sigmoid(gates_x[t, hidden:2 * hidden] + gh[hidden:2 * hidden])
            n = np.tanh(gates_x[t, 2 * hidden:] + r * gh[2 * hidden:])
            h = (1.0 - z) * n + z * h
            out[t] = h
        return out


@dataclass(frozen=True)
class SequenceWeights:
    """Input standardisation, one or two GRU directions, the linear head."""

    mean: np.ndarray  # (inputs,)
    std: np.ndarray  # (inputs,)
    forward: GruDirection
    backward: GruDirection | None  # None: causal (forward-only)
    head_w: np.ndarray  # (classes, hidden * directions)
    head_b: np.ndarray  # (classes,)

    @property
    def causal(self) -> bool:
        return self.backward is None

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (T, classes) of one segment's window embeddings (T, inputs), in time order."""
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        if x.shape[0] == 0:
            return np.empty((0, self.head_b.shape[0]), dtype=np.float32)
        h = self.forward.run(x)
        if self.backward is not None:
            h = np.hstack([h, self.backward.run(x, reverse=True)])
        logits = h @ self.head_w.T + self.head_b
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}.mean": self.mean, f"{prefix}.std": self.std, f"{prefix}.head_w": self.head_w,
               f"{prefix}.head_b": self.head_b}
        for name, d in (("forward", self.forward), ("backward", self.backward)):
            if d is not None:
                out |= {f"{prefix}.{name}.{k}": getattr(d, k) for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> SequenceWeights:
        def direction(name: str) -> GruDirection | None:
            if f"{prefix}.{name}.w_ih" not in arrays:
                return None
            return GruDirection(*(arrays[f"{prefix}.{name}.{k}"] for k in ("w_ih", "w_hh", "b_ih", "b_hh")))

        forward = direction("forward")
        if forward is None:
            raise ValueError(f"no GRU weights '{prefix}' stored")
        return cls(arrays[f"{prefix}.mean"], arrays[f"{prefix}.std"], forward, direction("backward"),
                   arrays[f"{prefix}.head_w"], arrays[f"{prefix}.head_b"])


def save_weights(path: Path, weights: dict[str, SequenceWeights]) -> None:
    """Several named sequence models in one .npz file (read back without pickle)."""
    arrays: dict[str, np.ndarray] = {}
    for name, w in weights.items():
        arrays |= w.arrays(name)
    with path.open("wb") as f:
        np.savez(f, **arrays)


def load_weights(path: Path, names: list[str]) -> dict[str, SequenceWeights]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return {name: SequenceWeights.from_arrays(arrays, name) for name in names}
