"""The Dagster code location (`dg dev`, `dagster dev -m har_assets.definitions`): built from `HarSettings` when
Dagster loads it, never at import."""

from __future__ import annotations

import dagster as dg

from har_assets.home import HarHome
from har_assets.inference.names import DEFAULT_ALIAS, DEFAULT_MODEL_NAME
from har_assets.orchestration.asset_store import store_resources
from har_assets.orchestration.automation import automation_sensors, with_retrain_cron
from har_assets.orchestration.jobs import preprocess_job
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.overview import OVERVIEW_ASSETS
from har_assets.orchestration.participant_removal import ParticipantRemoval
from har_assets.orchestration.partitions import STUDY_PARTICIPANTS
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.resources import PreprocessingResource, RawStore
from har_assets.orchestration.retrain_policy import RetrainPolicy
from har_assets.orchestration.retrain_trigger import retrain_sensor
from har_assets.orchestration.scoring import SCORING_ASSETS, build_scoring_resources
from har_assets.orchestration.sensors import study_sensors
from har_assets.orchestration.training import TRAINING_ASSETS, train_and_evaluate_job
from har_assets.orchestration.training_resources import TrainingResource
from har_assets.orchestration.tuning import OptunaStorage, hyperparameter_search_job
from har_assets.settings import HarSettings

ASSETS = [*PREPROCESSING_ASSETS, STUDY_PARTICIPANTS, *TRAINING_ASSETS, *SCORING_ASSETS, *OVERVIEW_ASSETS]


def build_resources(home: HarHome, model_name: str = DEFAULT_MODEL_NAME, model_alias: str = DEFAULT_ALIAS) -> dict:
    """Every resource the assets, jobs and sensors use, from the home's stores and config files."""
    training = home.training_config()
    return {
        "raw_store": RawStore.from_limits(str(home.raw), home.read_limits()),
        "preprocessing": PreprocessingResource.from_config(home.preprocess_config()),
        "participant_removal": ParticipantRemoval.for_home(home),
        **store_resources(home.assets_uri()),
        "training": TrainingResource.from_configs(training.split, training.model, training.train, training.decoding),
        "mlflow_tracking": MlflowTracking(tracking_uri=home.mlflow_tracking_uri(),
                                          artifact_location=home.mlflow_artifact_location(),
                                          registered_model_name=model_name, champion_alias=model_alias),
        "optuna_storage": OptunaStorage(url=home.optuna_storage_url()),
        **build_scoring_resources(),
    }


def retrain_policy(settings: HarSettings) -> RetrainPolicy:
    """When retraining pays, as the settings say (`retrain_when_it_pays` and `har pipeline`)."""
    return RetrainPolicy(settings.retrain_min_labelled_minutes, settings.retrain_min_flagged_people)


def build_definitions(settings: HarSettings, resources: dict | None = None) -> dg.Definitions:
    """The code location these settings describe, with `resources` instead of the settings' own if given (`har
    pipeline` has built them). Every job runs its steps in one process (the executor below)."""
    return dg.Definitions(
        assets=with_retrain_cron(ASSETS, settings.retrain_cron),
        jobs=[preprocess_job, train_and_evaluate_job, hyperparameter_search_job],
        sensors=[*study_sensors(settings.autostart_sensor),
                 *automation_sensors(settings.retrain_cron, settings.autostart_retrain, settings.autostart_scoring,
                                     settings.autostart_overview, settings.automation_interval_s),
                 retrain_sensor(retrain_policy(settings), settings.autostart_retrain, settings.automation_interval_s)],
        resources=resources if resources is not None else build_resources(settings.har_home(), settings.model_name,
                                                                          settings.model_alias),
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(HarSettings())
