"""From the windows of many participants to a trained, evaluated model.

Evaluation of a trained model, and `run_experiment`, which composes the steps of
`har_assets.ml.datasets` with training on a participant split for the benchmarks and the
hyper-parameter search. Pure: no Dagster, no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from har_assets.ml.bundle import ModelBundle
from har_assets.ml.datasets import (
    LabelledData,
    WindowSets,
    common_channels,
    derive_classes,
    fit_scaler,
    labelled_data,
)
from har_assets.ml.hyperparams import EpochStats, ModelConfig, TrainConfig
from har_assets.ml.inference import predict_proba
from har_assets.ml.metrics import (
    channel_permutation_importance,
    dummy_baselines,
    evaluate_predictions,
    macro_f1,
    per_group_scores,
)
from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.split import DatasetSplit
from har_assets.ml.training import TrainResult, train_model


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
    report["per_participant"] = per_group_scores(test.y, pred, test.groups)
    report["excluded_windows"] = dict(test.excluded)
    report["permutation_importance"] = (
        channel_permutation_importance(model, test.X, test.y, channels, n_repeats=importance_repeats,
                                       seed=seed) if importance_repeats > 0 and len(test) >= 2 else {}
    )
    return report


def score_bundle(bundle: ModelBundle, windowsets: WindowSets, participants: Iterable[str]) -> dict:
    """Accuracy and macro-F1 of a bundle on the participants' *unscaled* labelled windows of the classes it knows.

    The same windows and the same macro-F1 as `evaluate` (so a candidate scores exactly its
    model_evaluation figure); the champion gate scores the candidate and the current champion with
    it, each on windows made with its own preprocessing.
    """
    data = labelled_data(windowsets, participants, bundle.classes)
    if len(data) == 0:
        raise ValueError("the participants have no labelled windows of the model's classes")
    pred = bundle.predict_windows(data.X).argmax(axis=1)
    return {"n": len(data), "accuracy": float((pred == data.y).mean()), "macro_f1": macro_f1(data.y, pred),
            "excluded_windows": dict(data.excluded)}


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
                         model_cfg, train_cfg, on_epoch=on_epoch, scaler=scaler)
    test_report = None
    if evaluate_test:
        test = labelled_data(windowsets, split.test, classes, scaler)
        test_report = evaluate(result.model, classes, channels, test, train.y, importance_repeats,
                               seed=train_cfg.seed)
    return ExperimentResult(classes=classes, scaler=scaler, train=result, test=test_report)
