"""A participant leaving a study: their stored assets moved to an archive, and an append-only audit record.

Pure file operations (the Dagster side, deleting the partition, is in orchestration.participant_removal).
The raw folder is the study's, never touched: a removed id stays removed (ids are never reused),
so its folder, if it is still there, is reported and skipped by every later scan.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from har_assets.raw.layout import validate_participant_id

SUFFIXES = ("", ".parquet", ".npz")  # a folder (raw_recording) or one file per partition


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


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def archive_participant(assets: Path, archive_root: Path, participant: str,
                        now: dt.datetime) -> tuple[Path, list[dict]]:
    """Move every stored partition of `participant` (any asset) under archive_root/<id>-<time>/<asset>/."""
    pid = validate_participant_id(participant)
    target = archive_root / f"{pid}-{now.strftime('%Y%m%dT%H%M%S%fZ')}"
    moved: list[dict] = []
    asset_dirs = sorted(p for p in assets.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if assets.is_dir() else []
    for asset_dir in asset_dirs:
        for suffix in SUFFIXES:
            stored = asset_dir / f"{pid}{suffix}"
            if not stored.exists() or (suffix == "" and not stored.is_dir()):
                continue
            dest = target / asset_dir.name / stored.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            size = _size(stored)
            os.replace(stored, dest)
            moved.append({"asset": asset_dir.name, "path": str(dest), "bytes": size})
    return target, moved


def append_audit(audit_file: Path, record: RemovalRecord) -> None:
    """Append one JSON line and flush it to disk before the removal is reported done."""
    audit_file.parent.mkdir(parents=True, exist_ok=True)
    with audit_file.open("a", encoding="utf-8") as f:
        f.write(record.to_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


def removed_participants(audit_file: Path) -> dict[str, dict]:
    """Participant -> its removal record, from the audit file (empty if there is none)."""
    if not audit_file.is_file():
        return {}
    removed: dict[str, dict] = {}
    for n, line in enumerate(audit_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{audit_file}, line {n}: not JSON ({exc.msg})") from exc
        if entry.get("action") == "removed":
            removed[entry["participant"]] = entry
    return removed


def remove_participant_files(assets: Path, archive_root: Path, audit_file: Path, participant: str, *, by: str,
                             reason: str, now: dt.datetime | None = None) -> RemovalRecord:
    """Archive the participant's stored assets and append the audit record; the record."""
    now = now or dt.datetime.now(dt.UTC)
    target, moved = archive_participant(assets, archive_root, participant, now)
    record = RemovalRecord(participant=participant, removed_at=now.isoformat(), by=by, reason=reason,
                           archived_to=str(target), files=moved)
    append_audit(audit_file, record)
    return record
