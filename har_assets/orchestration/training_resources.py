"""The training hyper-parameters as a Dagster resource, generated from the pure pydantic configs.

SplitConfig, ModelConfig, TrainConfig and DecodingConfig (har_assets.ml) stay the one source of truth: each
becomes a section of `TrainingResource` with the same fields, defaults, descriptions and
constraints, editable in the Launchpad under `resources.training.config.{split,model,train,decoding}`.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from har_assets.ml.hyperparams import DecodingConfig, ModelConfig, TrainConfig
from har_assets.ml.split import SplitConfig
from har_assets.orchestration.pydantic_config import config_class

SplitSection = config_class(SplitConfig, "SplitSection")
ModelSection = config_class(ModelConfig, "ModelSection")
TrainSection = config_class(TrainConfig, "TrainSection")
DecodingSection = config_class(DecodingConfig, "DecodingSection")


class TrainingResource(dg.ConfigurableResource):
    """Participant split, model architecture, optimisation and recording-decoding parameters of the `model`
    asset."""

    split: SplitSection = Field(default_factory=SplitSection)  # type: ignore[valid-type]
    model: ModelSection = Field(default_factory=ModelSection)  # type: ignore[valid-type]
    train: TrainSection = Field(default_factory=TrainSection)  # type: ignore[valid-type]
    decoding: DecodingSection = Field(default_factory=DecodingSection)  # type: ignore[valid-type]

    @classmethod
    def from_configs(cls, split: SplitConfig | None = None, model: ModelConfig | None = None,
                     train: TrainConfig | None = None, decoding: DecodingConfig | None = None) -> TrainingResource:
        return cls(split=SplitSection(**(split or SplitConfig()).model_dump()),
                   model=ModelSection(**(model or ModelConfig()).model_dump()),
                   train=TrainSection(**(train or TrainConfig()).model_dump()),
                   decoding=DecodingSection(**(decoding or DecodingConfig()).model_dump()))

    def split_config(self) -> SplitConfig:
        return SplitConfig.model_validate(self.split.model_dump())

    def model_cfg(self) -> ModelConfig:
        return ModelConfig.model_validate(self.model.model_dump())

    def train_cfg(self) -> TrainConfig:
        return TrainConfig.model_validate(self.train.model_dump())

    def decoding_cfg(self) -> DecodingConfig:
        return DecodingConfig.model_validate(self.decoding.model_dump())
