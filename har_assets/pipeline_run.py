"""The headless pipeline (`har pipeline`): register participants, preprocess the stale ones, then ask Dagster what
to run (the automation conditions the daemon's sensors evaluate) and run it, until nothing more is requested.

Runs through a real Dagster instance (the one in `$HAR_HOME/dagster_home`), so everything it materializes appears
in the UI exactly as if launched there, and the daemon and `har pipeline` take the same decisions: which
participants are stale (`freshness.stale_participants`, as `new_participant_sensor`), when to re-split and retrain
(`dataset_split`'s data version, at most once per `HAR_RETRAIN_CRON` interval; later models when
`retrain_trigger.retrain_check` says retraining pays, as `retrain_when_it_pays` asks), whom to normalize and score
and when to refresh the cohort overview (the assets' automation conditions, `orchestration/automation.py`). The
evaluation cursor and the evidence last retrained on are kept in the instance between invocations, as the daemon
keeps its sensors' cursors. `force` materializes everything, in dependency order ("Materialize all").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from har_assets.definitions import ASSETS, build_definitions, build_resources, retrain_policy
from har_assets.home import HarHome, RawRootUnavailable
from har_assets.ml.split import DatasetSplit
from har_assets.orchestration.asset_store import JSON_IO
from har_assets.orchestration.check_gate import failed_blocking_checks, failed_check
from har_assets.orchestration.freshness import latest_materializations, metadata_value, stale_participants
from har_assets.orchestration.partitions import participants
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.retrain_trigger import REASON_TAG, retrain_check
from har_assets.orchestration.training_records import ModelEvaluation, RegisteredModel, TrainedModel
from har_assets.progress import Progress, Silent
from har_assets.raw.scan import raw_root_problem, scan_raw_root
from har_assets.settings import HarSettings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the run log stays in the instance
TRIGGER = {"har/trigger": "har pipeline"}  # on every run it launches
CURSOR_KEY = "har/pipeline/automation_cursor"  # in the instance's key-value store, as the daemon keeps its cursors
RETRAIN_KEY = "har/pipeline/retrain_cursor"  # the evidence last retrained on (retrain_when_it_pays's cursor)
RETRAIN_ASSETS = {dg.AssetKey(k): {None} for k in ("model", "model_evaluation", "registered_model")}
MAX_ROUNDS = 12  # evaluations of one invocation; the longest chain (split -> ... -> overview) needs four
ORDER = [key for asset in ASSETS for key in (asset.keys if isinstance(asset, dg.AssetsDefinition) else [asset.key])]
SUMMARY_FIELDS = {  # summary field -> (asset, metadata key)
    "accelerometer_samples": ("raw_recording", "accelerometer_samples"),
    "gyroscope_samples": ("raw_recording", "gyroscope_samples"),
    "segments": ("fused_recording", "segments"),
    "windows": ("windows", "windows"),
    "windows_per_class": ("windows", "windows_per_class"),
}
PREDICTION_FIELDS = ("model_version", "windows", "dominant_class", "mean_confidence", "estimated_accuracy",
                     "estimated_accuracy_band", "estimated_macro_f1", "flagged", "flag_reasons",
                     "label_request_minutes")  # participant_predictions
DRIFT_FIELDS = ("magnitude_ratio", "drifted_channels")  # participant_drift
OVERVIEW_FIELDS = ("windows", "participants_differing", "participants_failing_checks", "participants_missing",
                   "participants_flagged", "refresh_seconds")  # cohort_overview

@dataclass
class Ran:
    """What one invocation ran: materialized and failed (asset key, partition or None), with each failure's reason."""

    upstream: dict[dg.AssetKey, set[dg.AssetKey]]  # every asset an asset reads, directly or not
    group: dict[dg.AssetKey, str]  # its asset group: one automation sensor's
    partitioned: set[dg.AssetKey]  # the assets partitioned by participant
    done: set[tuple[dg.AssetKey, str | None]] = field(default_factory=set)
    failed: dict[tuple[dg.AssetKey, str | None], str] = field(default_factory=dict)
    split_impossible: str | None = None

    def materialized(self, asset: str, partition: str | None = None) -> bool:
        return (dg.AssetKey(asset), partition) in self.done

    def failure(self, assets: Iterable[dg.AssetKey], partition: str | None = None) -> str | None:
        return next((self.failed[(k, partition)] for k in assets if (k, partition) in self.failed), None)


