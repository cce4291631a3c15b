"""The training hyper-parameters as a Dagster resource, generated from the pure pydantic configs.

SplitConfig, ModelConfig and TrainConfig (har_assets.ml) stay the one source of truth: each
becomes a section of `TrainingResource` with the same fields, defaults, descriptions and
constraints, editable in the Launchpad under `resources.training.config.{split,model,train}`.
"""

from __future__ import annotations

import copy
from typing import Any

import dagster as dg
from pydantic import BaseModel, Field, create_model

from har_assets.ml.hyperparams import ModelConfig, TrainConfig
from har_assets.ml.split import SplitConfig


def config_section(model: type[BaseModel], name: str) -> type[dg.Config]:
    """A `dg.Config` class with the fields of a pure pydantic config."""
    fields: dict[str, Any] = {n: (info.annotation, copy.copy(info)) for n, info in model.model_fields.items()}
    return create_model(name, __base__=dg.Config, __doc__=model.__doc__, **fields)  # type: ignore[call-overload]


SplitSection = config_section(SplitConfig, "SplitSection")
ModelSection = config_section(ModelConfig, "ModelSection")
TrainSection = config_section(TrainConfig, "TrainSection")


class TrainingResource(dg.ConfigurableResource):
    """Participant split, model architecture and optimisation parameters of the `model` asset."""

    split: SplitSection = Field(default_factory=SplitSection)  # type: ignore[valid-type]
    model: ModelSection = Field(default_factory=ModelSection)  # type: ignore[valid-type]
    train: TrainSection = Field(default_factory=TrainSection)  # type: ignore[valid-type]

    @classmethod
    def from_configs(cls, split: SplitConfig | None = None, model: ModelConfig | None = None,
                     train: TrainConfig | None = None) -> TrainingResource:
        return cls(split=SplitSection(**(split or SplitConfig()).model_dump()),
                   model=ModelSection(**(model or ModelConfig()).model_dump()),
                   train=TrainSection(**(train or TrainConfig()).model_dump()))

    def split_config(self) -> SplitConfig:
        return SplitConfig.model_validate(self.split.model_dump())

    def model_cfg(self) -> ModelConfig:
        return ModelConfig.model_validate(self.model.model_dump())

    def train_cfg(self) -> TrainConfig:
        return TrainConfig.model_validate(self.train.model_dump())
