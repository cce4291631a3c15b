"""A participant leaving a study: their stored assets moved to an archive, and an audit record.

Pure store operations on the asset store's base (a folder or an object store); the Dagster side,
deleting the partition, is in orchestration.participant_removal. The audit is one object per
removed participant, written once (an object store cannot append): a removed id stays removed (ids
are never reused), so its raw folder, if it is still there, is reported and skipped by every later scan.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from har_assets.objectstore import move, size_of, store_path, write_atomically
from har_assets.raw.layout import validate_participant_id

if TYPE_CHECKING:
    from upath import UPath

SUFFIXES = (".zip", ".parquet", ".npz", "")  # the stored formats, and a folder (raw_recording before v0.2)
LEGACY_AUDIT = "participants.jsonl"  # the audit of earlier versions: JSON lines in the audit folder's parent


@dataclass(frozen=True)
class RemovalRecord:
    participant: str
    removed_at: str
    by: str
    reason: str
    archived_to: str
    files: list[dict] = field(default_factory=list)  # {"asset", "path", "bytes"} of what was moved

    def to_json(self) -> str:
        return json.dumps({"action": "removed", **asdict(self)}, sort_keys=True)

    @classmethod
    def from_audit(cls, entry: dict) -> RemovalRecord:
        return cls(**{k: v for k, v in entry.items() if k != "action"})


def archive_participant(assets: UPath, archive_root: UPath, participant: str,
                        now: dt.datetime) -> tuple[UPath, list[dict]]:
    """Move every stored partition of `participant` (any asset) under archive_root/<id>-<time>/<asset>/."""
    pid = validate_participant_id(participant)
    target = archive_root / f"{pid}-{now.strftime('%Y%m%dT%H%M%S%fZ')}"
    moved: list[dict] = []
    asset_dirs = sorted((p for p in assets.iterdir() if p.is_dir() and not p.name.startswith(".")),
                        key=lambda p: p.name) if assets.exists() else []
    for asset_dir in asset_dirs:
        for suffix in SUFFIXES:
            stored = asset_dir / f"{pid}{suffix}"
            if not stored.exists() or (suffix == "") != stored.is_dir():
                continue
            dest = target / asset_dir.name / stored.name
            size = size_of(stored)
            move(stored, dest)
            moved.append({"asset": asset_dir.name, "path": str(dest), "bytes": size})
    return target, moved


def write_audit(audit_dir: UPath, record: RemovalRecord) -> None:
    """Store the participant's audit record (one object) before the removal is reported done."""
    write_atomically(audit_dir / f"{record.participant}.json", record.to_json().encode())


def _record_objects(audit_dir: UPath) -> dict[str, UPath]:
    """Participant -> its audit object (a listing, nothing read)."""
    if not audit_dir.exists():
        return {}
    return {p.name.removesuffix(".json"): p for p in audit_dir.iterdir() if p.name.endswith(".json")}


def _legacy_entries(audit_dir: UPath) -> list[tuple[str, str]]:
    legacy = audit_dir.parent / LEGACY_AUDIT
    if not legacy.exists():
        return []
    return [(f"{legacy}, line {n}", line) for n, line in enumerate(legacy.read_text(encoding="utf-8").splitlines(), 1)]


def removed_participants(audit_dir: UPath, among: set[str] | None = None) -> dict[str, dict]:
    """Participant -> its removal record, oldest removal first (empty if there is none); only those `among`
    if given (the others' records are not read)."""
    objects = _record_objects(audit_dir)
    texts = _legacy_entries(audit_dir) + [(str(path), path.read_text(encoding="utf-8"))
                                          for pid, path in objects.items() if among is None or pid in among]
    removed: dict[str, dict] = {}
    for where, text in texts:
        if not text.strip():
            continue
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc.msg})") from exc
        if entry.get("action") == "removed" and (among is None or entry["participant"] in among):
            removed.setdefault(entry["participant"], entry)
    return dict(sorted(removed.items(), key=lambda item: item[1]["removed_at"]))


def removed_ids(audit_dir: UPath) -> set[str]:
    """Every removed participant: a listing of the audit objects (plus the legacy file's lines)."""
    legacy = {json.loads(text)["participant"] for _, text in _legacy_entries(audit_dir) if text.strip()}
    return legacy | set(_record_objects(audit_dir))


def remove_participant_files(assets: str, archive_root: str, audit_dir: str, participant: str, *, by: str,
                             reason: str, now: dt.datetime | None = None) -> RemovalRecord:
    """Archive the participant's stored assets and write the audit record; the record."""
    now = now or dt.datetime.now(dt.UTC)
    target, moved = archive_participant(store_path(assets), store_path(archive_root), participant, now)
    record = RemovalRecord(participant=participant, removed_at=now.isoformat(), by=by, reason=reason,
                           archived_to=str(target), files=moved)
    write_audit(store_path(audit_dir), record)
    return record