def run_pipeline(home: HarHome, instance: dg.DagsterInstance | None = None, force: bool = False,
                 resources: dict[str, Any] | None = None, progress: Progress | None = None,
                 settings: HarSettings | None = None) -> dict[str, Any]:
    """Register and preprocess the stale participants, then run what the automation conditions request until
    nothing is; return a per-participant summary plus the model's (`model_summary`) and the overview's.

    `resources` replaces the home's defaults by key (e.g. a smaller `training` config); `progress` hears of each
    stage and participant; `settings` name the registered model and the retrain cron (default: the defaults)."""
    instance = instance or dg.DagsterInstance.get()
    progress = progress or Silent()
    settings = settings or HarSettings(home=home.root)
    resources = {**build_resources(home, settings.model_name, settings.model_alias), **(resources or {})}
    defs = build_definitions(settings, resources)
    registered = set(instance.get_dynamic_partitions(participants.name))
    problem = raw_root_problem(home.raw, len(registered))
    if problem:
        raise RawRootUnavailable(problem)
    _fail_orphaned_runs(instance)
    ran = _ran(defs)
    cursor = _stored_cursor(instance)
    pending: dict[dg.AssetKey, set[str | None]] = {}
    if cursor is None:  # the instance's first evaluation: what changes from here on is new to the next one
        pending, cursor = _evaluate(defs, instance, None)  # (what it requests runs after preprocessing)
        _keep_cursor(instance, cursor)  # a killed first invocation still sees its own changes in the next one
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
            summary["up_to_date"] += 1
            summary["participants"][pid] = {"status": "up-to-date"}
            continue
        result = dg.materialize(PREPROCESSING_ASSETS, partition_key=pid, instance=instance, resources=resources,
                                raise_on_error=False, run_config=QUIET,
                                tags={**TRIGGER, "har/raw_fingerprint": fingerprint})
        if not result.success:
            summary["failed"][pid] = _failure_message(result)
            continue
        summary["materialized"] += 1
        summary["participants"][pid] = {"status": "materialized", "why": stale[pid]}
    for pid in missing:  # registered, folder gone: kept as it was, not re-read, not re-scored
        summary["participants"][pid] = {"status": "missing"}
    retrained = "--force" if force else None
    if force:
        _run(_everything_after_preprocessing(instance, ran), instance, resources, ran, progress)
    policy, asked = retrain_policy(settings), _stored_text(instance, RETRAIN_KEY)
    for _ in range(MAX_ROUNDS):
        requested, evaluated = _evaluate(defs, instance, cursor)
        requested = {k: requested.get(k, set()) | pending.get(k, set()) for k in {*requested, *pending}}
        pending, check = {}, None
        if not requested:  # the conditions are done: does retraining pay, on inputs now current?
            check = retrain_check(instance, policy, asked)
            requested = RETRAIN_ASSETS if check.request else {}
        if requested:
            _run(requested, instance, resources, ran, progress, tags={REASON_TAG: check.reason} if check else None)
        # kept only once its runs are done: what a killed invocation requested is requested again by the next
        cursor = evaluated
        _keep_cursor(instance, cursor)
        if check and check.key:  # retrained on this evidence: not asked for again
            retrained, asked = check.reason, check.key
            instance.run_storage.set_cursor_values({RETRAIN_KEY: asked})
        if not requested:
            break
    else:
        raise RuntimeError(f"the automation conditions still request runs after {MAX_ROUNDS} evaluations")
    assert check is not None  # the last round asked whether retraining pays, and nothing was requested
    _summarize(summary, instance, resources, ran)
    summary["model"]["retraining"] = (f"retraining asked for: {retrained}" if retrained
                                      else "the first model, trained with the first split" if ran.materialized("model")
                                      else check.reason)
    if summary["materialized"] and summary["model"]["status"] == "up-to-date" and not ran.materialized("dataset_split"):
        summary["model"]["note"] = (f"new windows reach the split after the next '{settings.retrain_cron}' tick "
                                    "(HAR_RETRAIN_CRON), as the daemon does; --force retrains now")
    return summary


