"""Raw samples to windows a block at a time: what `preprocess` gives for a whole recording, in memory bounded by
a block, so a recording of days goes through a run worker.

The recording stays on disk (`SampleSpool`, one per sensor). Each fused segment is cut into blocks of window
starts; a block fuses, filters and windows only the rows its windows cover. The filters see exactly the inputs
they see in a whole pass (`filtered_rows`: a long run is filtered in fixed blocks either way), so every value,
window and label is the whole pass's, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from har_assets.config import PreprocessConfig
from har_assets.raw.spool import SampleSpool
from har_assets.signal.filters import butter_sos, filtered_rows
from har_assets.signal.fusion import (
    SENSOR_CHANNELS,
    FusionStats,
    SensorStats,
    antialias_cutoff,
    grid_steps,
    hz_of_interval,
    intersect_spans,
    label_at,
)
from har_assets.signal.gravity import gravity_filter, gravity_split
from har_assets.signal.pipeline import no_fused_samples, no_windows
from har_assets.signal.windowing import WindowSet, windows_at

BLOCK_S = 1800.0  # fused seconds per block: 90,000 rows at 50 Hz, a few tens of MB in flight


@dataclass(frozen=True)
class _Sensor:
    spool: SampleSpool
    bounds: np.ndarray  # rows where its gap-free runs start, plus the end
    sos: np.ndarray | None  # the anti-aliasing low-pass, None: none needed
    filtered: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)  # run -> its last blocks filtered

    def resampled(self, grid: np.ndarray) -> np.ndarray:
        """(len(grid), 3): the sensor, low-passed per gap-free run if it needs it, interpolated at the grid times
        (all inside one of its runs), as `fuse_samples` interpolates it."""
        spool = self.spool
        first = max(spool.search(grid[0], "right") - 1, 0)  # the sample at or before the first grid time
        end = min(spool.search(grid[-1], "left") + 1, spool.rows)  # past the sample at or after the last
        t_ms = spool.times(first, end)
        if self.sos is None:
            xyz = spool.read(first, end)[1]
        else:
            run = int(np.searchsorted(self.bounds, first, "right")) - 1
            lo, hi = int(self.bounds[run]), int(self.bounds[run + 1])
            if run not in self.filtered:
                self.filtered.clear()
                self.filtered[run] = {}
            xyz = filtered_rows(self.sos, lambda a, b: spool.read(lo + a, lo + b)[1], hi - lo, first - lo, end - lo,
                                self.filtered[run])
        return np.column_stack([np.interp(grid, t_ms, xyz[:, k]) for k in range(3)])


def _sensor(spool: SampleSpool, cfg: PreprocessConfig) -> tuple[_Sensor, float, float | None]:
    native_hz = hz_of_interval(spool.median_interval())
    cutoff = antialias_cutoff(native_hz, cfg)
    sos = butter_sos(cfg.filter_order, cutoff, native_hz, "lowpass") if cutoff is not None else None
    return _Sensor(spool, spool.run_bounds(), sos), native_hz, cutoff


def _segments(accel: SampleSpool, gyro: SampleSpool, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """(first grid index k0 and row count of each kept segment, [lo, hi] ms of each, spans dropped as too short):
    `fuse_samples`' segments."""
    period = cfg.period_ms
    firsts, counts, kept, dropped = [], [], [], 0
    for lo, hi in intersect_spans(accel.run_spans(), gyro.run_spans()):
        k0, n = grid_steps(lo, hi, period)
        if n < 2 or (n - 1) * period < cfg.min_segment_s * 1000.0:
            dropped += 1
            continue
        firsts.append(k0)
        counts.append(n)
        kept.append((lo, hi))
    return np.array([firsts, counts]).reshape(2, -1), np.array(kept, dtype=float).reshape(-1, 2), dropped


