"""Data-quality checks on each stage's output (pure; the Dagster layer reports them as asset checks)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from har_assets.config import PreprocessConfig
from har_assets.raw.recording import STANDARD_GRAVITY, RawRecording
from har_assets.signal.fusion import FusionStats, measured_hz
from har_assets.signal.windowing import WindowSet

# Median |acceleration| of a worn watch, gravity included, lies near 1 g; a wrong unit is off by ~1000x or ~10x.
ACCEL_MAGNITUDE_RANGE = (0.5 * STANDARD_GRAVITY, 2.0 * STANDARD_GRAVITY)

# name -> (description, blocking)
RAW_CHECKS = {
    "native_rate_plausible": ("Each sensor's measured native rate is within rate_tolerance of its declared rate "
                              "(participant.json or the config; undeclared rates are only measured) and not below "
                              "target_hz by more than rate_tolerance (upsampling would interpolate samples).", False),
    "accel_magnitude_plausible": ("Median |acceleration| within 0.5-2 g for the declared unit (catches milli-g vs g "
                                  "vs m/s² mix-ups).", True),
    "labels_inside_recording": ("Every labelled interval lies inside the recorded time span.", False),
}
FUSED_CHECKS = {
    "timestamps_monotonic": ("Fused timestamps strictly increasing, uniformly spaced within each segment.", True),
    "values_finite": ("No NaN or infinite value.", True),
    "gap_loss_within_limit": ("Share of raw samples lost to gaps and short spans at most max_gap_loss_share.", False),
}
FILTERED_CHECKS = {"values_finite": ("No NaN or infinite value after gravity handling.", True)}
WINDOW_CHECKS = {"values_finite": ("No NaN or infinite value in any window.", True)}


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    detail: str
    blocking: bool
    values: dict[str, float | int | str] = field(default_factory=dict)


def _outcome(table: dict[str, tuple[str, bool]], name: str, passed: bool, detail: str, **values) -> CheckOutcome:
    return CheckOutcome(name=name, passed=bool(passed), detail=detail, blocking=table[name][1], values=values)


def rate_problems(rates: dict[str, tuple[float, float | None]], cfg: PreprocessConfig) -> list[str]:
    """Why measured native rates (sensor -> (measured, declared or None)) are implausible; [] if they are not."""
    problems = []
    for sensor, (measured, declared) in rates.items():
        if declared is not None and not abs(measured - declared) / declared <= cfg.rate_tolerance:
            problems.append(f"{sensor} {measured:.1f} Hz vs declared {declared:g} Hz")
        elif not measured >= cfg.target_hz * (1 - cfg.rate_tolerance):
            problems.append(f"{sensor} {measured:.1f} Hz is below the {cfg.target_hz:g} Hz grid: resampling would "
                            "interpolate most samples")
    return problems


def raw_checks(rec: RawRecording, cfg: PreprocessConfig) -> list[CheckOutcome]:
    rates = {"accelerometer": (measured_hz(rec.accel["t_ms"].to_numpy()), rec.meta.accel_hz(cfg)),
             "gyroscope": (measured_hz(rec.gyro["t_ms"].to_numpy()), rec.meta.gyro_hz(cfg))}
    bad_rates = rate_problems(rates, cfg)
    magnitude = float(np.median(np.linalg.norm(rec.accel.select("x", "y", "z").to_numpy(), axis=1)))
    lo, hi = ACCEL_MAGNITUDE_RANGE
    unit = rec.meta.accel_unit(cfg).value
    start = min(rec.accel["t_ms"][0], rec.gyro["t_ms"][0])
    end = max(rec.accel["t_ms"][-1], rec.gyro["t_ms"][-1])
    outside = rec.labels.filter((pl.col("start_ms") < start) | (pl.col("end_ms") > end + 1000.0 / cfg.target_hz))
    return [
        _outcome(RAW_CHECKS, "native_rate_plausible", not bad_rates, "; ".join(bad_rates) or "measured " + ", ".join(
                     f"{s} {m:.1f} Hz" + (f" (declared {d:g} Hz)" if d else "") for s, (m, d) in rates.items()),
                 accelerometer_hz=round(rates["accelerometer"][0], 2), gyroscope_hz=round(rates["gyroscope"][0], 2)),
        _outcome(RAW_CHECKS, "accel_magnitude_plausible", lo <= magnitude <= hi,
                 f"median |acc| = {magnitude:.4g} m/s² after reading as {unit}; expected {lo:.2f}-{hi:.2f} m/s²"
                 + ("" if lo <= magnitude <= hi else f" — is the unit really {unit}? set it in participant.json"),
                 median_magnitude_m_s2=round(magnitude, 4)),
        _outcome(RAW_CHECKS, "labels_inside_recording", outside.height == 0,
                 f"{outside.height} of {rec.labels.height} label intervals reach outside the recording",
                 intervals_outside=outside.height),
    ]


def _finite(table: dict[str, tuple[str, bool]], values: np.ndarray) -> CheckOutcome:
    bad = int((~np.isfinite(values)).sum())
    return _outcome(table, "values_finite", bad == 0, f"{bad} non-finite values", non_finite=bad)


def fused_checks(fused: pl.DataFrame, stats: FusionStats, cfg: PreprocessConfig) -> list[CheckOutcome]:
    t = fused["t_ms"].to_numpy()
    same_segment = np.diff(fused["segment"].to_numpy()) == 0
    steps = np.diff(t)
    increasing = bool(np.all(steps > 0))
    uniform = bool(np.allclose(steps[same_segment], cfg.period_ms, rtol=0, atol=1e-6))
    values = fused.select(pl.exclude("t_ms", "segment", "label")).to_numpy()
    return [
        _outcome(FUSED_CHECKS, "timestamps_monotonic", increasing and uniform,
                 f"strictly increasing: {increasing}; uniform {cfg.period_ms:g} ms within segments: {uniform}"),
        _finite(FUSED_CHECKS, values),
        _outcome(FUSED_CHECKS, "gap_loss_within_limit", stats.lost_share <= cfg.max_gap_loss_share,
                 f"{stats.lost_share:.1%} of raw samples outside fused segments (limit {cfg.max_gap_loss_share:.0%})",
                 lost_share=round(stats.lost_share, 4)),
    ]


def filtered_checks(filtered: pl.DataFrame, cfg: PreprocessConfig) -> list[CheckOutcome]:
    return [_finite(FILTERED_CHECKS, filtered.select(cfg.channels).to_numpy())]


def window_checks(ws: WindowSet) -> list[CheckOutcome]:
    return [_finite(WINDOW_CHECKS, ws.X)]
