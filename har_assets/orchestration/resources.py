"""Dagster resources: the raw store (with the ReadLimits) and the preprocessing config (generated from
PreprocessConfig)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, create_model

from har_assets.config import PreprocessConfig
from har_assets.raw.layout import validate_participant_id
from har_assets.raw.limits import ReadLimits

_RawStoreBase = create_model(  # type: ignore[call-overload]
    "_RawStoreBase", __base__=dg.ConfigurableResource,
    **{name: (info.annotation, Field(info.default, description=info.description))
       for name, info in ReadLimits.model_fields.items()},
)


class RawStore(_RawStoreBase):  # type: ignore[misc,valid-type]
    """The read-only folder of participant folders (`$HAR_HOME/raw`) and the limits its files are read under
    (ReadLimits' fields; on disk `$HAR_HOME/reading.json`)."""

    root: str = Field(description="The raw folder: one folder per participant.")

    @classmethod
    def from_limits(cls, root: str, limits: ReadLimits) -> RawStore:
        return cls(root=root, **limits.model_dump())

    def limits(self) -> ReadLimits:
        """The limits as set here (in the Launchpad or from reading.json), validated."""
        return ReadLimits.model_validate({name: getattr(self, name) for name in ReadLimits.model_fields})

    def folder(self, participant: str) -> Path:
        return Path(self.root) / validate_participant_id(participant)


def _resource_fields() -> dict[str, Any]:
    """PreprocessConfig's fields, as Dagster config accepts them (lists instead of tuples)."""
    fields: dict[str, Any] = {}
    for name, info in PreprocessConfig.model_fields.items():
        annotation = list[str] | None if name == "activities" else info.annotation
        fields[name] = (annotation, info.default)
    return fields


_PreprocessingBase = create_model(  # type: ignore[call-overload]
    "_PreprocessingBase", __base__=dg.ConfigurableResource, **_resource_fields()
)


class PreprocessingResource(_PreprocessingBase):  # type: ignore[misc,valid-type]
    """Preprocessing parameters, editable in the Launchpad; the fields are PreprocessConfig's."""

    @classmethod
    def from_config(cls, cfg: PreprocessConfig) -> PreprocessingResource:
        return cls(**cfg.model_dump(mode="python"))

    def to_config(self) -> PreprocessConfig:
        values = {name: getattr(self, name) for name in PreprocessConfig.model_fields}
        return PreprocessConfig.model_validate(values)
