"""Cross-participant assets: dataset_split → scaler → normalized_windows (per participant) → model →
model_evaluation → registered_model.

Thin shells over har_assets.ml (split, experiment, training, metrics, mlflow_model): they read
config from resources, check that their inputs belong together, log to MLflow through
`MlflowTracking` (see its module for why not dagster-mlflow) and report metadata to the UI.
One materialization of `model` is one MLflow run; `model_evaluation` adds its results to that run.

torch and MLflow are imported inside the asset bodies that use them: every run process loads this
module with the code location, and a preprocessing run should not pay seconds for them.
"""

import dataclasses
import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import numpy as np

from har_assets.ml.datasets import (
    common_channels,
    derive_classes,
    fit_scaler,
    labelled_data,
    labelled_participants,
    windows_fingerprint,
)
from har_assets.ml.hyperparams import EpochStats
from har_assets.ml.mlflow_store import flat_params, log_batch
from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.split import DatasetSplit, SplitError, split_participants
from har_assets.orchestration import automation
from har_assets.orchestration.asset_store import JSON_IO, WINDOWS_IO
from har_assets.orchestration.check_gate import failed_blocking_checks
from har_assets.orchestration.freshness import latest_materializations, metadata_value
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.partitions import STUDY_PARTICIPANTS, participants
from har_assets.orchestration.resources import PreprocessingResource, RawStore
from har_assets.orchestration.retries import TRANSIENT_RETRY
from har_assets.orchestration.tables import rows_table
from har_assets.orchestration.training_records import ModelEvaluation, RegisteredModel, TrainedModel
from har_assets.orchestration.training_resources import TrainingResource
from har_assets.plots.png import png_markdown
from har_assets.signal.windowing import WindowSet

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from har_assets.ml.reliability import Reliability

GROUP = "training"
TRAINING_POOL = "training"  # one training at a time (set the pool's limit in the instance's concurrency config)
ALL_PARTITIONS = dg.AssetIn(metadata={"allow_missing_partitions": True})


def fail(description: str, **metadata: Any) -> dg.Failure:
    return dg.Failure(description=description, metadata=metadata, allow_retries=False)


