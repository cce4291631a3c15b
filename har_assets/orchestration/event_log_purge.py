"""Deleting one participant's events from the Dagster event log (`har participants purge`).

Runs of that participant alone go whole, through the public `DagsterInstance.delete_run`. Runs of
several participants (backfill batches) must keep the others' events, and Dagster 1.13 has no public
way to delete one partition's events: `wipe_asset_partitions` raises NotImplementedError on every
SQL storage (SQLite and PostgreSQL) we run. This module is the one place that deletes rows from the
event log's tables itself (the same SQLAlchemy tables the storage writes), with the storage's own
connections: the run's shard and the index (one database on PostgreSQL, two files on SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import sqlalchemy as db

from har_assets.orchestration.dagster_internals import (
    AssetCheckExecutionsTable,
    AssetEventTagsTable,
    AssetKeyTable,
    SqlEventLogStorageTable,
)


@dataclass(frozen=True)
class EventLogPurge:
    runs_deleted: list[str]
    batch_runs_edited: list[str]
    events_deleted: int


def _partition_run_ids(instance: dg.DagsterInstance, asset_keys: list[dg.AssetKey], pid: str) -> set[str]:
    """Runs that stored an event (materialization, observation, check) of the participant's partitions."""
    found: set[str] = set()
    flt = [dg.AssetRecordsFilter(asset_key=key, asset_partitions=[pid]) for key in asset_keys]
    for f in flt:
        for fetch in (instance.fetch_materializations, instance.fetch_observations):
            cursor = None
            while True:
                result = fetch(f, limit=500, cursor=cursor)
                found |= {r.run_id for r in result.records}
                if not result.has_more:
                    break
                cursor = result.cursor
    return found


def purge_partition_events(instance: dg.DagsterInstance, asset_keys: list[dg.AssetKey], pid: str) -> EventLogPurge:
    """Delete every run of the participant alone, and the participant's events from runs of several."""
    alone = [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": pid}))]
    for run_id in alone:
        instance.delete_run(run_id)
    shared = sorted(_partition_run_ids(instance, asset_keys, pid) - set(alone) - {""})
    storage = instance.event_log_storage
    deleted = 0
    for run_id in shared:
        where = db.and_(SqlEventLogStorageTable.c.run_id == run_id, SqlEventLogStorageTable.c.partition == pid)
        for connection in (storage.run_connection(run_id), storage.index_connection()):  # the same db on Postgres
            with connection as conn:
                ids = [row[0] for row in conn.execute(db.select(SqlEventLogStorageTable.c.id).where(where))]
                if ids:
                    conn.execute(AssetEventTagsTable.delete().where(AssetEventTagsTable.c.event_id.in_(ids)))
                    deleted += conn.execute(SqlEventLogStorageTable.delete().where(
                        SqlEventLogStorageTable.c.id.in_(ids))).rowcount
                    conn.execute(AssetCheckExecutionsTable.delete().where(db.and_(
                        AssetCheckExecutionsTable.c.run_id == run_id,
                        AssetCheckExecutionsTable.c.evaluation_event_storage_id.in_(ids))))
    if alone or shared:
        _refresh_asset_cache(instance, asset_keys)
    return EventLogPurge(runs_deleted=alone, batch_runs_edited=shared, events_deleted=deleted)


def _refresh_asset_cache(instance: dg.DagsterInstance, asset_keys: list[dg.AssetKey]) -> None:
    """Point each asset's cached latest materialization at the latest one left (it may have been the
    participant's, pictures included), and drop the partition-status cache, which Dagster rebuilds."""
    latest = {key: instance.fetch_materializations(key, limit=1).records for key in asset_keys}  # before writing:
    with instance.event_log_storage.index_connection() as conn:  # SQLite allows one writer at a time
        for key, records in latest.items():
            conn.execute(AssetKeyTable.update().where(AssetKeyTable.c.asset_key == key.to_string()).values(
                last_materialization=dg.serialize_value(records[0]) if records else None,
                last_run_id=records[0].run_id if records else None, cached_status_data=None))
