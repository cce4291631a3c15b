"""Model and training hyper-parameters, and per-epoch statistics: plain data, no torch import.

Kept apart from the network and the training loop so that configs can be read, validated and shown
(Dagster resources, the Launchpad, MLflow params) without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelConfig(BaseModel):
    """Architecture hyper-parameters (they travel with the model, e.g. as MLflow params)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conv_filters: int = Field(64, ge=1, description="Output channels of every Conv1d block.")
    kernel_size: int = Field(5, ge=1, description="Temporal kernel size of the convolutions (samples).")
    conv_layers: int = Field(2, ge=1, le=8, description="Conv blocks; each halves the time axis (max-pool 2).")
    lstm_units: int = Field(64, ge=1, description="Hidden units per direction of the bidirectional LSTM.")
    lstm_layers: int = Field(1, ge=1, le=4, description="Stacked LSTM layers.")
    dropout: float = Field(0.3, ge=0, lt=1, description="Dropout before the classifier (and between LSTM layers).")


class TrainConfig(BaseModel):
    """Optimisation hyper-parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(100, ge=1, description="Epochs (the most, when a validation set stops training early).")
    batch_size: int = Field(64, ge=2, description="Training mini-batch size.")
    lr: float = Field(1e-3, gt=0, description="Initial learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="Weight decay (decoupled for AdamW).")
    optimizer: Literal["adamw", "adam"] = "adamw"
    class_weighting: Literal["none", "balanced"] = Field(
        "balanced", description="Weight the loss by inverse training class frequency."
    )
    patience: int = Field(5, ge=1, description="Stop after this many epochs without a better validation macro-F1.")
    lr_schedule: Literal["constant", "cosine", "onecycle"] = Field(
        "cosine", description="Learning rate over the epochs: constant, cosine annealing to 0, or one-cycle "
        "(warm-up to lr, then annealing); stepped per batch over `epochs`."
    )
    augment_rotation_deg: float = Field(
        45.0, ge=0, le=180, description="Rotate each training window's sensor frame (every xyz triplet together) "
        "by a random angle up to this many degrees about a random axis: the watch sits differently on each wrist."
    )
    augment_scale: float = Field(
        0.0, ge=0, lt=1, description="Scale each training window's amplitude by a random factor in "
        "[1 - augment_scale, 1 + augment_scale] (sensor gain, body size)."
    )
    seed: int = Field(0, ge=0, description="Seed for initialisation and shuffling (bitwise reproducible on CPU).")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads during training (None: unchanged).")



class DecodingConfig(BaseModel):
    """How a person's whole recording becomes activities: their own orientation reference, then smoothing over time.

    Both are learned at training time (the training people's upright direction and label sequences) and travel
    with the model; a model registered before they existed decodes window by window, as it was trained.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    orientation: Literal["none", "upright"] = Field(
        "upright", description="upright: turn each person's (each recording's) device frame so that their gravity "
        "direction while moving lies where the training people's did; found from their unlabelled windows only.")
    orientation_min_sway: float = Field(
        1.0, gt=0, description="A window 'moves' when its acceleration magnitude has at least this standard "
        "deviation (m/s²); the upright direction is the mean gravity direction of the moving windows.")
    orientation_min_windows: int = Field(
        5, ge=1, description="Fewer moving windows than this: the person's frame is left as it is.")
    smoothing: Literal["none", "hmm", "gru"] = Field(
        "gru", description="How windows are joined over time, inside each gap-free segment (never across a gap): "
        "gru: a small GRU reads the windows' embeddings in order, trained on the training people's sequences; "
        "hmm: a hidden Markov model whose transitions are counted in their label sequences; none: window by "
        "window.")
    transition_pseudocount: float = Field(
        1.0, gt=0, description="hmm: added to every transition count, so no switch between classes is impossible.")
    sequence_inputs: Literal["embedding", "log_proba"] = Field(
        "embedding", description="gru: what it reads per window: the classifier's embedding (pooled LSTM output) "
        "or its log-probabilities.")
    sequence_hidden: int = Field(32, ge=1, description="gru: hidden units per direction.")
    sequence_length: int = Field(
        32, ge=2, description="gru: windows per training chunk (consecutive windows of one segment, half "
        "overlapping).")
    sequence_epochs: int = Field(30, ge=1, description="gru: training epochs over the chunks.")
    calibration_folds: int = Field(
        3, ge=0, description="Calibrate the decoded probabilities (and learn how far the label-free accuracy estimate "
        "errs) on the training people's recordings decoded by models trained without them, in this many folds of "
        "people (each fold trains one more model); 0: no calibration, no estimate.")
    flag_accuracy_below: float = Field(
        0.8, ge=0, le=1, description="A scored person whose label-free accuracy estimate is below this is flagged.")


@dataclass(frozen=True)
class EpochStats:
    """One epoch. The validation fields are None when there is no validation set."""

    epoch: int  # 1-based
    train_loss: float
    val_loss: float | None
    val_accuracy: float | None
    val_macro_f1: float | None
    seconds: float
    lr: float
