"""From the windows of many participants to a trained, evaluated model.

The steps the training assets run one at a time (classes, scaler, labelled arrays, evaluation),
and `run_experiment`, which composes them on a participant split for the benchmarks and the
hyper-parameter search. Pure: no Dagster, no MLflow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from har_assets.ml.bundle import ModelBundle
from har_assets.ml.inference import predict_proba
from har_assets.ml.metrics import (
    channel_permutation_importance,
    dummy_baselines,
    evaluate_predictions,
    per_group_accuracy,
)
from har_assets.ml.model import ModelConfig
from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.split import DatasetSplit
from har_assets.ml.training import EpochStats, TrainConfig, TrainResult, train_model
from har_assets.signal.windowing import WindowSet

WindowSets = Mapping[str, WindowSet]


def labelled_participants(windowsets: WindowSets) -> tuple[list[str], list[str]]:
    """(participants with at least one labelled window, participants without any)."""
    labelled = sorted(p for p, ws in windowsets.items() if ws.labeled.any())
    return labelled, sorted(set(windowsets) - set(labelled))


def common_channels(windowsets: WindowSets) -> tuple[str, ...]:
    """The channels all participants' windows share; raises if they were preprocessed differently."""
    by_channels: dict[tuple[str, ...], list[str]] = {}
    for pid, ws in sorted(windowsets.items()):
        by_channels.setdefault(tuple(ws.channels), []).append(pid)
    if len(by_channels) != 1:
        detail = "; ".join(f"{list(ch)}: {pids}" for ch, pids in by_channels.items())
        raise ValueError(f"participants' windows have different channels (re-run preprocessing): {detail}")
    return next(iter(by_channels))


def windows_fingerprint(ws: WindowSet) -> str:
    """Content hash of a participant's windows (values, labels, channels)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(ws.X).tobytes())
    digest.update("\x1f".join(ws.labels.astype(str).tolist()).encode())
    digest.update("\x1f".join(ws.channels).encode())
    return digest.hexdigest()[:16]


def _pick(windowsets: WindowSets, participants: Iterable[str]) -> list[WindowSet]:
    missing = sorted(set(participants) - set(windowsets))
    if missing:
        raise KeyError(f"no windows for participants {missing}")
    return [windowsets[p] for p in sorted(participants)]


def derive_classes(windowsets: WindowSets, participants: Iterable[str]) -> list[str]:
    """The sorted activity labels of the given (training) participants' labelled windows."""
    names: set[str] = set()
    for ws in _pick(windowsets, participants):
        names.update(ws.labels[ws.labeled].tolist())
    return sorted(names)


def fit_scaler(windowsets: WindowSets, participants: Iterable[str]) -> ChannelScaler:
    """Per-channel z-score over the labelled windows of the given (training) participants only."""
    participants = sorted(participants)
    chosen = _pick(windowsets, participants)
    if not chosen or not any(ws.labeled.any() for ws in chosen):
        raise ValueError("no labelled windows to fit the scaler on")
    channels = common_channels({p: windowsets[p] for p in participants})
    return ChannelScaler.fit(np.concatenate([ws.X[ws.labeled] for ws in chosen]), channels)


