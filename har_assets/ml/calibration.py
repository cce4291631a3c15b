"""Probabilities that mean what they say on people the model never saw, and what they tell about a person.

Temperature scaling (one scalar, Guo et al. 2017) of the decoded probabilities, fitted on predictions for people
the model did not train on (out of fold); it never changes a window's label. From calibrated probabilities a
person's accuracy and macro-F1 can be estimated without their labels: the expected share of windows whose label
is right, and each class's expected F1 from the expected confusion (a window predicted c is right with
probability p_c; class c's expected support is the sum of p_c). Pure numpy/scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

PROBA_FLOOR = 1e-12
TEMPERATURE_BOUNDS = (0.05, 20.0)
ECE_BINS = 15


def temperature_scale(proba: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) per row: T > 1 softens, T < 1 sharpens, the argmax stays."""
    logp = np.log(np.maximum(np.asarray(proba, dtype=np.float64), PROBA_FLOOR)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.maximum(np.asarray(proba, np.float64)[np.arange(len(y)), y], PROBA_FLOOR))))


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of labels `y` (class indices) under `proba`."""
    if len(y) == 0:
        raise ValueError("no labelled windows to fit a temperature on")
    lo, hi = np.log(TEMPERATURE_BOUNDS)
    res = minimize_scalar(lambda log_t: negative_log_likelihood(temperature_scale(proba, np.exp(log_t)), y),
                          bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: over equal-width confidence bins, the window-weighted mean |accuracy - confidence|."""
    proba = np.asarray(proba, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    confidence, correct = proba.max(axis=1), (proba.argmax(axis=1) == y)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


@dataclass(frozen=True)
class Estimate:
    """How right the model is on one person, from calibrated probabilities alone (no labels)."""

    accuracy: float
    accuracy_low: float
    accuracy_high: float
    macro_f1: float | None  # None: fewer than two classes expected with enough windows to estimate an F1
    windows: int

    def describe(self) -> dict[str, float | int | None]:
        return {"estimated_accuracy": round(self.accuracy, 4), "estimated_accuracy_low": round(self.accuracy_low, 4),
                "estimated_accuracy_high": round(self.accuracy_high, 4),
                "estimated_macro_f1": None if self.macro_f1 is None else round(self.macro_f1, 4),
                "windows": self.windows}


def expected_accuracy(proba: np.ndarray) -> float:
    """Mean top probability: the expected share of right labels when the probabilities are calibrated."""
    return float(np.asarray(proba, dtype=np.float64).max(axis=1).mean()) if len(proba) else float("nan")


def expected_macro_f1(proba: np.ndarray, min_class_windows: float) -> float | None:
    """Macro-F1 expected under the probabilities, over the classes whose expected support reaches
    `min_class_windows`; None when fewer than two do."""
    proba = np.asarray(proba, dtype=np.float64)
    predicted = proba.argmax(axis=1)
    support = proba.sum(axis=0)
    f1 = []
    for c in np.flatnonzero(support >= min_class_windows):
        true_positive = proba[predicted == c, c].sum()
        f1.append(2 * true_positive / ((predicted == c).sum() + support[c]))
    return float(np.mean(f1)) if len(f1) >= 2 else None


def estimate(proba: np.ndarray, band: float, min_class_windows: float = 5.0) -> Estimate:
    """A person's estimated accuracy (± the larger of `band`, the estimator's error on held-out people, and twice
    its sampling sd as if windows were independent) and macro-F1, from their calibrated probabilities."""
    proba = np.asarray(proba, dtype=np.float64)
    n = len(proba)
    if n == 0:
        raise ValueError("no windows to estimate an accuracy on")
    confidence = proba.max(axis=1)
    acc = float(confidence.mean())
    half = max(band, 2 * float(np.sqrt(np.sum(confidence * (1 - confidence)))) / n)
    return Estimate(acc, max(0.0, acc - half), min(1.0, acc + half), expected_macro_f1(proba, min_class_windows), n)
