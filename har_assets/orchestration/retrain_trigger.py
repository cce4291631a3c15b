"""`retrain_when_it_pays`: the sensor that launches `train_and_evaluate` (model, model_evaluation,
registered_model) when retraining pays (`retrain_policy`), and `retrain_check`, the one answer that it and
`har pipeline` both use.

The evidence is read from the instance, against the current model (the latest materialization of `model`):

* labelled minutes: for each participant in a role of the latest `dataset_split`, the `labelled_minutes` of the
  `windows` it read (their latest materialization before the split's), against the same for the split the model
  was trained on (the model's input event pointer). Windows made before `labelled_minutes` existed are not
  compared.
* flagged people: the `flagged` metadata of each registered participant's latest `participant_predictions`
  (without it: not flagged), against the same as of the model's materialization.

Never a loop: one evidence state on top of one model is asked for once (its key is the run key and the
sensor's cursor). A retrain that succeeds moves the baseline; one that fails is asked for again only when new
evidence arrives. It asks only when the evidence has settled and training can start on current inputs: no run
in flight of what the evidence or the training reads (windows, the split, the scaler, normalized windows, the
model, predictions), the scaler fit on the latest split's data and the split's participants normalized with that
scaler (`model` refuses stale normalized windows); until then its skip reason says what it waits for. The first
model is not its business: it trains with the first split (`model`'s automation condition).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from har_assets.orchestration.freshness import latest_materializations, metadata_value
from har_assets.orchestration.partitions import participants
from har_assets.orchestration.retrain_policy import RetrainEvidence, RetrainPolicy, listed
from har_assets.orchestration.sensor_status import sensor_status
from har_assets.orchestration.training import train_and_evaluate_job

SENSOR = "retrain_when_it_pays"
REASON_TAG = "har/retrain_reason"  # on every retraining run, the sensor's and `har pipeline`'s
ROLES = ("train", "validation", "test")
MODEL, SPLIT, SCALER = (dg.AssetKey(k) for k in ("model", "dataset_split", "scaler"))
SETTLING = {dg.AssetKey(k) for k in ("windows", "dataset_split", "scaler", "normalized_windows", "model",
                                     "participant_predictions")}
# the provenance Dagster records on each materialization: the upstream event it read, that event's data version
SPLIT_POINTER, SPLIT_VERSION = "dagster/input_event_pointer/dataset_split", "dagster/input_data_version/dataset_split"
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dataclass(frozen=True)
class RetrainCheck:
    """Whether to retrain now, why (or why not, or what it waits for), and the evidence state's key."""

    request: bool
    reason: str
    key: str | None = None


def retrain_check(instance: dg.DagsterInstance, policy: RetrainPolicy, requested: str | None) -> RetrainCheck:
    """The decision on the instance's evidence; `requested`: the key of the evidence last asked for."""
    model, split = (_latest(instance, key) for key in (MODEL, SPLIT))
    if model is None or split is None:
        return RetrainCheck(False, "no model yet: the first one trains with the first split")
    evidence = _evidence(instance, model, split)
    decision = policy.decide(evidence)
    if not decision.retrain:
        return RetrainCheck(False, f"no retraining: {decision.reason}")
    key = evidence.key(model.storage_id)
    if key == requested:
        return RetrainCheck(False, f"already requested for this evidence ({key}): {decision.reason}")
    waiting = _waiting_for(instance, split)
    if waiting:
        return RetrainCheck(False, f"{decision.reason}; waiting: {waiting}")
    return RetrainCheck(True, decision.reason, key)


def _evidence(instance: dg.DagsterInstance, model: dg.EventLogRecord, split: dg.EventLogRecord) -> RetrainEvidence:
    """Labelled minutes in the model's split and in the latest one; flagged people now and when it was trained."""
    pointer = _tag(model, SPLIT_POINTER)
    trained_on = _record(instance, SPLIT, int(pointer)) if pointer else None  # reported without a run: unknown
    registered = instance.get_dynamic_partitions(participants.name)
    scored = latest_materializations(instance, "participant_predictions", registered)
    then = _as_of(instance, "participant_predictions", scored, model.storage_id)
    return RetrainEvidence.compare(_labelled_minutes(instance, trained_on), _labelled_minutes(instance, split),
                                   _flagged(then), _flagged(scored))