@dataclass
class LabelledData:
    """Labelled windows of some participants as arrays; `excluded` counts windows of classes the model lacks."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    excluded: dict[str, int]

    def __len__(self) -> int:
        return len(self.y)


def labelled_data(windowsets: WindowSets, participants: Iterable[str], classes: Sequence[str],
                  scaler: ChannelScaler | None = None) -> LabelledData:
    """Stack the labelled windows (optionally scaled) with class indices and participant ids."""
    index = {c: i for i, c in enumerate(classes)}
    Xs, ys, groups = [], [], []
    excluded: dict[str, int] = {}
    for pid in sorted(participants):
        ws = _pick(windowsets, [pid])[0]
        keep = ws.labeled & np.isin(ws.labels, list(index))
        for name in ws.labels[ws.labeled & ~keep].tolist():
            excluded[name] = excluded.get(name, 0) + 1
        Xs.append(ws.X[keep])
        ys.append(np.array([index[c] for c in ws.labels[keep]], dtype=np.int64))
        groups.append(np.full(int(keep.sum()), pid))
    channels = len(scaler.channels) if scaler else (Xs[0].shape[2] if Xs else 0)
    X = np.concatenate(Xs) if Xs else np.empty((0, 0, channels), np.float32)
    if scaler is not None and len(X):
        X = scaler.transform(X)
    return LabelledData(X=X.astype(np.float32, copy=False), y=np.concatenate(ys) if ys else np.empty(0, np.int64),
                        groups=np.concatenate(groups) if groups else np.empty(0, str), excluded=excluded)


def evaluate(model: nn.Module, classes: Sequence[str], channels: Sequence[str], test: LabelledData,
             y_train: np.ndarray, importance_repeats: int = 3, seed: int = 0) -> dict:
    """Scores on (already scaled) test windows: `evaluate_predictions`' report plus dummy baselines,
    per-participant accuracy, channel permutation importance and the excluded windows."""
    if len(test) == 0:
        raise ValueError("no labelled test windows of a known class to evaluate on")
    pred = predict_proba(model, test.X).argmax(axis=1)
    report = evaluate_predictions(test.y, pred, classes)
    report["classes"] = list(classes)
    report["baselines"] = dummy_baselines(y_train, test.y, classes, seed=seed)
    report["per_participant"] = per_group_accuracy(test.y, pred, test.groups)
    report["excluded_windows"] = dict(test.excluded)
    report["permutation_importance"] = (
        channel_permutation_importance(model, test.X, test.y, channels, classes, n_repeats=importance_repeats,
                                       seed=seed) if importance_repeats > 0 and len(test) >= 2 else {}
    )
    return report


def score_bundle(bundle: ModelBundle, windowsets: WindowSets, participants: Iterable[str]) -> dict:
    """Accuracy and macro-F1 (over the classes present in the truth) of a bundle on *unscaled* windows.

    The same function scores a candidate and the current champion, each on windows made with its
    own preprocessing, so the two can be compared on the same participants.
    """
    chosen = _pick(windowsets, participants)
    X = np.concatenate([ws.X[ws.labeled] for ws in chosen])
    truth = np.concatenate([ws.labels[ws.labeled] for ws in chosen]).astype(str)
    if len(truth) == 0:
        raise ValueError("the participants have no labelled windows")
    pred = np.asarray(bundle.classes)[bundle.predict_windows(X).argmax(axis=1)].astype(str)
    labels = sorted(set(truth.tolist()))
    return {"n": len(truth), "accuracy": float(accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0))}


@dataclass
class ExperimentResult:
    classes: list[str]
    scaler: ChannelScaler
    train: TrainResult
    test: dict | None

    @property
    def val_macro_f1(self) -> float | None:
        return self.train.best_val_macro_f1


def run_experiment(windowsets: WindowSets, split: DatasetSplit, model_cfg: ModelConfig, train_cfg: TrainConfig,
                   on_epoch: Callable[[EpochStats], None] | None = None, evaluate_test: bool = True,
                   importance_repeats: int = 0) -> ExperimentResult:
    """Scaler and classes from the training participants, train with early stopping on validation,
    and (optionally) evaluate on the test participants: what the training assets do, in one call."""
    channels = common_channels({p: windowsets[p] for p in split.labelled})
    classes = derive_classes(windowsets, split.train)
    scaler = fit_scaler(windowsets, split.train)
    train = labelled_data(windowsets, split.train, classes, scaler)
    val = labelled_data(windowsets, split.validation, classes, scaler)
    result = train_model(train.X, train.y, val.X if len(val) else None, val.y if len(val) else None, classes,
                         model_cfg, train_cfg, on_epoch=on_epoch)
    test_report = None
    if evaluate_test:
        test = labelled_data(windowsets, split.test, classes, scaler)
        test_report = evaluate(result.model, classes, channels, test, train.y, importance_repeats,
                               seed=train_cfg.seed)
    return ExperimentResult(classes=classes, scaler=scaler, train=result, test=test_report)