def scaler_fingerprint(scaler: ChannelScaler) -> str:
    return hashlib.sha256(json.dumps(scaler.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def input_lineage(instance: dg.DagsterInstance, split: DatasetSplit) -> dict[str, dict[str, Any]]:
    """Per labelled participant: its role, the raw files' data version and where its windows came from."""
    pids = sorted(split.labelled)
    raw, win = (latest_materializations(instance, asset, pids) for asset in ("raw_recording", "windows"))
    return {pid: {
        "role": split.role_of(pid),
        "raw_data_version": metadata_value(raw.get(pid), "raw_fingerprint"),
        "windows_sha": split.fingerprints.get(pid),
        "windows_run_id": win[pid].run_id if pid in win else None,
        "windows_materialized_at": win[pid].timestamp if pid in win else None,
    } for pid in split.labelled}


def stale_normalized(instance: dg.DagsterInstance, pids: list[str], scaler: ChannelScaler) -> list[str]:
    """Participants whose stored normalized_windows were made with another scaler."""
    want = scaler_fingerprint(scaler)
    made = latest_materializations(instance, "normalized_windows", pids)
    return [pid for pid in pids if metadata_value(made.get(pid), "scaler_fingerprint") != want]


def unscaled(normalized: dict[str, WindowSet], participants: list[str], scaler: ChannelScaler) -> dict[str, WindowSet]:
    """The participants' normalized windows back in physical units (what decoding and evaluation take)."""
    return {p: dataclasses.replace(normalized[p], X=scaler.inverse_transform(normalized[p].X)) for p in participants}


def require_normalized(context: dg.AssetExecutionContext, split: DatasetSplit, roles: tuple[str, ...],
                       normalized: dict[str, WindowSet], scaler: ChannelScaler) -> None:
    needed = sorted({p for role in roles for p in getattr(split, role)})
    missing = sorted(set(needed) - set(normalized))
    stale = stale_normalized(context.instance, sorted(set(needed) - set(missing)), scaler)
    if missing or stale:
        raise fail(f"normalized_windows is missing for {missing} and was made with another scaler for {stale}: "
                   "materialize normalized_windows for these participants first",
                   missing=missing, stale=stale)


# ---------------------------------------------------------------------------------------------- split


@dg.asset(
    retry_policy=TRANSIENT_RETRY,
    group_name=GROUP, io_manager_key=JSON_IO, kinds={"python"}, code_version="split-1",
    ins={"windows": ALL_PARTITIONS}, deps=[STUDY_PARTICIPANTS],
    description="Train / validation / test participant lists (by participant, never by window), deterministic "
                "from the split seed. Participants without labelled windows are excluded (scored, not trained on). "
                "Its data version hashes the split and the labelled participants' windows, so only new labelled "
                "data changes it and triggers retraining.",
)
def dataset_split(context: dg.AssetExecutionContext, windows: dict[str, WindowSet],
                  training: TrainingResource) -> dg.Output[DatasetSplit]:
    registered = context.instance.get_dynamic_partitions(participants.name)
    missing = sorted(set(registered) - set(windows))
    rejected = failed_blocking_checks(context.instance, sorted(windows))
    for found in rejected.values():
        for failure in found:
            context.log.warning(f"left out of the split: {failure.describe()}")
    windows = {p: w for p, w in windows.items() if p not in rejected}
    labelled, unlabelled = labelled_participants(windows)
    try:
        split = split_participants(labelled, training.split_config(), unlabelled)
    except SplitError as exc:
        raise fail(str(exc), labelled=labelled, unlabelled=unlabelled, missing_windows=missing,
                   split_impossible=True) from exc
    try:
        common_channels({p: windows[p] for p in split.labelled})
    except ValueError as exc:
        raise fail(str(exc), labelled=labelled) from exc
    split = split.model_copy(update={"fingerprints": {p: windows_fingerprint(windows[p]) for p in split.labelled}})
    if missing:
        context.log.warning(f"no windows for participants {missing} (preprocessing failed or not run): left out")
    rows = [[p, split.role_of(p), int(windows[p].labeled.sum()), len(windows[p])] for p in sorted(windows)]
    return dg.Output(split, data_version=dg.DataVersion(split.version()), metadata={
        "train": split.train, "validation": split.validation, "test": split.test,
        "excluded_unlabelled": split.unlabelled, "missing_windows": missing, "unused": split.unused,
        "excluded_failed_checks": dg.MetadataValue.json({p: [f"{f.asset}.{f.check}" for f in found]
                                                         for p, found in rejected.items()}),
        "labelled_participants": len(labelled),
        "participants": rows_table(["participant", "role", "labelled windows", "windows"], rows),
    })


@dg.asset(
    retry_policy=TRANSIENT_RETRY,
    group_name=GROUP, io_manager_key=JSON_IO, kinds={"numpy"}, code_version="scaler-1",
    ins={"windows": ALL_PARTITIONS}, automation_condition=automation.after_split_changed(),
    description="Per-channel z-score fit on the training participants' labelled windows only; travels with the model.",
)
def scaler(context: dg.AssetExecutionContext, dataset_split: DatasetSplit,
           windows: dict[str, WindowSet]) -> dg.Output[ChannelScaler]:
    missing = sorted(set(dataset_split.train) - set(windows))
    if missing:
        raise fail(f"training participants {missing} have no windows: re-materialize dataset_split", missing=missing)
    fitted = fit_scaler(windows, dataset_split.train)
    rows = [[c, float(m), float(s)] for c, m, s in zip(fitted.channels, fitted.mean, fitted.std, strict=True)]
    return dg.Output(fitted, metadata={
        "fit_on_participants": dataset_split.train,
        "windows": fitted.n_windows,
        "scaler_fingerprint": scaler_fingerprint(fitted),
        "channels": rows_table(["channel", "mean", "std"], rows),
    })


@dg.asset(
    retry_policy=TRANSIENT_RETRY,
    partitions_def=participants, group_name=GROUP, io_manager_key=WINDOWS_IO, kinds={"numpy"},
    code_version="normalized-1",
    automation_condition=automation.normalize_condition(),
    description="The participant's windows with the scaler applied: the model's input (every participant, "
                "labelled or not, in the split or not); its metadata says the participant's role in the split.",
)
def normalized_windows(context: dg.AssetExecutionContext, windows: WindowSet, scaler: ChannelScaler,
                       dataset_split: DatasetSplit) -> dg.Output[WindowSet]:
    if tuple(windows.channels) != tuple(scaler.channels):
        raise fail(f"participant '{context.partition_key}': windows have channels {list(windows.channels)} but the "
                   f"scaler expects {list(scaler.channels)}: preprocess all participants with the same config",
                   participant=context.partition_key)
    out = dataclasses.replace(windows, X=scaler.transform(windows.X))
    return dg.Output(out, metadata={
        "windows": len(out),
        "labelled_windows": int(out.labeled.sum()),
        "role": dataset_split.role_of(context.partition_key),
        "scaler_fingerprint": scaler_fingerprint(scaler),
        "max_abs_channel_mean": round(float(np.abs(out.X.mean(axis=(0, 1))).max()), 4) if len(out) else 0.0,
    })


# ---------------------------------------------------------------------------------------------- model


def _log_run_inputs(client: "MlflowClient", run_id: str, split: DatasetSplit, lineage: dict, preprocess: dict,
                    model_cfg: dict, train_cfg: dict) -> None:
    log_batch(client, run_id, params={
        **flat_params("preprocess", preprocess), **flat_params("model", model_cfg), **flat_params("train", train_cfg),
        "split.train": ",".join(split.train), "split.validation": ",".join(split.validation),
        "split.test": ",".join(split.test), "split.seed": split.seed})
    client.log_dict(run_id, split.model_dump(mode="json"), "inputs/split.json")
    client.log_dict(run_id, lineage, "inputs/data_versions.json")
    client.log_dict(run_id, preprocess, "inputs/preprocess_config.json")


@dg.asset(
    retry_policy=TRANSIENT_RETRY,
    group_name=GROUP, io_manager_key=JSON_IO, kinds={"pytorch", "mlflow"}, pool=TRAINING_POOL, code_version="model-2",
    ins={"normalized_windows": ALL_PARTITIONS}, automation_condition=automation.first_model(),
    description="CNN-BiLSTM trained on the training participants' labelled normalized windows, early-stopped on "
                "validation macro-F1, then the decoder of whole recordings learned from the same people (their "
                "upright direction, the sequence model over their windows); one MLflow run with params, split, data "
                "versions, per-epoch metrics and the model (bundled with the scaler, preprocessing config and "
                "decoder).",
)
def model(context: dg.AssetExecutionContext, dataset_split: DatasetSplit, scaler: ChannelScaler,
          normalized_windows: dict[str, WindowSet], training: TrainingResource,
          preprocessing: PreprocessingResource, mlflow_tracking: MlflowTracking) -> dg.Output[TrainedModel]:
    import mlflow

    from har_assets.ml.bundle import ModelBundle
    from har_assets.ml.experiment import fit_decoder, learn_reliability
    from har_assets.ml.mlflow_model import log_bundle
    from har_assets.ml.training import train_model

    split, cfg = dataset_split, preprocessing.to_config()
    if tuple(cfg.channels) != tuple(scaler.channels):
        raise fail(f"the preprocessing config gives channels {list(cfg.channels)} but the windows have "
                   f"{list(scaler.channels)}: re-materialize the preprocessing with this config first")
    require_normalized(context, split, ("train", "validation"), normalized_windows, scaler)
    model_cfg, train_cfg, decoding_cfg = training.model_cfg(), training.train_cfg(), training.decoding_cfg()
    classes = derive_classes(normalized_windows, split.train)
    train = labelled_data(normalized_windows, split.train, classes)
    val = labelled_data(normalized_windows, split.validation, classes)
    lineage = input_lineage(context.instance, split)
    epochs: list[EpochStats] = []
    client = mlflow_tracking.client()
    tags = {"dagster_run_id": context.run.run_id, "har.asset": "model", "har.split_version": split.version()}
    with mlflow_tracking.run(client, f"train-{context.run.run_id[:8]}", tags=tags) as run_id:

        def on_epoch(s: EpochStats) -> None:
            epochs.append(s)
            context.log.info(f"epoch {s.epoch}/{train_cfg.epochs}: train loss {s.train_loss:.4f}"
                             + (f", val loss {s.val_loss:.4f}, val accuracy {s.val_accuracy:.4f}, "
                                f"val macro-F1 {s.val_macro_f1:.4f}" if s.val_macro_f1 is not None else "")
                             + f", {s.seconds:.1f} s")
            log_batch(client, run_id, step=s.epoch, metrics={
                "train_loss": s.train_loss, "val_loss": s.val_loss, "val_accuracy": s.val_accuracy,
                "val_macro_f1": s.val_macro_f1, "epoch_seconds": s.seconds, "lr": s.lr})

        _log_run_inputs(client, run_id, split, lineage, cfg.model_dump(mode="json"),
                        model_cfg.model_dump(mode="json"), train_cfg.model_dump(mode="json"))
        log_batch(client, run_id, params={"classes": ",".join(classes), "train_windows": len(train),
                                          "validation_windows": len(val)})
        result = train_model(train.X, train.y, val.X if len(val) else None, val.y if len(val) else None, classes,
                             model_cfg, train_cfg, on_epoch=on_epoch, scaler=scaler)
        physical = unscaled(normalized_windows, split.train, scaler)
        decoder = fit_decoder(decoding_cfg, physical, split.train, classes, result.model, scaler, train_cfg.seed)
        log_batch(client, run_id, params={f"decoding.{k}": v for k, v in decoder.describe().items()})
        reliability = learn_reliability(
            physical, split.train, classes, model_cfg, train_cfg, decoding_cfg,
            on_fold=lambda i, k, test: context.log.info(f"calibration: model {i + 1}/{k} of the out-of-fold models, "
                                                        f"trained without {', '.join(test)}"))
        log_batch(client, run_id, metrics=reliability_metrics(reliability))
        bundle = ModelBundle(model=result.model, model_config=model_cfg, preprocess=cfg, scaler=scaler,
                             classes=classes, decoder=decoder, reliability=reliability)
        # the cohort's mean window (unscaled, as serving receives it): no person's data in the model's example
        example = np.broadcast_to(scaler.mean, (1, *train.X.shape[1:])).astype(np.float32)
        # MLflow logs a model only into its fluent active run, on its process-global store: for this call alone
        with mlflow_tracking.global_uris(), mlflow.start_run(run_id=run_id):
            info = log_bundle(bundle, input_example=example)
        trained = TrainedModel(
            mlflow_run_id=run_id, model_uri=info.model_uri, classes=classes, train_windows=len(train),
            validation_windows=len(val), best_epoch=result.best_epoch, epochs_run=len(result.history),
            best_val_macro_f1=result.best_val_macro_f1, stopped_early=result.stopped_early, device=result.device,
            train_seconds=round(sum(e.seconds for e in epochs), 2))
        log_batch(client, run_id, metrics={
            "best_epoch": trained.best_epoch, "epochs_run": trained.epochs_run,
            "best_val_macro_f1": trained.best_val_macro_f1, "stopped_early": trained.stopped_early,
            "train_seconds": trained.train_seconds})
    context.log.info(f"logged MLflow run {run_id}, model {info.model_uri}")
    history = [[e.epoch, e.train_loss, e.val_loss if e.val_loss is not None else "-",
                e.val_macro_f1 if e.val_macro_f1 is not None else "-", e.seconds] for e in epochs]
    url = mlflow_tracking.run_url(run_id)
    return dg.Output(trained, metadata={
        "mlflow_run_id": run_id, "model_uri": trained.model_uri, "classes": classes,
        **{k: v for k, v in reliability_metrics(reliability).items() if v is not None},
        "best_val_macro_f1": trained.best_val_macro_f1 if trained.best_val_macro_f1 is not None else float("nan"),
        "best_epoch": trained.best_epoch, "epochs_run": len(epochs), "device": trained.device,
        "train_windows": trained.train_windows, "validation_windows": trained.validation_windows,
        "train_seconds": trained.train_seconds,
        "epochs": rows_table(["epoch", "train loss", "val loss", "val macro-F1", "seconds"], history),
        **({"mlflow_run": dg.MetadataValue.url(url)} if url else {}),
    })


# ----------------------------------------------------------------------------------------- evaluation


def reliability_metrics(reliability: "Reliability") -> dict[str, float | None]:
    """The calibration learned out of fold: temperature, the estimate's band, ECE of the held-out people's decoded
    probabilities before and after (each calibrated without them)."""
    fitted = reliability.fitted_on
    return {"calibration_temperature": reliability.temperature if reliability.calibrated else None,
            "calibration_estimate_band": reliability.estimate_band,
            "calibration_people": fitted.get("people"),
            "out_of_fold_ece_uncalibrated": fitted.get("ece_uncalibrated"),
            "out_of_fold_ece_calibrated": fitted.get("ece_calibrated")}


def _evaluation_metrics(evaluation: ModelEvaluation) -> dict[str, float | None]:
    metrics: dict[str, float | None] = {"test_accuracy": evaluation.accuracy, "test_macro_f1": evaluation.macro_f1}
    for strategy, scores in evaluation.baselines.items():
        metrics |= {f"baseline_{strategy}_accuracy": scores.accuracy, f"baseline_{strategy}_macro_f1": scores.macro_f1}
    metrics |= {f"test_f1.{c}": s.f1 for c, s in evaluation.per_class.items()}
    metrics |= {f"importance.{c}": v for c, v in evaluation.permutation_importance.items()}
    metrics |= {f"test_macro_f1.{step}": v for step, v in (evaluation.steps or {}).items()}
    if evaluation.timeline is not None:
        metrics |= {f"timeline.{k}": v for k, v in evaluation.timeline.model_dump().items()}
    if evaluation.calibration is not None:
        metrics |= {f"test_{k}": evaluation.calibration[k] for k in ("ece_uncalibrated", "ece_calibrated",
                                                                      "estimates_within_0_05")}
    return metrics


@dg.asset(
    retry_policy=TRANSIENT_RETRY,
    group_name=GROUP, io_manager_key=JSON_IO, kinds={"mlflow"}, code_version="evaluation-2",
    ins={"normalized_windows": ALL_PARTITIONS}, automation_condition=automation.after("model"),
    check_specs=[dg.AssetCheckSpec("beats_dummy_baselines", asset="model_evaluation",
                                   description="Test macro-F1 above both dummy classifiers'.")],
    description="The logged model scored on the held-out test participants, each recording decoded whole as it "
                "is served: accuracy, macro-F1 (and after each decoding step), per-class report, confusion matrix, "
                "dummy baselines, per-participant accuracy, minutes labelled correctly, switches per hour predicted "
                "vs true, channel permutation importance; also logged to the model's MLflow run.",
)
def model_evaluation(context: dg.AssetExecutionContext, model: TrainedModel, dataset_split: DatasetSplit,
                     normalized_windows: dict[str, WindowSet],
                     mlflow_tracking: MlflowTracking) -> Iterator[dg.Output | dg.AssetCheckResult]:
    from har_assets.ml.experiment import evaluate
    from har_assets.ml.metrics import confusion_matrix_png
    from har_assets.ml.mlflow_model import run_digest

    split, client, run_id = dataset_split, mlflow_tracking.client(), model.mlflow_run_id
    bundle = mlflow_tracking.load_bundle(model.model_uri, run_digest(client, run_id))
    require_normalized(context, split, ("train", "test"), normalized_windows, bundle.scaler)
    classes = bundle.classes
    train = labelled_data(normalized_windows, split.train, classes)
    try:
        report = evaluate(bundle.model, classes, bundle.scaler, bundle.decoder,
                          unscaled(normalized_windows, split.test, bundle.scaler), train.y, importance_repeats=3,
                          reliability=bundle.reliability)
    except ValueError as exc:
        raise fail(f"cannot evaluate on test participants {split.test}: {exc}") from exc
    evaluation = ModelEvaluation.model_validate(
        report | {"test_participants": split.test, "mlflow_run_id": run_id, "model_uri": model.model_uri})
    with tempfile.TemporaryDirectory() as tmp:
        png = confusion_matrix_png(evaluation.confusion_matrix, classes, Path(tmp) / "confusion_matrix.png",
                                   title=f"Test participants {', '.join(split.test)}")
        image = png.read_bytes()
        log_batch(client, run_id, metrics=_evaluation_metrics(evaluation),
                  tags={"har.test_macro_f1": f"{evaluation.macro_f1:.4f}"})
        client.log_artifact(run_id, str(png), "evaluation")
    client.log_dict(run_id, evaluation.model_dump(mode="json"), "evaluation/report.json")
    client.log_text(run_id, evaluation.classification_report, "evaluation/classification_report.txt")
    floor = max(b.macro_f1 for b in evaluation.baselines.values())
    yield dg.Output(evaluation, metadata=evaluation_metadata(evaluation, image))
    yield dg.AssetCheckResult(check_name="beats_dummy_baselines", passed=evaluation.macro_f1 > floor,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"test_macro_f1": evaluation.macro_f1, "best_baseline_macro_f1": floor})


def evaluation_metadata(evaluation: ModelEvaluation, png: bytes) -> dict[str, Any]:
    per_class = [[c, s.precision, s.recall, s.f1, s.support] for c, s in evaluation.per_class.items()]
    people = [[p, s.n_windows, s.accuracy, s.macro_f1, s.window_macro_f1, s.estimated_accuracy,
               "yes" if s.flagged else "no" if s.flagged is not None else None]
              for p, s in evaluation.per_participant.items()]
    calibration = evaluation.calibration or {}
    timeline = evaluation.timeline
    baselines = [["model", evaluation.accuracy, evaluation.macro_f1]] + [
        [f"dummy ({k})", v.accuracy, v.macro_f1] for k, v in evaluation.baselines.items()]
    importance = sorted(evaluation.permutation_importance.items(), key=lambda kv: -kv[1])
    return {
        "accuracy": evaluation.accuracy, "macro_f1": evaluation.macro_f1, "test_windows": evaluation.n,
        "test_participants": evaluation.test_participants,
        "baseline_most_frequent_macro_f1": evaluation.baselines["most_frequent"].macro_f1,
        "baseline_stratified_macro_f1": evaluation.baselines["stratified"].macro_f1,
        "versus_baselines": rows_table(["classifier", "accuracy", "macro-F1"], baselines),
        "per_class": rows_table(["class", "precision", "recall", "F1", "support"], per_class),
        "per_participant": rows_table(["participant", "windows", "accuracy", "macro-F1",
                                       "macro-F1 window by window", "estimated accuracy (no labels)", "flagged"],
                                      people),
        **({"calibration": rows_table(["", "uncalibrated", "calibrated"], [
            ["expected calibration error", calibration["ece_uncalibrated"], calibration["ece_calibrated"]],
            ["negative log-likelihood", calibration["nll_uncalibrated"], calibration["nll_calibrated"]]]),
            "calibration_temperature": calibration["temperature"],
            "estimates_within_0_05": calibration["estimates_within_0_05"]} if calibration.get("calibrated") else {}),
        "macro_f1_by_step": rows_table(["step", "macro-F1"], [list(kv) for kv in (evaluation.steps or {}).items()]),
        **({"minutes_correct_share": timeline.minutes_correct_share,
            "switches_per_hour": rows_table(["", "switches per hour"], [
                ["true", timeline.switches_per_hour_true], ["decoded", timeline.switches_per_hour_predicted],
                ["window by window", timeline.switches_per_hour_window]])} if timeline else {}),
        "decoding": dg.MetadataValue.json(evaluation.decoding or {}),
        "permutation_importance": rows_table(["channel", "macro-F1 drop"], [list(kv) for kv in importance]),
        "excluded_windows": dg.MetadataValue.json(evaluation.excluded_windows),
        "confusion_matrix": dg.MetadataValue.md(png_markdown(png, "confusion matrix")),
        "mlflow_run_id": evaluation.mlflow_run_id,
    }


# ------------------------------------------------------------------------------------------- registry


@dg.asset(
    retry_policy=TRANSIENT_RETRY,
    group_name=GROUP, io_manager_key=JSON_IO, kinds={"mlflow"}, code_version="registry-2",
    ins={"windows": ALL_PARTITIONS}, automation_condition=automation.after("model_evaluation"),
    description="Registers the model version in the MLflow model registry; moves the champion alias to it only if "
                "its test macro-F1 beats the current champion's on the same test participants (or there is none). "
                "The decision and its reasons are tags on the version.",
)
def registered_model(context: dg.AssetExecutionContext, model: TrainedModel, model_evaluation: ModelEvaluation,
                     dataset_split: DatasetSplit, windows: dict[str, WindowSet], mlflow_tracking: MlflowTracking,
                     raw_store: RawStore) -> dg.Output[RegisteredModel]:
    from har_assets.orchestration.registry import decide_and_register

    missing = sorted(set(dataset_split.test) - set(windows))
    if missing:
        raise fail(f"test participants {missing} have no windows: re-materialize dataset_split", missing=missing)
    result = decide_and_register(mlflow_tracking, model, model_evaluation, dataset_split, windows, raw_store,
                                 context.run.run_id)
    context.log.info(f"{mlflow_tracking.registered_model_name} version {result.version}: {result.reason}")
    previous = result.previous_champion
    champion = result.version if result.champion else previous.version if previous else None
    # the data version is the champion this leaves in place: scoring re-runs only when that changes
    version = dg.DataVersion(f"{result.name}@{mlflow_tracking.champion_alias}=v{champion}")
    return dg.Output(result, data_version=version, metadata={
        "registered_model": result.name, "version": result.version, "champion": result.champion,
        "decision": result.decision, "reason": result.reason, "model_uri": result.model_uri,
        "test_macro_f1": result.candidate.macro_f1,
        "previous_champion": dg.MetadataValue.json(previous.model_dump(mode="json") if previous else {}),
    })


TRAINING_ASSETS = [dataset_split, scaler, normalized_windows, model, model_evaluation, registered_model]

train_and_evaluate_job = dg.define_asset_job(
    "train_and_evaluate",
    selection=dg.AssetSelection.assets(model, model_evaluation, registered_model),
    description="Train on the current split and normalized windows, evaluate on the test participants and register "
                "(champion only if better). Materialize dataset_split, scaler and normalized_windows first "
                "(Materialize all does it in order).",
)
