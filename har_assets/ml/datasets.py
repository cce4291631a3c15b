"""Participants' windows as training data: which are labelled, classes, scaler, stacked arrays.

Numpy only (no torch), so the split and scaler assets load without the deep-learning stack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from har_assets.ml.scaler import ChannelScaler
from har_assets.signal.windowing import WindowSet

WindowSets = Mapping[str, WindowSet]


def labelled_participants(windowsets: WindowSets) -> tuple[list[str], list[str]]:
    """(participants with at least one labelled window, participants without any)."""
    labelled = sorted(p for p, ws in windowsets.items() if ws.labeled.any())
    return labelled, sorted(set(windowsets) - set(labelled))


def common_channels(windowsets: WindowSets) -> tuple[str, ...]:
    """The channels all participants' windows share; raises if they were preprocessed differently."""
    by_channels: dict[tuple[str, ...], list[str]] = {}
    for pid, ws in sorted(windowsets.items()):
        by_channels.setdefault(tuple(ws.channels), []).append(pid)
    if len(by_channels) != 1:
        detail = "; ".join(f"{list(ch)}: {pids}" for ch, pids in by_channels.items())
        raise ValueError(f"participants' windows have different channels (re-run preprocessing): {detail}")
    return next(iter(by_channels))


def windows_fingerprint(ws: WindowSet) -> str:
    """Content hash of a participant's windows (values, labels, channels)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(ws.X).tobytes())
    digest.update("\x1f".join(ws.labels.astype(str).tolist()).encode())
    digest.update("\x1f".join(ws.channels).encode())
    return digest.hexdigest()[:16]


def pick(windowsets: WindowSets, participants: Iterable[str]) -> list[WindowSet]:
    """The participants' windows in sorted order; KeyError naming any that have none."""
    missing = sorted(set(participants) - set(windowsets))
    if missing:
        raise KeyError(f"no windows for participants {missing}")
    return [windowsets[p] for p in sorted(participants)]


def derive_classes(windowsets: WindowSets, participants: Iterable[str]) -> list[str]:
    """The sorted activity labels of the given (training) participants' labelled windows."""
    names: set[str] = set()
    for ws in pick(windowsets, participants):
        names.update(ws.labels[ws.labeled].tolist())
    return sorted(names)


def fit_scaler(windowsets: WindowSets, participants: Iterable[str]) -> ChannelScaler:
    """Per-channel z-score over the labelled windows of the given (training) participants only."""
    participants = sorted(participants)
    chosen = pick(windowsets, participants)
    if not chosen or not any(ws.labeled.any() for ws in chosen):
        raise ValueError("no labelled windows to fit the scaler on")
    channels = common_channels({p: windowsets[p] for p in participants})
    return ChannelScaler.fit(np.concatenate([ws.X[ws.labeled] for ws in chosen]), channels)


@dataclass
class LabelledData:
    """Labelled windows of some participants as arrays; `excluded` counts windows of classes the model lacks."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    excluded: dict[str, int]

    def __len__(self) -> int:
        return len(self.y)


def labelled_data(windowsets: WindowSets, participants: Iterable[str], classes: Sequence[str],
                  scaler: ChannelScaler | None = None) -> LabelledData:
    """Stack the labelled windows (optionally scaled) with class indices and participant ids."""
    index = {c: i for i, c in enumerate(classes)}
    Xs, ys, groups = [], [], []
    excluded: dict[str, int] = {}
    for pid in sorted(participants):
        ws = pick(windowsets, [pid])[0]
        keep = ws.labeled & np.isin(ws.labels, list(index))
        for name in ws.labels[ws.labeled & ~keep].tolist():
            excluded[name] = excluded.get(name, 0) + 1
        Xs.append(ws.X[keep])
        ys.append(np.array([index[c] for c in ws.labels[keep]], dtype=np.int64))
        groups.append(np.full(int(keep.sum()), pid))
    channels = len(scaler.channels) if scaler else (Xs[0].shape[2] if Xs else 0)
    X = np.concatenate(Xs) if Xs else np.empty((0, 0, channels), np.float32)
    if scaler is not None and len(X):
        X = scaler.transform(X)
    return LabelledData(X=X.astype(np.float32, copy=False), y=np.concatenate(ys) if ys else np.empty(0, np.int64),
                        groups=np.concatenate(groups) if groups else np.empty(0, str), excluded=excluded)
