"""`new_participant_sensor`: a new or changed participant folder becomes a partition and a run.
`isolate_failed_batches`: a failed backfill batch is re-run one participant per run."""


import json
from pathlib import Path

import dagster as dg

from har_assets.orchestration.freshness import config_fingerprint, stale_participants
from har_assets.orchestration.jobs import preprocess_job
from har_assets.orchestration.participant_removal import ParticipantRemoval, registry_event
from har_assets.orchestration.partitions import participants
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.resources import PreprocessingResource, RawStore
from har_assets.orchestration.sensor_status import default_status
from har_assets.raw.removal import RemovalRecord
from har_assets.raw.scan import ScanResult, scan_raw_root

SETTLE_SECONDS = 10.0


@dg.sensor(asset_selection=dg.AssetSelection.assets(*PREPROCESSING_ASSETS), minimum_interval_seconds=30,
           default_status=default_status("HAR_AUTOSTART_SENSOR"),  # 0: e.g. ingestion only by backfills
           description="Scans the raw root; adds each new valid participant as a partition. Of the new or changed "
                       "folders (all of them when the preprocessing config changed) it requests the stale ones, "
                       "as `har pipeline` decides staleness: a run for one, a backfill (batched, "
                       "PARTICIPANTS_PER_RUN per run) for several. A registered participant whose folder was "
                       "deleted is removed: partition deleted, stored assets archived, audited (study_participants).")
def new_participant_sensor(context: dg.SensorEvaluationContext, raw_store: RawStore,
                           participant_removal: ParticipantRemoval,
                           preprocessing: PreprocessingResource) -> dg.SensorResult | dg.SkipReason:
    previous = json.loads(context.cursor) if context.cursor else None
    removed = participant_removal.removed_ids()
    scan = scan_raw_root(Path(raw_store.root), previous, settle_s=SETTLE_SECONDS, removed=removed)
    for name, problem in sorted(scan.invalid.items()):
        context.log.warning(f"skipping raw folder '{name}': {problem}")
    cfg = preprocessing.to_config()
    config = config_fingerprint(cfg)
    cursor = json.dumps({**scan.state, "config": config}, sort_keys=True)
    config_changed = (previous or {}).get("config") != config
    candidates = scan.ready if config_changed else scan.to_request
    stale = stale_participants(context.instance, candidates, cfg) if candidates else {}
    registered = set(context.instance.get_dynamic_partitions(participants.name))
    leaving = _leaving(context, scan, registered, removed, participant_removal)
    new = sorted(set(scan.to_request) - registered)
    summary = f"{scan.summary()}; {len(stale)} stale, {len(candidates) - len(stale)} of them up to date"
    if not stale and not leaving and not new:
        context.update_cursor(cursor)
        return dg.SkipReason(f"no stale or deleted participants ({summary})")
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
        asset_events=[registry_event(list(leaving.values()))] if leaving else [],
        cursor=cursor,
    )


def _leaving(context: dg.SensorEvaluationContext, scan: ScanResult, registered: set[str], removed: set[str],
             removal: ParticipantRemoval) -> dict[str, RemovalRecord]:
    """Registered participants to delete: removed by hand (audited, partition still there) or whose folder is
    gone. Nothing is removed when the raw root holds no folder at all (an unmounted volume is not a study
    that everybody left)."""
    gone = sorted(registered - set(scan.folders) - removed)
    if gone and not scan.folders:
        context.log.warning(f"the raw root is empty: not removing the {len(gone)} registered participants")
        gone = []
    audited = removal.removed(registered & removed)
    leaving = {pid: RemovalRecord.from_audit(audited[pid]) for pid in sorted(audited)}
    for pid in gone:
        leaving[pid] = removal.remove(pid, by="new_participant_sensor", reason="raw folder deleted")
        context.log.warning(f"participant '{pid}': raw folder deleted; partition removed, {len(leaving[pid].files)} "
                            f"stored files archived to {leaving[pid].archived_to}")
    return leaving


def backfill_request(pids: list[str]) -> dg.RunRequest:
    """A request that the daemon turns into an asset backfill of the preprocessing assets over `pids`, batched
    by their backfill policy (what "Materialize" of these partitions in the UI creates). Dagster keeps the
    constructor private in 1.13 (its argument, AssetGraphSubset, is not public API)."""
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

    subset = participants.empty_subset().with_partition_keys(pids)
    graph = AssetGraphSubset(partitions_subsets_by_asset_key=dict.fromkeys(sorted(PREPROCESSING_KEYS), subset),
                             non_partitioned_asset_keys=set())
    return dg.RunRequest.for_asset_graph_subset(graph, tags={"har/participants": str(len(pids))})


PREPROCESSING_KEYS = {key for asset in PREPROCESSING_ASSETS for key in asset.keys}
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@dg.run_failure_sensor(request_job=preprocess_job, minimum_interval_seconds=30,
                       default_status=default_status("HAR_AUTOSTART_SENSOR"),
                       description="A failed preprocessing batch (a backfill run over several participants, which "
                                   "stores nothing when one of them fails) is re-run one participant per run: the "
                                   "good ones materialize, the bad one fails on its own with its own error.")
def isolate_failed_batches(context: dg.RunFailureSensorContext) -> list[dg.RunRequest] | dg.SkipReason:
    run = context.dagster_run
    start, end = (run.tags.get(tag) for tag in RANGE_TAGS)
    if not start or not end or start == end or not (run.asset_selection or set()) <= PREPROCESSING_KEYS:
        return dg.SkipReason(f"run {run.run_id} is not a preprocessing batch")
    registered = context.instance.get_dynamic_partitions(participants.name)  # a range is in registration order
    if start not in registered or end not in registered:
        return dg.SkipReason(f"batch {run.run_id} covers {start}..{end}, which are no longer both registered")
    pids = registered[registered.index(start):registered.index(end) + 1]
    context.log.info(f"re-running the {len(pids)} participants of failed batch {run.run_id} one per run")
    return [dg.RunRequest(partition_key=pid, run_key=f"isolate:{run.run_id}:{pid}",
                          tags={"har/isolated_from": run.run_id}) for pid in pids]
