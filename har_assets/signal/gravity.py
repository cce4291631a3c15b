"""Gravity handling: remove it, keep it, or separate it into its own channels.

Filters run zero-phase (forward-backward, scipy `sosfiltfilt`) on each segment separately, so
no filter ever smears a signal across a gap.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import polars as pl
from scipy.signal import butter, sosfiltfilt

from har_assets.config import GravityMode, PreprocessConfig

ACC = ("acc_x", "acc_y", "acc_z")
GRAVITY = ("grav_x", "grav_y", "grav_z")


@lru_cache(maxsize=16)
def _sos(order: int, cutoff_hz: float, fs: float, kind: str) -> np.ndarray:
    return butter(order, cutoff_hz, btype=kind, fs=fs, output="sos")


def _zero_phase(sos: np.ndarray, x: np.ndarray, segment_bounds: np.ndarray) -> np.ndarray:
    """Filter each segment's rows of x (n, k) on its own."""
    out = np.empty_like(x)
    default_pad = 3 * (2 * len(sos) + 1)
    for lo, hi in itertools.pairwise(segment_bounds):
        n = hi - lo
        out[lo:hi] = sosfiltfilt(sos, x[lo:hi], axis=0, padlen=min(default_pad, n - 1)) if n > 1 else x[lo:hi]
    return out


def segment_bounds(segment: np.ndarray) -> np.ndarray:
    """Row indices where segments start, plus the end: [0, ..., n]."""
    change = np.flatnonzero(np.diff(segment)) + 1
    return np.concatenate(([0], change, [segment.size]))


def apply_gravity_handling(fused: pl.DataFrame, cfg: PreprocessConfig) -> pl.DataFrame:
    """Return the fused frame with accelerometer channels handled as `cfg.gravity` says."""
    if cfg.gravity is GravityMode.KEEP:
        return fused
    bounds = segment_bounds(fused["segment"].to_numpy())
    acc = fused.select(ACC).to_numpy()
    if cfg.gravity is GravityMode.REMOVE:
        body = _zero_phase(_sos(cfg.filter_order, cfg.highpass_cutoff_hz, cfg.target_hz, "highpass"), acc, bounds)
        return fused.with_columns(pl.Series(name, body[:, i]) for i, name in enumerate(ACC))
    gravity = _zero_phase(_sos(cfg.filter_order, cfg.highpass_cutoff_hz, cfg.target_hz, "lowpass"), acc, bounds)
    body = acc - gravity
    return fused.with_columns(
        *(pl.Series(name, body[:, i]) for i, name in enumerate(ACC)),
        *(pl.Series(name, gravity[:, i]) for i, name in enumerate(GRAVITY)),
    )
