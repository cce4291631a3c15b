"""Does a recording, preprocessed for a model, look like the model's training data? (pure, no Dagster)

The training side is the scaler travelling in the model bundle: per-channel mean and std over every
sample of every training window. The serving side is the same statistic over the recording's
windows, preprocessed with the model's own config. Three checks catch the seed's domain-shift
failure before anyone trusts the predictions:

* `acceleration_magnitude_matches_training`: RMS magnitude over the accelerometer-derived channels
  (body acceleration, plus gravity when separated) — units off by 10 or 1000, or gravity present in
  one but not the other, move it by far more than any activity does;
* `channel_statistics_match_training`: per channel, mean shift in training standard deviations and
  the std ratio (catches e.g. a gyroscope in deg/s declared as rad/s, or gravity on another axis);
* `predicted_classes_not_collapsed` (warning): no single class takes almost every window, the
  symptom the seed showed in production.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from har_assets.ml.scaler import ChannelScaler
from har_assets.raw.recording import STANDARD_GRAVITY

ACC_PREFIXES = ("acc_", "grav_")

GRAVITY_BAND = (0.5 * STANDARD_GRAVITY, 2.0 * STANDARD_GRAVITY)  # RMS |acc| of a worn watch, gravity included
UNIT_FACTORS = {1000.0: "milli-g vs g", STANDARD_GRAVITY: "g vs m/s²", 1000.0 / STANDARD_GRAVITY: "milli-g vs m/s²"}

# name -> (description, severe: fails with ERROR severity, else WARN)
DRIFT_CHECKS = {
    "acceleration_magnitude_matches_training": (
        "RMS acceleration magnitude within [min_magnitude_ratio, max_magnitude_ratio] of the training data's "
        "(catches units off by 10/1000 and gravity present in one but absent in the other).", True),
    "channel_statistics_match_training": (
        "Every channel's mean within max_mean_shift training stds of the training mean, and its std within "
        "[min_std_ratio, max_std_ratio] of the training std.", True),
    "predicted_classes_not_collapsed": (
        "No class takes more than max_class_share of the windows (the seed's failure: 95% one class).", False),
}


class DriftThresholds(BaseModel):
    """How far serving data may stray from the training data before the drift checks fail."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_mean_shift: float = Field(4.0, gt=0, description="Largest |mean - training mean| in training stds.")
    noise_floor: float = Field(0.01, gt=0, description="Stds below this (m/s² or rad/s) count as this much: "
                               "a still or constant channel is compared as sensor noise.")
    min_std_ratio: float = Field(0.01, gt=0, description="Smallest std / training std of a channel.")
    max_std_ratio: float = Field(20.0, gt=0, description="Largest std / training std of a channel.")
    # Without gravity the RMS is body motion, which one person's activity mix moves by up to ~2.5x
    # from the training average (demo data); units off by ~10 or 1000, or gravity (~9.8 m/s²) on one
    # side only, move it by 5x or more.
    min_magnitude_ratio: float = Field(0.25, gt=0, description="Smallest RMS |acc| / training RMS |acc|.")
    max_magnitude_ratio: float = Field(4.0, gt=0, description="Largest RMS |acc| / training RMS |acc|.")
    max_class_share: float = Field(0.9, gt=0, le=1, description="Largest share of windows one class may take.")
    min_windows_for_class_share: int = Field(
        20, ge=1, description="Fewer windows than this: the class-share check passes (too few to judge).")


@dataclass(frozen=True)
class DriftCheck:
    name: str
    passed: bool
    detail: str
    severe: bool
    values: dict[str, float | int | str]


@dataclass(frozen=True)
class DriftReport:
    """Per-channel comparison table, the magnitude figures, the class shares and the check outcomes."""

    channels: pl.DataFrame
    train_magnitude: float
    serving_magnitude: float
    class_shares: dict[str, float]
    outcomes: list[DriftCheck]

    @property
    def magnitude_ratio(self) -> float:
        return self.serving_magnitude / self.train_magnitude if self.train_magnitude > 0 else float("inf")


def rms_magnitude(channels: tuple[str, ...], mean: np.ndarray, std: np.ndarray) -> float:
    """sqrt(sum over the accelerometer-derived channels of E[c²] = mean² + std²)."""
    idx = [i for i, c in enumerate(channels) if c.startswith(ACC_PREFIXES)]
    return float(np.sqrt(np.sum(mean[idx] ** 2 + std[idx] ** 2)))


