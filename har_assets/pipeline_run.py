"""The headless pipeline (`har pipeline`): register participants, materialize what is stale, train,
evaluate and register the model, score every participant with the champion, summarise.

Runs through a real Dagster instance (the one in `$HAR_HOME/dagster_home`), so everything it
materializes appears in the UI exactly as if launched there. The model is retrained when some
participant was (re-)materialized, when no model was registered yet, or with `force`; a participant
is re-scored when its files or the champion version changed.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from har_assets.definitions import build_resources
from har_assets.home import HarHome, RawRootUnavailable
from har_assets.orchestration.asset_store import JSON_IO, TABLE_IO, WINDOWS_IO
from har_assets.orchestration.check_gate import failed_blocking_checks, failed_check
from har_assets.orchestration.freshness import latest_materializations, metadata_value, stale_participants
from har_assets.orchestration.overview import OVERVIEW_ASSETS, cohort_overview
from har_assets.orchestration.partitions import STUDY_PARTICIPANTS, participants
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.scoring import SCORING_ASSETS, predictions_version
from har_assets.orchestration.training import (
    TRAINING_ASSETS,
    dataset_split,
    model,
    model_evaluation,
    normalized_windows,
    registered_model,
    scaler,
)
from har_assets.progress import Progress, Silent
from har_assets.raw.scan import raw_root_problem, scan_raw_root

ALL_ASSETS = [*PREPROCESSING_ASSETS, STUDY_PARTICIPANTS, *TRAINING_ASSETS, *SCORING_ASSETS, *OVERVIEW_ASSETS]

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the run log stays in the instance
SUMMARY_FIELDS = {  # summary field -> (asset, metadata key)
    "accelerometer_samples": ("raw_recording", "accelerometer_samples"),
    "gyroscope_samples": ("raw_recording", "gyroscope_samples"),
    "segments": ("fused_recording", "segments"),
    "windows": ("windows", "windows"),
    "windows_per_class": ("windows", "windows_per_class"),
}
PREDICTION_FIELDS = ("model_version", "windows", "dominant_class", "mean_confidence")  # participant_predictions
DRIFT_FIELDS = ("magnitude_ratio", "drifted_channels")  # participant_drift
OVERVIEW_FIELDS = ("windows", "participants_differing", "participants_failing_checks", "participants_missing",
                   "refresh_seconds")  # cohort_overview


def run_pipeline(home: HarHome, instance: dg.DagsterInstance | None = None, force: bool = False,
                 resources: dict[str, Any] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Materialize every stale participant's preprocessing assets, then (re)train, evaluate and register the model
    when something changed; return a per-participant summary plus the model's (`model_summary`).

    `resources` replaces the home's defaults by key (e.g. a smaller `training` config); `progress` hears of each
    stage and participant."""
    instance = instance or dg.DagsterInstance.get()
    progress = progress or Silent()
    resources = {**build_resources(home), **(resources or {})}
    registered = set(instance.get_dynamic_partitions(participants.name))
    problem = raw_root_problem(home.raw, len(registered))
    if problem:
        raise RawRootUnavailable(problem)
    removed = resources["participant_removal"].removed_ids()
    raw = latest_materializations(instance, "raw_recording", sorted(registered))
    scan = scan_raw_root(home.raw, None, settle_s=0.0, removed=removed,
                         registered={p: metadata_value(r, "raw_fingerprint") for p, r in raw.items()})
    found = scan.to_request
    instance.add_dynamic_partitions(participants.name, sorted(set(found) - registered))
    missing = sorted(registered - set(scan.folders) - removed)
    summary: dict[str, Any] = {"home": str(home.root), "participants": {}, "failed": dict(scan.invalid),
                               "materialized": 0, "up_to_date": 0, "removed": scan.removed, "missing": missing}
    stale = dict(found) if force else stale_participants(instance, found, resources["preprocessing"].to_config())
    progress.stage(f"preprocessing ({len(stale)} stale)", len(found))
    for pid, fingerprint in sorted(found.items()):
        progress.step(pid)
        if pid not in stale:
            status = "up-to-date"
            summary["up_to_date"] += 1
        else:
            result = dg.materialize(PREPROCESSING_ASSETS, partition_key=pid, instance=instance, resources=resources,
                                    raise_on_error=False, run_config=QUIET, tags={"har/raw_fingerprint": fingerprint})
            if not result.success:
                summary["failed"][pid] = _failure_message(result)
                continue
            status = "materialized"
            summary["materialized"] += 1
        summary["participants"][pid] = {"status": status, **({"why": stale[pid]} if pid in stale else {})}
    for pid in missing:  # registered, folder gone: kept as it was, not re-read, not re-scored
        summary["participants"][pid] = {"status": "missing"}
    latest = {asset: latest_materializations(instance, asset, sorted(summary["participants"]))
              for asset in {asset for asset, _ in SUMMARY_FIELDS.values()}}
    for pid, entry in summary["participants"].items():
        for field, (asset, key) in SUMMARY_FIELDS.items():
            entry[field] = metadata_value(latest[asset].get(pid), key)
    retrain = (force or summary["materialized"] > 0 or not _stored(resources, "registered_model")
               or _split_has_unregistered(instance, resources))
    progress.stage("training, evaluation, registry" if retrain else "model up to date", 1)
    summary["model"] = run_training(instance, resources) if retrain else model_summary(resources, "up-to-date")
    progress.step(summary["model"]["status"])
    scored = {pid: found[pid] for pid in summary["participants"] if pid in found}
    outcomes = run_scoring(instance, resources, scored, force, progress)
    for pid, outcome in outcomes.items():
        if outcome["status"] == "failed":
            summary["failed"][pid] = f"scoring: {outcome['error']}"
        summary["participants"][pid]["predictions"] = outcome
    changed = summary["model"]["status"] == "trained" or any(o["status"] == "scored" for o in outcomes.values())
    progress.stage("cohort overview", 1)
    summary["overview"] = run_overview(instance, resources, force or retrain or changed, missing)
    progress.step(summary["overview"]["status"])
    return summary


