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


def gravity_columns(columns: Mapping[str, np.ndarray], cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    """The accelerometer columns `cfg.gravity` replaces or adds, from the fused columns (acc_x..z, segment):
    none for keep; acc_x..z as body acceleration for remove; those and grav_x..z for separate."""
    if cfg.gravity is GravityMode.KEEP:
        return {}
    acc = np.column_stack([columns[c] for c in ACC])
    bounds = segment_bounds(columns["segment"])
    if cfg.gravity is GravityMode.REMOVE:
        body = zero_phase(butter_sos(cfg.filter_order, cfg.highpass_cutoff_hz, cfg.target_hz, "highpass"), acc, bounds)
        return {name: body[:, i] for i, name in enumerate(ACC)}
    gravity = zero_phase(butter_sos(cfg.filter_order, cfg.highpass_cutoff_hz, cfg.target_hz, "lowpass"), acc, bounds)
    body = acc - gravity
    return {**{name: body[:, i] for i, name in enumerate(ACC)},
            **{name: gravity[:, i] for i, name in enumerate(GRAVITY)}}


def apply_gravity_handling(fused: pl.DataFrame, cfg: PreprocessConfig) -> pl.DataFrame:
    """Return the fused frame with accelerometer channels handled as `cfg.gravity` says."""
    if cfg.gravity is GravityMode.KEEP:
        return fused
    changed = gravity_columns({c: fused[c].to_numpy() for c in (*ACC, "segment")}, cfg)
    return fused.with_columns(pl.Series(name, values) for name, values in changed.items())
