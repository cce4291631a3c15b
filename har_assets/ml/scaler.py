"""Per-channel z-score scaler, fit on training windows only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ChannelScaler:
    """mean/std per channel over every sample of every training window."""

    channels: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    n_windows: int

    @classmethod
    def fit(cls, X: np.ndarray, channels: tuple[str, ...]) -> ChannelScaler:
        if X.ndim != 3 or X.shape[0] == 0:
            raise ValueError(f"need a non-empty (windows, samples, channels) array to fit, got shape {X.shape}")
        if X.shape[2] != len(channels):
            raise ValueError(f"{X.shape[2]} channels in the data but {len(channels)} channel names")
        flat = X.reshape(-1, X.shape[2]).astype(np.float64)
        std = flat.std(axis=0)
        return cls(channels=tuple(channels), mean=flat.mean(axis=0), std=np.where(std > 1e-12, std, 1.0),
                   n_windows=int(X.shape[0]))

    def transform(self, X: np.ndarray) -> np.ndarray:
        if X.ndim != 3 or X.shape[2] != len(self.channels):
            raise ValueError(f"expected (windows, samples, {len(self.channels)}) windows, got shape {X.shape}")
        return ((X - self.mean) / self.std).astype(np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled windows back in physical units (float32)."""
        if X.ndim != 3 or X.shape[2] != len(self.channels):
            raise ValueError(f"expected (windows, samples, {len(self.channels)}) windows, got shape {X.shape}")
        return (X * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        return {"channels": list(self.channels), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "n_windows": self.n_windows}

    @classmethod
    def from_dict(cls, d: dict) -> ChannelScaler:
        return cls(channels=tuple(d["channels"]), mean=np.asarray(d["mean"], dtype=np.float64),
                   std=np.asarray(d["std"], dtype=np.float64), n_windows=int(d["n_windows"]))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> ChannelScaler:
        return cls.from_dict(json.loads(path.read_text()))