def magnitude_causes(train: float, serving: float) -> list[str]:
    """Plausible explanations of a magnitude mismatch: unit mix-ups whose factor fits, gravity in one side only."""
    lo, hi = GRAVITY_BAND
    causes = []
    if lo <= serving <= hi and train < 0.3 * lo:
        causes.append("gravity present in the serving data but absent in the training data")
    if lo <= train <= hi and serving < 0.3 * lo:
        causes.append("gravity absent in the serving data but present in the training data")
    ratio = serving / train if train > 0 else float("inf")
    for factor, mix_up in UNIT_FACTORS.items():
        for f in (factor, 1.0 / factor):
            if abs(np.log(ratio / f)) < np.log(1.5):
                causes.append(f"a unit mix-up ({mix_up}, factor {f:.4g})")
    return causes


def _check(name: str, passed: bool, detail: str, **values: float | int | str) -> DriftCheck:
    return DriftCheck(name=name, passed=bool(passed), detail=detail, severe=DRIFT_CHECKS[name][1], values=values)


def training_std(scaler: ChannelScaler) -> np.ndarray:
    """The scaler's std with its placeholder for constant channels (exactly 1.0) turned back into 0."""
    return np.where(scaler.std == 1.0, 0.0, scaler.std)


def drift_report(X: np.ndarray, training: ChannelScaler, class_shares: dict[str, float], n_windows: int,
                 thresholds: DriftThresholds) -> DriftReport:
    """Compare windows X (n, window, channels), unscaled, with the training statistics in `training`.

    Stds are compared above `noise_floor` (a constant channel in both is no drift); a training std of
    exactly 1.0 is the scaler's placeholder for a constant training channel and is read as 0.
    """
    if X.ndim != 3 or X.shape[2] != len(training.channels) or X.shape[0] == 0:
        raise ValueError(f"expected non-empty windows with {len(training.channels)} channels, got shape {X.shape}")
    t = thresholds
    flat = X.reshape(-1, X.shape[2]).astype(np.float64)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    train_std = training_std(training)
    floor_train, floor_serving = np.maximum(train_std, t.noise_floor), np.maximum(std, t.noise_floor)
    shift = np.abs(mean - training.mean) / floor_train
    ratio = floor_serving / floor_train
    bad = (shift > t.max_mean_shift) | (ratio < t.min_std_ratio) | (ratio > t.max_std_ratio)
    table = pl.DataFrame({
        "channel": list(training.channels), "train_mean": training.mean, "train_std": train_std,
        "serving_mean": mean, "serving_std": std, "mean_shift_sd": shift, "std_ratio": ratio, "drifted": bad,
    })

    train_mag = rms_magnitude(training.channels, training.mean, train_std)
    serving_mag = rms_magnitude(training.channels, mean, std)
    mag_ratio = serving_mag / train_mag if train_mag > 0 else float("inf")
    mag_ok = t.min_magnitude_ratio <= mag_ratio <= t.max_magnitude_ratio
    mag_detail = (f"RMS acceleration magnitude {serving_mag:.4g} m/s² vs {train_mag:.4g} m/s² in training "
                  f"(ratio {mag_ratio:.3g}, allowed {t.min_magnitude_ratio:g}-{t.max_magnitude_ratio:g})")
    if not mag_ok and (causes := magnitude_causes(train_mag, serving_mag)):
        mag_detail += " — possible causes: " + "; ".join(causes)

    drifted = [f"{c} (mean shift {s:.3g} sd, std ratio {r:.3g})"
               for c, s, r, b in zip(training.channels, shift, ratio, bad, strict=True) if b]
    ch_detail = ("drifted: " + "; ".join(drifted)) if drifted else \
        f"all {len(training.channels)} channels within {t.max_mean_shift:g} sd and std ratio " \
        f"{t.min_std_ratio:g}-{t.max_std_ratio:g}"

    top_class, top_share = max(class_shares.items(), key=lambda kv: kv[1]) if class_shares else ("", 0.0)
    judged = n_windows >= t.min_windows_for_class_share
    share_ok = not judged or top_share <= t.max_class_share
    share_detail = f"'{top_class}' takes {top_share:.1%} of {n_windows} windows (limit {t.max_class_share:.0%})"
    if not judged:
        share_detail += f"; fewer than {t.min_windows_for_class_share} windows, not judged"

    outcomes = [
        _check("acceleration_magnitude_matches_training", mag_ok, mag_detail, serving_rms_m_s2=round(serving_mag, 4),
                 training_rms_m_s2=round(train_mag, 4), ratio=round(mag_ratio, 4)),
        _check("channel_statistics_match_training", not drifted, ch_detail, drifted_channels=len(drifted),
                 max_mean_shift_sd=round(float(shift.max()), 3), max_std_ratio=round(float(ratio.max()), 3),
                 min_std_ratio=round(float(ratio.min()), 3)),
        _check("predicted_classes_not_collapsed", share_ok, share_detail, top_class=top_class,
                 top_share=round(top_share, 4)),
    ]
    return DriftReport(channels=table, train_magnitude=train_mag, serving_magnitude=serving_mag,
                       class_shares=class_shares, outcomes=outcomes)
