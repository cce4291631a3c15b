"""Put both sensors on one uniform clock, split at gaps, and attach sample labels.

Each sensor is linearly interpolated onto a grid at `target_hz` aligned to absolute time
(multiples of the period since the epoch), only inside spans where *both* sensors have data
without a pause longer than `max_gap_s`. Gaps are never interpolated across: they end a segment.
A sensor recording faster than the grid is first low-passed below the grid's Nyquist frequency
(zero-phase, each gap-free span on its own), so fast content (taps, knuckle cracks at 30-40 Hz)
does not fold into the band the model sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from har_assets.config import PreprocessConfig
from har_assets.signal.filters import butter_sos, gap_bounds, zero_phase

SENSOR_CHANNELS = {"accel": ("acc_x", "acc_y", "acc_z"), "gyro": ("gyro_x", "gyro_y", "gyro_z")}
FUSED_CHANNELS = (*SENSOR_CHANNELS["accel"], *SENSOR_CHANNELS["gyro"])


@dataclass(frozen=True)
class SensorStats:
    """What was measured of one sensor's native clock."""

    samples: int
    native_hz: float  # from the median sample interval
    gaps: int
    gap_seconds: float
    samples_lost: int  # samples outside every fused segment
    first_ms: float
    last_ms: float
    antialias_hz: float | None = None  # low-pass cut-off applied before resampling, None: none was needed


@dataclass(frozen=True)
class FusionStats:
    accel: SensorStats
    gyro: SensorStats
    segments: int
    fused_samples: int
    duration_s: float
    dropped_short_spans: int

    @property
    def lost_share(self) -> float:
        total = self.accel.samples + self.gyro.samples
        return (self.accel.samples_lost + self.gyro.samples_lost) / total if total else 0.0


def continuous_spans(t_ms: np.ndarray, max_gap_ms: float) -> np.ndarray:
    """(k, 2) array of [first, last] sample times of the gap-free runs of a sorted time array."""
    if t_ms.size == 0:
        return np.empty((0, 2))
    bounds = gap_bounds(t_ms, max_gap_ms)
    return np.column_stack((t_ms[bounds[:-1]], t_ms[bounds[1:] - 1]))


def measured_hz(t_ms: np.ndarray) -> float:
    """Native rate from the median sample interval (NaN for fewer than two samples)."""
    steps = np.diff(t_ms)
    return hz_of_interval(float(np.median(steps)) if steps.size else float("nan"))


def hz_of_interval(median_ms: float) -> float:
    """The rate (Hz) of a median sample interval in ms (NaN for none)."""
    return 1000.0 / median_ms if median_ms > 0 else float("nan")


def antialias_cutoff(native_hz: float, cfg: PreprocessConfig) -> float | None:
    """The low-pass cut-off (Hz) a sensor at `native_hz` needs before resampling to target_hz, or None."""
    if cfg.antialias_cutoff_ratio is None or not native_hz > 1.1 * cfg.target_hz:
        return None
    return cfg.antialias_cutoff_ratio * cfg.target_hz


def antialias(t_ms: np.ndarray, values: np.ndarray, native_hz: float, cfg: PreprocessConfig
              ) -> tuple[np.ndarray, float | None]:
    """(values low-passed per gap-free span, cut-off) when the sensor is faster than the grid, else unchanged."""
    cutoff = antialias_cutoff(native_hz, cfg)
    if cutoff is None:
        return values, None
    sos = butter_sos(cfg.filter_order, cutoff, native_hz, "lowpass")
    return zero_phase(sos, values, gap_bounds(t_ms, cfg.max_gap_s * 1000.0)), cutoff


def grid_steps(lo: float, hi: float, period: float) -> tuple[float, int]:
    """First multiple k0 of the period and how many (n) lie inside [lo, hi]: grid times (k0 + i) * period, never
    outside the span however the products round."""
    k0, k1 = np.ceil(lo / period), np.floor(hi / period)
    if k0 * period < lo:
        k0 += 1
    if k1 * period > hi:
        k1 -= 1
    return float(k0), int(k1 - k0) + 1


