"""MLflow tracking and registry for the training assets, as a small `ConfigurableResource`.

Why not dagster-mlflow's `mlflow_tracking` (0.29): it is a legacy function resource that starts
(or resumes, found by the tag `dagster_run_id`) one MLflow run per *Dagster run* as soon as any
step initialises it, and ends it only through the `end_mlflow_on_run_finished` hook, which ad-hoc
"Materialize" runs (the implicit asset job) and automation-condition runs do not carry, so their
MLflow runs would stay RUNNING. It also unregisters MLflow's atexit handler, creates experiments
with MLflow's default artifact location (`./mlruns` in whatever the working directory is), and
its `configured` settings cannot be changed per run.

Here one *training materialization* is one MLflow run: the `model` asset starts and ends it
(status FAILED on error), and `model_evaluation` adds the test results to the same run by id,
even when it is re-materialized in a later Dagster run. Everything is written through an explicit
`MlflowClient` on this resource's store (`client`, `run`), never through MLflow's process-global
fluent state, so two stores can be used in one process; `global_uris` scopes that state to the
few MLflow calls that read nothing else. The store defaults to SQLite under `$HAR_HOME/mlflow`
(the registry needs a database); `MLFLOW_TRACKING_URI` points it at a server (see
`HarHome.mlflow_tracking_uri`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import dagster as dg

from har_assets.inference.names import DEFAULT_ALIAS, DEFAULT_MODEL_NAME

if TYPE_CHECKING:  # imported where used: every run process loads this module, few need MLflow or torch
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from har_assets.ml.bundle import ModelBundle


class MlflowTracking(dg.ConfigurableResource):
    """Where runs and models go: tracking store, experiment, registered model name and alias."""

    tracking_uri: str
    registry_uri: str | None = None
    experiment_name: str = "har-activity"
    artifact_location: str | None = None
    registered_model_name: str = DEFAULT_MODEL_NAME
    champion_alias: str = DEFAULT_ALIAS

    def client(self) -> MlflowClient:
        """A client of this store; a missing local (SQLite) store is created whole first (an existing one costs a
        stat: the CLI checks it once per command, `ensure_local_store`)."""
        from mlflow import MlflowClient

        from har_assets.ml.mlflow_store import ensure_sqlite_folder

        for uri in (self.tracking_uri, self.registry_uri):
            ensure_sqlite_folder(uri)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri or self.tracking_uri)

    def experiment_id(self) -> str:
        from har_assets.ml.mlflow_store import experiment_id

        return experiment_id(self.client(), self.experiment_name, self.artifact_location)

    @contextmanager
    def run(self, client: MlflowClient, run_name: str, *, run_id: str | None = None,
            tags: dict[str, str] | None = None, parent_run_id: str | None = None) -> Iterator[str]:
        """Run `run_id` re-opened, or (None) a new run `run_name` with `tags`, nested under `parent_run_id` when
        given, written through `client`; yields its id and ends it with the block, FAILED if the block raised."""
        from har_assets.ml.mlflow_store import create_run

        if run_id is None:
            run_id = create_run(client, self.experiment_id(), run_name, tags, parent_run_id)
        else:
            client.update_run(run_id, "RUNNING")
        try:
            yield run_id
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")

    @contextmanager
    def global_uris(self) -> Iterator[None]:
        """MLflow's process-global URIs on this store for the block only (see `mlflow_store.global_uris`)."""
        from har_assets.ml.mlflow_store import global_uris

        with global_uris(self.tracking_uri, self.registry_uri):
            yield

    def run_url(self, run_id: str) -> str | None:
        """Link to the run in the MLflow UI when the store is a tracking server."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return None
        run = self.client().get_run(run_id)
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run_id}"

    def load_bundle(self, model_uri: str, expected_digest: str | None = None) -> ModelBundle:
        """The model's bundle, never unpickled; checked against `expected_digest` when given."""
        from har_assets.ml.mlflow_model import load_bundle

        with self.global_uris():  # a registry URI of its own: `load_bundle` takes one URI for both
            return load_bundle(model_uri, expected_digest)

    def champion(self) -> ModelVersion | None:
        """The version holding the champion alias, or None (also when the model is not registered yet)."""
        return alias_holder(self.client(), self.registered_model_name, self.champion_alias)

    def champion_uri(self) -> str:
        return f"models:/{self.registered_model_name}@{self.champion_alias}"


def alias_holder(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version of `name` holding `alias`, or None (also when `name` is not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
