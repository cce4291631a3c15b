"""Where a participant's raw files live, and how to tell whether they are complete and unchanged.

The raw folder is read-only to the platform: nothing here writes to it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RESERVED_PREFIX = "__"  # the asset store's own keys: `<asset>/__all__` holds an unpartitioned asset's value
SENSOR_FILES = ("accelerometer", "gyroscope")
SENSOR_SUFFIXES = (".xlsx", ".csv")
LABELS_FILE = "labels.csv"
META_FILE = "participant.json"


class ParticipantFolderError(ValueError):
    """A participant folder that cannot be processed (bad id, missing or ambiguous files)."""

    def __init__(self, participant: str, problem: str) -> None:
        self.participant = participant
        super().__init__(f"participant '{participant}': {problem}")


def validate_participant_id(participant: str) -> str:
    """Return the id if it is safe as a partition key and a path component and not reserved, else raise."""
    if not PARTICIPANT_ID.fullmatch(participant):
        raise ParticipantFolderError(
            participant, f"invalid participant id (must match {PARTICIPANT_ID.pattern})"
        )
    if participant.startswith(RESERVED_PREFIX):
        raise ParticipantFolderError(
            participant, f"invalid participant id: ids starting with '{RESERVED_PREFIX}' are reserved for the "
                         "asset store's own keys (such as '__all__'); rename the folder"
        )
    return participant


@dataclass(frozen=True)
class ParticipantFiles:
    """The recognised files of one participant folder."""

    participant: str
    accelerometer: Path
    gyroscope: Path
    labels: Path | None
    meta: Path | None

    @property
    def all(self) -> list[Path]:
        return [p for p in (self.accelerometer, self.gyroscope, self.labels, self.meta) if p is not None]


def locate_files(folder: Path) -> ParticipantFiles:
    """Find the sensor files (xlsx or csv), labels and metadata of a participant folder."""
    participant = validate_participant_id(folder.name)
    if not folder.is_dir():
        raise ParticipantFolderError(participant, f"folder {folder} does not exist")
    sensors: dict[str, Path] = {}
    for sensor in SENSOR_FILES:
        found = [folder / f"{sensor}{suffix}" for suffix in SENSOR_SUFFIXES if (folder / f"{sensor}{suffix}").is_file()]
        if not found:
            raise ParticipantFolderError(
                participant, f"missing required file {sensor}.xlsx (or {sensor}.csv)"
            )
        if len(found) > 1:
            raise ParticipantFolderError(
                participant, f"ambiguous: both {found[0].name} and {found[1].name} exist; keep one"
            )
        sensors[sensor] = found[0]
    labels = folder / LABELS_FILE
    meta = folder / META_FILE
    return ParticipantFiles(
        participant=participant,
        accelerometer=sensors["accelerometer"],
        gyroscope=sensors["gyroscope"],
        labels=labels if labels.is_file() else None,
        meta=meta if meta.is_file() else None,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_of(sources: dict[str, str]) -> str:
    """Hash of file names and their sha256: the raw recording's data version."""
    text = "|".join(f"{name}={sha}" for name, sha in sorted(sources.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def content_fingerprint(files: ParticipantFiles) -> str:
    """Content hash of every recognised file of a participant (see `fingerprint_of`)."""
    return fingerprint_of({p.name: file_sha256(p) for p in files.all})


def stat_signature(files: ParticipantFiles) -> str:
    """Cheap signature of sizes and modification times, to notice files still being written."""
    parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files.all]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def newest_mtime(files: ParticipantFiles) -> float:
    return max(p.stat().st_mtime for p in files.all)
