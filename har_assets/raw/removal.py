"""A participant leaving a study: their stored assets moved to an archive, and an audit record; undone by a
restore, made final by a purge.

Pure store operations on the asset store's base (a folder or an object store); the Dagster and MLflow
sides are in orchestration.participant_removal. The audit is one object per removed participant
(`<audit>/<id>.json`, present while the participant is removed or purged: an object store cannot
append, and a listing tells the sensor who is out without reading anything), plus one object per
action in `<audit>/../history/<id>/` (removed, restored, purged), kept for good. A removed or purged
id's raw folder, if it is still there, is reported and skipped by every scan.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from har_assets.objectstore import delete_tree, move, size_of, store_path, write_atomically
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
        return cls(**{f.name: entry[f.name] for f in fields(cls) if f.name in entry})


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


class RemovalStateError(ValueError):
    """A restore or purge of a participant that is not in the state it needs (removed)."""


def write_audit(audit_dir: UPath, record: RemovalRecord) -> None:
    """Store the participant's audit record (one object) and its history entry, before the removal is reported
    done."""
    write_atomically(audit_dir / f"{record.participant}.json", record.to_json().encode())
    write_history(audit_dir, record.participant, "removed", record.removed_at, json.loads(record.to_json()))


def write_history(audit_dir: UPath, participant: str, action: str, at: str, entry: dict) -> None:
    """One history object per action on a participant (never overwritten: the time is in its name)."""
    stamp = at.replace(":", "").replace("-", "").replace("+0000", "Z")
    write_atomically(audit_dir.parent / "history" / participant / f"{stamp}-{action}.json",
                     json.dumps({"action": action, **entry}, sort_keys=True).encode())


def history(audit_dir: UPath, participant: str) -> list[dict]:
    """Every recorded action on the participant, oldest first."""
    folder = audit_dir.parent / "history" / validate_participant_id(participant)
    if not folder.exists():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.iterdir(), key=lambda p: p.name)]


def _current(audit_dir: UPath, participant: str, action: str) -> dict:
    entry = removed_participants(audit_dir, {validate_participant_id(participant)}).get(participant)
    if entry is None:
        raise RemovalStateError(f"'{participant}' is not a removed participant (nothing to {action})")
    if entry.get("purged_at"):
        raise RemovalStateError(f"'{participant}' was purged on {entry['purged_at']}: nothing is left to {action}")
    return entry


def restore_participant_files(assets: str, audit_dir: str, participant: str, *, by: str,
                              now: dt.datetime | None = None) -> dict:
    """Move a removed participant's archived assets back where they were and close its removal record; what was
    restored. Refuses (before moving anything) when a stored object is in the way."""
    audit = store_path(audit_dir)
    entry = _current(audit, participant, "restore")
    base = store_path(assets)
    moves = [(store_path(f["path"]), base / f["asset"] / store_path(f["path"]).name) for f in entry["files"]]
    in_the_way = [str(dst) for _, dst in moves if dst.exists()]
    if in_the_way:
        raise RemovalStateError(f"cannot restore '{participant}': {', '.join(in_the_way)} already exist(s); "
                                "move them aside first")
    lost = [str(src) for src, _ in moves if not src.exists()]
    if lost:
        raise RemovalStateError(f"cannot restore '{participant}': archived file(s) {', '.join(lost)} are gone")
    for src, dst in moves:
        move(src, dst)
    now = now or dt.datetime.now(dt.UTC)
    restored = {"participant": participant, "restored_at": now.isoformat(), "by": by,
                "files": [str(dst) for _, dst in moves], "removal": entry}
    write_history(audit, participant, "restored", restored["restored_at"], restored)
    (audit / f"{participant}.json").unlink()
    return restored


def purge_participant_files(assets: str, audit_dir: str, participant: str) -> list[dict]:
    """Delete every stored copy of a removed participant: its archive and anything of it still in the asset store.
    What was deleted ({"path", "bytes"}); the caller records it (`record_purge`)."""
    entry = _current(store_path(audit_dir), participant, "purge")
    deleted: list[dict] = []
    archive = store_path(entry["archived_to"])
    if archive.exists():
        deleted.append({"path": str(archive), "bytes": size_of(archive)})
        delete_tree(archive)
    base = store_path(assets)
    for asset_dir in (p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.exists() else []:
        for suffix in SUFFIXES:
            stored = asset_dir / f"{participant}{suffix}"
            if stored.exists() and (suffix == "") == stored.is_dir():
                deleted.append({"path": str(stored), "bytes": size_of(stored)})
                delete_tree(stored)
    return deleted


def record_purge(audit_dir: str, participant: str, *, by: str, deleted: dict, now: dt.datetime | None = None) -> dict:
    """Mark the participant purged (its audit object keeps it out of the study for good) and log what went."""
    audit = store_path(audit_dir)
    entry = _current(audit, participant, "purge")
    now = now or dt.datetime.now(dt.UTC)
    purged = {**entry, "purged_at": now.isoformat(), "purged_by": by, "deleted": deleted}
    write_atomically(audit / f"{participant}.json",
                     json.dumps({"action": "removed", **purged}, sort_keys=True).encode())
    write_history(audit, participant, "purged", purged["purged_at"], {"participant": participant, "by": by,
                                                                      "purged_at": purged["purged_at"],
                                                                      "deleted": deleted})
    return purged


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
