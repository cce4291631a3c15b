"""`new_participant_sensor`: a new or changed participant folder becomes a partition and a run.
`isolate_failed_batches`: a failed backfill batch is re-run one participant per run.
`retry_transient_failures`: a participant's run that failed for a transient reason is asked for again."""


import inspect
import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from har_assets.orchestration.freshness import stale_participants
from har_assets.orchestration.jobs import preprocess_job
from har_assets.orchestration.participant_removal import ParticipantRemoval, registry_event
from har_assets.orchestration.partitions import STUDY_PARTICIPANTS, participants
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.resources import PreprocessingResource, RawStore
from har_assets.orchestration.sensor_status import sensor_status
from har_assets.raw.removal import RemovalRecord
from har_assets.raw.scan import raw_root_problem, scan_raw_root

SETTLE_SECONDS = 10.0


def new_participant_sensor(context: dg.SensorEvaluationContext, raw_store: RawStore,
                           participant_removal: ParticipantRemoval,
                           preprocessing: PreprocessingResource) -> dg.SensorResult | dg.SkipReason:
    """Scans the raw root; adds each new valid participant as a partition. Of the new or changed folders (all of
    them when the preprocessing config changed) it requests the stale ones, as `har pipeline` decides staleness: a run
    for one, a backfill (batched, PARTICIPANTS_PER_RUN per run) for several. A registered participant whose folder is
    gone is reported missing (observations of raw_recording and study_participants) and keeps its assets; only
    `har participants remove` removes. A missing or empty raw root while participants are registered changes
    nothing."""
    previous = json.loads(context.cursor) if context.cursor else None
    registered = set(context.instance.get_dynamic_partitions(participants.name))
    problem = raw_root_problem(Path(raw_store.root), len(registered))
    if problem:
        context.log.error(problem)
        return dg.SkipReason(problem)
    removed = participant_removal.removed_ids()
    known = {pid: fp for pid, fp in (previous or {}).get("requested", {}).items() if pid in registered}
    scan = scan_raw_root(Path(raw_store.root), previous, settle_s=SETTLE_SECONDS, removed=removed, registered=known)
    for name, problem in sorted(scan.invalid.items()):
        context.log.warning(f"skipping raw folder '{name}': {problem}")
    cfg = preprocessing.to_config()
    config = cfg.fingerprint()  # a new one makes every participant a candidate
    missing = sorted(registered - set(scan.folders) - removed)
    was_missing = set((previous or {}).get("missing", []))
    cursor = json.dumps({**scan.state, "config": config, "missing": missing}, sort_keys=True)
    config_changed = (previous or {}).get("config") != config
    candidates = scan.ready if config_changed else scan.to_request
    stale = stale_participants(context.instance, candidates, cfg) if candidates else {}
    leaving = _leaving(participant_removal, registered & removed)
    new = sorted(set(scan.to_request) - registered)
    events = _presence_events(set(missing) - was_missing, was_missing - set(missing) - removed, raw_store.root)
    summary = f"{scan.summary()}; {len(stale)} stale, {len(candidates) - len(stale)} of them up to date"
    if missing:
        summary += f"; {len(missing)} missing (assets kept): {', '.join(missing)}"
    if not stale and not leaving and not new and not events:
        context.update_cursor(cursor)
        return dg.SkipReason(f"no stale, new or removed participants ({summary})")
    context.log.info(summary + "".join(f"\n{pid}: {why}" for pid, why in sorted(stale.items())))
    requests = []
    if len(stale) == 1:
        [pid] = stale
        fp = candidates[pid]
        requests = [dg.RunRequest(partition_key=pid, run_key=f"{pid}:{fp}:{config}",
                                  tags={"har/raw_fingerprint": fp, "har/stale": stale[pid][:200]})]
    elif stale:
        requests = [backfill_request(sorted(stale))]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[*([participants.build_add_request(new)] if new else []),
                                     *([participants.build_delete_request(sorted(leaving))] if leaving else [])],
        asset_events=[*([registry_event(list(leaving.values()))] if leaving else []), *events],
        cursor=cursor,
    )


def _leaving(removal: ParticipantRemoval, audited: set[str]) -> dict[str, RemovalRecord]:
    """Registered participants removed by `har participants remove` against another instance (audited, partition
    still there): their partitions are deleted. A folder that disappears removes nobody."""
    records = removal.removed(audited) if audited else {}
    return {pid: RemovalRecord.from_audit(records[pid]) for pid in sorted(records)}


def _presence_events(gone: set[str], back: set[str], root: str) -> list[dg.AssetObservation]:
    """Observations that put a participant's raw folder going missing (or returning) on its raw_recording page and
    in study_participants' history."""
    events = [dg.AssetObservation("raw_recording", partition=pid, metadata={
        "raw_folder": state, "path": str(Path(root) / pid),
        "note": "assets kept; comes back as it was when the folder returns" if state == "missing" else "back"})
        for state, pids in (("missing", gone), ("present", back)) for pid in sorted(pids)]
    if gone or back:
        events.append(dg.AssetObservation(STUDY_PARTICIPANTS.key, metadata={
            "missing": sorted(gone), "returned": sorted(back)}))
    return events


