"""The README's configuration reference names every config field the code has."""

from pathlib import Path

import pytest
from pydantic import BaseModel

from har_assets.config import PreprocessConfig
from har_assets.inference.drift import DriftThresholds
from har_assets.ml.hyperparams import DecodingConfig, ModelConfig, TrainConfig
from har_assets.ml.split import SplitConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def _configuration_section() -> str:
    return README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("model", [PreprocessConfig, SplitConfig, ModelConfig, TrainConfig, DecodingConfig,
                                   DriftThresholds])
def test_every_field_is_documented(model: type[BaseModel]) -> None:
    section = _configuration_section()
    missing = [name for name in model.model_fields if f"`{name}`" not in section]
    assert not missing, f"{model.__name__} fields missing from the README's Configuration section: {missing}"
