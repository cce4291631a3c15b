"""Every setting the platform takes from its environment, read once into one object and passed down.

`HarSettings()` reads the environment (and nothing else) when called, never at import: the code location
builds its definitions from it when Dagster loads them (`har_assets.definitions`), each command of `har` when it
starts. The home's files (`preprocess.json`, `training.json`, `reading.json`) are read by `HarHome`, whose
location and overrides come from here. The API's own limits are `serving.settings.ServeSettings`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from har_assets.home import HarHome
from har_assets.inference.names import ALIAS_VAR, DEFAULT_ALIAS, DEFAULT_MODEL_NAME, MODEL_NAME_VAR


class HarSettings(BaseSettings):
    """The study's home, its stores, the registered model, and how the automation is deployed."""

    # case-sensitive: the field `home` must not be read from $HOME (only HAR_HOME names the home)
    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True, populate_by_name=True,
                                      case_sensitive=True)

    home: Path = Field(Path("data"), validation_alias="HAR_HOME",
                       description="The home folder: raw data, assets, MLflow and Dagster state.")
    settings_dir: Path | None = Field(None, validation_alias="HAR_SETTINGS_DIR",
                                      description="The folder of preprocess.json, training.json and reading.json "
                                                  "instead of the home.")
    mlflow_tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI",
                                            description="An MLflow tracking server instead of the home's store.")
    assets_uri: str | None = Field(None, validation_alias="HAR_ASSETS_URI",
                                   description="The asset store (a folder or s3://bucket/prefix) instead of assets/.")
    model_name: str = Field(DEFAULT_MODEL_NAME, min_length=1, validation_alias=MODEL_NAME_VAR,
                            description="The registered model that training registers and scoring loads.")
    model_alias: str = Field(DEFAULT_ALIAS, min_length=1, validation_alias=ALIAS_VAR,
                             description="The alias of the version in use.")
    retrain_cron: str = Field("0 * * * *", validation_alias="HAR_RETRAIN_CRON",
                              description="Re-split at most once per this cron interval when windows changed.")
    retrain_min_labelled_minutes: float = Field(
        10.0, gt=0, validation_alias="HAR_RETRAIN_MIN_LABELLED_MINUTES",
        description="Retrain when at least this many labelled minutes changed since the current model's data.")
    retrain_min_flagged_people: int = Field(
        3, ge=1, validation_alias="HAR_RETRAIN_MIN_FLAGGED_PEOPLE",
        description="Retrain when at least this many participants became flagged since the current model.")
    automation_interval_s: int = Field(60, ge=5, validation_alias="HAR_AUTOMATION_INTERVAL_S",
                                       description="Seconds between evaluations of the automation sensors.")
    autostart_sensor: bool = Field(True, validation_alias="HAR_AUTOSTART_SENSOR",
                                   description="Deploy the raw-folder sensor and the failed-run sensors running.")
    autostart_retrain: bool = Field(True, validation_alias="HAR_AUTOSTART_RETRAIN",
                                    description="Deploy the retraining sensors running.")
    autostart_scoring: bool = Field(True, validation_alias="HAR_AUTOSTART_SCORING",
                                    description="Deploy the scoring automation sensor running.")
    autostart_overview: bool = Field(True, validation_alias="HAR_AUTOSTART_OVERVIEW",
                                     description="Deploy the cohort-overview automation sensor running.")

    def har_home(self) -> HarHome:
        """The home, with the stores these settings name."""
        return HarHome(self.home.expanduser().resolve(), tracking_uri=self.mlflow_tracking_uri,
                       assets_uri_override=self.assets_uri,
                       settings_dir=self.settings_dir.expanduser().resolve() if self.settings_dir else None)

    @classmethod
    def env_vars(cls) -> dict[str, str]:
        """field -> the environment variable it is read from."""
        return {name: str(field.validation_alias) for name, field in cls.model_fields.items()}
