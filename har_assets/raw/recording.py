"""The in-memory raw recording of one participant, in SI units, and its unit conversions."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from har_assets.config import AccelUnit, GyroUnit, PreprocessConfig
from har_assets.raw.layout import fingerprint_of

STANDARD_GRAVITY = 9.80665  # m/s² per g

ACCEL_TO_SI = {AccelUnit.MILLI_G: STANDARD_GRAVITY / 1000.0, AccelUnit.G: STANDARD_GRAVITY, AccelUnit.M_PER_S2: 1.0}
GYRO_TO_SI = {GyroUnit.DEG_PER_S: np.pi / 180.0, GyroUnit.RAD_PER_S: 1.0}

SAMPLE_SCHEMA = {"t_ms": pl.Float64, "x": pl.Float64, "y": pl.Float64, "z": pl.Float64}
LABEL_SCHEMA = {"start_ms": pl.Float64, "end_ms": pl.Float64, "activity": pl.String}


class SensorUnits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accelerometer: AccelUnit | None = None
    gyroscope: GyroUnit | None = None


class SensorRates(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accelerometer: float | None = Field(None, gt=0)
    gyroscope: float | None = Field(None, gt=0)


class ParticipantMeta(BaseModel):
    """Optional `participant.json`: per-participant overrides of the configured defaults."""

    model_config = ConfigDict(extra="forbid")
    units: SensorUnits = SensorUnits()
    declared_hz: SensorRates = SensorRates()
    info: dict[str, str | int | float | bool] = Field(default_factory=dict, description="Free-form study metadata.")

    def accel_unit(self, cfg: PreprocessConfig) -> AccelUnit:
        return self.units.accelerometer or cfg.accel_unit

    def gyro_unit(self, cfg: PreprocessConfig) -> GyroUnit:
        return self.units.gyroscope or cfg.gyro_unit

    def accel_hz(self, cfg: PreprocessConfig) -> float | None:
        """The declared native accelerometer rate (participant.json, else the config), None if undeclared."""
        return self.declared_hz.accelerometer or cfg.declared_accel_hz

    def gyro_hz(self, cfg: PreprocessConfig) -> float | None:
        return self.declared_hz.gyroscope or cfg.declared_gyro_hz


@dataclass
class RawRecording:
    """Both sensors of one participant on their own clocks, in SI units (m/s², rad/s).

    `accel`/`gyro` have columns t_ms (epoch milliseconds, strictly increasing), x, y, z;
    `labels` has start_ms, end_ms, activity (half-open intervals, sorted, non-overlapping).
    """

    participant: str
    accel: pl.DataFrame
    gyro: pl.DataFrame
    labels: pl.DataFrame
    meta: ParticipantMeta = field(default_factory=ParticipantMeta)
    sources: dict[str, str] = field(default_factory=dict)  # file name -> sha256

    def fingerprint(self) -> str:
        """Content hash of the files this recording was read from."""
        return fingerprint_of(self.sources)

    def to_bytes(self) -> bytes:
        """One object: a zip (stored, the members are compressed already) of the three tables as Parquet and
        recording.json (participant, meta, sources)."""
        info = {"participant": self.participant, "meta": self.meta.model_dump(mode="json"), "sources": self.sources}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in TABLES:
                table = io.BytesIO()
                getattr(self, name).write_parquet(table)
                archive.writestr(f"{name}.parquet", table.getvalue())
            archive.writestr("recording.json", json.dumps(info, indent=2))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> RawRecording:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = json.loads(archive.read("recording.json"))
            tables = {name: pl.read_parquet(archive.read(f"{name}.parquet")) for name in TABLES}
        return cls(participant=info["participant"], **tables, meta=ParticipantMeta.model_validate(info["meta"]),
                   sources=info["sources"])

    @classmethod
    def load_folder(cls, folder: Path) -> RawRecording:
        """A recording stored by earlier versions: a folder of the same members."""
        info = json.loads((folder / "recording.json").read_text())
        tables = {name: pl.read_parquet(folder / f"{name}.parquet") for name in TABLES}
        return cls(participant=info["participant"], **tables, meta=ParticipantMeta.model_validate(info["meta"]),
                   sources=info["sources"])


TABLES = ("accel", "gyro", "labels")


def empty_labels() -> pl.DataFrame:
    return pl.DataFrame(schema=LABEL_SCHEMA)
