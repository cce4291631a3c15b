"""Scanning the raw root for participant folders that are new, changed, still being written, or invalid.

Pure and idempotent: the state of the previous scan goes in, the new state comes out, so a
sensor can keep it in its cursor and never re-request an unchanged participant.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from har_assets.raw.layout import (
    ParticipantFolderError,
    content_fingerprint,
    locate_files,
    newest_mtime,
    stat_signature,
)


@dataclass
class ScanResult:
    to_request: dict[str, str] = field(default_factory=dict)  # participant -> content fingerprint
    ready: dict[str, str] = field(default_factory=dict)  # every settled participant (to_request too) -> fingerprint
    settling: list[str] = field(default_factory=list)  # files still changing: wait for the next scan
    invalid: dict[str, str] = field(default_factory=dict)  # folder name -> problem (a copy of a registered one too)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # folders of participants removed from the study: skipped
    folders: list[str] = field(default_factory=list)  # every folder name found, valid or not
    state: dict = field(default_factory=dict)  # to pass to the next scan

    def summary(self) -> str:
        parts = [f"{len(self.to_request)} new/changed", f"{len(self.unchanged)} unchanged"]
        if self.settling:
            parts.append(f"{len(self.settling)} still being written ({', '.join(self.settling)})")
        if self.removed:
            parts.append(f"{len(self.removed)} removed from the study, skipped ({', '.join(self.removed)})")
        if self.invalid:
            parts.append("invalid: " + "; ".join(f"{n}: {p}" for n, p in sorted(self.invalid.items())))
        return ", ".join(parts)


def raw_root_problem(root: Path, registered: int) -> str | None:
    """Why the raw root cannot be trusted as the study's list of participants, or None.

    A missing raw root, or one without a single folder, while participants are registered is an
    unmounted volume or a wrong path far more often than a study everybody left: nothing may be
    concluded from it (no participant is missing, no demo data is written)."""
    if not registered:
        return None
    if not root.is_dir():
        state = "does not exist"
    elif not any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()):
        state = "holds no participant folder"
    else:
        return None
    return (f"the raw root {root} {state}, but {registered} participant(s) are registered in this home: is the raw "
            "volume mounted (or HAR_HOME the right folder)? Nothing was changed; mount it and run again")


def _copy_of(owner: str) -> str:
    return (f"same files as registered participant '{owner}' (renamed or copied?): not registered; rename it back, "
            f"or remove '{owner}' first (har participants remove)")


def scan_raw_root(root: Path, previous: dict | None, settle_s: float = 10.0, now: float | None = None,
                  removed: set[str] | frozenset[str] = frozenset(),
                  registered: dict[str, str | None] | None = None) -> ScanResult:
    """Classify every folder under `root` (folders named like a `removed` participant are skipped).

    A folder is ready once its files' sizes and mtimes are unchanged since the previous scan, or
    their newest mtime is older than `settle_s`. A ready folder whose content hash differs from
    the last one requested is returned in `to_request`; the caller confirms with the new state.
    A new folder whose files are identical to a `registered` participant's (id -> content hash) is
    `invalid`: registering it would put one person in the study twice, possibly in train and test.
    """
    previous = previous or {}
    owners = {fp: pid for pid, fp in (registered or {}).items() if fp}
    seen_before: dict[str, dict] = previous.get("seen", {})
    requested: dict[str, str] = dict(previous.get("requested", {}))
    now = time.time() if now is None else now
    result = ScanResult()
    seen: dict[str, dict] = {}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    result.folders = [f.name for f in folders]
    for folder in folders:
        if folder.name in removed:
            result.removed.append(folder.name)
            continue
        try:
            files = locate_files(folder)
            signature = stat_signature(files)
        except (ParticipantFolderError, OSError) as exc:
            result.invalid[folder.name] = str(exc)
            continue
        pid = files.participant
        before = seen_before.get(pid, {})
        if before.get("sig") == signature and before.get("fp"):
            fingerprint = before["fp"]
        elif before.get("sig") == signature or now - newest_mtime(files) >= settle_s:
            fingerprint = content_fingerprint(files)
        else:
            seen[pid] = {"sig": signature, "fp": None}
            result.settling.append(pid)
            continue
        seen[pid] = {"sig": signature, "fp": fingerprint}
        if pid not in (registered or {}) and fingerprint in owners:
            result.invalid[pid] = _copy_of(owners[fingerprint])
            continue
        result.ready[pid] = fingerprint
        if requested.get(pid) == fingerprint:
            result.unchanged.append(pid)
        else:
            result.to_request[pid] = fingerprint
            requested[pid] = fingerprint
    result.state = {"seen": seen, "requested": requested}
    return result
