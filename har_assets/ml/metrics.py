"""Evaluation: the one macro-F1, per-class report, baselines, per-participant results, plots, channel importance.

Macro-F1, everywhere in har-assets (the evaluation report, the champion gate, early stopping,
`har evaluate`, the per-participant tables): the unweighted mean of the per-class F1 over the
classes that occur in the *true* labels of the windows scored. A prediction of any other class
still counts as an error (it lowers the recall of the true class), but a class nobody in the
scored set performed adds no zero term.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
)
from torch import nn


def _labels(y: np.ndarray | Sequence[int], name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D array of integer class indices, got {arr.dtype} {arr.shape}")
    return arr.astype(np.int64)


def macro_f1(y_true: np.ndarray | Sequence, y_pred: np.ndarray | Sequence) -> float:
    """Macro-F1 over the classes present in ``y_true`` (see the module docstring); 0.0 for no windows."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    if len(yt) != len(yp):
        raise ValueError(f"y_true and y_pred differ in length: {len(yt)} vs {len(yp)}")
    if len(yt) == 0:
        return 0.0
    return float(f1_score(yt, yp, labels=np.unique(yt), average="macro", zero_division=0))


def evaluate_predictions(
    y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], classes: Sequence[str]
) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, the confusion matrix and sklearn's text report.

    Labels are indices into ``classes``. ``per_class`` lists every class (support 0 for classes absent
    from the truth); ``confusion_matrix[i][j]`` counts windows of true class i predicted as j.
    """
    yt, yp = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(yt) != len(yp):
        raise ValueError(f"y_true and y_pred differ in length: {len(yt)} vs {len(yp)}")
    if len(yt) == 0:
        raise ValueError("cannot evaluate an empty set of predictions")
    k = len(classes)
    if yt.min() < 0 or yp.min() < 0 or max(yt.max(), yp.max()) >= k:
        raise ValueError(f"labels must lie in [0, {k}) for {k} classes")
    names = list(classes)
    table = classification_report(yt, yp, labels=list(range(k)), target_names=names, output_dict=True,
                                  zero_division=0)
    present = np.unique(yt)
    text = classification_report(yt, yp, labels=present, target_names=[names[i] for i in present], digits=3,
                                 zero_division=0)
    absent = sorted(set(range(k)) - set(present.tolist()))
    if absent:
        text += "\nnot in the truth (no F1 term): " + ", ".join(
            f"{names[i]} ({int((yp == i).sum())} predicted)" for i in absent) + "\n"
    return {
        "n": len(yt),
        "accuracy": float(accuracy_score(yt, yp)),
        "macro_f1": macro_f1(yt, yp),
        "per_class": {c: {"precision": float(table[c]["precision"]), "recall": float(table[c]["recall"]),
                          "f1": float(table[c]["f1-score"]), "support": int(table[c]["support"])} for c in names},
        "confusion_matrix": confusion_matrix(yt, yp, labels=list(range(k))).tolist(),
        "classification_report": text,
    }


def dummy_baselines(
    y_train: np.ndarray | Sequence[int], y_test: np.ndarray | Sequence[int], classes: Sequence[str], seed: int = 0
) -> dict[str, dict]:
    """Accuracy and macro-F1 on ``y_test`` of sklearn DummyClassifier ``most_frequent`` and ``stratified``
    fitted on the training labels: the floor a real model must clear."""
    ytr, yte = _labels(y_train, "y_train"), _labels(y_test, "y_test")
    if len(ytr) == 0:
        raise ValueError("cannot fit a baseline on an empty training set")
    out: dict[str, dict] = {}
    for strategy in ("most_frequent", "stratified"):
        clf = DummyClassifier(strategy=strategy, random_state=seed).fit(np.zeros((len(ytr), 1)), ytr)
        pred = clf.predict(np.zeros((len(yte), 1))).astype(np.int64)
        out[strategy] = {"accuracy": float(accuracy_score(yte, pred)), "macro_f1": macro_f1(yte, pred)}
    return out


def per_group_scores(
    y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], groups: np.ndarray | Sequence[str]
) -> dict[str, dict]:
    """Per group (participant id per window): ``n_windows``, ``accuracy`` and ``macro_f1`` (over the
    classes that group performed)."""
    yt, yp, g = _labels(y_true, "y_true"), _labels(y_pred, "y_pred"), np.asarray(groups).astype(str)
    if not len(yt) == len(yp) == len(g):
        raise ValueError(f"y_true, y_pred and groups differ in length: {len(yt)}, {len(yp)}, {len(g)}")
    out: dict[str, dict] = {}
    for name in sorted(set(g.tolist())):
        m = g == name
        out[name] = {"n_windows": int(m.sum()), "accuracy": float(accuracy_score(yt[m], yp[m])),
                     "macro_f1": macro_f1(yt[m], yp[m])}
    return out


def confusion_matrix_png(
    cm: np.ndarray | Sequence[Sequence[int]], classes: Sequence[str], path: str | Path, title: str = "Confusion matrix"
) -> Path:
    """Write the confusion matrix as PNG (sklearn's ConfusionMatrixDisplay, each row as shares of its true
    class, the row's window count in its label); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(cm, dtype=np.int64)
    k = len(classes)
    if counts.shape != (k, k):
        raise ValueError(f"confusion matrix shape {counts.shape} does not match {k} classes")
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    side = max(5.0, 0.75 * k + 2.5)
    fig = Figure(figsize=(side + 1.0, side), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    labels = [f"{c} ({n})" for c, n in zip(classes, rows[:, 0], strict=True)]
    display = ConfusionMatrixDisplay(shares, display_labels=list(classes))
    display.plot(ax=ax, cmap="Blues", values_format=".2f", xticks_rotation=45, colorbar=True,
                 im_kw={"vmin": 0.0, "vmax": 1.0}, text_kw={"fontsize": 7 if k > 8 else 9})
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (windows)")
    ax.set_title(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def channel_permutation_importance(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray | Sequence[int],
    channels: Sequence[str],
    n_repeats: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Drop in macro-F1 when one channel's whole time series is shuffled between windows.

    Per channel name: baseline macro-F1 minus the mean over ``n_repeats`` permutations (near 0 or
    negative: the model does not rely on the channel).
    """
    from har_assets.ml.inference import predict_proba

    X = np.asarray(X, dtype=np.float32)
    yt = _labels(y, "y")
    if X.ndim != 3 or X.shape[2] != len(channels):
        raise ValueError(f"X shape {X.shape} does not match {len(channels)} channels")
    if len(X) != len(yt) or len(X) < 2:
        raise ValueError(f"need at least 2 windows with one label each, got {len(X)} windows, {len(yt)} labels")
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")

    def score(data: np.ndarray) -> float:
        return macro_f1(yt, predict_proba(model, data).argmax(axis=1))

    base = score(X)
    rng = np.random.default_rng(seed)
    work = X.copy()
    out: dict[str, float] = {}
    for c, name in enumerate(channels):
        drops = []
        for _ in range(n_repeats):
            work[:, :, c] = X[rng.permutation(len(X)), :, c]
            drops.append(base - score(work))
        work[:, :, c] = X[:, :, c]
        out[name] = float(np.mean(drops))
    return out
