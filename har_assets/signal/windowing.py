"""Fixed-size windows inside segments, labelled by their majority activity."""

from __future__ import annotations

import io
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from har_assets.config import PreprocessConfig
from har_assets.signal.filters import segment_bounds

UNLABELED = ""


@dataclass
class WindowSet:
    """Model-ready windows of one recording.

    X: (n, window_size, channels) float32; labels: activity per window ("" = unlabelled);
    start_ms/end_ms: time of the first and last sample; segment: the segment each came from.
    """

    X: np.ndarray
    labels: np.ndarray
    start_ms: np.ndarray
    end_ms: np.ndarray
    segment: np.ndarray
    channels: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def labeled(self) -> np.ndarray:
        return self.labels != UNLABELED

    def class_counts(self) -> dict[str, int]:
        names, counts = np.unique(self.labels[self.labeled], return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts, strict=True)}

    def to_bytes(self) -> bytes:
        """An uncompressed NumPy .npz archive (read back without pickle)."""
        buffer = io.BytesIO()
        np.savez(buffer, X=self.X, labels=self.labels.astype(str), start_ms=self.start_ms, end_ms=self.end_ms,
                 segment=self.segment, channels=np.array(self.channels, dtype=str))
        return buffer.getvalue()

    @classmethod
    def load(cls, source: Path | BinaryIO) -> WindowSet:
        """From a stored .npz file or file object."""
        with np.load(source, allow_pickle=False) as data:
            return cls(X=data["X"], labels=data["labels"], start_ms=data["start_ms"], end_ms=data["end_ms"],
                       segment=data["segment"], channels=tuple(str(c) for c in data["channels"]))

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowSet:
        return cls.load(io.BytesIO(data))


def window_labels(sample_labels: np.ndarray, starts: np.ndarray, size: int, coverage: float) -> np.ndarray:
    """Majority label of each window if it covers at least `coverage` of it, else unlabelled."""
    names, codes = np.unique(np.where(sample_labels == None, UNLABELED, sample_labels).astype(str),  # noqa: E711
                             return_inverse=True)
    views = sliding_window_view(codes, size)[starts]
    out = np.full(starts.size, UNLABELED, dtype=object)
    best_count = np.zeros(starts.size, dtype=np.int64)
    for code, name in enumerate(names):
        if name == UNLABELED:
            continue
        count = (views == code).sum(axis=1)
        better = count > best_count
        out[better] = name
        best_count[better] = count[better]
    out[best_count < coverage * size] = UNLABELED
    return out.astype(str)


def window_starts(segment: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Row of each window's first sample: every `window_step` from each segment's first row, whole windows only."""
    bounds = segment_bounds(segment) if segment.size else np.array([0])
    size, step = cfg.window_size, cfg.window_step
    return np.concatenate(
        [np.arange(lo, hi - size + 1, step) for lo, hi in itertools.pairwise(bounds)]
        or [np.empty(0, dtype=np.int64)]
    ).astype(np.int64)


def windows_at(columns: Mapping[str, np.ndarray], sample_labels: np.ndarray | None, starts: np.ndarray,
               cfg: PreprocessConfig) -> WindowSet:
    """The windows whose first samples are the rows `starts` of `columns` (t_ms, segment and the channels)."""
    channels, size = cfg.channels, cfg.window_size
    t_ms, segment = columns["t_ms"], columns["segment"]
    if starts.size:
        values = np.column_stack([columns[c] for c in channels]).astype(np.float32)
        X = np.ascontiguousarray(sliding_window_view(values, size, axis=0)[starts].transpose(0, 2, 1))
        labels = (np.full(starts.size, UNLABELED, dtype=str) if sample_labels is None
                  else window_labels(sample_labels, starts, size, cfg.label_coverage))
    else:
        X = np.empty((0, size, len(channels)), dtype=np.float32)
        labels = np.empty(0, dtype=str)
    return WindowSet(X=X, labels=labels, start_ms=t_ms[starts], end_ms=t_ms[starts + size - 1] if starts.size
                     else np.empty(0), segment=segment[starts], channels=channels)


def windows_from_columns(columns: Mapping[str, np.ndarray], sample_labels: np.ndarray | None,
                         cfg: PreprocessConfig) -> WindowSet:
    """Slide `window_size` samples by `window_step` within each segment; never across a boundary.

    `columns` holds t_ms, segment and the channels; `sample_labels` the activity per sample (None where nothing
    is labelled).
    """
    return windows_at(columns, sample_labels, window_starts(columns["segment"], cfg), cfg)


def make_windows(frame: pl.DataFrame, cfg: PreprocessConfig) -> WindowSet:
    """`windows_from_columns` on a filtered frame (t_ms, segment, the channels, label)."""
    label = frame["label"]
    columns = {c: frame[c].to_numpy() for c in ("t_ms", "segment", *cfg.channels)}
    return windows_from_columns(columns, None if label.null_count() == label.len() else label.to_numpy(), cfg)
