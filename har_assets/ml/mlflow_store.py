"""Small helpers for an MLflow store: its SQLite folder, and an experiment found or created."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient


def ensure_sqlite_folder(uri: str | None) -> None:
    """Create the folder of a `sqlite:///` store (MLflow does not)."""
    if uri and uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment `name`, created (with `artifact_location`, for a local store) if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    if artifact_location:
        Path(artifact_location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=artifact_location)
