"""Participants leaving a study: their partition deleted, their stored assets archived, the removal audited,
and the next split (so the next champion) made without them.

`study_participants` is an external asset: Dagster does not compute it; every removal reports a
materialization of it (who, why, what was archived). `dataset_split` depends on it, so a removal
counts as new data for the retraining automation, and the removal history is in the UI.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import dagster as dg

from har_assets.home import HarHome
from har_assets.objectstore import store_path
from har_assets.orchestration.partitions import STUDY_PARTICIPANTS, participants
from har_assets.raw.removal import (
    RemovalRecord,
    RemovalStateError,
    purge_participant_files,
    record_purge,
    remove_participant_files,
    removed_ids,
    removed_participants,
    restore_participant_files,
)

if TYPE_CHECKING:
    from har_assets.orchestration.mlflow_resource import MlflowTracking

class ParticipantRemoval(dg.ConfigurableResource):
    """The asset store, where removed participants' assets are archived, and the audit records (folders or
    object-store prefixes)."""

    assets: str
    archive: str
    audit_dir: str

    @classmethod
    def for_home(cls, home: HarHome) -> ParticipantRemoval:
        return cls(assets=home.assets_uri(), archive=home.removed_archive(), audit_dir=home.audit_dir())

    def removed(self, among: set[str] | None = None) -> dict[str, dict]:
        """Participant -> its audit record (only those `among`, if given)."""
        return removed_participants(store_path(self.audit_dir), among)

    def removed_ids(self) -> set[str]:
        """Every removed participant (listed, not read: the sensor asks every tick)."""
        return removed_ids(store_path(self.audit_dir))

    def remove(self, participant: str, *, by: str, reason: str) -> RemovalRecord:
        """Archive the participant's stored assets and audit it (the caller deletes the partition)."""
        return remove_participant_files(self.assets, self.archive, self.audit_dir, participant, by=by, reason=reason)

    def restore(self, participant: str, *, by: str) -> dict:
        """Move the archived assets back and close the removal (the caller adds the partition again)."""
        return restore_participant_files(self.assets, self.audit_dir, participant, by=by)


def registry_event(records: list[RemovalRecord], action: str = "removed") -> dg.AssetMaterialization:
    """The materialization of study_participants that reports these removals."""
    if action != "removed":
        return dg.AssetMaterialization(STUDY_PARTICIPANTS.key, metadata={
            action: [r.participant for r in records], "by": sorted({r.by for r in records})})
    return dg.AssetMaterialization(STUDY_PARTICIPANTS.key, metadata={
        "removed": [r.participant for r in records],
        "by": sorted({r.by for r in records}),
        "reasons": dg.MetadataValue.json({r.participant: r.reason for r in records}),
        "archived_files": sum(len(r.files) for r in records),
        "archived_to": dg.MetadataValue.json({r.participant: r.archived_to for r in records}),
    })


def remove_from_instance(instance: dg.DagsterInstance, removal: ParticipantRemoval, participant: str, *, by: str,
                         reason: str) -> RemovalRecord | None:
    """`har participants remove`: audit and archive (once), delete the partition, report the registry change.
    None if the participant is neither registered nor already removed."""

    registered = participant in instance.get_dynamic_partitions(participants.name)
    previous = removal.removed({participant}).get(participant)
    if not registered and previous is None:
        return None
    record = RemovalRecord.from_audit(previous) if previous else removal.remove(
        participant, by=by, reason=reason)
    if registered:
        instance.delete_dynamic_partition(participants.name, participant)
        instance.report_runless_asset_event(registry_event([record]))
    return record


def partitioned_asset_keys() -> list[dg.AssetKey]:
    """Every asset partitioned by participant (imported here: those modules import this one)."""
    from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
    from har_assets.orchestration.scoring import SCORING_ASSETS
    from har_assets.orchestration.training import normalized_windows

    return [key for asset in (*PREPROCESSING_ASSETS, normalized_windows, *SCORING_ASSETS) for key in asset.keys]


def restore_to_instance(instance: dg.DagsterInstance, removal: ParticipantRemoval, participant: str, *,
                        by: str) -> dict:
    """`har participants restore`: the archived assets back in place, the partition registered again (its event
    history was never deleted, so it is up to date as it was), the registry change reported (the next split
    includes it again)."""

    restored = removal.restore(participant, by=by)
    instance.add_dynamic_partitions(participants.name, [participant])
    record = RemovalRecord(participant=participant, removed_at=restored["restored_at"], by=by, reason="restored",
                           archived_to="")
    instance.report_runless_asset_event(registry_event([record], action="restored"))
    return restored


def purge_everywhere(instance: dg.DagsterInstance, removal: ParticipantRemoval, tracking: MlflowTracking,
                     participant: str, *, by: str) -> dict:
    """`har participants purge`: delete every copy the platform holds of a removed participant (stored assets and
    archive, the Dagster event log's runs, materializations, checks and pictures of its partition, MLflow's
    examples, figures and keys naming it) and record what went in its audit record."""
    from har_assets.ml.mlflow_purge import purge_participant
    from har_assets.orchestration.event_log_purge import purge_partition_events

    if participant in instance.get_dynamic_partitions(participants.name):
        raise RemovalStateError(f"'{participant}' is still in the study: remove it first "
                                f"(har participants remove {participant} --reason ...)")
    files = purge_participant_files(removal.assets, removal.audit_dir, participant)  # refuses unless removed
    events = purge_partition_events(instance, partitioned_asset_keys(), participant)
    mlflow = purge_participant(tracking.client(), tracking.tracking_uri, participant)
    deleted = {"files": files, "dagster": asdict(events), "mlflow": asdict(mlflow)}
    return record_purge(removal.audit_dir, participant, by=by, deleted=deleted)
