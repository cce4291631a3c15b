"""The Dagster code location: `dagster dev -m har_assets.definitions`."""

from __future__ import annotations

import dagster as dg

from har_assets.home import HarHome
from har_assets.inference.names import registered_model_from_env
from har_assets.orchestration.asset_store import store_resources
from har_assets.orchestration.automation import overview_sensor, retrain_sensor, scoring_sensor
from har_assets.orchestration.jobs import preprocess_job
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.overview import OVERVIEW_ASSETS
from har_assets.orchestration.participant_removal import ParticipantRemoval
from har_assets.orchestration.partitions import STUDY_PARTICIPANTS
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.resources import PreprocessingResource, RawStore
from har_assets.orchestration.scoring import SCORING_ASSETS, build_scoring_resources
from har_assets.orchestration.sensors import (
    isolate_failed_batches,
    new_participant_sensor,
    retry_transient_failures,
)
from har_assets.orchestration.training import TRAINING_ASSETS, train_and_evaluate_job
from har_assets.orchestration.training_resources import TrainingResource
from har_assets.orchestration.tuning import OptunaStorage, hyperparameter_search_job


def build_resources(home: HarHome) -> dict:
    model_name, alias = registered_model_from_env()
    training = home.training_config()
    return {
        "raw_store": RawStore.from_limits(str(home.raw), home.read_limits()),
        "preprocessing": PreprocessingResource.from_config(home.preprocess_config()),
        "participant_removal": ParticipantRemoval.for_home(home),
        **store_resources(home.assets_uri()),
        "training": TrainingResource.from_configs(training.split, training.model, training.train),
        "mlflow_tracking": MlflowTracking(tracking_uri=home.mlflow_tracking_uri(),
                                          artifact_location=home.mlflow_artifact_location(),
                                          registered_model_name=model_name, champion_alias=alias),
        "optuna_storage": OptunaStorage(url=home.optuna_storage_url()),
        **build_scoring_resources(),
    }


def build_definitions(home: HarHome) -> dg.Definitions:
    return dg.Definitions(
        assets=[*PREPROCESSING_ASSETS, STUDY_PARTICIPANTS, *TRAINING_ASSETS, *SCORING_ASSETS, *OVERVIEW_ASSETS],
        jobs=[preprocess_job, train_and_evaluate_job, hyperparameter_search_job],
        sensors=[new_participant_sensor, isolate_failed_batches, retry_transient_failures, retrain_sensor,
                 scoring_sensor, overview_sensor],
        resources=build_resources(home),
        executor=dg.in_process_executor,
    )


defs = build_definitions(HarHome.from_env())