def intersect_spans(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection of two sorted, disjoint span lists."""
    out: list[tuple[float, float]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i, 0], b[j, 0]), min(a[i, 1], b[j, 1])
        if lo < hi:
            out.append((lo, hi))
        if a[i, 1] < b[j, 1]:
            i += 1
        else:
            j += 1
    return np.array(out, dtype=float).reshape(-1, 2)


def _sensor_stats(t_ms: np.ndarray, segments: np.ndarray, max_gap_ms: float, native_hz: float,
                  antialias_hz: float | None) -> SensorStats:
    steps = np.diff(t_ms)
    gap_steps = steps[steps > max_gap_ms]
    inside = np.zeros(t_ms.size, dtype=bool)
    for lo, hi in segments:
        inside[np.searchsorted(t_ms, lo, "left"): np.searchsorted(t_ms, hi, "right")] = True
    return SensorStats(
        samples=int(t_ms.size),
        native_hz=native_hz,
        gaps=int(gap_steps.size),
        gap_seconds=float(gap_steps.sum() / 1000.0),
        samples_lost=int((~inside).sum()),
        first_ms=float(t_ms[0]),
        last_ms=float(t_ms[-1]),
        antialias_hz=antialias_hz,
    )


def label_at(t_ms: np.ndarray, labels: pl.DataFrame) -> pl.Series:
    """Activity at each time (null where no interval covers it); intervals are half-open [start, end)."""
    if labels.height == 0:
        return pl.Series("label", [None] * t_ms.size, dtype=pl.String)
    starts = labels["start_ms"].to_numpy()
    ends = labels["end_ms"].to_numpy()
    idx = np.searchsorted(starts, t_ms, side="right") - 1
    clipped = np.clip(idx, 0, None)
    covered = (idx >= 0) & (t_ms < ends[clipped])
    names = labels["activity"].gather(clipped)
    return pl.select(pl.when(pl.Series(covered)).then(names).otherwise(None)).to_series().alias("label")


@dataclass(frozen=True)
class SensorSamples:
    """One sensor on its own clock: t_ms (epoch ms, strictly increasing) and xyz (n, 3) in SI units."""

    t_ms: np.ndarray
    xyz: np.ndarray

    @classmethod
    def of(cls, frame: pl.DataFrame) -> SensorSamples:
        """From a raw sensor table (t_ms, x, y, z)."""
        return cls(frame["t_ms"].to_numpy(), np.column_stack([frame[a].to_numpy() for a in "xyz"]))


def fuse_samples(accel: SensorSamples, gyro: SensorSamples,
                 cfg: PreprocessConfig) -> tuple[dict[str, np.ndarray], FusionStats]:
    """Resample both sensors onto one `target_hz` grid, segment by segment.

    Returns the columns t_ms, segment, acc_x..gyro_z (NumPy; no labels) and the stats.
    """
    max_gap_ms = cfg.max_gap_s * 1000.0
    period = cfg.period_ms
    overlap = intersect_spans(continuous_spans(accel.t_ms, max_gap_ms), continuous_spans(gyro.t_ms, max_gap_ms))

    grids: list[np.ndarray] = []
    kept: list[tuple[float, float]] = []
    dropped = 0
    for lo, hi in overlap:
        k0, n = grid_steps(lo, hi, period)
        if n < 2 or (n - 1) * period < cfg.min_segment_s * 1000.0:
            dropped += 1
            continue
        grids.append((k0 + np.arange(n)) * period)
        kept.append((lo, hi))
    segments = np.array(kept, dtype=float).reshape(-1, 2)
    t = np.concatenate(grids) if grids else np.empty(0)
    segment_ids = np.concatenate([np.full(g.size, i, dtype=np.int32) for i, g in enumerate(grids)]) if grids \
        else np.empty(0, dtype=np.int32)

    columns: dict[str, np.ndarray] = {"t_ms": t, "segment": segment_ids}
    sensors: dict[str, SensorStats] = {}
    for sensor, samples in (("accel", accel), ("gyro", gyro)):
        native_hz = measured_hz(samples.t_ms)
        values, cutoff = antialias(samples.t_ms, samples.xyz, native_hz, cfg)
        for k, name in enumerate(SENSOR_CHANNELS[sensor]):
            columns[name] = np.interp(t, samples.t_ms, values[:, k])
        sensors[sensor] = _sensor_stats(samples.t_ms, segments, max_gap_ms, native_hz, cutoff)
    stats = FusionStats(
        accel=sensors["accel"],
        gyro=sensors["gyro"],
        segments=len(grids),
        fused_samples=int(t.size),
        duration_s=float(t.size / cfg.target_hz),
        dropped_short_spans=dropped,
    )
    return columns, stats


def fuse(accel: pl.DataFrame, gyro: pl.DataFrame, labels: pl.DataFrame,
         cfg: PreprocessConfig) -> tuple[pl.DataFrame, FusionStats]:
    """`fuse_samples` on raw sensor tables, as a frame: t_ms, segment, acc_x..gyro_z, label (null = unlabelled)."""
    columns, stats = fuse_samples(SensorSamples.of(accel), SensorSamples.of(gyro), cfg)
    return pl.DataFrame({**columns, "label": label_at(columns["t_ms"], labels)}), stats
