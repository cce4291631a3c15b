"""Per-participant scoring with the registered champion: `participant_predictions` and `participant_drift`.

Thin shells over har_assets.serving: the same `LoadedModel.predict_recording` as the HTTP API, so
the timeline here and `/predict` on the same samples agree. The predictor (MLflow, ONNX Runtime) is
imported when a model is loaded, not when the code location is.
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dagster as dg
import numpy as np
import polars as pl

from har_assets.inference import timeline
from har_assets.inference.drift import DRIFT_CHECKS, DriftCheck, DriftThresholds, drift_report
from har_assets.inference.label_request import label_request, requested_minutes
from har_assets.ml.label_requests import DEFAULT_MINUTES
from har_assets.ml.timeline_metrics import switches_per_hour
from har_assets.orchestration import automation
from har_assets.orchestration.asset_store import TABLE_IO
from har_assets.orchestration.check_gate import failed_blocking_checks, partitioned_specs
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.partitions import participants
from har_assets.orchestration.preprocessing import failing_clearly
from har_assets.orchestration.pydantic_config import config_class, values_of
from har_assets.orchestration.retries import TRANSIENT_RETRY
from har_assets.orchestration.tables import frame_table, rows_table, tabular_metadata
from har_assets.plots.png import png_markdown
from har_assets.plots.timeline import timeline_png, truth_intervals
from har_assets.raw.recording import RawRecording
from har_assets.signal.pipeline import preprocess

if TYPE_CHECKING:
    from har_assets.inference.predictor import LoadedModel, WindowPredictions

GROUP = "scoring"


def load_champion(mlflow_tracking: MlflowTracking, version: str | None = None) -> "LoadedModel":
    """The version the champion alias points to now (or exactly `version`), from the same registry and
    under the same name and alias that `registered_model` writes; dg.Failure if there is none."""
    from har_assets.inference.predictor import ModelUnavailable, Predictor

    predictor = Predictor(mlflow_tracking.tracking_uri, mlflow_tracking.registered_model_name,
                          mlflow_tracking.champion_alias, version)
    predictor.refresh()
    try:
        return predictor.require()
    except ModelUnavailable as exc:
        raise dg.Failure(description=f"cannot score: {predictor.last_error or exc}. Materialize "
                         "registered_model (a model must become the champion) first.",
                         allow_retries=False) from exc


def predictions_version(raw_fingerprint: str, model_name: str, model_version: str | int) -> str:
    """The data version of participant_predictions: which files, scored by which model version."""
    return f"{raw_fingerprint}-{model_name}-v{model_version}"


def refuse_failed_recording(instance: dg.DagsterInstance, pid: str) -> None:
    """dg.Failure naming check and values when the participant's latest raw_recording failed a blocking check."""
    failed = failed_blocking_checks(instance, [pid], ["raw_recording"]).get(pid)
    if failed:
        raise dg.Failure(description="; ".join(f.describe() for f in failed) + ": not scored until the recording "
                         "is fixed and raw_recording passes its checks", allow_retries=False,
                         metadata={"participant": pid, "failed_checks": [f"{f.asset}.{f.check}" for f in failed]})


_DriftBase = config_class(DriftThresholds, "_DriftBase", dg.ConfigurableResource)


class DriftThresholdsResource(_DriftBase):  # type: ignore[misc,valid-type]
    """Thresholds of the drift checks; the fields are DriftThresholds'."""

    def to_thresholds(self) -> DriftThresholds:
        return DriftThresholds.model_validate(values_of(self, DriftThresholds))


def build_scoring_resources() -> dict[str, Any]:
    """Resources SCORING_ASSETS need beyond the training ones (they share `mlflow_tracking`): default thresholds."""
    return {"drift_thresholds": DriftThresholdsResource()}


@dg.asset(
    retry_policy=TRANSIENT_RETRY,
    partitions_def=participants, group_name=GROUP, io_manager_key=TABLE_IO, code_version="predictions-3",
    kinds={"pytorch", "mlflow"}, deps=["registered_model"], automation_condition=automation.score_condition(),
    description="The participant's activity timeline from the champion model: one row per window (start/end, "
                "label, calibrated confidence and probability of every class, the label of the window alone, the "
                "window's out-of-distribution score), preprocessed with the model's own config, the person's frame "
                "aligned and the recording decoded whole, exactly as POST /predict does; where the person labelled "
                "some minutes, also the label once those are used for the rest (personal_label). Metadata: the "
                "label-free accuracy estimate with its band, the flags (low estimate, data unlike the training "
                "data) and the label request.",
)
def participant_predictions(context: dg.AssetExecutionContext, raw_recording: RawRecording,
                            mlflow_tracking: MlflowTracking) -> dg.Output:
    pid = context.partition_key
    refuse_failed_recording(context.instance, pid)
    model = load_champion(mlflow_tracking)
    with failing_clearly(pid):
        pred = model.predict_recording(raw_recording)
    adapted = pred.adapted_to_labels()
    frame = timeline.timeline_frame(pred, model, personal=adapted if adapted is not pred else None)
    step_s = model.preprocess_config.window_step / model.preprocess_config.target_hz
    request = label_request(pred, DEFAULT_MINUTES, step_s)
    shares = timeline.class_shares(frame, model.classes)
    title = f"{pid}: {model.name} v{model.version}"
    png = timeline_png(frame, title, truth_intervals(raw_recording.labels))
    return dg.Output(
        frame,
        data_version=dg.DataVersion(predictions_version(raw_recording.fingerprint(), model.name, model.version)),
        metadata={
            "participant": pid,
            "model": f"{model.name} v{model.version}",
            "model_version": model.version,
            "windows": frame.height,
            "segments": pred.fusion.segments,
            "dominant_class": max(shares, key=lambda c: shares[c]),
            "mean_confidence": round(float(frame["confidence"].mean()), 4),
            "switches_per_hour": round(switches_per_hour(pred.label_index, pred.windows.segment, step_s), 1),
            "switches_per_hour_window_by_window": round(switches_per_hour(
                pred.window_proba.argmax(axis=1), pred.windows.segment, step_s), 1),
            "orientation": dg.MetadataValue.json(pred.alignment.describe()),
            **reliability_metadata(pred, adapted is not pred, step_s),
            "label_request": rows_table(list(request.columns), [list(r) for r in request.iter_rows()]),
            "label_request_minutes": round(requested_minutes(request), 2),
            "class_shares": dg.MetadataValue.json({c: round(s, 4) for c, s in shares.items()}),
            "class_share_table": rows_table(["class", "windows", "share", "mean confidence"],
                                            timeline.share_rows(shares, frame)),
            "timeline": dg.MetadataValue.md(png_markdown(png, title)),
            "timeline_bytes": len(png),
            **tabular_metadata(frame),
        },
    )