def retrain_sensor(policy: RetrainPolicy, running: bool = True, interval_s: int = 60) -> dg.SensorDefinition:
    """The sensor, deployed running or stopped (`HarSettings.autostart_retrain`), evaluating every `interval_s`."""

    @dg.sensor(name=SENSOR, job=train_and_evaluate_job, minimum_interval_seconds=interval_s,
               default_status=sensor_status(running),
               description=f"Retrains (model, model_evaluation, registered_model) when at least "
                           f"{policy.min_labelled_minutes:g} labelled minutes changed since the data of the current "
                           f"model, or at least {policy.min_flagged_people} participants became flagged since it "
                           "was trained; each tick's skip reason says the evidence, each run's tag "
                           f"{REASON_TAG} why it ran.")
    def retrain_when_it_pays(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        check = retrain_check(context.instance, policy, context.cursor)
        if not check.request:
            return dg.SkipReason(check.reason)
        context.log.info(f"retraining: {check.reason}")
        tags = {"har/trigger": f"automation: {SENSOR}", REASON_TAG: check.reason}
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=check.key, tags=tags)], cursor=check.key)

    return retrain_when_it_pays


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(key, limit=1).records
    return records[0] if records else None


def _record(instance: dg.DagsterInstance, key: dg.AssetKey, storage_id: int) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, storage_ids=[storage_id]),
                                              limit=1).records
    return records[0] if records else None


def _tag(record: dg.EventLogRecord | None, key: str) -> str | None:
    """One tag of a materialization record; None when absent."""
    mat = record.asset_materialization if record is not None else None
    return (mat.tags or {}).get(key) if mat is not None else None


def _as_of(instance: dg.DagsterInstance, asset: str, latest: dict[str, dg.EventLogRecord],
           before: int) -> dict[str, dg.EventLogRecord]:
    """Partition -> its latest materialization before storage id `before`, given the latest ones (a query for
    each partition materialized since)."""
    out = {pid: record for pid, record in latest.items() if record.storage_id < before}
    for pid in sorted(set(latest) - set(out)):
        older = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset), asset_partitions=[pid], before_storage_id=before), limit=1).records
        if older:
            out[pid] = older[0]
    return out


def _roles(split: dg.EventLogRecord) -> list[str]:
    """The participants in a role of this split (its metadata)."""
    return sorted({pid for role in ROLES for pid in metadata_value(split, role) or []})


def _labelled_minutes(instance: dg.DagsterInstance, split: dg.EventLogRecord | None) -> dict[str, float | None]:
    """Participant -> labelled minutes of the windows this split read (None: windows without the figure)."""
    if split is None:
        return {}
    pids = _roles(split)
    read = _as_of(instance, "windows", latest_materializations(instance, "windows", pids), split.storage_id)
    return {pid: metadata_value(record, "labelled_minutes") for pid, record in read.items()}


def _flagged(records: dict[str, dg.EventLogRecord]) -> set[str]:
    return {pid for pid, record in records.items() if metadata_value(record, "flagged") is True}


def _waiting_for(instance: dg.DagsterInstance, split: dg.EventLogRecord) -> str | None:
    """What training on current inputs still waits for, or None when it can start."""
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        busy = sorted(k.to_user_string() for k in SETTLING & _planned(instance, run.run_id))
        if busy:
            return f"{', '.join(busy)} being materialized (run {run.run_id[:8]})"
    scaler = _latest(instance, SCALER)
    if _tag(scaler, SPLIT_VERSION) != _tag(split, "dagster/data_version"):
        return "the scaler is not yet fit on the latest split"
    pids = _roles(split)
    made = latest_materializations(instance, "normalized_windows", pids)
    fingerprint = metadata_value(scaler, "scaler_fingerprint")
    stale = [pid for pid in pids if metadata_value(made.get(pid), "scaler_fingerprint") != fingerprint]
    return f"normalized_windows of {listed(stale)} not yet made with the current scaler" if stale else None


def _planned(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    """The assets a run materializes (as planned when it was created: a run's asset selection is empty when it runs
    a whole job)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    return {r.event_log_entry.dagster_event.asset_key for r in records
            if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.asset_key}
