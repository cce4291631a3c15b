"""`new_participant_sensor`: a new or changed participant folder becomes a partition and a run."""


import json
from pathlib import Path

import dagster as dg

from har_assets.orchestration.jobs import preprocess_job
from har_assets.orchestration.partitions import participants
from har_assets.orchestration.resources import RawStore
from har_assets.orchestration.sensor_status import default_status
from har_assets.raw.scan import scan_raw_root

SETTLE_SECONDS = 10.0


@dg.sensor(job=preprocess_job, minimum_interval_seconds=30,
           default_status=default_status("HAR_AUTOSTART_SENSOR"),  # 0: e.g. ingestion only by backfills
           description="Scans the raw root; adds each new valid participant as a partition and requests a run for "
                       "it, and re-requests participants whose files' content changed.")
def new_participant_sensor(context: dg.SensorEvaluationContext, raw_store: RawStore) -> dg.SensorResult | dg.SkipReason:
    previous = json.loads(context.cursor) if context.cursor else None
    scan = scan_raw_root(Path(raw_store.root), previous, settle_s=SETTLE_SECONDS)
    for name, problem in sorted(scan.invalid.items()):
        context.log.warning(f"skipping raw folder '{name}': {problem}")
    cursor = json.dumps(scan.state, sort_keys=True)
    if not scan.to_request:
        context.update_cursor(cursor)
        return dg.SkipReason(f"no new or changed participants ({scan.summary()})")
    existing = set(context.instance.get_dynamic_partitions(participants.name))
    new = sorted(set(scan.to_request) - existing)
    context.log.info(scan.summary())
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=pid, run_key=f"{pid}:{fp}", tags={"har/raw_fingerprint": fp})
                      for pid, fp in sorted(scan.to_request.items())],
        dynamic_partitions_requests=[participants.build_add_request(new)] if new else [],
        cursor=cursor,
    )
