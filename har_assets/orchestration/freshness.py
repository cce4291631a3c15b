"""Which participants' preprocessing is stale: the one answer that `new_participant_sensor` (the UI and the
daemon) and `har pipeline` both use, so the two cannot disagree.

A participant is up to date when each preprocessing stage was materialized after the one before it (no
stage failed after its input was re-made), its latest `raw_recording` was read from these exact raw files
(`raw_fingerprint`, kept by batches too), its `fused_recording` was made with this preprocessing config
(`preprocess_config`), and no blocking check failed on its latest preprocessing. Anything else is stale,
with the reason. A few queries in all, whatever the number of participants.

Why not Dagster's data versions alone: a backfill step over several participants yields one output for all of
them, and Dagster 1.13 records no data version per partition for it, so the raw files' hash is kept as
metadata (`raw_fingerprint`) by every run; and a data version does not cover a resource's config, so the
preprocessing config is kept as metadata too. Downstream of preprocessing, the automation conditions use
Dagster's data versions (`dataset_split`'s, `registered_model`'s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import dagster as dg

from har_assets.config import PreprocessConfig
from har_assets.orchestration.check_gate import failed_blocking_checks

PREPROCESSING_STAGES = ("raw_recording", "fused_recording", "filtered_recording", "windows")  # in order


def latest_materializations(instance: dg.DagsterInstance, asset: str,
                            partitions: Sequence[str]) -> dict[str, dg.EventLogRecord]:
    """Partition -> the record of its latest materialization, in two queries whatever the number of partitions."""
    key = dg.AssetKey(asset)
    ids = instance.get_latest_storage_id_by_partition(key, dg.DagsterEventType.ASSET_MATERIALIZATION,
                                                      set(partitions))
    if not ids:
        return {}
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, storage_ids=list(ids.values())),
                                              limit=len(ids)).records
    return {r.partition_key: r for r in records if r.partition_key is not None}


def metadata_value(record: dg.EventLogRecord | None, key: str) -> Any:
    """The plain value of one metadata entry of a materialization record; None when absent."""
    mat = record.asset_materialization if record is not None else None
    if mat is None or key not in mat.metadata:
        return None
    return mat.metadata[key].value


def stale_participants(instance: dg.DagsterInstance, fingerprints: Mapping[str, str],
                       cfg: PreprocessConfig) -> dict[str, str]:
    """Of these participants (id -> raw files' content hash), those whose preprocessing must run, with why."""
    pids = sorted(fingerprints)
    stages = [latest_materializations(instance, asset, pids) for asset in PREPROCESSING_STAGES]
    raw, fused = stages[0], stages[1]
    rejected = failed_blocking_checks(instance, pids)
    config_json = cfg.model_dump(mode="json")
    stale: dict[str, str] = {}
    for pid in pids:
        chain = [stage.get(pid) for stage in stages]
        if any(record is None for record in chain):
            stale[pid] = "not preprocessed yet"
        elif any(later.storage_id < earlier.storage_id for earlier, later in pairwise(chain)):  # type: ignore[union-attr]
            stale[pid] = "a stage is older than its input (re-made since, or it failed)"
        elif metadata_value(raw[pid], "raw_fingerprint") != fingerprints[pid]:
            stale[pid] = "raw files changed"
        elif metadata_value(fused[pid], "preprocess_config") != config_json:
            stale[pid] = "preprocessing config changed"
        elif pid in rejected:
            stale[pid] = "a blocking check failed: " + "; ".join(f"{f.asset}.{f.check}" for f in rejected[pid])
    return stale
