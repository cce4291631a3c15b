"""Gravity handling: remove it, keep it, or separate it into its own channels.

Filters run zero-phase (forward-backward, scipy `sosfiltfilt`) on each segment separately, so
no filter ever smears a signal across a gap.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from har_assets.config import GravityMode, PreprocessConfig
from har_assets.signal.filters import butter_sos, segment_bounds, zero_phase

ACC = ("acc_x", "acc_y", "acc_z")
GRAVITY = ("grav_x", "grav_y", "grav_z")


def gravity_filter(cfg: PreprocessConfig) -> np.ndarray | None:
    """The Butterworth filter `cfg.gravity` runs on the accelerometer (high-pass for remove, low-pass giving
    gravity for separate), None for keep."""
    if cfg.gravity is GravityMode.KEEP:
        return None
    kind = "highpass" if cfg.gravity is GravityMode.REMOVE else "lowpass"
    return butter_sos(cfg.filter_order, cfg.highpass_cutoff_hz, cfg.target_hz, kind)


def gravity_split(acc: np.ndarray, filtered: np.ndarray, cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    """The columns `cfg.gravity` replaces or adds, from acc (n, 3) and `gravity_filter`'s output on it."""
    if cfg.gravity is GravityMode.REMOVE:
        return {name: filtered[:, i] for i, name in enumerate(ACC)}
    body = acc - filtered
    return {**{name: body[:, i] for i, name in enumerate(ACC)},
            **{name: filtered[:, i] for i, name in enumerate(GRAVITY)}}


def gravity_columns(columns: Mapping[str, np.ndarray], cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    """The accelerometer columns `cfg.gravity` replaces or adds, from the fused columns (acc_x..z, segment):
    none for keep; acc_x..z as body acceleration for remove; those and grav_x..z for separate."""
    sos = gravity_filter(cfg)
    if sos is None:
        return {}
    acc = np.column_stack([columns[c] for c in ACC])
    return gravity_split(acc, zero_phase(sos, acc, segment_bounds(columns["segment"])), cfg)


def apply_gravity_handling(fused: pl.DataFrame, cfg: PreprocessConfig) -> pl.DataFrame:
    """Return the fused frame with accelerometer channels handled as `cfg.gravity` says."""
    if cfg.gravity is GravityMode.KEEP:
        return fused
    changed = gravity_columns({c: fused[c].to_numpy() for c in (*ACC, "segment")}, cfg)
    return fused.with_columns(pl.Series(name, values) for name, values in changed.items())