def reliability_metadata(pred: "WindowPredictions", adapted: bool, step_s: float) -> dict[str, Any]:
    """How far to trust the timeline: the label-free estimate with its band, the flags and their reasons, and, for a
    person with labelled windows, the decoded labels' accuracy on them (before they were used) and that they were."""
    a = pred.assessment.describe()
    out: dict[str, Any] = {"calibrated": a["calibrated"], "flagged": a["flagged"],
                           "flag_reasons": dg.MetadataValue.json(a["flag_reasons"])}
    if a.get("estimated_accuracy") is not None:
        out |= {"estimated_accuracy": a["estimated_accuracy"],
                "estimated_accuracy_band": f"{a['estimated_accuracy_low']:.3f} - {a['estimated_accuracy_high']:.3f}"}
        if a.get("estimated_macro_f1") is not None:
            out["estimated_macro_f1"] = a["estimated_macro_f1"]
    if a.get("ood_flag") is not None:
        out |= {"ood_flag": a["ood_flag"], "unlike_training_share": a["unlike_training_share"]}
        if a.get("person_distance") is not None:
            out |= {"ood_person_distance": a["person_distance"], "ood_person_p_value": a["person_p_value"]}
    y = pred.true_index
    if (y >= 0).any():
        out |= {"labelled_minutes": round(float((y >= 0).sum()) * step_s / 60, 2),
                "accuracy_on_labelled_windows": round(float((pred.label_index[y >= 0] == y[y >= 0]).mean()), 4),
                "adapted_to_labels": adapted}
    return out


def _check_results(outcomes: list[DriftCheck]) -> Iterator[dg.AssetCheckResult]:
    for r in outcomes:
        yield dg.AssetCheckResult(check_name=r.name, passed=r.passed, metadata={"detail": r.detail, **r.values},
                                  severity=dg.AssetCheckSeverity.ERROR if r.severe else dg.AssetCheckSeverity.WARN)


@dg.asset(
    retry_policy=TRANSIENT_RETRY,
    partitions_def=participants, group_name=GROUP, io_manager_key=TABLE_IO, code_version="drift-1", kinds={"numpy"},
    automation_condition=automation.after("participant_predictions"),
    check_specs=partitioned_specs("participant_drift", {n: (desc, False) for n, (desc, _) in DRIFT_CHECKS.items()}),
    description="The participant's preprocessed signal statistics (per-channel mean/std, acceleration magnitude) "
                "and predicted class shares next to the training data's (the scaler in the model bundle); the "
                "checks fail when they differ beyond the drift_thresholds resource's limits.",
)
def participant_drift(context: dg.AssetExecutionContext, raw_recording: RawRecording,
                      participant_predictions: pl.DataFrame, mlflow_tracking: MlflowTracking,
                      drift_thresholds: DriftThresholdsResource) -> Iterator[dg.Output | dg.AssetCheckResult]:
    pid = context.partition_key
    model = load_champion(mlflow_tracking, version=str(participant_predictions["model_version"][0]))
    with failing_clearly(pid):
        windows, _ = preprocess(raw_recording, model.preprocess_config)
    shares = timeline.class_shares(participant_predictions, model.classes)
    report = drift_report(windows.X, model.bundle.scaler, shares, len(windows), drift_thresholds.to_thresholds())
    for r in report.outcomes:
        if not r.passed:
            (context.log.error if r.severe else context.log.warning)(f"{pid}: {r.name} failed: {r.detail}")
    yield dg.Output(report.channels, metadata={
        "participant": pid,
        "model": f"{model.name} v{model.version}",
        "windows": len(windows),
        "rms_acceleration_m_s2": round(report.serving_magnitude, 4),
        "training_rms_acceleration_m_s2": round(report.train_magnitude, 4),
        "magnitude_ratio": round(report.magnitude_ratio, 4),
        "drifted_channels": int(report.channels["drifted"].sum()),
        "max_class_share": round(float(np.max(list(shares.values()))), 4),
        "class_shares": dg.MetadataValue.json({c: round(s, 4) for c, s in shares.items()}),
        "channel_stats": frame_table(report.channels),
        **tabular_metadata(report.channels),
    })
    yield from _check_results(report.outcomes)


SCORING_ASSETS = [participant_predictions, participant_drift]
