"""Deleting what MLflow holds of one participant (`har participants purge`).

Since this version a run names nobody in its metric or parameter keys and logs no person's windows:
per-person figures live in JSON artifacts (`evaluation/report.json`, `inputs/data_versions.json`,
`summary.json`), and a model's input example is the cohort's mean window. A purge therefore
rewrites those artifacts without the participant and, for runs logged by earlier versions, deletes
the models' input examples (two real training windows) and the metric and parameter keys that name
the participant. MLflow has no API to delete a metric or a parameter: on the home's own SQLite store
the rows are deleted directly; on a tracking server they are listed as not deletable (delete those
runs, or the server's rows, by hand). Parameter values that list ids among others (`split.train`)
stay: an id is a pseudonym, the data behind it is what goes.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run, ViewType
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

EXAMPLE_FILES = ("input_example.json", "serving_input_example.json")
MODEL_FOLDERS = ("model",)  # never rewritten here: the model's bundle is hash-verified


@dataclass
class MlflowPurge:
    runs: list[str] = field(default_factory=list)
    examples_deleted: list[str] = field(default_factory=list)
    artifacts_rewritten: list[str] = field(default_factory=list)
    keys_deleted: list[str] = field(default_factory=list)
    not_deletable: list[str] = field(default_factory=list)


def scrub(value: Any, pid: str) -> Any:
    """`value` without any dict entry keyed by `pid` or list item equal to `pid` (recursively)."""
    if isinstance(value, dict):
        return {k: scrub(v, pid) for k, v in value.items() if k != pid}
    if isinstance(value, list):
        return [scrub(v, pid) for v in value if v != pid]
    return value


def _names(run: Run, pid: str) -> bool:
    values = [*run.data.params.values(), *run.data.tags.values()]
    return bool(_keys(run, pid)) or any(pid in v.split(",") for v in values)


def _keys(run: Run, pid: str) -> list[tuple[str, str]]:
    return [(table, k) for table, keys in (("metrics", run.data.metrics), ("params", run.data.params))
            for k in keys if k.rsplit(".", 1)[-1] == pid]


def _all_runs(client: MlflowClient) -> list[Run]:
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    runs: list[Run] = []
    token = None
    while experiments:
        page = client.search_runs(experiments, run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    return runs


def _json_artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    found: list[str] = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir and item.path not in MODEL_FOLDERS:
            found += _json_artifacts(client, run_id, item.path)
        elif item.path.endswith(".json"):
            found.append(item.path)
    return found


def _delete_examples(client: MlflowClient, run: Run, out: MlflowPurge) -> None:
    models = client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run.info.run_id}'")
    for model in models:
        repo = get_artifact_repository(model.artifact_location)
        present = {a.path for a in repo.list_artifacts()}
        for name in EXAMPLE_FILES:
            if name in present:
                repo.delete_artifacts(name)
                out.examples_deleted.append(f"{model.model_id}/{name}")


def _rewrite_artifacts(client: MlflowClient, run: Run, pid: str, out: MlflowPurge) -> None:
    with tempfile.TemporaryDirectory(prefix="har-purge-") as tmp:
        for path in _json_artifacts(client, run.info.run_id):
            local = Path(client.download_artifacts(run.info.run_id, path, tmp))
            value = json.loads(local.read_text())
            cleaned = scrub(value, pid)
            if cleaned != value:
                client.log_dict(run.info.run_id, cleaned, path)
                out.artifacts_rewritten.append(f"{run.info.run_id}/{path}")


def _delete_keys(tracking_uri: str, run: Run, keys: list[tuple[str, str]], out: MlflowPurge) -> None:
    names = [f"{run.info.run_id}:{table[:-1]} {key}" for table, key in keys]
    if not tracking_uri.startswith("sqlite:///"):
        out.not_deletable += names
        return
    with closing(sqlite3.connect(tracking_uri.removeprefix("sqlite:///"))) as db, db:
        for table, key in keys:
            for name in (table, "latest_metrics") if table == "metrics" else (table,):
                db.execute(f"DELETE FROM {name} WHERE run_uuid = ? AND key = ?", (run.info.run_id, key))
    out.keys_deleted += names


def purge_participant(client: MlflowClient, tracking_uri: str, pid: str) -> MlflowPurge:
    """Delete the participant's windows, figures and keys from every run that names them (see the module)."""
    out = MlflowPurge()
    for run in _all_runs(client):
        if not _names(run, pid):
            continue
        out.runs.append(run.info.run_id)
        _delete_examples(client, run, out)
        _rewrite_artifacts(client, run, pid, out)
        keys = _keys(run, pid)
        if keys:
            _delete_keys(tracking_uri, run, keys, out)
    return out
