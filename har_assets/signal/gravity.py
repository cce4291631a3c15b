"""Gravity handling: remove it, keep it, or separate it into its own channels.

Filters run zero-phase (forward-backward, scipy `sosfiltfilt`) on each segment separately, so
no filter ever smears a signal across a gap.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from har_assets.config import GravityMode, PreprocessConfig
from har_assets.signal.filters import butter_sos, segment_bounds, zero_phase

ACC = ("acc_x", "acc_y", "acc_z")
GRAVITY = ("grav_x", "grav_y", "grav_z")


def gravity_columns(acc: np.ndarray, segment: np.ndarray, cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    """The accelerometer columns `cfg.gravity` replaces or adds, from acc (n, 3) and each sample's segment:
    none for keep; acc_x..z as body acceleration for remove; those and grav_x..z for separate."""
    if cfg.gravity is GravityMode.KEEP:
        return {}
    bounds = segment_bounds(segment)
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
    changed = gravity_columns(fused.select(ACC).to_numpy(), fused["segment"].to_numpy(), cfg)
    return fused.with_columns(pl.Series(name, values) for name, values in changed.items())