def _stored_text(instance: dg.DagsterInstance, key: str) -> str | None:
    return instance.run_storage.get_cursor_values({key}).get(key)


def _stored_cursor(instance: dg.DagsterInstance) -> Any:
    text = _stored_text(instance, CURSOR_KEY)
    return dg.deserialize_value(text) if text else None


def _fail_orphaned_runs(instance: dg.DagsterInstance) -> None:
    """Mark failed the runs an earlier `har pipeline` launched and never finished (it was killed: it ran them in its
    own process, and one `har pipeline` holds a home at a time): left STARTED, they would keep the automation
    conditions, and the next run of their pool (`training`), waiting for them forever. Their pool slots are
    freed as the daemon's run monitoring frees a dead run's."""
    for run in instance.get_runs(filters=dg.RunsFilter(tags=TRIGGER, statuses=[
            dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED])):
        instance.report_run_failed(run, "the har pipeline that ran it was stopped before it finished")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def _keep_cursor(instance: dg.DagsterInstance, cursor: Any) -> None:
    instance.run_storage.set_cursor_values({CURSOR_KEY: dg.serialize_value(cursor)})


def _evaluate(defs: dg.Definitions, instance: dg.DagsterInstance,
              cursor: Any) -> tuple[dict[dg.AssetKey, set[str | None]], Any]:
    """One evaluation of every asset's automation condition: (asset -> requested partitions, the next cursor)."""
    result = dg.evaluate_automation_conditions(defs, instance, cursor=cursor)
    requested = {key: set(result.get_requested_partitions(key)) for key in ORDER}
    return {k: v for k, v in requested.items() if v}, result.cursor


def _ran(defs: dg.Definitions) -> Ran:
    """An empty record, with what it needs to know of the asset graph."""
    specs = defs.resolve_all_asset_specs()
    direct = {spec.key: {dep.asset_key for dep in spec.deps} for spec in specs}
    upstream: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for key in ORDER:  # dependencies first
        upstream[key] = set().union(*({dep} | upstream.get(dep, set()) for dep in direct.get(key, set())))
    return Ran(upstream=upstream, group={s.key: s.group_name or "" for s in specs},
               partitioned={s.key for s in specs if s.partitions_def})


def _everything_after_preprocessing(instance: dg.DagsterInstance, ran: Ran) -> dict[dg.AssetKey, set[str | None]]:
    """What "Materialize all" runs after preprocessing: every unpartitioned asset, and the partitioned ones for each
    participant whose windows are stored and passed their blocking checks (as the conditions require)."""
    registered = instance.get_dynamic_partitions(participants.name)
    ready = set(latest_materializations(instance, "windows", registered)) - set(failed_blocking_checks(instance,
                                                                                                       registered))
    skip = {k for a in PREPROCESSING_ASSETS for k in a.keys} | {dg.AssetKey("study_participants")}
    return {key: (set(ready) if key in ran.partitioned else {None}) for key in ORDER if key not in skip}


