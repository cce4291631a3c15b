"""Request and response models of the inference API, and example payloads that work when pasted."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, FailFast, Field, field_validator, model_validator

from har_assets.config import AccelUnit, GyroUnit, PreprocessConfig

MAX_ABS_VALUE = 1e6  # no sensor value in any accepted unit comes near this
MAX_EPOCH_MS = 1e14  # year 5138
MAX_SAMPLES_CAP = 360_000  # per sensor list; HAR_MAX_SAMPLES may only lower it (checked before parsing)
MAX_WINDOWS_CAP = 4_096  # per batch; HAR_MAX_WINDOWS may only lower it
EXAMPLE_START_MS = 1_742_802_739_120  # 2025-03-24T07:52:19.120Z
EXAMPLE_HZ = 100.0

Value = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]
TimestampMs = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=MAX_EPOCH_MS)]
Values = Annotated[list[Value], FailFast()]  # validation stops at a list's first bad value


class _Sensor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timestamps_ms: Annotated[list[TimestampMs], FailFast()] = Field(
        min_length=2, max_length=MAX_SAMPLES_CAP,
        description="Sample times, Unix epoch milliseconds (UTC), strictly increasing.")
    x: Values = Field(max_length=MAX_SAMPLES_CAP, description="x axis, one value per timestamp.")
    y: Values = Field(max_length=MAX_SAMPLES_CAP, description="y axis, one value per timestamp.")
    z: Values = Field(max_length=MAX_SAMPLES_CAP, description="z axis, one value per timestamp.")

    @field_validator("timestamps_ms")
    @classmethod
    def _strictly_increasing(cls, t: list[float]) -> list[float]:
        steps = np.diff(np.asarray(t, dtype=np.float64))
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            if steps[i - 1] == 0:
                raise ValueError(f"duplicated timestamp {t[i]:g} at indices {i - 1} and {i}")
            raise ValueError(f"timestamps must be strictly increasing: index {i} ({t[i]:g}) comes before "
                             f"index {i - 1} ({t[i - 1]:g})")
        return t

    @model_validator(mode="after")
    def _same_lengths(self) -> _Sensor:
        n = len(self.timestamps_ms)
        for axis in "xyz":
            if len(getattr(self, axis)) != n:
                raise ValueError(f"{axis} has {len(getattr(self, axis))} values but timestamps_ms has {n}")
        return self

    def xyz(self) -> np.ndarray:
        return np.column_stack([np.asarray(self.x), np.asarray(self.y), np.asarray(self.z)])


class AccelerometerSamples(_Sensor):
    """Accelerometer samples as the watch gives them."""

    unit: AccelUnit | None = Field(None, description="Unit of x/y/z; default: the model's configured unit "
                                   "(milli-g unless configured otherwise).")


class GyroscopeSamples(_Sensor):
    """Gyroscope samples as the watch gives them."""

    unit: GyroUnit | None = Field(None, description="Unit of x/y/z; default: the model's configured unit "
                                  "(deg/s unless configured otherwise).")


class PredictRequest(BaseModel):
    """Raw samples of one recording; each sensor on its own clock. Must span at least one window
    (window_size / target_hz seconds, 4 s by default) where both sensors record without gaps."""

    model_config = ConfigDict(extra="forbid")

    accelerometer: AccelerometerSamples
    gyroscope: GyroscopeSamples


class WindowsRequest(BaseModel):
    """Windows as the preprocessing produces them: fused, resampled, gravity-handled, but NOT scaled
    (the model's scaler is applied by the service). Shape (n, window_size, channels), channels in the
    order GET /model lists them."""

    model_config = ConfigDict(extra="forbid")

    windows: Annotated[list[Annotated[list[Values], FailFast()]], FailFast()] = Field(
        min_length=1, max_length=MAX_WINDOWS_CAP, description="(n, window_size, channels) floats.")


class ModelRef(BaseModel):
    name: str
    version: str
    alias: str | None


class Readiness(BaseModel):
    ready: bool = Field(description="A model is loaded and warmed up: requests are answered.")
    target: str = Field(description="What the service follows: models:/<name>@<alias> or models:/<name>/<version>.")
    model: ModelRef | None = Field(description="The version served, if any.")
    last_error: str | None = Field(description="Why the last load failed (the previous model, if any, still serves).")


class WindowPrediction(BaseModel):
    start_ms: float = Field(description="Time of the window's first sample (epoch ms, on the 50 Hz fused clock).")
    end_ms: float = Field(description="Time of the window's last sample (epoch ms).")
    segment: int = Field(description="Gap-free segment of the recording the window lies in.")
    label: str = Field(description="Most probable class.")
    confidence: float = Field(description="Probability of the label.")
    probabilities: dict[str, float] = Field(description="Probability of every class.")
    window_label: str = Field(description="Most probable class of this window classified alone (no neighbours).")
    ood_score: float | None = Field(description="Out-of-distribution score of the window (negative log-likelihood "
                                    "under the training windows' density; higher is stranger); null when the model "
                                    "has no out-of-distribution model.")


class Reliability(BaseModel):
    calibrated: bool = Field(description="The probabilities are calibrated on people the model never saw (false: "
                                         "a model registered before calibration, as it gives them).")
    estimated_accuracy: float | None = Field(description="Label-free estimate of the share of windows labelled "
                                             "right: the mean calibrated confidence (null: uncalibrated).")
    estimated_accuracy_low: float | None = Field(description="Lower end of the estimate's band (how far the "
                                                 "estimate erred on held-out people, or its sampling error).")
    estimated_accuracy_high: float | None = Field(description="Upper end of the estimate's band.")
    estimated_macro_f1: float | None = Field(description="Label-free macro-F1 estimate from the expected confusion "
                                             "(null: fewer than two classes with enough windows, or uncalibrated).")
    ood_flag: bool | None = Field(description="The recording lies outside the training data (device turned, other "
                                  "wrist, units); null: the model has no out-of-distribution model.")
    unlike_training_share: float | None = Field(description="Share of windows above the training windows' "
                                                "out-of-distribution threshold.")
    person_distance: float | None = Field(description="Distance of the recording's movement statistics to the "
                                          "training people's (null: too few moving windows).")
    flagged: bool = Field(description="Do not trust this timeline without a look: the estimate is low or the data "
                                      "lie outside the training data.")
    flag_reasons: list[str] = Field(description="Why it is flagged.")


class Decoding(BaseModel):
    smoothing: str = Field(description="How windows were joined over time: gru (a small recurrent network over the "
                                       "windows' embeddings), hmm (the model's hidden Markov model), each gap-free "
                                       "segment on its own, or none (each window alone).")
    causal: bool = Field(description="Decoded forward-only (no window used a later one).")
    orientation: str = Field(description="upright: the recording's device frame was turned to the training "
                                         "people's upright direction; none: used as it is.")
    applied: bool = Field(description="The frame was turned (enough windows moved to find the upright direction).")
    rotation_deg: float = Field(description="Angle of that turn (degrees).")
    moving_windows: int = Field(description="Windows that moved enough to find the upright direction.")


class PredictResponse(BaseModel):
    model: ModelRef
    classes: list[str]
    windows: list[WindowPrediction]
    class_shares: dict[str, float] = Field(description="Share of windows predicted as each class.")
    decoding: Decoding = Field(description="How the recording was decoded.")
    reliability: Reliability = Field(description="How far to trust these predictions, without labels.")


class WindowsResponse(BaseModel):
    model: ModelRef
    classes: list[str]
    labels: list[str] = Field(description="Most probable class per window.")
    probabilities: list[list[float]] = Field(description="(n, classes) probabilities, classes in `classes` order.")


def example_duration_s(cfg: PreprocessConfig) -> float:
    """Long enough for one window plus the fused clock's alignment margin."""
    return cfg.window_size / cfg.target_hz + 0.3


@lru_cache(maxsize=8)
def _example_raw(cfg_json: str) -> dict:
    cfg = PreprocessConfig.model_validate_json(cfg_json)
    n = round(example_duration_s(cfg) * EXAMPLE_HZ)
    rng = np.random.default_rng(7)
    t = np.arange(n) / EXAMPLE_HZ
    tap = np.sin(2 * np.pi * 3.5 * t)
    acc = np.column_stack([150 + 60 * tap, -320 + 25 * np.roll(tap, 3), 930 + 40 * np.roll(tap, 6)])
    gyro = np.column_stack([35 * np.cos(2 * np.pi * 3.5 * t), 12 * tap, 4 * np.sin(2 * np.pi * 0.5 * t)])
    acc += rng.normal(0, 4, acc.shape)
    gyro += rng.normal(0, 0.8, gyro.shape)

    def sensor(offset_ms: int, values: np.ndarray, unit: str, decimals: int) -> dict:
        v = np.round(values, decimals)
        return {"timestamps_ms": [EXAMPLE_START_MS + offset_ms + 10 * i for i in range(n)],
                "x": v[:, 0].tolist(), "y": v[:, 1].tolist(), "z": v[:, 2].tolist(), "unit": unit}

    return {"accelerometer": sensor(0, acc, AccelUnit.MILLI_G.value, 1),
            "gyroscope": sensor(7, gyro, GyroUnit.DEG_PER_S.value, 2)}


def example_predict_payload(cfg: PreprocessConfig) -> dict:
    """A /predict body: both sensors at 100 Hz (gyroscope 7 ms out of phase), one window long for `cfg`."""
    return _example_raw(cfg.model_dump_json())


@lru_cache(maxsize=8)
def _example_windows(cfg_json: str) -> dict:
    from har_assets.inference.predictor import request_samples
    from har_assets.signal.pipeline import preprocess_samples

    cfg = PreprocessConfig.model_validate_json(cfg_json)
    body = PredictRequest.model_validate(_example_raw(cfg_json))
    acc, gyro = body.accelerometer, body.gyroscope
    samples = request_samples(acc.timestamps_ms, acc.xyz(), AccelUnit.MILLI_G, gyro.timestamps_ms, gyro.xyz(),
                              GyroUnit.DEG_PER_S)
    windows, _ = preprocess_samples("example", *samples, None, cfg)
    return {"windows": np.round(windows.X[:1].astype(np.float64), 5).tolist()}


def example_windows_payload(cfg: PreprocessConfig) -> dict:
    """A /predict/windows body: the example recording's first window, preprocessed with `cfg`."""
    return _example_windows(cfg.model_dump_json())