def run_overview(instance: dg.DagsterInstance, resources: dict, changed: bool,
                 missing: list[str] | None = None) -> dict[str, Any]:
    """Refresh cohort_overview when something changed, the missing participants differ from those it shows, or it
    was never made; its headline figures."""
    stored = resources[TABLE_IO].exists(dg.AssetKey("cohort_overview"))
    records = instance.fetch_materializations(dg.AssetKey("cohort_overview"), limit=1).records
    shown_missing = metadata_value(records[0], "missing_participants") if records else None
    status = "up-to-date"
    if changed or not stored or (shown_missing or []) != (missing or []):
        result = dg.materialize(ALL_ASSETS, selection=[cohort_overview], instance=instance, resources=resources,
                                raise_on_error=False, run_config=QUIET)
        if not result.success:
            return {"status": "failed", "error": _failure_message(result)}
        status = "refreshed"
    records = instance.fetch_materializations(dg.AssetKey("cohort_overview"), limit=1).records
    latest = records[0] if records else None
    return {"status": status, "participants": metadata_value(latest, "dagster/row_count"),
            **{k: metadata_value(latest, k) for k in OVERVIEW_FIELDS}}


def run_scoring(instance: dg.DagsterInstance, resources: dict, fingerprints: dict[str, str],
                force: bool = False, progress: Progress | None = None) -> dict[str, dict[str, Any]]:
    """Materialize `participant_predictions` and `participant_drift` for every participant (id -> raw
    fingerprint) not yet scored from these files with the current champion; {} when there is no champion."""
    tracking = resources["mlflow_tracking"]
    champion = tracking.champion()
    if champion is None:
        return {}
    outcomes: dict[str, dict[str, Any]] = {}
    pids = sorted(fingerprints)
    scored = latest_materializations(instance, "participant_predictions", pids)
    progress = progress or Silent()
    progress.stage(f"scoring with v{champion.version}", len(pids))
    for pid in pids:
        progress.step(pid)
        expected = predictions_version(fingerprints[pid], tracking.registered_model_name, champion.version)
        latest = scored.get(pid)
        outcomes[pid] = {"status": "up-to-date"}
        if force or latest is None or (latest.asset_materialization.tags or {}).get("dagster/data_version") != expected:
            result = dg.materialize(ALL_ASSETS, selection=SCORING_ASSETS, partition_key=pid, instance=instance,
                                    resources=resources, raise_on_error=False, run_config=QUIET)
            outcomes[pid] = {"status": "scored"} if result.success else {"status": "failed",
                                                                         "error": _failure_message(result)}
    ok = [pid for pid, outcome in outcomes.items() if outcome["status"] != "failed"]
    pred, drift = (latest_materializations(instance, a, ok) for a in ("participant_predictions", "participant_drift"))
    for pid in ok:
        outcomes[pid] |= {**{k: metadata_value(pred.get(pid), k) for k in PREDICTION_FIELDS},
                          **{k: metadata_value(drift.get(pid), k) for k in DRIFT_FIELDS}}
    return outcomes


def _split_has_unregistered(instance: dg.DagsterInstance, resources: dict) -> bool:
    """The stored split names a participant who is no longer registered (removed from the study)."""
    split = _stored(resources, "dataset_split") or {}
    named = {p for role in ("train", "validation", "test", "unlabelled") for p in split.get(role, [])}
    return bool(named - set(instance.get_dynamic_partitions(participants.name)))


