"""The values of the `model`, `model_evaluation` and `registered_model` assets: typed, frozen records.

The JSON IO manager stores each as its fields (`model_dump(mode="json")`): the same JSON as the dict records these
assets returned before they were typed, so values stored then still load as these types (see `json_io`), and
`har pipeline --json` prints the same. Unknown or missing fields fail validation instead of passing through.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TrainedModel(Record):
    """The `model` asset: the MLflow run and logged model of one training, and how the training went."""

    mlflow_run_id: str
    model_uri: str
    classes: list[str]
    train_windows: int
    validation_windows: int
    best_epoch: int
    epochs_run: int
    best_val_macro_f1: float | None  # None without validation participants
    stopped_early: bool
    device: str
    train_seconds: float


class Scores(Record):
    accuracy: float
    macro_f1: float


class ClassScores(Record):
    precision: float
    recall: float
    f1: float
    support: int


class ParticipantScores(Scores):
    n_windows: int
    window_macro_f1: float | None = None  # each window alone (None: evaluated before decoding existed)
    # the label-free assessment, as an unlabelled person would get it (None: evaluated before calibration existed)
    calibrated: bool | None = None
    estimated_accuracy: float | None = None
    estimated_accuracy_low: float | None = None
    estimated_accuracy_high: float | None = None
    estimated_macro_f1: float | None = None
    windows: int | None = None
    ood_flag: bool | None = None
    ood_reasons: list[str] | None = None
    unlike_training_share: float | None = None
    person_distance: float | None = None
    person_p_value: float | None = None
    flagged: bool | None = None
    flag_reasons: list[str] | None = None


class TimelineScores(Record):
    """`ml.timeline_metrics` of the decoded test recordings, and of their windows classified alone."""

    minutes_correct_share: float
    switches_per_hour_true: float
    switches_per_hour_predicted: float
    labelled_minutes: int
    switches_per_hour_window: float
    minutes_correct_share_window: float


class ModelEvaluation(Record):
    """The `model_evaluation` asset: `ml.experiment.evaluate`'s report on the test participants, and which model."""

    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]]  # [true class][predicted class]
    classification_report: str
    classes: list[str]
    baselines: dict[str, Scores]  # per dummy strategy
    per_participant: dict[str, ParticipantScores]
    excluded_windows: dict[str, int]
    permutation_importance: dict[str, float]  # macro-F1 drop per channel
    test_participants: list[str]
    mlflow_run_id: str
    model_uri: str
    # since recordings are decoded whole (None in evaluations stored before)
    steps: dict[str, float] | None = None  # macro-F1 after each step: window, aligned, decoded, causal
    window_confusion_matrix: list[list[int]] | None = None  # each window alone, frame as it is
    timeline: TimelineScores | None = None
    decoding: dict[str, Any] | None = None  # the decoder (Decoder.describe)
    alignment: dict[str, dict[str, Any]] | None = None  # per test participant
    seconds_per_1000_windows: dict[str, float] | None = None  # align, classify, smooth
    calibration: dict[str, Any] | None = None  # ml.experiment.calibration_report (None: before calibration existed)


class BundleScores(Record):
    """`ml.experiment.score_bundle`: a model scored by the champion gate on the test participants."""

    n: int
    accuracy: float
    macro_f1: float
    excluded_windows: dict[str, int]  # windows of classes the model lacks, per class


class PreviousChampion(Record):
    """The version that held the champion alias when a candidate was registered, with its `BundleScores` on the same
    test participants (None when it could not be scored)."""

    version: int
    run_id: str | None
    n: int | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    excluded_windows: dict[str, int] | None = None


class RegisteredModel(Record):
    """The `registered_model` asset: the registered version and the champion decision."""

    name: str
    version: int
    champion: bool
    decision: Literal["promoted", "already_champion", "not_promoted"]
    reason: str
    candidate: BundleScores
    previous_champion: PreviousChampion | None
    test_participants: list[str]
    model_uri: str  # models:/<name>/<version>
    mlflow_run_id: str