def _sensor_stats(spool: SampleSpool, segments: np.ndarray, native_hz: float, cutoff: float | None) -> SensorStats:
    inside = sum(spool.search(hi, "right") - spool.search(lo, "left") for lo, hi in segments)
    return SensorStats(
        samples=spool.rows,
        native_hz=native_hz,
        gaps=len(spool.gap_steps),
        gap_seconds=float(np.array(spool.gap_steps, dtype=float).sum() / 1000.0),
        samples_lost=spool.rows - inside,
        first_ms=float(spool.times(0, 1)[0]),
        last_ms=float(spool.times(spool.rows - 1, spool.rows)[0]),
        antialias_hz=cutoff,
    )


@dataclass(frozen=True)
class ChunkedRecording:
    """A spooled recording's fusion stats, and its windows block by block (`blocks()`)."""

    accel: _Sensor
    gyro: _Sensor
    labels: pl.DataFrame | None
    segments: np.ndarray  # (2, k): first grid index and rows of each kept segment
    stats: FusionStats
    cfg: PreprocessConfig
    block_rows: int

    def blocks(self) -> Iterator[WindowSet]:
        """The windows of the whole recording in time order, a block of window starts at a time."""
        cfg, size, step = self.cfg, self.cfg.window_size, self.cfg.window_step
        gravity = gravity_filter(cfg)
        for segment, (k0, n) in enumerate(self.segments.T):
            n, done = int(n), {}

            def grid(a: int, b: int, k0: float = k0) -> np.ndarray:
                return (k0 + np.arange(a, b)) * cfg.period_ms

            for r0 in range(0, max(n - size + 1, 0), self.block_rows):
                starts = np.arange(r0, min(r0 + self.block_rows, n - size + 1), step)
                r1 = int(starts[-1]) + size
                t_ms = grid(r0, r1)
                acc, gyro = self.accel.resampled(t_ms), self.gyro.resampled(t_ms)
                columns = {"t_ms": t_ms, "segment": np.full(t_ms.size, segment, np.int32),
                           **{name: acc[:, k] for k, name in enumerate(SENSOR_CHANNELS["accel"])},
                           **{name: gyro[:, k] for k, name in enumerate(SENSOR_CHANNELS["gyro"])}}
                if gravity is not None:
                    filtered = filtered_rows(gravity, lambda a, b: self.accel.resampled(grid(a, b)), n, r0, r1, done)
                    columns |= gravity_split(acc, filtered, cfg)
                labels = label_at(t_ms, self.labels).to_numpy() if self.labels is not None else None
                yield windows_at(columns, labels, starts - r0, cfg)


def chunked_recording(participant: str, accel: SampleSpool, gyro: SampleSpool, labels: pl.DataFrame | None,
                      cfg: PreprocessConfig, block_s: float = BLOCK_S) -> ChunkedRecording:
    """The spooled sensors fused, filtered and windowed as `preprocess_samples` does, a block at a time, with its
    errors (no fused sample, no window). `labels` (start_ms, end_ms, activity): None or none, every window
    unlabelled. The spools must have been split into runs at the config's max_gap_s."""
    for spool in (accel, gyro):
        if spool.max_gap_ms != cfg.max_gap_s * 1000.0:
            raise ValueError(f"{spool.folder} was split at gaps over {spool.max_gap_ms:g} ms, the config says "
                             f"{cfg.max_gap_s * 1000.0:g} ms")
    a, a_hz, a_cut = _sensor(accel, cfg)
    g, g_hz, g_cut = _sensor(gyro, cfg)
    segments, kept, dropped = _segments(accel, gyro, cfg)
    fused = int(segments[1].sum())
    stats = FusionStats(
        accel=_sensor_stats(accel, kept, a_hz, a_cut),
        gyro=_sensor_stats(gyro, kept, g_hz, g_cut),
        segments=int(segments.shape[1]),
        fused_samples=fused,
        duration_s=float(fused / cfg.target_hz),
        dropped_short_spans=dropped,
    )
    if not fused:
        raise no_fused_samples(participant, stats, cfg)
    if segments[1].max() < cfg.window_size:
        raise no_windows(participant, cfg)
    block_rows = max(1, round(block_s * cfg.target_hz / cfg.window_step)) * cfg.window_step
    return ChunkedRecording(a, g, labels if labels is not None and labels.height else None, segments, stats, cfg,
                            block_rows)
