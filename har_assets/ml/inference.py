"""Batched, gradient-free class probabilities from a trained model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def predict_proba(
    model: nn.Module, X: np.ndarray, batch_size: int = 512, device: torch.device | str | None = None
) -> np.ndarray:
    """Softmax probabilities ``(n, n_classes)`` float32 for windows ``X`` ``(n, window, channels)``."""
    return _run(model, X, batch_size, device, embeddings=False)[0]


def predict_with_embedding(
    model: nn.Module, X: np.ndarray, batch_size: int = 512, device: torch.device | str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (n, classes), embeddings (n, features)) float32 of windows X, from one forward pass; the
    model must have `embed` and `classify` (`CnnBiLstm`)."""
    proba, embedding = _run(model, X, batch_size, device, embeddings=True)
    assert embedding is not None
    return proba, embedding


def _run(
    model: nn.Module, X: np.ndarray, batch_size: int, device: torch.device | str | None, embeddings: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities (and embeddings) of windows X.

    Runs in eval mode under ``torch.inference_mode`` on ``device`` (default: where the model's
    parameters are); the model's device and train/eval mode are restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3:
        raise ValueError(f"X must have shape (n, window, channels), got {X.shape}")
    params = list(model.parameters())
    home = params[0].device if params else torch.device("cpu")
    target = torch.device(device) if device is not None else home
    if len(X) == 0:
        n_classes = getattr(model, "n_classes", None)
        if n_classes is None:
            raise ValueError("X is empty and the model does not declare n_classes")
        return np.zeros((0, int(n_classes)), dtype=np.float32), np.zeros((0, 0), np.float32) if embeddings else None
    # Only touch the module's state (device, train/eval) when it has to change: a served model sits
    # in eval mode on its device and is shared by concurrent requests, which must not race on it.
    moved, was_training = target != home, model.training
    if moved:
        model.to(target)
    if was_training:
        model.eval()
    try:
        out, features = [], []
        with torch.inference_mode():
            for start in range(0, len(X), batch_size):
                xb = torch.from_numpy(X[start : start + batch_size]).to(target)
                if embeddings:
                    embedding = model.embed(xb)
                    logits = model.classify(embedding)
                    features.append(embedding.float().cpu().numpy())
                else:
                    logits = model(xb)
                out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return (np.concatenate(out).astype(np.float32, copy=False),
                np.concatenate(features).astype(np.float32, copy=False) if embeddings else None)
    finally:
        if moved:
            model.to(home)
        if was_training:
            model.train()
