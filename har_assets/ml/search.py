"""Hyper-parameter search with Optuna over model, optimisation and preprocessing parameters.

Pure: the caller supplies the objective's data and does the tracking. The study lives in an RDB
storage (SQLite by default), so a search that was stopped resumes where it was: `n_trials` is
the number of finished trials the study should reach, and a trial left RUNNING by a killed
process is failed by its missed heartbeat and retried once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

from har_assets.config import GravityMode, PreprocessConfig
from har_assets.ml.hyperparams import EpochStats, ModelConfig, TrainConfig

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class SearchConfig(BaseModel):
    """The study and its search space (each list is a categorical choice; lr is log-uniform)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    study_name: str = Field("har-search", min_length=1, description="Optuna study (resumed if it exists).")
    n_trials: int = Field(20, ge=1, description="Finished trials the study should reach (resume-aware).")
    timeout_s: float | None = Field(None, gt=0, description="Stop starting new trials after this many seconds.")
    seed: int = Field(0, ge=0, description="Sampler seed.")
    epochs: int | None = Field(None, ge=1, description="Epoch cap per trial (default: the training config's).")
    validation_share: float = Field(
        0.15, gt=0, lt=1, description="Share of labelled participants the trials are scored on, when the training "
        "split has no validation participants of its own (trials are ranked by validation macro-F1)."
    )
    gravity: list[GravityMode] = Field(default_factory=lambda: list(GravityMode), min_length=1)
    window_step: list[int] = Field(default_factory=lambda: [50, 100], min_length=1)
    conv_filters: list[int] = Field(default_factory=lambda: [32, 64, 96], min_length=1)
    kernel_size: list[int] = Field(default_factory=lambda: [3, 5, 7], min_length=1)
    lstm_units: list[int] = Field(default_factory=lambda: [32, 64, 96], min_length=1)
    dropout_min: float = Field(0.1, ge=0, lt=1)
    dropout_max: float = Field(0.5, ge=0, lt=1)
    lr_min: float = Field(3e-4, gt=0)
    lr_max: float = Field(3e-3, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> SearchConfig:
        if self.dropout_min > self.dropout_max or self.lr_min > self.lr_max:
            raise ValueError("each *_min must not exceed its *_max")
        return self


def suggest(trial: optuna.Trial, space: SearchConfig, pre: PreprocessConfig, model: ModelConfig,
            train: TrainConfig) -> tuple[PreprocessConfig, ModelConfig, TrainConfig]:
    """The trial's configs: the base configs with the searched parameters replaced."""
    pre = PreprocessConfig.model_validate(pre.model_dump() | {
        "gravity": trial.suggest_categorical("gravity", [g.value for g in space.gravity]),
        "window_step": trial.suggest_categorical("window_step", space.window_step),
    })
    model = ModelConfig.model_validate(model.model_dump() | {
        "conv_filters": trial.suggest_categorical("conv_filters", space.conv_filters),
        "kernel_size": trial.suggest_categorical("kernel_size", space.kernel_size),
        "lstm_units": trial.suggest_categorical("lstm_units", space.lstm_units),
        "dropout": trial.suggest_float("dropout", space.dropout_min, space.dropout_max),
    })
    train = TrainConfig.model_validate(train.model_dump() | {
        "lr": trial.suggest_float("lr", space.lr_min, space.lr_max, log=True),
        "epochs": space.epochs or train.epochs,
    })
    return pre, model, train


def open_study(storage_url: str, space: SearchConfig) -> optuna.Study:
    """Create or load the study (maximising validation macro-F1) in an RDB storage with heartbeats."""
    if storage_url.startswith("sqlite:///"):
        Path(storage_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and exactly what resuming needs
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            storage_url, heartbeat_interval=60, grace_period=180,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    study = optuna.create_study(study_name=space.study_name, storage=storage, direction="maximize",
                                load_if_exists=True,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=3))
    # a resumed study gets a shifted sampler seed, so it does not replay the first session's suggestions
    done = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=space.seed + done, n_startup_trials=5)
    return study


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_study(study: optuna.Study, objective: Callable[[optuna.Trial], float], space: SearchConfig) -> int:
    """Run trials until the study has `n_trials` finished ones (or the timeout); returns how many ran now."""
    before = len(study.get_trials(deepcopy=False))
    remaining = space.n_trials - finished_trials(study)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=space.timeout_s,
                       callbacks=[optuna.study.MaxTrialsCallback(space.n_trials, states=FINISHED)])
    return len(study.get_trials(deepcopy=False)) - before


def pruning_callback(trial: optuna.Trial, then: Callable[[EpochStats], None] | None = None
                     ) -> Callable[[EpochStats], None]:
    """An `on_epoch` for train_model: reports validation macro-F1 and prunes hopeless trials."""

    def on_epoch(stats: EpochStats) -> None:
        if then is not None:
            then(stats)
        if stats.val_macro_f1 is not None:
            trial.report(stats.val_macro_f1, stats.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {stats.epoch}")

    return on_epoch