def _stored(resources: dict, asset: str) -> Any:
    return resources[JSON_IO].stored_json(dg.AssetKey(asset))


def run_training(instance: dg.DagsterInstance, resources: dict,
                 tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Split and scaler, normalized windows of every participant that has windows, then model, evaluation and
    registry: the order a "Materialize all" backfill runs them in. Returns `model_summary`; status "skipped"
    when there are too few labelled participants to split (not an error of the run)."""
    def step(selection: list, partition: str | None = None) -> dg.ExecuteInJobResult:
        return dg.materialize(ALL_ASSETS, selection=selection, partition_key=partition, instance=instance,
                              resources=resources, raise_on_error=False, tags=tags)

    result = step([dataset_split, scaler])
    if not result.success and _is_split_impossible(result):
        return {"status": "skipped", "reason": _failure_message(result)}
    registered = instance.get_dynamic_partitions(participants.name) if result.success else []
    rejected = failed_blocking_checks(instance, registered)
    for pid in registered:
        if pid not in rejected and resources[WINDOWS_IO].exists(dg.AssetKey("windows"), pid):
            result = step([normalized_windows], pid)
            if not result.success:
                break
    if result.success:
        result = step([model, model_evaluation, registered_model])
    if not result.success:
        return {"status": "failed", "error": _failure_message(result)}
    return model_summary(resources, "trained")


def _is_split_impossible(result: dg.ExecuteInJobResult) -> bool:
    for event in result.get_step_failure_events():
        user = event.step_failure_data.user_failure_data
        if user is not None and "split_impossible" in (user.metadata or {}):
            return True
    return False


def model_summary(resources: dict, status: str) -> dict[str, Any]:
    """The registered model, its decision and test metrics, from the stored training assets."""
    split, trained, evaluation, registered = (_stored(resources, a) for a in (
        "dataset_split", "model", "model_evaluation", "registered_model"))
    if registered is None or evaluation is None:
        return {"status": "missing"}
    return {
        "status": status,
        "registered_model": registered["name"], "version": registered["version"],
        "champion": registered["champion"], "decision": registered["decision"], "reason": registered["reason"],
        "model_uri": registered["model_uri"], "mlflow_run_id": registered["mlflow_run_id"],
        "split": {k: split[k] for k in ("train", "validation", "test", "unlabelled")} if split else None,
        "best_epoch": trained.get("best_epoch") if trained else None,
        "epochs_run": trained.get("epochs_run") if trained else None,
        "train_seconds": trained.get("train_seconds") if trained else None,
        "test": {
            "accuracy": evaluation["accuracy"], "macro_f1": evaluation["macro_f1"], "windows": evaluation["n"],
            "baselines": evaluation["baselines"],
            "per_participant_accuracy": {p: v["accuracy"] for p, v in evaluation["per_participant"].items()},
        },
    }


def model_summary_lines(summary: dict[str, Any]) -> list[str]:
    """Text lines about the model for `har pipeline`."""
    m = summary.get("model")
    if not m:
        return []
    if m["status"] == "failed":
        return [f"MODEL FAILED: {m['error']}"]
    if m["status"] == "skipped":
        return [f"model: not trained - {m['reason']}"]
    if m["status"] == "missing":
        return ["model: none registered"]
    t = m["test"]
    floor = ", ".join(f"{k} {v['macro_f1']:.3f}" for k, v in t["baselines"].items())
    people = ", ".join(f"{p} {a:.3f}" for p, a in sorted(t["per_participant_accuracy"].items()))
    return [
        f"model {m['registered_model']} v{m['version']} ({m['status']}): "
        f"{'champion' if m['champion'] else 'not champion'} - {m['reason']}",
        f"test participants {', '.join(m['split']['test']) if m['split'] else '?'}: accuracy {t['accuracy']:.3f}, "
        f"macro-F1 {t['macro_f1']:.3f} ({t['windows']} windows); dummy macro-F1: {floor}",
        f"per-participant accuracy: {people}",
    ]


def _failure_message(result: dg.ExecuteInJobResult) -> str:
    """The failed blocking checks (participant, check, values) if any, else the first step failure's reason."""
    failed = [failed_check(e.partition or "?", e) for e in result.get_asset_check_evaluations()
              if not e.passed and e.blocking and e.severity == dg.AssetCheckSeverity.ERROR]
    if failed:
        return "; ".join(f.describe() for f in failed)
    for event in result.get_step_failure_events():
        user = event.step_failure_data.user_failure_data
        if user is not None and user.description:
            return user.description
        error = event.step_failure_data.error
        if error is not None:
            return error.message.strip().splitlines()[0] if error.message else error.cls_name
    return "run failed"