def backfill_request(pids: list[str]) -> dg.RunRequest:
    """A request that the daemon turns into an asset backfill of the preprocessing assets over `pids`, batched
    by their backfill policy (what "Materialize" of these partitions in the UI creates). Dagster keeps the
    constructor private in 1.13 (its argument, AssetGraphSubset, is not public API)."""
    from har_assets.orchestration.dagster_internals import AssetGraphSubset

    subset = participants.empty_subset().with_partition_keys(pids)
    graph = AssetGraphSubset(partitions_subsets_by_asset_key=dict.fromkeys(sorted(PREPROCESSING_KEYS), subset),
                             non_partitioned_asset_keys=set())
    return dg.RunRequest.for_asset_graph_subset(graph, tags={"har/participants": str(len(pids))})


PREPROCESSING_KEYS = {key for asset in PREPROCESSING_ASSETS for key in asset.keys}
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def isolate_failed_batches(context: dg.RunFailureSensorContext) -> list[dg.RunRequest] | dg.SkipReason:
    """A failed preprocessing batch (a backfill run over several participants, which stores nothing when one of
    them fails) is re-run one participant per run: the good ones materialize, the bad one fails on its own with its
    own error. A batch whose worker died is left to the instance's run retries."""
    run = context.dagster_run
    start, end = (run.tags.get(tag) for tag in RANGE_TAGS)
    if not start or not end or start == end or not (run.asset_selection or set()) <= PREPROCESSING_KEYS:
        return dg.SkipReason(f"run {run.run_id} is not a preprocessing batch")
    if failed_on_its_data(context) is None:  # re-running it per participant would race the run retry
        return dg.SkipReason(f"batch {run.run_id}: no step failed (its worker died): the instance's run retries "
                             "start it again")
    registered = context.instance.get_dynamic_partitions(participants.name)  # a range is in registration order
    if start not in registered or end not in registered:
        return dg.SkipReason(f"batch {run.run_id} covers {start}..{end}, which are no longer both registered")
    pids = registered[registered.index(start):registered.index(end) + 1]
    context.log.info(f"re-running the {len(pids)} participants of failed batch {run.run_id} one per run")
    return [dg.RunRequest(partition_key=pid, run_key=f"isolate:{run.run_id}:{pid}",
                          tags={"har/isolated_from": run.run_id}) for pid in pids]


MAX_RECOVERY_ATTEMPTS = 3


def failed_on_its_data(context: dg.RunFailureSensorContext) -> bool | None:
    """True when the run failed on its data (a data error or a failed blocking check: asking again gives the same
    answer until the files change), False when a step failed for another reason (a store or service that stayed
    down through the step's retries), None when no step failed (the worker died: the instance's run retries)."""
    failures = context.get_step_failure_events()
    if not failures:
        return None
    for event in failures:
        data = event.step_failure_data
        if data.user_failure_data is not None or (data.error and "AssetCheck" in data.error.cls_name):
            return True
    return False


def retry_transient_failures(context: dg.RunFailureSensorContext) -> dg.RunRequest | dg.SkipReason:
    """A participant's preprocessing run that failed for a transient reason (a store or service down through
    every retry of its steps) is asked for again, at most MAX_RECOVERY_ATTEMPTS times; one that failed on its data
    is not, until its files change (new_participant_sensor)."""
    run = context.dagster_run
    pid = run.tags.get("dagster/partition")
    if not pid or not (run.asset_selection or set()) <= PREPROCESSING_KEYS:
        return dg.SkipReason(f"run {run.run_id} is not one participant's preprocessing")
    verdict = failed_on_its_data(context)
    if verdict is not False:
        why = "failed on its data: asked again when its files change" if verdict else \
            "its worker died: the instance's run retries start it again"
        return dg.SkipReason(f"run {run.run_id} ({pid}) {why}")
    attempt = int(run.tags.get("har/attempt", "0")) + 1
    if attempt > MAX_RECOVERY_ATTEMPTS:
        return dg.SkipReason(f"{pid}: failed {MAX_RECOVERY_ATTEMPTS + 1} times for transient reasons; the next "
                             "file change or a Materialize asks again")
    if pid not in context.instance.get_dynamic_partitions(participants.name):
        return dg.SkipReason(f"{pid} is no longer registered")
    context.log.info(f"{pid}: run {run.run_id} failed for a transient reason; asking again (attempt {attempt})")
    tags = {"har/attempt": str(attempt), "har/recovered_from": run.run_id}
    if "har/raw_fingerprint" in run.tags:
        tags["har/raw_fingerprint"] = run.tags["har/raw_fingerprint"]
    return dg.RunRequest(partition_key=pid, run_key=f"recover:{run.run_id}", tags=tags)


def study_sensors(running: bool = True) -> list[dg.SensorDefinition]:
    """`new_participant_sensor`, `isolate_failed_batches` and `retry_transient_failures` (their docstrings are their
    descriptions), deployed running or stopped (`HarSettings.autostart_sensor`; stopped e.g. to drive ingestion only
    by backfills)."""
    status = sensor_status(running)
    return [
        dg.sensor(asset_selection=dg.AssetSelection.assets(*PREPROCESSING_ASSETS), minimum_interval_seconds=30,
                  description=_description(new_participant_sensor), default_status=status)(new_participant_sensor),
        *(dg.run_failure_sensor(request_job=preprocess_job, minimum_interval_seconds=30, description=_description(fn),
                                default_status=status)(fn)
          for fn in (isolate_failed_batches, retry_transient_failures)),
    ]


def _description(fn: Callable) -> str:
    return " ".join(inspect.cleandoc(fn.__doc__ or "").split())
