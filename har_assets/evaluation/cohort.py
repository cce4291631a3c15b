"""The labelled participants of a raw folder: read once, windowed once per preprocessing config.

Reading is strict, as everywhere: a participant whose files cannot be read or preprocessed
stops the evaluation with every such participant's error, rather than being left out quietly.
"""

from __future__ import annotations

from pathlib import Path

from har_assets.config import PreprocessConfig
from har_assets.errors import PipelineDataError, RawDataError
from har_assets.ml.datasets import WindowSets, labelled_participants
from har_assets.raw.layout import ParticipantFolderError, locate_files
from har_assets.raw.reader import read_files
from har_assets.raw.recording import RawRecording
from har_assets.signal.pipeline import preprocess

DATA_ERRORS = (RawDataError, PipelineDataError, ParticipantFolderError)


class CohortError(ValueError):
    """The cohort cannot be evaluated as given (no folder, too few labelled people, unreadable files)."""


def _read_key(cfg: PreprocessConfig) -> tuple:
    """The config fields that change how raw files are read (units, accepted labels)."""
    return cfg.accel_unit, cfg.gyro_unit, cfg.activities


class Cohort:
    """Participants of `root` that have a labels.csv (the others cannot be evaluated on)."""

    def __init__(self, root: Path, participants: list[str] | None = None) -> None:
        if not root.is_dir():
            raise CohortError(f"raw folder {root} does not exist")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        labelled = [p.name for p in folders if (p / "labels.csv").is_file()]
        if participants is not None:
            unknown = sorted(set(participants) - set(labelled))
            if unknown:
                raise CohortError(f"participants {unknown} have no folder with a labels.csv under {root}")
            labelled = sorted(set(participants))
        self.root = root
        self.participants = labelled
        self.unlabelled = sorted(p.name for p in folders if p.name not in labelled and participants is None)
        self._raw: dict[tuple, dict[str, RawRecording]] = {}
        self._windows: dict[str, WindowSets] = {}

    def recordings(self, cfg: PreprocessConfig) -> dict[str, RawRecording]:
        key = _read_key(cfg)
        if key not in self._raw:
            recordings, errors = {}, []
            for pid in self.participants:
                try:
                    recordings[pid] = read_files(locate_files(self.root / pid), cfg)
                except DATA_ERRORS as exc:
                    errors.append(str(exc))
            if errors:
                raise CohortError("cannot read every participant:\n  " + "\n  ".join(errors))
            self._raw[key] = recordings
        return self._raw[key]

    def windows(self, cfg: PreprocessConfig) -> WindowSets:
        """Every participant's windows under `cfg` (the last config's are kept); participants without a
        labelled window make it an error, since they could not be tested."""
        key = cfg.fingerprint()
        if key not in self._windows:
            out, errors = {}, []
            for pid, rec in self.recordings(cfg).items():
                try:
                    out[pid] = preprocess(rec, cfg)[0]
                except DATA_ERRORS as exc:
                    errors.append(str(exc))
            if errors:
                raise CohortError("cannot preprocess every participant:\n  " + "\n  ".join(errors))
            _, empty = labelled_participants(out)
            if empty:
                raise CohortError(f"participants {empty} have a labels.csv but no labelled window under this "
                                  f"preprocessing (label_coverage {cfg.label_coverage}, window {cfg.window_size})")
            self._windows = {key: out}  # one config at a time bounds memory; preprocessing is cheap
        return self._windows[key]
