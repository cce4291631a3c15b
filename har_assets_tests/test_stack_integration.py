"""The docker-compose topology without containers: every service a process on 127.0.0.1.

- PostgreSQL (the local server): a fresh database as Dagster's run/event/schedule storage, opened
  through the repo's own `dagster.yaml` (DAGSTER_POSTGRES_* from the environment, run queue), and
  a second one as the backend store of
- a real `mlflow server` (proxied artifacts in a local folder, as the compose volume),
- the code location as `dagster code-server start -m har_assets.definitions` (gRPC), loaded by
- `dagster-webserver` and `dagster-daemon run` through a workspace.yaml pointing at that port.

Driven like production: participants already in the raw folder are registered on the sensor's
first tick; then a new participant folder appears, the daemon's `new_participant_sensor`
registers it as a partition and its run completes; everything is checked through the
webserver's GraphQL API. A second test trains through the same stack (an asset backfill of the
training group launched over GraphQL, run by the daemon) and finds the run, its artifacts and
the `champion` alias on the MLflow server, whose data really is in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from har_assets_tests.rawfiles import write_participant
from har_assets_tests.stack import (
    BIN,
    LOCATION,
    LOOPBACK,
    PG,
    REPOSITORY,
    ROOT,
    Processes,
    artifacts_dir,
    base_env,
    client,
    dagster_postgres_env,
    free_port,
    graphql,
    http_ok,
    pg_url,
    postgres_databases,
    processes,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

MLFLOW_ACCOUNT = {"MLFLOW_TRACKING_USERNAME": "har", "MLFLOW_TRACKING_PASSWORD": "integration-pw"}
TRAIN_EPOCHS = 5  # from $HAR_HOME/training.json, as the code location reads it
SEEDED = ["p01", "p02"]  # in the raw folder before the stack starts
NEW = "p03"  # appears while the stack runs
SENSOR = "new_participant_sensor"
TRAINING_ASSETS = ["dataset_split", "scaler", "normalized_windows", "model", "model_evaluation", "registered_model"]


@dataclass
class Stack:
    home: Path
    graphql_url: str
    mlflow_url: str
    mlflow_artifacts: Path
    databases: dict[str, str]
    procs: Processes
    env: dict[str, str]

    def gql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.graphql_url, query, variables)


WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

SENSOR_QUERY = """query($loc: String!, $repo: String!, $name: String!) { sensorOrError(sensorSelector: {
  repositoryLocationName: $loc, repositoryName: $repo, sensorName: $name}) { __typename ... on Sensor { sensorState {
  status ticks(limit: 20) { status timestamp runIds skipReason error { message }
    dynamicPartitionsRequestResults { partitionsDefName partitionKeys type } } } } } }"""

RUNS_QUERY = """query($filter: RunsFilter) { runsOrError(filter: $filter) { __typename ... on Runs { results {
  runId status jobName assetSelection { path } tags { key value } } } } }"""

ASSET_QUERY = """query($key: [String!]!, $partitions: [String!]) {
  assetNodeOrError(assetKey: {path: $key}) { __typename ... on AssetNode {
    partitionKeys partitionStats { numMaterialized numPartitions numFailed } } }
  assetOrError(assetKey: {path: $key}) { __typename ... on Asset {
    assetMaterializations(partitions: $partitions, limit: 5) { runId partition metadataEntries { label
      ... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue }
      ... on BoolMetadataEntry { boolValue } ... on TextMetadataEntry { text }
      ... on MarkdownMetadataEntry { mdStr } } } } } }"""


def _location_loaded(stack: Stack) -> bool:
    entries = stack.gql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
    entry = next(e for e in entries if e["name"] == LOCATION)
    error = entry["locationOrLoadError"]
    if error and error["__typename"] == "PythonError":
        raise AssertionError(f"code location failed to load: {error['message']}")
    return entry["loadStatus"] == "LOADED" and error is not None


def _ticks(stack: Stack) -> list[dict]:
    sensor = stack.gql(SENSOR_QUERY, {"loc": LOCATION, "repo": REPOSITORY, "name": SENSOR})["sensorOrError"]
    assert sensor["__typename"] == "Sensor", sensor
    return sensor["sensorState"]["ticks"]


def _runs(stack: Stack, **tags: str) -> list[dict]:
    flt = {"tags": [{"key": k, "value": v} for k, v in tags.items()]} if tags else {}
    result = stack.gql(RUNS_QUERY, {"filter": flt})["runsOrError"]
    assert result["__typename"] == "Runs", result
    return result["results"]


def _asset(stack: Stack, key: str, partitions: list[str] | None = None) -> tuple[dict, list[dict]]:
    data = stack.gql(ASSET_QUERY, {"key": [key], "partitions": partitions})
    node, asset = data["assetNodeOrError"], data["assetOrError"]
    assert node["__typename"] == "AssetNode", node
    return node, asset.get("assetMaterializations", []) if asset["__typename"] == "Asset" else []


def _metadata(materialization: dict) -> dict:
    out = {}
    for entry in materialization["metadataEntries"]:
        values = [v for k, v in entry.items() if k != "label"]
        out[entry["label"]] = values[0] if values else None
    return out


def _finished(runs: list[dict]) -> bool:
    return bool(runs) and all(r["status"] in {"SUCCESS", "FAILURE", "CANCELED"} for r in runs)


def _finished_runs(stack: Stack, partition: str) -> list[dict] | None:
    runs = _runs(stack, **{"dagster/partition": partition})
    return runs if _finished(runs) else None


def _fail_details(stack: Stack, runs: list[dict]) -> str:
    return f"runs: {runs}\n{stack.procs.tails()}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = artifacts_dir(tmp_path_factory, "stack-integration")
    home = tmp_path_factory.mktemp("stack-home")
    dagster_home, raw, artifacts = home / "dagster_home", home / "raw", home / "mlflow-artifacts"
    for folder in (dagster_home, raw, artifacts):
        folder.mkdir()
    for pid in SEEDED:
        write_participant(raw / pid, seconds=40.0, fmt="csv")
        for f in (raw / pid).iterdir():  # already there a while: settled by the sensor's first tick
            os.utime(f, (time.time() - 120, time.time() - 120))
    (home / "training.json").write_text(json.dumps({"train": {"epochs": TRAIN_EPOCHS}}))  # the home's own settings
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")  # the compose instance config, unchanged
    ports = {name: free_port() for name in ("grpc", "webserver", "mlflow")}
    (dagster_home / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": LOOPBACK, "port": ports["grpc"], "location_name": LOCATION}}]}))
    mlflow_url = f"http://{LOOPBACK}:{ports['mlflow']}"
    with contextlib.ExitStack() as cleanup:
        dbs = cleanup.enter_context(postgres_databases("dagster", "mlflow"))
        procs = cleanup.enter_context(processes(logs))
        env = base_env(DAGSTER_HOME=str(dagster_home), HAR_HOME=str(home), MLFLOW_TRACKING_URI=mlflow_url,
                       HAR_AUTOSTART_RETRAIN="0", HAR_AUTOSTART_SCORING="0", **dagster_postgres_env(dbs["dagster"]),
                       **MLFLOW_ACCOUNT)
        # as compose starts it: MLflow's basic-auth app, every setting from the environment, none on the command line
        procs.start("mlflow", [str(BIN / "har"), "mlflow-server", "--host", LOOPBACK, "--port", str(ports["mlflow"]),
                               "--workers", "1", "--artifacts-destination", artifacts.as_uri(), "--serve-artifacts"],
                    base_env(MLFLOW_BACKEND_STORE_URI=pg_url(dbs["mlflow"]), MLFLOW_FLASK_SERVER_SECRET_KEY="k3y",
                             MLFLOW_AUTH_DB=f"sqlite:///{home / 'mlflow-auth.db'}", **MLFLOW_ACCOUNT), cwd=home)
        procs.start("code", [str(BIN / "dagster"), "code-server", "start", "-h", LOOPBACK, "-p", str(ports["grpc"]),
                             "-m", "har_assets.definitions", "--location-name", LOCATION], env, cwd=home)
        procs.start("webserver", [str(BIN / "dagster-webserver"), "-h", LOOPBACK, "-p", str(ports["webserver"]),
                                  "-w", "workspace.yaml"], env, cwd=dagster_home)
        procs.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, cwd=dagster_home)
        webserver = f"http://{LOOPBACK}:{ports['webserver']}"
        stack = Stack(home, f"{webserver}/graphql", mlflow_url, artifacts, dbs, procs, env)
        wait_until("the MLflow server's /health", http_ok(f"{mlflow_url}/health"), 120, procs)
        wait_until("the webserver's /server_info", http_ok(f"{webserver}/server_info"), 120, procs)
        wait_until("the code location to load over gRPC", lambda: _location_loaded(stack), 120, procs)
        yield stack


@pytest.fixture(scope="module")
def new_participant(stack: Stack) -> dict:
    """Wait for the sensor's first tick (the seeded participants), then drop a new participant folder in
    and wait for the sensor-requested run of it to finish."""
    first = wait_until("the sensor's first completed tick",
                       lambda: [t for t in _ticks(stack) if t["status"] in {"SUCCESS", "SKIPPED", "FAILURE"}],
                       120, stack.procs)
    registered_first = [k for t in first for r in t["dynamicPartitionsRequestResults"] for k in r["partitionKeys"]]
    assert sorted(registered_first) == SEEDED, first
    write_participant(stack.home / "raw" / NEW, seconds=40.0, fmt="csv", scale=1.05)  # another person's files
    appeared = time.time()
    runs = wait_until(f"the sensor to request a run for {NEW}",
                      lambda: _runs(stack, **{"dagster/partition": NEW}), 150, stack.procs, interval_s=2.0)
    runs = wait_until(f"the run of {NEW} to finish", lambda: _finished_runs(stack, NEW), 180, stack.procs,
                      interval_s=2.0)
    return {"first_ticks": first, "appeared": appeared, "runs": runs}


def test_new_participant_folder_is_registered_and_processed_by_the_daemon(stack: Stack, new_participant: dict) -> None:
    runs = new_participant["runs"]
    assert len(runs) == 1, _fail_details(stack, runs)  # one folder, one run (run key = participant:content hash)
    run = runs[0]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["status"] == "SUCCESS", _fail_details(stack, runs)
    assert {tuple(k["path"]) for k in run["assetSelection"]} == {
        ("raw_recording",), ("fused_recording",), ("filtered_recording",), ("windows",)}, run
    assert tags.get("dagster/sensor_name") == SENSOR
    assert tags.get("har/raw_fingerprint"), tags

    # the tick that requested it also added the partition (after the folder appeared)
    ticks = _ticks(stack)
    requesting = [t for t in ticks if run["runId"] in t["runIds"]]
    assert len(requesting) == 1, ticks
    tick = requesting[0]
    assert tick["status"] == "SUCCESS" and tick["timestamp"] >= new_participant["appeared"] - 1
    added = [k for r in tick["dynamicPartitionsRequestResults"] if r["type"] == "ADD_PARTITIONS"
             and r["partitionsDefName"] == "participants" for k in r["partitionKeys"]]
    assert added == [NEW]

    # the seeded participants arrived together on an earlier tick: one backfill, one batch run over both
    batch_tags = {"dagster/asset_partition_range_start": SEEDED[0], "dagster/asset_partition_range_end": SEEDED[-1]}
    batches = wait_until("the seeded participants' batch run", lambda: _finished(r := _runs(stack, **batch_tags))
                         and r, 240, stack.procs, interval_s=2.0)
    assert len(batches) == 1 and batches[0]["status"] == "SUCCESS", _fail_details(stack, batches)
    assert {t["key"]: t["value"] for t in batches[0]["tags"]}.get("dagster/backfill"), batches[0]["tags"]
    assert not _runs(stack, **{"dagster/partition": SEEDED[0]})  # not one run per participant

    # the partition and the materialized windows, as the UI reads them
    node, materializations = _asset(stack, "windows", [NEW])
    assert sorted(node["partitionKeys"]) == sorted([*SEEDED, NEW])
    assert node["partitionStats"] == {"numMaterialized": 3, "numPartitions": 3, "numFailed": 0}
    assert [m["partition"] for m in materializations] == [NEW]
    assert materializations[0]["runId"] == run["runId"]
    assert _metadata(materializations[0])["windows"] > 0
    assert (stack.home / "assets" / "windows" / f"{NEW}.npz").is_file()

    # the storage really is the fresh PostgreSQL database named by DAGSTER_POSTGRES_DB
    count = _psql_scalar(stack.databases["dagster"], "SELECT count(*) FROM runs")
    assert count == len(_runs(stack)) >= 2  # the seeded batch and the newcomer's run

    # the compose daemon's healthcheck command passes against this instance
    live = subprocess.run([str(BIN / "dagster-daemon"), "liveness-check"], env=stack.env, cwd=stack.home,
                          capture_output=True, text=True, timeout=120)
    assert live.returncode == 0, live.stdout + live.stderr


def _psql_scalar(db: str, sql: str) -> int:
    out = subprocess.run(["psql", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", db, "-tA", "-c", sql],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    return int(out.strip())


BACKFILL_MUTATION = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }"""

