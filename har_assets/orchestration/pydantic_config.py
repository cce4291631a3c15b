"""The pure pydantic configs (PreprocessConfig, ReadLimits, SplitConfig, ModelConfig, TrainConfig,
DriftThresholds) as Dagster config, by one mechanism: the same fields with their defaults, descriptions and
constraints, so the Launchpad shows and enforces what the pure model declares. The pure model stays the one
source of truth and validates the values again when a resource hands them back."""

from __future__ import annotations

import copy
from typing import Any

import dagster as dg
from pydantic import BaseModel, create_model
from pydantic.fields import FieldInfo


def dagster_fields(model: type[BaseModel],
                   annotations: dict[str, Any] | None = None) -> dict[str, tuple[Any, FieldInfo]]:
    """The model's fields as `create_model` takes them; `annotations` replaces types Dagster config cannot take
    (tuples become lists)."""
    annotations = annotations or {}
    return {name: (annotations.get(name, info.annotation), copy.copy(info))
            for name, info in model.model_fields.items()}


def config_class(model: type[BaseModel], name: str, base: type[dg.Config] = dg.Config,
                 annotations: dict[str, Any] | None = None) -> type:
    """A Dagster config (or, with `base=dg.ConfigurableResource`, resource) class with the model's fields."""
    return create_model(name, __base__=base, __doc__=model.__doc__,  # type: ignore[call-overload]
                        **dagster_fields(model, annotations))


def values_of(config: BaseModel, model: type[BaseModel]) -> dict[str, Any]:
    """The model's fields as set on a Dagster config or resource object."""
    return {name: getattr(config, name) for name in model.model_fields}
