"""Raw samples to windows: the one composition used by the assets' stages and by serving.

`preprocess_samples` runs every stage on NumPy columns (what serving calls per request); the assets
store each stage's table, through `fuse_recording`, `apply_gravity_handling` and `window_recording`,
which wrap the same functions. A test holds the two routes equal.
"""

from __future__ import annotations

import polars as pl

from har_assets.config import PreprocessConfig
from har_assets.errors import PipelineDataError
from har_assets.raw.recording import RawRecording
from har_assets.signal.fusion import FusionStats, SensorSamples, fuse, fuse_samples, label_at
from har_assets.signal.gravity import gravity_columns
from har_assets.signal.windowing import WindowSet, make_windows, windows_from_columns


def no_fused_samples(participant: str, stats: FusionStats, cfg: PreprocessConfig) -> PipelineDataError:
    return PipelineDataError(
        participant, "fusion",
        f"no span of at least {cfg.min_segment_s:g} s where both sensors record without a gap over "
        f"{cfg.max_gap_s:g} s (accelerometer {stats.accel.samples} samples, gyroscope {stats.gyro.samples})",
    )


def no_windows(participant: str, cfg: PreprocessConfig) -> PipelineDataError:
    return PipelineDataError(
        participant, "windowing",
        f"no segment is long enough for one window of {cfg.window_size} samples "
        f"({cfg.window_size / cfg.target_hz:g} s)",
    )


def fuse_recording(raw: RawRecording, cfg: PreprocessConfig) -> tuple[pl.DataFrame, FusionStats]:
    """Fuse both sensors; an empty result is an error, never an empty table."""
    fused, stats = fuse(raw.accel, raw.gyro, raw.labels, cfg)
    if fused.height == 0:
        raise no_fused_samples(raw.participant, stats, cfg)
    return fused, stats


def window_recording(participant: str, filtered: pl.DataFrame, cfg: PreprocessConfig) -> WindowSet:
    """Cut windows; a recording too short for a single window is an error."""
    windows = make_windows(filtered, cfg)
    if len(windows) == 0:
        raise no_windows(participant, cfg)
    return windows


def preprocess_samples(participant: str, accel: SensorSamples, gyro: SensorSamples, labels: pl.DataFrame | None,
                       cfg: PreprocessConfig) -> tuple[WindowSet, FusionStats]:
    """Every stage from both sensors' samples (SI units) to windows, on NumPy columns: no table is built.
    `labels` (start_ms, end_ms, activity) label the windows; None or none: every window is unlabelled."""
    columns, stats = fuse_samples(accel, gyro, cfg)
    if columns["t_ms"].size == 0:
        raise no_fused_samples(participant, stats, cfg)
    columns |= gravity_columns(columns, cfg)
    sample_labels = label_at(columns["t_ms"], labels).to_numpy() if labels is not None and labels.height else None
    windows = windows_from_columns(columns, sample_labels, cfg)
    if len(windows) == 0:
        raise no_windows(participant, cfg)
    return windows, stats


def preprocess(raw: RawRecording, cfg: PreprocessConfig) -> tuple[WindowSet, FusionStats]:
    """Every stage from raw samples to windows, exactly as the assets run them."""
    return preprocess_samples(raw.participant, SensorSamples.of(raw.accel), SensorSamples.of(raw.gyro), raw.labels,
                              cfg)