def _run(requested: dict[dg.AssetKey, set[str | None]], instance: dg.DagsterInstance, resources: dict,
         ran: Ran, progress: Progress | None = None, tags: dict[str, str] | None = None) -> None:
    """Materialize the requested asset partitions as the daemon does: what one asset group's sensor requests in a
    tick is one backfill, run in dependency order (consecutive unpartitioned assets in one run, consecutive
    partitioned ones in one run per participant), and an asset whose upstream failed in that backfill is not run.
    `progress` hears of the runs (one stage: the requested assets); `tags` go on each run besides TRIGGER."""
    runs: list[tuple[str, list[dg.AssetKey], set[str | None]]] = []  # (asset group, assets, partitions)
    for group in dict.fromkeys(ran.group[k] for k in ORDER if k in requested):
        for key in (k for k in ORDER if k in requested and ran.group[k] == group):
            parts = requested[key]
            if runs and runs[-1][0] == group and (None in runs[-1][2]) == (None in parts):
                runs[-1][1].append(key)
                runs[-1][2].update(parts)
            else:
                runs.append((group, [key], set(parts)))
    progress = progress or Silent()
    progress.stage(", ".join(k.to_user_string() for k in ORDER if k in requested),
                   sum(len(parts) for _, _, parts in runs))
    failed_here: set[tuple[dg.AssetKey, str | None]] = set()  # in this group's backfill
    for i, (group, keys, parts) in enumerate(runs):
        if i and runs[i - 1][0] != group:
            failed_here = set()
        for partition in sorted(parts, key=str):
            progress.step(partition or "all participants")
            selection = [k for k in keys if partition in requested[k]
                         and not any(u in ran.upstream[k] and p in (partition, None) for u, p in failed_here)]
            if not selection:
                continue
            result = dg.materialize(ASSETS, selection=selection, partition_key=partition, instance=instance,
                                    resources=resources, raise_on_error=False, run_config=QUIET,
                                    tags={**TRIGGER, **(tags or {})})
            done = {(e.asset_key, e.partition) for e in result.get_asset_materialization_events()}
            ran.done |= done
            if not result.success:
                reason = _failure_message(result)
                failed_here |= {(k, partition) for k in selection if (k, partition) not in done}
                for key in (k for k in selection if (k, partition) not in done):
                    blocked = [u for u in selection if u in ran.upstream[key] and (u, partition) not in done]
                    ran.failed[(key, partition)] = (f"not run: {blocked[0].to_user_string()} failed: {reason}"
                                                    if blocked else reason)
                if dg.AssetKey("dataset_split") in selection and _is_split_impossible(result):
                    ran.split_impossible = reason


def _summarize(summary: dict[str, Any], instance: dg.DagsterInstance, resources: dict, ran: Ran) -> None:
    """The per-participant figures, predictions and drift, the model's outcome and the cohort overview's."""
    people = sorted(summary["participants"])
    latest = {asset: latest_materializations(instance, asset, people)
              for asset in {asset for asset, _ in SUMMARY_FIELDS.values()}}
    pred, drift = (latest_materializations(instance, a, people) for a in ("participant_predictions",
                                                                          "participant_drift"))
    scoring = [dg.AssetKey("participant_predictions"), dg.AssetKey("participant_drift")]
    for pid, entry in summary["participants"].items():
        for name, (asset, key) in SUMMARY_FIELDS.items():
            entry[name] = metadata_value(latest[asset].get(pid), key)
        error = ran.failure(scoring, pid)
        if error:
            summary["failed"][pid] = f"scoring: {error}"
            entry["predictions"] = {"status": "failed", "error": error}
        elif pid in pred and entry["status"] != "missing":
            entry["predictions"] = {"status": "scored" if ran.materialized("participant_predictions", pid)
                                    else "up-to-date",
                                    **{k: metadata_value(pred.get(pid), k) for k in PREDICTION_FIELDS},
                                    **{k: metadata_value(drift.get(pid), k) for k in DRIFT_FIELDS}}
    if ran.split_impossible:
        summary["model"] = {"status": "skipped", "reason": ran.split_impossible}
    elif error := next((why for (key, _), why in ran.failed.items() if ran.group[key] == "training"), None):
        summary["model"] = {"status": "failed", "error": error}
    else:
        summary["model"] = model_summary(resources, "trained" if ran.materialized("registered_model")
                                         else "up-to-date")
    summary["overview"] = overview_summary(instance, ran)


