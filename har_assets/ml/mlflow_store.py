"""Small helpers for an MLflow store: a local SQLite store created whole and checked, and an experiment found or
created.

MLflow creates a SQLite store by running its ~70 schema migrations one after another, each committed on its own,
so a process stopped part-way leaves a file that every later open fails on with an alembic traceback. Here a new
store is migrated in a temporary file beside it and renamed into place only when whole.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # MLflow is imported where used: the CLI imports this module to check the store before it runs
    from mlflow import MlflowClient

SQLITE = "sqlite:///"


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
