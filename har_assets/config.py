"""The one typed preprocessing configuration, shared by assets, training and serving.

Every parameter that shapes the signal between the raw files and the model input lives here.
It serialises to JSON and travels with the trained model, so serving can never drift from
training.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class GravityMode(StrEnum):
    """What to do with the gravity component of the accelerometer signal."""

    REMOVE = "remove"  # high-pass: body acceleration only (the seed's choice)
    KEEP = "keep"  # raw acceleration, gravity included (keeps posture)
    SEPARATE = "separate"  # body acceleration plus low-passed gravity as extra channels


class AccelUnit(StrEnum):
    MILLI_G = "milli-g"
    G = "g"
    M_PER_S2 = "m/s^2"


class GyroUnit(StrEnum):
    DEG_PER_S = "deg/s"
    RAD_PER_S = "rad/s"


class PreprocessConfig(BaseModel):
    """Parameters from raw samples to model-ready windows.

    Output units are fixed: acceleration in m/s², angular rate in rad/s.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    target_hz: float = Field(50.0, gt=0, le=1000, description="Rate of the common fused clock (Hz).")
    max_gap_s: float = Field(
        0.5, gt=0, description="A pause between two samples of one sensor longer than this is a gap: "
        "the recording is split there and never interpolated across (s)."
    )
    min_segment_s: float = Field(
        1.0, ge=0, description="Segments shorter than this are not kept; the samples lost are counted (s)."
    )
    antialias_cutoff_ratio: float | None = Field(
        0.4, gt=0, lt=0.5, description="Before resampling a sensor whose native rate exceeds target_hz by more "
        "than 10 %, low-pass each gap-free span (zero-phase Butterworth of filter_order) at this fraction of "
        "target_hz, below the new Nyquist frequency; null: no anti-aliasing (models trained before it existed)."
    )
    gravity: GravityMode = Field(
        GravityMode.KEEP,
        description="Gravity handling: remove, keep or separate (keep: where gravity points is posture; removing it "
                    "collapsed sitting, standing and laying on real people, docs/defaults.md).")
    highpass_cutoff_hz: float = Field(0.3, gt=0, description="Butterworth cut-off separating gravity (Hz).")
    filter_order: int = Field(4, ge=1, le=10, description="Butterworth filter order (applied zero-phase).")
    window_size: int = Field(200, ge=8, description="Samples per window at target_hz.")
    window_step: int = Field(100, ge=1, description="Samples between the starts of consecutive windows.")
    label_coverage: float = Field(
        0.6, gt=0, le=1, description="Share of a window its majority label must cover to label the window."
    )
    accel_unit: AccelUnit = Field(AccelUnit.MILLI_G, description="Default accelerometer unit of raw files.")
    gyro_unit: GyroUnit = Field(GyroUnit.DEG_PER_S, description="Default gyroscope unit of raw files.")
    declared_accel_hz: float | None = Field(
        None, gt=0, description="Native accelerometer rate every participant should have (Hz); null: the rate is "
        "measured, and checked only where participant.json declares one."
    )
    declared_gyro_hz: float | None = Field(
        None, gt=0, description="Native gyroscope rate every participant should have (Hz); null: measured only."
    )
    rate_tolerance: float = Field(
        0.2, gt=0, lt=1, description="Allowed relative deviation of a measured native rate from the declared one, "
        "and how far below target_hz it may lie (upsampling would interpolate samples)."
    )
    activities: tuple[str, ...] | None = Field(
        None, description="If set, the only activity labels accepted in labels.csv; by default the classes come "
        "from the label files."
    )
    max_gap_loss_share: float = Field(
        0.2, ge=0, le=1, description="Asset check threshold: share of raw samples lost to gaps/short segments."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PreprocessConfig:
        if self.window_step > self.window_size:
            raise ValueError("window_step must not exceed window_size (samples would be skipped)")
        if self.highpass_cutoff_hz >= self.target_hz / 2:
            raise ValueError("highpass_cutoff_hz must lie below the Nyquist frequency target_hz/2")
        return self

    @classmethod
    def from_stored(cls, text: str) -> PreprocessConfig:
        """A config saved with a model: fields it lacks take the value that meant the behaviour of its time."""
        return cls.model_validate(LEGACY_VALUES | json.loads(text))

    @property
    def period_ms(self) -> float:
        return 1000.0 / self.target_hz

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names of a window, in order."""
        base = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
        if self.gravity is GravityMode.SEPARATE:
            return (*base, "grav_x", "grav_y", "grav_z")
        return base

    def fingerprint(self) -> str:
        """Short stable hash of the configuration (part of code versions and data lineage)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


# Fields added after models were first registered, and the value that reproduces how those models were trained.
LEGACY_VALUES: dict[str, object] = {"antialias_cutoff_ratio": None}