def overview_summary(instance: dg.DagsterInstance, ran: Ran) -> dict[str, Any]:
    """The cohort overview's status in this invocation and its headline figures."""
    error = ran.failure([dg.AssetKey("cohort_overview")])
    if error:
        return {"status": "failed", "error": error}
    records = instance.fetch_materializations(dg.AssetKey("cohort_overview"), limit=1).records
    latest = records[0] if records else None
    return {"status": "refreshed" if ran.materialized("cohort_overview") else "up-to-date",
            "participants": metadata_value(latest, "dagster/row_count"),
            **{k: metadata_value(latest, k) for k in OVERVIEW_FIELDS}}


def _is_split_impossible(result: dg.ExecuteInJobResult) -> bool:
    for event in result.get_step_failure_events():
        user = event.step_failure_data.user_failure_data
        if user is not None and "split_impossible" in (user.metadata or {}):
            return True
    return False


def model_summary(resources: dict, status: str) -> dict[str, Any]:
    """The registered model, its decision and test metrics, from the stored training assets."""
    store = resources[JSON_IO]
    split = store.stored(dg.AssetKey("dataset_split"), DatasetSplit)
    trained = store.stored(dg.AssetKey("model"), TrainedModel)
    evaluation = store.stored(dg.AssetKey("model_evaluation"), ModelEvaluation)
    registered = store.stored(dg.AssetKey("registered_model"), RegisteredModel)
    if registered is None or evaluation is None:
        return {"status": "missing"}
    return {
        "status": status,
        "registered_model": registered.name, "version": registered.version,
        "champion": registered.champion, "decision": registered.decision, "reason": registered.reason,
        "model_uri": registered.model_uri, "mlflow_run_id": registered.mlflow_run_id,
        "split": {"train": split.train, "validation": split.validation, "test": split.test,
                  "unlabelled": split.unlabelled} if split else None,
        "best_epoch": trained.best_epoch if trained else None,
        "epochs_run": trained.epochs_run if trained else None,
        "train_seconds": trained.train_seconds if trained else None,
        "test": {
            "accuracy": evaluation.accuracy, "macro_f1": evaluation.macro_f1, "windows": evaluation.n,
            "baselines": {k: v.model_dump() for k, v in evaluation.baselines.items()},
            "per_participant_accuracy": {p: v.accuracy for p, v in evaluation.per_participant.items()},
            "macro_f1_by_step": evaluation.steps,
            "timeline": evaluation.timeline.model_dump() if evaluation.timeline else None,
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
        return ["model: none registered (no split or training succeeded yet; they run again when windows change, "
                "or now with --force)"]
    t = m["test"]
    note = [f"model: {m['note']}"] if m.get("note") else []
    note += [f"model: {m['retraining']}"] if m.get("retraining") else []
    floor = ", ".join(f"{k} {v['macro_f1']:.3f}" for k, v in t["baselines"].items())
    people = ", ".join(f"{p} {a:.3f}" for p, a in sorted(t["per_participant_accuracy"].items()))
    return [
        f"model {m['registered_model']} v{m['version']} ({m['status']}): "
        f"{'champion' if m['champion'] else 'not champion'} - {m['reason']}",
        f"test participants {', '.join(m['split']['test']) if m['split'] else '?'}: accuracy {t['accuracy']:.3f}, "
        f"macro-F1 {t['macro_f1']:.3f} ({t['windows']} windows); dummy macro-F1: {floor}",
        f"per-participant accuracy: {people}",
        *decoding_lines(t),
        *note,
    ]


def decoding_lines(test: dict[str, Any]) -> list[str]:
    """How much decoding the recordings whole changed, where the evaluation says (evaluated since it exists)."""
    steps, timeline = test.get("macro_f1_by_step"), test.get("timeline")
    if not steps or not timeline:
        return []
    return [f"macro-F1 each window alone {steps['window']:.3f}, with the person's frame {steps['aligned']:.3f}, "
            f"decoded {steps['decoded']:.3f} (causal {steps['causal']:.3f}); minutes labelled right "
            f"{timeline['minutes_correct_share']:.3f}; switches per hour {timeline['switches_per_hour_predicted']:.0f} "
            f"(each window alone {timeline['switches_per_hour_window']:.0f}, truth "
            f"{timeline['switches_per_hour_true']:.0f})"]


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
