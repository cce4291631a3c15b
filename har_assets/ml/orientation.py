"""A person's own orientation reference: turn their device frame so that 'upright' points where it did in training.

How the device sits differs per person (a phone turned in a pocket, a watch worn loose), and with gravity kept
the direction of gravity in the device frame is what tells postures apart. While a person moves (walks, climbs
stairs) their trunk is upright, so the mean gravity direction of their *moving* windows is where 'upright' lies
in their device frame, found from their unlabelled signal alone: windows whose acceleration magnitude sways by
more than `min_sway` (m/s², standard deviation within the window). The training people's mean of the same
direction is the reference; each person's windows are turned by the smallest rotation that takes their upright
direction onto it (a turn about the vertical stays: rotation augmentation covers it). Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# every xyz triplet a window may hold; a rotation of the device frame turns each of them alike
TRIPLETS = (("acc_x", "acc_y", "acc_z"), ("gyro_x", "gyro_y", "gyro_z"), ("grav_x", "grav_y", "grav_z"))
ACC = TRIPLETS[0]


def triplet_indices(channels: Sequence[str]) -> list[list[int]]:
    """Channel indices of each xyz triplet the channels hold (in TRIPLETS order)."""
    return [[list(channels).index(c) for c in t] for t in TRIPLETS if set(t) <= set(channels)]


def moving_windows(X: np.ndarray, channels: Sequence[str], min_sway: float) -> np.ndarray:
    """Windows whose acceleration magnitude sways by more than `min_sway` (m/s², sd within the window)."""
    acc = np.asarray(X)[:, :, [list(channels).index(c) for c in ACC]].astype(np.float64)
    return np.linalg.norm(acc, axis=2).std(axis=1) > min_sway


def upright_direction(X: np.ndarray, channels: Sequence[str], min_sway: float,
                      min_windows: int) -> tuple[np.ndarray | None, int]:
    """(unit mean gravity direction over the moving windows, how many windows moved); None when fewer than
    `min_windows` did. X: unscaled windows (n, samples, channels), acceleration in m/s² with gravity kept."""
    if not set(ACC) <= set(channels):
        raise ValueError(f"an orientation reference needs the accelerometer channels {ACC}, got {list(channels)}")
    acc = np.asarray(X)[:, :, [list(channels).index(c) for c in ACC]].astype(np.float64)
    moving = moving_windows(X, channels, min_sway)
    n = int(moving.sum())
    if n < max(min_windows, 1):
        return None, n
    g = acc[moving].mean(axis=1)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    mean = g.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm if norm > 1e-6 else None), n


def rotation_onto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking direction a onto direction b (Rodrigues); a half turn about an axis
    perpendicular to a when they are opposite."""
    a = np.asarray(a, dtype=np.float64) / np.linalg.norm(a)
    b = np.asarray(b, dtype=np.float64) / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    s = float(np.linalg.norm(v))
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + k + k @ k * ((1.0 - c) / s**2)


def rotate_windows(X: np.ndarray, channels: Sequence[str], rotation: np.ndarray) -> np.ndarray:
    """The windows with every xyz triplet turned by `rotation` (a new float32 array)."""
    out = np.array(X, dtype=np.float32, copy=True)
    r = np.asarray(rotation, dtype=np.float32).T
    for idx in triplet_indices(channels):
        out[:, :, idx] = out[:, :, idx] @ r
    return out


@dataclass(frozen=True)
class Alignment:
    """What aligning one person's windows did: the rotation, its angle, and how many windows moved."""

    rotation: np.ndarray  # (3, 3); identity when not aligned
    moving_windows: int
    applied: bool

    @property
    def degrees(self) -> float:
        return float(np.degrees(np.arccos(np.clip((np.trace(self.rotation) - 1.0) / 2.0, -1.0, 1.0))))

    def describe(self) -> dict:
        return {"applied": self.applied, "rotation_deg": round(self.degrees, 2), "moving_windows": self.moving_windows}


def align(X: np.ndarray, channels: Sequence[str], reference: np.ndarray, min_sway: float,
          min_windows: int) -> tuple[np.ndarray, Alignment]:
    """One person's (or recording's) windows turned so that their upright direction lies on `reference`;
    unchanged (Alignment.applied False) when too few windows move to find it."""
    direction, moving = upright_direction(X, channels, min_sway, min_windows)
    if direction is None:
        return np.asarray(X, dtype=np.float32), Alignment(np.eye(3), moving, False)
    rotation = rotation_onto(direction, reference)
    return rotate_windows(X, channels, rotation), Alignment(rotation, moving, True)
