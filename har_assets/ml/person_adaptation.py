"""A person's own labelled minutes, used for the rest of their recording.

Windows the person labelled keep their label. Every other window where the model is unsure (calibrated confidence
below `UNSURE_BELOW`) looks for its nearest labelled windows in the model's embedding space (cosine distance):
the nearer they are, compared with how far labelled windows of one class lie from each other, the more their
labels count against the model's own probabilities. A window the model is sure of, or unlike everything
labelled, keeps the model's answer, so the classes the person did not label are not forgotten. (Letting
neighbours overrule sure windows too lowered macro-F1 on the rest of real people's recordings: a few labelled
minutes near a confusion pulled well-recognised windows the wrong way; docs/reliability.md.) Pure numpy.
"""

from __future__ import annotations

import numpy as np

NEIGHBOURS = 5
MAX_WEIGHT = 0.8  # the most the labelled neighbours count against the model
UNSURE_BELOW = 0.9  # only windows whose calibrated confidence is below this lean towards their neighbours


def _unit(e: np.ndarray) -> np.ndarray:
    e = np.asarray(e, np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def adapt_to_labels(proba: np.ndarray, embedding: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Probabilities (n, classes) after the person's labelled windows (`y` >= 0; -1 unlabelled) are taken into
    account; unchanged when none is labelled."""
    proba = np.asarray(proba, np.float64)
    y = np.asarray(y)
    labelled = np.flatnonzero(y >= 0)
    if len(labelled) == 0:
        return proba.astype(np.float32)
    n_classes = proba.shape[1]
    unit = _unit(embedding)
    ref = unit[labelled]
    distance = 1.0 - unit @ ref.T  # (n, labelled) cosine distance
    # how far a labelled window lies from its nearest labelled window of the same class: the scale of "near"
    same = y[labelled][:, None] == y[labelled][None, :]
    within = np.where(same & ~np.eye(len(labelled), dtype=bool), distance[labelled], np.inf).min(axis=1)
    scale = float(np.median(within[np.isfinite(within)])) if np.isfinite(within).any() else float(
        np.median(distance))
    scale = max(scale, 1e-6)
    k = min(NEIGHBOURS, len(labelled))
    nearest = np.argsort(distance, axis=1)[:, :k]
    d = np.take_along_axis(distance, nearest, axis=1)
    votes = np.exp(-d / scale)  # (n, k)
    q = np.zeros_like(proba)
    np.add.at(q, (np.repeat(np.arange(len(proba)), k), y[labelled][nearest].ravel()), votes.ravel())
    q /= np.maximum(q.sum(axis=1, keepdims=True), 1e-12)
    weight = MAX_WEIGHT * np.exp(-d[:, 0] / scale)[:, None] * (proba.max(axis=1) < UNSURE_BELOW)[:, None]
    out = (1 - weight) * proba + weight * q
    out[labelled] = np.eye(n_classes)[y[labelled]]
    return out.astype(np.float32)
