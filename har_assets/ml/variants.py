"""Experiment configurations and their variants: `gravity=keep`, `train.epochs=40`, ...

One `ExperimentConfig` holds everything a training run depends on (preprocessing, model,
optimisation, the validation share); a variant is the base config with a few fields replaced.
Keys are `section.field` (sections: preprocess, model, train, split, decoding) or a bare field name that
exists in one section only; values are JSON (`40`, `0.5`, `null`, `["a", "b"]`) or plain text
(`keep`). Every replaced field is validated by the section's own pydantic model.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from har_assets.config import PreprocessConfig
from har_assets.ml.hyperparams import DecodingConfig, ModelConfig, TrainConfig
from har_assets.ml.split import SplitConfig


class ExperimentConfig(BaseModel):
    """Preprocessing, architecture, optimisation and split settings of one training run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)


SECTIONS: dict[str, type[BaseModel]] = {"preprocess": PreprocessConfig, "model": ModelConfig, "train": TrainConfig,
                                        "split": SplitConfig, "decoding": DecodingConfig}
# in cross-validation the folds decide who is tested; only these split fields still mean something
CV_SPLIT_FIELDS = ("validation_share", "seed")

# The plain reference a default must beat: a 1D-CNN-BiLSTM with gravity kept, Adam at 1e-3, batch 64, a fixed
# 30 epochs on the training and validation people together (no early stopping, schedule, weighting or augmentation),
# each window classified alone in the device frame as it is (no orientation reference, no smoothing).
REFERENCE: dict[str, Any] = {
    "preprocess.gravity": "keep",
    "model.conv_filters": 64, "model.kernel_size": 5, "model.conv_layers": 2, "model.lstm_units": 64,
    "model.lstm_layers": 1, "model.dropout": 0.3,
    "train.epochs": 30, "train.optimizer": "adam", "train.lr": 1e-3, "train.weight_decay": 0.0,
    "train.batch_size": 64, "train.lr_schedule": "constant", "train.class_weighting": "none",
    "train.augment_rotation_deg": 0.0, "train.augment_scale": 0.0,
    "split.validation_share": 0.0,
    "decoding.orientation": "none", "decoding.smoothing": "none",
}


class VariantError(ValueError):
    """A `--set` / `--compare` / `--variant` argument that does not name a valid setting."""


def resolve_key(key: str) -> tuple[str, str]:
    """(section, field) of `section.field` or of a bare field name that only one section has."""
    section, _, name = key.strip().rpartition(".")
    if section:
        if section not in SECTIONS:
            raise VariantError(f"unknown section {section!r} in {key!r}; sections: {', '.join(SECTIONS)}")
        if name not in SECTIONS[section].model_fields:
            raise VariantError(f"{section} has no field {name!r}; its fields: "
                               f"{', '.join(SECTIONS[section].model_fields)}")
        return section, name
    owners = [s for s, model in SECTIONS.items() if name in model.model_fields]
    if not owners:
        raise VariantError(f"no setting is called {name!r}; write section.field, e.g. train.epochs")
    if len(owners) > 1:
        raise VariantError(f"{name!r} is ambiguous: say which, " + " or ".join(f"{s}.{name}" for s in owners))
    return owners[0], name


def parse_value(text: Any) -> Any:
    """JSON if it parses (numbers, null, lists), else the text itself (enum names such as `keep`)."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(base: ExperimentConfig, overrides: Mapping[str, Any]) -> ExperimentConfig:
    """`base` with the given `key=value` settings replaced; VariantError names a bad key or value."""
    changes: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, name = resolve_key(key)
        changes.setdefault(section, {})[name] = parse_value(value)
    sections = {}
    for section, model in SECTIONS.items():
        current: BaseModel = getattr(base, section)
        if section not in changes:
            sections[section] = current
            continue
        try:
            sections[section] = model.model_validate(current.model_dump() | changes[section])
        except ValidationError as exc:
            problems = "; ".join(f"{section}.{'.'.join(map(str, e['loc'])) or '(section)'}: {e['msg']}"
                                 for e in exc.errors())
            raise VariantError(f"invalid setting: {problems}") from None
    return ExperimentConfig(**sections)


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """`["gravity=keep", "train.epochs=40"]` -> {"gravity": "keep", "train.epochs": "40"}."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise VariantError(f"expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Variant:
    """A named configuration to cross-validate; `overrides` says how it differs from the base."""

    name: str
    config: ExperimentConfig
    overrides: dict[str, Any] = field(default_factory=dict)


def build_variants(base: ExperimentConfig, compare: Iterable[str] = (), named: Iterable[str] = (),
                   reference: bool = False) -> list[Variant]:
    """The variants to compare, the first being the one the others are measured against.

    `compare`: `key=v1,v2,...` axes; several axes give every combination. Without any, the base
    itself is the first variant ("default"). `named`: `name:key=value,key=value` variants.
    `reference`: add the plain REFERENCE model.
    """
    axes = []
    for item in compare:
        key, sep, values = item.partition("=")
        if not sep or not values.strip():
            raise VariantError(f"--compare expects key=value1,value2,..., got {item!r}")
        resolve_key(key)
        axes.append([(key.strip(), v.strip()) for v in values.split(",")])
    variants = [Variant("default", base)] if not axes else []
    for combo in itertools.product(*axes) if axes else []:
        overrides = dict(combo)
        variants.append(Variant(", ".join(f"{k}={v}" for k, v in combo), apply_overrides(base, overrides), overrides))
    for item in named:
        name, sep, body = item.partition(":")
        if not sep or not name.strip():
            raise VariantError(f"--variant expects name:key=value,key=value, got {item!r}")
        overrides = parse_assignments(filter(None, (part.strip() for part in body.split(","))))
        variants.append(Variant(name.strip(), apply_overrides(base, overrides), overrides))
    if reference:
        variants.append(Variant("reference", apply_overrides(base, REFERENCE), dict(REFERENCE)))
    names = [v.name for v in variants]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise VariantError(f"variant names must differ: {twice}")
    for v in variants:
        unknown = [f for f in SplitConfig.model_fields
                   if f not in CV_SPLIT_FIELDS and getattr(v.config.split, f) != getattr(SplitConfig(), f)]
        if unknown:
            raise VariantError(f"variant {v.name!r}: split.{unknown[0]} is decided by the folds in cross-validation")
    return variants
