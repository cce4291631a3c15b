"""The one home folder (`HAR_HOME`, default `./data`) that holds raw data, assets, MLflow and Dagster state.

Where it is and which stores replace its own come from `har_assets.settings.HarSettings`; its config files are
read here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from har_assets.config import PreprocessConfig
from har_assets.ml.hyperparams import DecodingConfig, ModelConfig, TrainConfig
from har_assets.ml.split import SplitConfig
from har_assets.objectstore import is_local, store_path
from har_assets.raw.limits import READING_FILE, ReadLimits

PREPROCESS_FILE = "preprocess.json"
TRAINING_FILE = "training.json"


class TrainingConfig(BaseModel):
    """`$HAR_HOME/training.json`: the sections of the `training` resource, each optional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)


M = TypeVar("M", bound=BaseModel)


class HomeConfigError(ValueError):
    """A config file in the home folder that cannot be read."""


class RawRootUnavailable(RuntimeError):
    """The raw root is missing or empty in a home that has registered participants (an unmounted volume)."""


def _read_config(path: Path, model: type[M]) -> M:
    """The file validated as `model`, or the defaults when there is no file; errors name the file and field."""
    if not path.is_file():
        return model()
    try:
        return model.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise HomeConfigError(f"{path}: {problems}") from None


@dataclass(frozen=True)
class HarHome:
    """The home folder; `tracking_uri` (a tracking server) and `assets_uri_override` (a folder or object store)
    replace its own MLflow store and asset folder, `settings_dir` the folder its settings files are read from
    (a container mounts them read-only apart from the home's volumes)."""

    root: Path
    tracking_uri: str | None = None
    assets_uri_override: str | None = None
    settings_dir: Path | None = None

    @property
    def settings(self) -> Path:
        """Where preprocess.json, training.json and reading.json are read from: `settings_dir`, else the home."""
        return self.settings_dir or self.root

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def assets(self) -> Path:
        return self.root / "assets"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow / "artifacts"

    def mlflow_tracking_uri(self) -> str:
        """The tracking server if one is set, else `local_mlflow_uri()`."""
        return self.tracking_uri or self.local_mlflow_uri()

    def local_mlflow_uri(self) -> str:
        """The home's own MLflow store: SQLite under `mlflow/` (a database backend, because the model
        registry and its aliases need one)."""
        return f"sqlite:///{self.mlflow / 'mlflow.db'}"

    def mlflow_artifact_location(self) -> str | None:
        """Artifact root for experiments created in the local store: beside the assets when they are on an object
        store, else `mlflow/artifacts`; None when a tracking server decides."""
        if self.tracking_uri:
            return None
        return self.mlflow_artifacts.resolve().as_uri() if self.assets_are_local() else f"{self.assets_uri()}/.mlflow"

    @property
    def optuna(self) -> Path:
        return self.root / "optuna"

    def optuna_storage_url(self) -> str:
        """The resumable Optuna study storage (SQLite)."""
        return f"sqlite:///{self.optuna / 'optuna.db'}"

    def assets_uri(self) -> str:
        """The asset store: the override (a folder or an object store, `s3://bucket/prefix`), else `assets/`."""
        return (self.assets_uri_override or str(self.assets)).rstrip("/")

    def assets_are_local(self) -> bool:
        return is_local(store_path(self.assets_uri()))

    def audit_dir(self) -> str:
        """One audit record per participant removed from the study. Inside the asset store (no asset key starts
        with a dot), so every deployment that keeps the assets keeps it."""
        return f"{self.assets_uri()}/.audit/participants"

    def removed_archive(self) -> str:
        """Where a removed participant's stored assets are moved to (inside the asset store)."""
        return f"{self.assets_uri()}/.removed"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    def preprocess_config(self) -> PreprocessConfig:
        """The preprocessing config: `preprocess.json` in the settings folder if present, else the defaults."""
        return _read_config(self.settings / PREPROCESS_FILE, PreprocessConfig)

    def training_config(self) -> TrainingConfig:
        """Split, model, training and decoding settings: `training.json` in the settings folder if present, else
        the defaults."""
        return _read_config(self.settings / TRAINING_FILE, TrainingConfig)

    def read_limits(self) -> ReadLimits:
        """How large a raw file may be read: `reading.json` in the settings folder if present, else the defaults."""
        return _read_config(self.settings / READING_FILE, ReadLimits)
