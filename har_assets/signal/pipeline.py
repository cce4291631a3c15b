"""Raw samples to windows: the one composition used by the assets' stages and by serving."""

from __future__ import annotations

import polars as pl

from har_assets.config import PreprocessConfig
from har_assets.errors import PipelineDataError
from har_assets.raw.recording import RawRecording
from har_assets.signal.fusion import FusionStats, fuse
from har_assets.signal.gravity import apply_gravity_handling
from har_assets.signal.windowing import WindowSet, make_windows


def fuse_recording(raw: RawRecording, cfg: PreprocessConfig) -> tuple[pl.DataFrame, FusionStats]:
    """Fuse both sensors; an empty result is an error, never an empty table."""
    fused, stats = fuse(raw.accel, raw.gyro, raw.labels, cfg)
    if fused.height == 0:
        raise PipelineDataError(
            raw.participant, "fusion",
            f"no span of at least {cfg.min_segment_s:g} s where both sensors record without a gap over "
            f"{cfg.max_gap_s:g} s (accelerometer {stats.accel.samples} samples, gyroscope {stats.gyro.samples})",
        )
    return fused, stats


def window_recording(participant: str, filtered: pl.DataFrame, cfg: PreprocessConfig) -> WindowSet:
    """Cut windows; a recording too short for a single window is an error."""
    windows = make_windows(filtered, cfg)
    if len(windows) == 0:
        raise PipelineDataError(
            participant, "windowing",
            f"no segment is long enough for one window of {cfg.window_size} samples "
            f"({cfg.window_size / cfg.target_hz:g} s)",
        )
    return windows


def preprocess(raw: RawRecording, cfg: PreprocessConfig) -> tuple[WindowSet, FusionStats]:
    """Every stage from raw samples to windows, exactly as the assets run them."""
    fused, stats = fuse_recording(raw, cfg)
    return window_recording(raw.participant, apply_gravity_handling(fused, cfg), cfg), stats
