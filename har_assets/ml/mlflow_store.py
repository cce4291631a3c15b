"""Small helpers for an MLflow store: a local SQLite store created whole and checked, an experiment found or
created, and the one way our code writes runs: through an explicit `MlflowClient` (`create_run`, `log_batch`,
`flat_params`), never MLflow's process-global fluent API, which points at one store per process. `global_uris`
scopes that global state to a block for the few MLflow calls that read nothing else.

MLflow creates a SQLite store by running its ~70 schema migrations one after another, each committed on its own,
so a process stopped part-way leaves a file that every later open fails on with an alembic traceback. Here a new
store is migrated in a temporary file beside it and renamed into place only when whole.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # MLflow is imported where used: the CLI imports this module to check the store before it runs
    from mlflow import MlflowClient

SQLITE = "sqlite:///"
URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")  # exported by mlflow.set_tracking_uri / set_registry_uri


class MlflowStoreError(ValueError):
    """A local MLflow store that MLflow cannot open; the message names the file and the command that mends it."""


def sqlite_path(uri: str | None) -> Path | None:
    """The database file of a `sqlite:///` store URI, else None."""
    return Path(uri.removeprefix(SQLITE)) if uri and uri.startswith(SQLITE) else None


def ensure_sqlite_folder(uri: str | None) -> None:
    """For a `sqlite:///` store: create its folder and, if the database is missing, the store itself, whole (a
    stat when it exists: checking an existing store is `ensure_local_store`'s job, once per command)."""
    path = sqlite_path(uri)
    if path is not None and not path.exists():
        ensure_local_store(path)


def ensure_local_store(db_path: Path) -> None:
    """Create the SQLite MLflow store at `db_path` if missing (migrated in a temporary file, then renamed into place),
    else check that it is whole: at the schema revision this MLflow expects. Raises MlflowStoreError otherwise."""
    if not db_path.exists():
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with _creation_lock(db_path):
            if not db_path.exists():
                _create(db_path)
                return
    from mlflow.store.db.utils import _get_latest_schema_revision  # what MLflow's own schema check compares with

    revision, holds_data = _inspect(db_path)
    head = _get_latest_schema_revision()
    if revision != head:
        raise MlflowStoreError(_diagnosis(db_path, revision, head, holds_data))


@contextmanager
def _creation_lock(db_path: Path) -> Iterator[None]:
    """Serialises creators of one store (run workers may start together); released when its process dies."""
    with open(db_path.with_name(f".{db_path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _create(db_path: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for stale in db_path.parent.glob(f".{db_path.name}.*.creating*"):  # killed attempts (creators hold the lock)
        stale.unlink()
    tmp = db_path.with_name(f".{db_path.name}.{uuid.uuid4().hex}.creating")
    try:
        store = SqlAlchemyStore(f"{SQLITE}{tmp.absolute()}", (db_path.parent / "artifacts").absolute().as_uri())
        store.engine.dispose()
        os.replace(tmp, db_path)
    finally:
        tmp.unlink(missing_ok=True)


def _inspect(db_path: Path) -> tuple[str | None, bool]:
    """The store's alembic revision (None without exactly one) and whether any other table holds a row."""
    try:
        with closing(sqlite3.connect(f"{db_path.absolute().as_uri()}?mode=rw", uri=True)) as db:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            stamped = "alembic_version" in tables
            rows = db.execute("SELECT version_num FROM alembic_version").fetchall() if stamped else []
            holds_data = any(db.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables
                             if t != "alembic_version" and not t.startswith("sqlite_"))
    except sqlite3.OperationalError as exc:  # unreadable, a folder, locked
        raise MlflowStoreError(f"{db_path} cannot be opened as an MLflow store: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise MlflowStoreError(f"{db_path} is not an SQLite database ({exc}). Move it aside and the next run "
                               f"creates a new MLflow store: {_move_aside(db_path)}") from None
    return (rows[0][0] if len(rows) == 1 else None), holds_data


def _diagnosis(db_path: Path, revision: str | None, head: str, holds_data: bool) -> str:
    import mlflow
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    found = f"schema revision {revision or '(none)'}, MLflow {mlflow.__version__} expects {head}"
    if not holds_data:
        return (f"{db_path} is a half-created MLflow store ({found}; no experiment, run or model in it), left by a "
                f"process stopped while creating it. Move it aside and the next run creates it anew: "
                f"{_move_aside(db_path)}")
    known = {r.revision for r in ScriptDirectory.from_config(_get_alembic_config("")).walk_revisions()}
    if revision in known:
        upgrade = shlex.join([sys.executable, "-m", "mlflow", "db", "upgrade", f"{SQLITE}{db_path.absolute()}"])
        return f"{db_path} is an MLflow store with an older schema ({found}). Back it up, then upgrade it: {upgrade}"
    return (f"{db_path} is an MLflow store this MLflow does not know ({found}; a newer MLflow wrote it?). Open it with "
            f"the MLflow that wrote it, or move it aside to start a new store: {_move_aside(db_path)}")


def _move_aside(db_path: Path) -> str:
    return shlex.join(["mv", str(db_path), f"{db_path}.broken"])


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment `name`, created (with `artifact_location`, for a local store) if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    if artifact_location:
        Path(artifact_location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=artifact_location)


def flat_params(prefix: str, values: Mapping[str, Any]) -> dict[str, str]:
    """A config section as MLflow params: `prefix.key` -> the value as text, lists and tuples comma-joined."""
    return {f"{prefix}.{k}": ",".join(map(str, v)) if isinstance(v, list | tuple) else str(v)
            for k, v in values.items()}


def create_run(client: MlflowClient, experiment_id: str, name: str, tags: Mapping[str, str] | None = None,
               parent_run_id: str | None = None) -> str:
    """A new run named `name` (nested under `parent_run_id` in the MLflow UI when given); returns its id."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    all_tags = {MLFLOW_RUN_NAME: name, **(tags or {}),
                **({MLFLOW_PARENT_RUN_ID: parent_run_id} if parent_run_id else {})}
    return client.create_run(experiment_id, run_name=name, tags=all_tags).info.run_id


def log_batch(client: MlflowClient, run_id: str, *, metrics: Mapping[str, float | None] | None = None,
              params: Mapping[str, object] | None = None, tags: Mapping[str, str] | None = None,
              step: int = 0) -> None:
    """Metrics (names made MLflow-safe; None and NaN left out), params (as text) and tags in one call."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(re.sub(r"[^\w\-./ ]", "_", k), float(v), now, step) for k, v in (metrics or {}).items()
                 if v is not None and v == v],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, v) for k, v in (tags or {}).items()],
    )


@contextmanager
def global_uris(tracking_uri: str, registry_uri: str | None = None) -> Iterator[None]:
    """MLflow's process-global tracking and registry URIs on one store for the block only, for the MLflow calls that
    read nothing else (fluent model logging, registering a `models:/m-…` model, downloading a model by URI). After
    it they, and the environment variables setting them exports, are as before: MLflow has no public way to read a
    URI as *unset*, hence its two module globals."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    before = tracking_state._tracking_uri, registry_state._registry_uri
    env = {var: os.environ.get(var) for var in URI_VARIABLES}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before[0])  # type: ignore[arg-type]  # None unsets it
        mlflow.set_registry_uri(before[1])  # type: ignore[arg-type]
        for var, value in env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
