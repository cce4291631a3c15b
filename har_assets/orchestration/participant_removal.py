"""Participants leaving a study: their partition deleted, their stored assets archived, the removal audited,
and the next split (so the next champion) made without them.

`study_participants` is an external asset: Dagster does not compute it; every removal reports a
materialization of it (who, why, what was archived). `dataset_split` depends on it, so a removal
counts as new data for the retraining automation, and the removal history is in the UI.
"""

from __future__ import annotations

import dagster as dg

from har_assets.home import HarHome
from har_assets.objectstore import store_path
from har_assets.raw.removal import RemovalRecord, remove_participant_files, removed_ids, removed_participants

STUDY_PARTICIPANTS = dg.AssetSpec(
    "study_participants", group_name="training", kinds={"python"},
    description="The study's participants. Not computed: each removal (`har participants remove`, or a deleted "
                "raw folder) reports a materialization naming who was removed, by whom, why and what was "
                "archived; dataset_split follows it, so the next model is trained without them.")


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


def registry_event(records: list[RemovalRecord]) -> dg.AssetMaterialization:
    """The materialization of study_participants that reports these removals."""
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
    from har_assets.orchestration.partitions import participants

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
