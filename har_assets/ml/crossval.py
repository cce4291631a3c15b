"""K-fold cross-validation *by participant*: every fold's test people are never seen in training.

Each fold trains and evaluates with `run_experiment`, the composition the `model` and
`model_evaluation` assets use (scaler and classes from the fold's training people, early stopping
on its validation people). Pure: no Dagster, no MLflow; the caller tracks and reports through
the callbacks.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from har_assets.ml.datasets import WindowSets
from har_assets.ml.experiment import run_experiment
from har_assets.ml.hyperparams import EpochStats
from har_assets.ml.split import DatasetSplit, participant_rank
from har_assets.ml.variants import ExperimentConfig


@dataclass(frozen=True)
class Fold:
    index: int
    train: list[str]
    validation: list[str]
    test: list[str]


def participant_folds(people: Sequence[str], k: int, validation_share: float, seed: int = 0) -> list[Fold]:
    """K folds: the people in seeded order dealt into k test groups; each fold's validation people
    (`validation_share` of everyone, at least one if the share is positive) are drawn from the rest."""
    people = sorted(set(people))
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    n_val = max(1, round(validation_share * len(people))) if validation_share > 0 else 0
    if len(people) < k or len(people) - -(-len(people) // k) - n_val < 1:
        raise ValueError(f"{len(people)} labelled participants are too few for {k} folds with {n_val} validation "
                         f"participant(s) each: every fold needs test, validation and training people")
    order = sorted(people, key=lambda p: participant_rank(p, seed))
    folds = []
    for i in range(k):
        test = order[i::k]
        rest = sorted(set(people) - set(test), key=lambda p: participant_rank(p, seed + 1 + i))
        folds.append(Fold(i, train=sorted(rest[n_val:]), validation=sorted(rest[:n_val]), test=sorted(test)))
    return folds


@dataclass
class FoldResult:
    """One fold of one variant and training seed: the evaluation report, or the error that stopped it."""

    variant: str
    fold: int
    seed: int
    test: list[str]
    seconds: float
    report: dict | None = None  # har_assets.ml.experiment.evaluate's report
    epochs: list[EpochStats] = field(default_factory=list)
    best_epoch: int | None = None
    error: str | None = None
    detail: str | None = None  # the traceback of a failed fold

    @property
    def ok(self) -> bool:
        return self.error is None


def run_fold(windowsets: WindowSets, fold: Fold, cfg: ExperimentConfig, variant: str,
             on_epoch: Callable[[EpochStats], None] | None = None) -> FoldResult:
    """Train on the fold's training people, early-stop on its validation people, evaluate on its test people.

    Any error (a class missing from the training people, bad windows, ...) is returned in the
    result, not raised, so the other folds still run.
    """
    epochs: list[EpochStats] = []

    def record(stats: EpochStats) -> None:
        epochs.append(stats)
        if on_epoch is not None:
            on_epoch(stats)

    t0 = time.perf_counter()
    result = FoldResult(variant=variant, fold=fold.index, seed=cfg.train.seed, test=fold.test, seconds=0.0,
                        epochs=epochs)
    try:
        split = DatasetSplit(train=fold.train, validation=fold.validation, test=fold.test, seed=cfg.split.seed)
        missing = sorted(set(split.labelled) - set(windowsets))
        if missing:
            raise ValueError(f"no windows for participants {missing}")
        exp = run_experiment(windowsets, split, cfg.model, cfg.train, cfg.decoding, on_epoch=record)
        result.report, result.best_epoch = exp.test, exp.train.best_epoch
    except Exception as exc:  # reported per fold; the caller decides the exit status
        result.error = f"{type(exc).__name__}: {exc}"
        result.detail = traceback.format_exc()
    result.seconds = time.perf_counter() - t0
    return result