BACKFILL_QUERY = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status runs(limit: 50) { runId status } } } }"""


def test_training_through_the_stack_lands_in_the_mlflow_server(stack: Stack, new_participant: dict) -> None:
    wait_until("all participants' windows", lambda: _asset(stack, "windows")[0]["partitionStats"]["numMaterialized"]
               == 3, 180, stack.procs, interval_s=2.0)
    launched = stack.gql(BACKFILL_MUTATION, {"params": {
        "assetSelection": [{"path": [a]} for a in TRAINING_ASSETS], "allPartitions": True,
        "title": "integration: train"}})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def done() -> dict | None:
        backfill = stack.gql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        return backfill if backfill["status"] not in {"REQUESTED", "CANCELING", "FAILING"} else None

    backfill = wait_until("the training backfill", done, 240, stack.procs, interval_s=3.0)
    assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, _fail_details(stack, backfill["runs"])
    assert backfill["runs"] and all(r["status"] == "SUCCESS" for r in backfill["runs"]), backfill

    _, registered = _asset(stack, "registered_model")
    meta = _metadata(registered[0])
    assert meta["champion"] is True and meta["decision"] == "promoted", meta
    _, evaluation = _asset(stack, "model_evaluation")
    assert "data:image/png;base64," in _metadata(evaluation[0])["confusion_matrix"]

    # the MLflow server: the champion alias points at the version of the run the model asset logged
    with client() as c:
        assert c.get(f"{stack.mlflow_url}/api/2.0/mlflow/registered-models/search").status_code == 401
        c.auth = (MLFLOW_ACCOUNT["MLFLOW_TRACKING_USERNAME"], MLFLOW_ACCOUNT["MLFLOW_TRACKING_PASSWORD"])
        alias = c.get(f"{stack.mlflow_url}/api/2.0/mlflow/registered-models/alias",
                      params={"name": meta["registered_model"], "alias": "champion"})
        assert alias.status_code == 200, alias.text
        version = alias.json()["model_version"]
        assert str(version["version"]) == str(meta["version"])
        run = c.get(f"{stack.mlflow_url}/api/2.0/mlflow/runs/get", params={"run_id": version["run_id"]}).json()["run"]
        assert run["info"]["status"] == "FINISHED"
        assert {m["key"] for m in run["data"]["metrics"]} >= {"test_macro_f1", "test_accuracy", "train_loss"}
        assert {p["key"]: p["value"] for p in run["data"]["params"]}["train.epochs"] == str(TRAIN_EPOCHS)
        # artifacts go through the server's proxy into its artifact destination (the compose volume)
        assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:"), run["info"]["artifact_uri"]
        listed = c.get(f"{stack.mlflow_url}/api/2.0/mlflow/artifacts/list",
                       params={"run_id": version["run_id"], "path": "evaluation"}).json()
        assert "evaluation/confusion_matrix.png" in {f["path"] for f in listed.get("files", [])}, listed
    assert list(stack.mlflow_artifacts.rglob("confusion_matrix.png")), "artifact not in the server's destination"
    assert not (stack.home / "mlflow").exists(), "the code location must not fall back to a local MLflow store"
    # ... and the server keeps its runs and registry in its PostgreSQL database
    assert _psql_scalar(stack.databases["mlflow"], "SELECT count(*) FROM runs") >= 1
    assert _psql_scalar(stack.databases["mlflow"], "SELECT count(*) FROM registered_model_aliases "
                        "WHERE alias = 'champion'") == 1
