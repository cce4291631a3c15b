"""Dagster resources: the raw store (with the ReadLimits) and the preprocessing config (generated from
PreprocessConfig)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from har_assets.config import PreprocessConfig
from har_assets.orchestration.pydantic_config import config_class, values_of
from har_assets.raw.layout import validate_participant_id
from har_assets.raw.limits import ReadLimits

_RawStoreBase = config_class(ReadLimits, "_RawStoreBase", dg.ConfigurableResource)


class RawStore(_RawStoreBase):  # type: ignore[misc,valid-type]
    """The read-only folder of participant folders (`$HAR_HOME/raw`) and the limits its files are read under
    (ReadLimits' fields; on disk `$HAR_HOME/reading.json`)."""

    root: str = Field(description="The raw folder: one folder per participant.")

    @classmethod
    def from_limits(cls, root: str, limits: ReadLimits) -> RawStore:
        return cls(root=root, **limits.model_dump())

    def limits(self) -> ReadLimits:
        """The limits as set here (in the Launchpad or from reading.json), validated."""
        return ReadLimits.model_validate(values_of(self, ReadLimits))

    def folder(self, participant: str) -> Path:
        return Path(self.root) / validate_participant_id(participant)


_PreprocessingBase = config_class(PreprocessConfig, "_PreprocessingBase", dg.ConfigurableResource,
                                  annotations={"activities": list[str] | None})  # a list in Dagster config


class PreprocessingResource(_PreprocessingBase):  # type: ignore[misc,valid-type]
    """Preprocessing parameters, editable in the Launchpad; the fields are PreprocessConfig's."""

    @classmethod
    def from_config(cls, cfg: PreprocessConfig) -> PreprocessingResource:
        return cls(**cfg.model_dump(mode="python"))

    def to_config(self) -> PreprocessConfig:
        values = {name: getattr(self, name) for name in PreprocessConfig.model_fields}
        return PreprocessConfig.model_validate(values)
