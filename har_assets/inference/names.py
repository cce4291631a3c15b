"""The registered model: its default name, the alias that marks the version in use, and the environment
variables that choose others (for training, scoring and the API alike)."""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_MODEL_NAME = "har-activity"
DEFAULT_ALIAS = "champion"
MODEL_NAME_VAR = "HAR_MODEL_NAME"
ALIAS_VAR = "HAR_MODEL_ALIAS"


def registered_model_from_env(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(registered model name, alias) from HAR_MODEL_NAME / HAR_MODEL_ALIAS: what training registers
    and promotes, and what the scoring assets and the API load."""
    env = os.environ if env is None else env
    return (env.get(MODEL_NAME_VAR, "").strip() or DEFAULT_MODEL_NAME,
            env.get(ALIAS_VAR, "").strip() or DEFAULT_ALIAS)
