"""A recording as it would have come from the same movements with the device worn or read differently.

What the out-of-distribution score must catch, applied to real recordings by the reliability benchmark and to
generated ones by the tests: the device turned on the body (every sensor triplet rotated alike), worn on the other
wrist (a mirror image of the movement: one axis of acceleration flips and, angular velocity being an axial vector,
the gyroscope's two other axes flip), and milli-g read as g (acceleration 1000 times too large).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl

from har_assets.raw.recording import RawRecording

AXES = "xyz"


def rotation(axis: str, degrees: float) -> np.ndarray:
    """3x3 rotation by `degrees` about device axis `axis` (x, y or z), counter-clockwise looking down the axis."""
    k = AXES.index(axis)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = (k + 1) % 3, (k + 2) % 3  # right-handed: x turns y towards z, y turns z towards x, z turns x towards y
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _transformed(frame: pl.DataFrame, matrix: np.ndarray) -> pl.DataFrame:
    xyz = frame.select(list(AXES)).to_numpy() @ matrix.T
    return frame.with_columns(*(pl.Series(a, xyz[:, i]) for i, a in enumerate(AXES)))


def _with(raw: RawRecording, accel: np.ndarray, gyro: np.ndarray) -> RawRecording:
    return replace(raw, accel=_transformed(raw.accel, accel), gyro=_transformed(raw.gyro, gyro))


def turned(raw: RawRecording, axis: str, degrees: float) -> RawRecording:
    """The device turned by `degrees` about its `axis`: both sensors rotated alike."""
    r = rotation(axis, degrees)
    return _with(raw, r, r)


def mirrored(raw: RawRecording, axis: str) -> RawRecording:
    """The movement mirrored through the plane across device axis `axis` (the device on the other wrist)."""
    m = np.eye(3)
    m[AXES.index(axis), AXES.index(axis)] = -1.0
    return _with(raw, m, -m)  # angular velocity is axial: it turns with det(m) * m


def milli_g_read_as_g(raw: RawRecording) -> RawRecording:
    """Acceleration recorded in milli-g but declared as g: 1000 times too large."""
    return _with(raw, 1000.0 * np.eye(3), np.eye(3))
