"""docker-compose.yml brought up for real, as a new user would: images built on a base this machine can make,
`.env` from the example, fresh volumes, demo participants in the raw folder, then nothing but waiting.

1. The example's placeholder secrets are refused at start, naming the variable to set.
2. With secrets of its own, every service becomes healthy (each one's own healthcheck command); the MLflow
   database is created by the stack; the sensor registers the participants, the automation preprocesses, trains
   and registers a champion, and the API serves it with the key. The code server restarted during a training run:
   the run is marked failed and the next one succeeds. A hung daemon (stopped with SIGSTOP) is restarted by its
   watchdog and the restart policy. Compute logs and Optuna live on volumes. `down -v` removes everything.
3. The same with every run in its own container (the Docker run launcher, through Podman's Docker API) and no
   shared disk: assets and MLflow artifacts on a real S3 server (SeaweedFS), the raw folder read-only.

Each phase's duration is printed. Skips (with the reason) where podman or podman-compose is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from har_assets_tests.compose import SERVICES, ComposeStack, build_images, missing_engine, timed, write_env
from har_assets_tests.objectstore_server import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFS
from har_assets_tests.stack import BIN, LOCATION, REPOSITORY, ROOT, artifacts_dir, client, graphql

pytestmark = [pytest.mark.integration, pytest.mark.compose, pytest.mark.timeout(2400),
              pytest.mark.skipif(missing_engine() is not None, reason=str(missing_engine()))]

PARTICIPANTS = 4
TRAINING = {"train": {"epochs": 2}, "decoding": {"calibration_folds": 0}}  # the study's settings: a short training
HEARTBEAT_TOLERANCE_S = 40

RUNS_QUERY = """{ runsOrError { __typename ... on Runs { results { runId status startTime endTime
  assetSelection { path } tags { key value } } } } }"""
LAUNCH_RUN = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    phases: dict[str, float] = {}
    built = build_images(phases)
    logs = artifacts_dir(tmp_path_factory, "compose-stack")
    (logs / "images-phases.json").write_text(json.dumps({k: round(v, 1) for k, v in phases.items()}))
    return built


def _study(folder: Path) -> tuple[Path, Path]:
    raw, settings = folder / "raw", folder / "settings"
    subprocess.run([str(BIN / "har"), "demo-data", "--participants", str(PARTICIPANTS), "--minutes", "3",
                    "--format", "csv", "--out", str(raw)], check=True, capture_output=True, timeout=300)
    settings.mkdir()
    (settings / "training.json").write_text(json.dumps(TRAINING))
    for path in (folder, raw, settings, *raw.rglob("*")):  # the images' user (uid 1000) reads them
        path.chmod(0o755 if path.is_dir() else 0o644)
    return raw, settings


def _secrets(**extra: str) -> dict[str, str]:
    return {"POSTGRES_USER": "har", "POSTGRES_PASSWORD": secrets.token_hex(16), "POSTGRES_DB": "dagster",
            "MLFLOW_DB": "mlflow", "MLFLOW_ADMIN_USER": "har", "MLFLOW_ADMIN_PASSWORD": secrets.token_hex(16),
            "MLFLOW_SECRET_KEY": secrets.token_hex(16), "HAR_API_KEY": secrets.token_hex(16), **extra}


@contextlib.contextmanager
def _stack(name: str, env_file: Path, files: list[Path], images: dict[str, str], logs: Path) -> Iterator[ComposeStack]:
    stack = ComposeStack(f"har{name}{os.getpid()}", env_file, files, _podman_env(images), logs)
    try:
        yield stack
    finally:
        with timed(stack.phases, "down -v"):
            stack.down()
        left = stack.podman("volume", "ls", "--format", "{{.Name}}").stdout.split()
        (logs / f"{name}-phases.json").write_text(json.dumps({k: round(v, 1) for k, v in stack.phases.items()}))
        assert not [v for v in left if v.startswith(f"{stack.project}_")], left


def _runs(webserver: str) -> list[dict]:
    result = graphql(f"{webserver}/graphql", RUNS_QUERY)["runsOrError"]
    assert result["__typename"] == "Runs", result
    return result["results"]


def _champion(api: str, key: str) -> dict | None:
    with client() as c:
        response = c.get(f"{api}/model", headers={"X-API-Key": key})
    return response.json() if response.status_code == 200 else None


def _all_healthy(stack: ComposeStack) -> bool:
    return all(stack.healthy(s) for s in SERVICES)


def test_placeholder_secrets_are_refused_at_start(images: dict[str, str], tmp_path: Path,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    raw, settings = _study(tmp_path)
    example = (ROOT / ".env.example").read_text()  # cp .env.example .env, nothing else changed but the paths
    env_file = tmp_path / ".env"
    env_file.write_text(example + f"\nHAR_RAW_DIR={raw}\nHAR_SETTINGS_DIR={settings}\n"
                        f"POSTGRES_IMAGE={images['postgres_image']}\n")
    logs = artifacts_dir(tmp_path_factory, "compose-stack")
    with _stack("placeholder", env_file, [ROOT / "docker-compose.yml"], images, logs) as stack:
        stack.compose("up", "-d")  # PostgreSQL starts; the MLflow server refuses, so what needs it cannot start
        said = stack.wait("the MLflow server to refuse the placeholders", lambda: (
            not stack.state("mlflow")["Running"] or stack.restart_count("mlflow"))
            and "placeholder" in (log := stack.log("mlflow")) and log, 120)
        for variable in ("POSTGRES_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_SECRET_KEY"):
            assert f"({variable} in .env) is the example's placeholder" in said, said
        assert "set a secret of your own in .env" in said and "Listening at" not in said, said
        # the API alone, its own key, in a one-off container of the service: what it says and how it ends come
        # straight back (its restarting container's `podman logs` showed only some of its lines)
        out = stack.compose("run", "--rm", "--no-deps", "api")
        said = out.stdout + out.stderr
        assert out.returncode == 78, said[-3000:]  # EX_CONFIG, before the server starts
        assert "HAR_API_KEY is the example's placeholder" in said and "Uvicorn running" not in said, said[-3000:]


def test_the_stack_comes_up_trains_serves_and_survives_restarts(images: dict[str, str], tmp_path: Path,
                                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    raw, settings = _study(tmp_path)
    env = _secrets(HAR_RAW_DIR=str(raw), HAR_SETTINGS_DIR=str(settings), POSTGRES_IMAGE=images["postgres_image"],
                   HAR_AUTOMATION_INTERVAL_S="5", DAGSTER_DAEMON_HEARTBEAT_TOLERANCE=str(HEARTBEAT_TOLERANCE_S),
                   HAR_PUBLISH_ADDRESS="127.0.0.1")
    env_file = write_env(tmp_path / ".env", **env)
    logs = artifacts_dir(tmp_path_factory, "compose-stack")
    webserver, api = "http://127.0.0.1:3000", "http://127.0.0.1:8000"
    with _stack("shared", env_file, [ROOT / "docker-compose.yml"], images, logs) as stack:
        with timed(stack.phases, "up -d, every service healthy"):
            stack.up()
            stack.wait("every service's healthcheck", lambda: _all_healthy(stack), 300, interval_s=5)
        assert "created the database mlflow" in stack.log("mlflow", tail=400)
        with timed(stack.phases, "sensor, preprocessing, training, champion served"):
            champion = stack.wait("the API to serve a champion", lambda: _champion(api, env["HAR_API_KEY"]), 900,
                                  interval_s=5)
        with client() as c:
            assert c.get(f"{api}/model").status_code == 401  # the key is required
        assert champion["alias"] == "champion" and champion["version"] == "1", champion
        windows = [r for r in _runs(webserver) if ["windows"] in [a["path"] for a in r["assetSelection"] or []]]
        assert windows and all(r["status"] == "SUCCESS" for r in windows), windows

        with timed(stack.phases, "code server restarted during a run; the next run succeeds"):
            launched = graphql(f"{webserver}/graphql", LAUNCH_RUN, {"params": {
                "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                             "jobName": "__ASSET_JOB", "assetSelection": [{"path": ["model"]}]},
                "runConfigData": {}}})["launchRun"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            run_id = launched["run"]["runId"]
            stack.wait("the training run to start", lambda: any(
                r["runId"] == run_id and r["status"] == "STARTED" for r in _runs(webserver)), 180, interval_s=1)
            time.sleep(5)
            stack.podman("restart", "-t", "10", stack.container("code"))
            failed = stack.wait("the interrupted run to be marked failed", lambda: next(
                (r for r in _runs(webserver) if r["runId"] == run_id and r["status"] == "FAILURE"), None), 300)
            assert failed
            retried = stack.wait("the next run of the model to succeed", lambda: [
                r for r in _runs(webserver) if (r["startTime"] or 0) > failed["startTime"]
                and ["model"] in [a["path"] for a in r["assetSelection"] or []] and r["status"] == "SUCCESS"], 600)
            assert retried

        with timed(stack.phases, "hung daemon restarted"):
            before = stack.restart_count("daemon")
            stack.exec_python("daemon", _STOP_DAGSTER_DAEMON)
            stack.wait("the hung daemon's container to be restarted", lambda: stack.restart_count("daemon") > before,
                       HEARTBEAT_TOLERANCE_S * 4 + 60)
            assert "no daemon heartbeat within" in stack.log("daemon", tail=2000)
            stack.wait("the restarted daemon to be live", lambda: stack.healthy("daemon"), 180, interval_s=5)

        # every stateful path is a named volume of the project: compute logs, Optuna, assets, MLflow, PostgreSQL
        volumes = set(stack.podman("volume", "ls", "--format", "{{.Name}}").stdout.split())
        assert {f"{stack.project}_{v}" for v in ("pgdata", "mlflow-artifacts", "mlflow-auth", "har-assets",
                                                 "har-optuna", "dagster-storage")} <= volumes, volumes
        stored = stack.exec_python("webserver", "import os; print(sum(len(f) for _, _, f in "
                                               "os.walk('/opt/dagster/dagster_home/storage')))")
        assert int(stored) > 0, "no compute log on the dagster-storage volume"


# SIGSTOP the dagster-daemon process of the daemon container (the watchdog, PID 1, stays): it hangs, alive
_STOP_DAGSTER_DAEMON = f"""
import os, signal
for pid in (p for p in os.listdir('/proc') if p.isdigit() and p != '1'):
    try:
        argv = open(f'/proc/{{pid}}/cmdline', 'rb').read().split(b'\\0')
    except OSError:
        continue
    if any(a.endswith(b'dagster-daemon') for a in argv) and b'run' in argv:
        os.kill(int(pid), signal.{signal.SIGSTOP.name})
        print(pid)
"""


@pytest.fixture
def podman_api(tmp_path: Path, images: dict[str, str]) -> Iterator[str]:
    """`podman system service`: the Docker API the Docker run launcher speaks, on a socket of this test."""
    socket = tmp_path / "podman.sock"
    proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"],
                            env=os.environ | _podman_env(images),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert socket.exists(), "podman system service did not open its socket"
        socket.chmod(0o660)  # as Docker's: root and its group (DOCKER_GID), whom the daemon container joins
        yield str(socket)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_runs_in_their_own_containers_share_no_disk(images: dict[str, str], podman_api: str, tmp_path: Path,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    raw, settings = _study(tmp_path)
    weed = SeaweedFS(tmp_path / "s3", bind="0.0.0.0")
    weed.start()
    before = set(_run_containers(images))
    try:
        port = weed.server.endpoint.rsplit(":", 1)[1]
        env = _secrets(HAR_RAW_DIR=str(raw), HAR_SETTINGS_DIR=str(settings), HAR_RAW_DIR_ABS=str(raw),
                       HAR_SETTINGS_DIR_ABS=str(settings), POSTGRES_IMAGE=images["postgres_image"],
                       HAR_AUTOMATION_INTERVAL_S="5", HAR_ASSETS_URI=f"s3://{BUCKET}/assets",
                       MLFLOW_ARTIFACTS_DESTINATION=f"s3://{BUCKET}/mlflow", AWS_ACCESS_KEY_ID=ACCESS_KEY,
                       AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                       AWS_ENDPOINT_URL_S3=f"http://host.containers.internal:{port}",
                       DOCKER_SOCKET=podman_api, DOCKER_GID="0", HAR_PUBLISH_ADDRESS="127.0.0.1")
        env_file = write_env(tmp_path / ".env", **env)
        logs = artifacts_dir(tmp_path_factory, "compose-stack")
        api = "http://127.0.0.1:8000"
        files = [ROOT / "docker-compose.yml", ROOT / "deploy" / "docker-compose.docker-runs.yml"]
        _remove_fixed_names(images)  # an earlier stack's (down -v keeps what has a fixed name)
        with _stack("runs", env_file, files, images, logs) as stack:
            with timed(stack.phases, "up -d, every service healthy"):
                stack.up()
                stack.wait("every service's healthcheck", lambda: _all_healthy(stack), 300, interval_s=5)
            with timed(stack.phases, "runs in containers: preprocessing, training, champion served"):
                champion = stack.wait("the API to serve a champion", lambda: _champion(api, env["HAR_API_KEY"]),
                                      1200, interval_s=5)
            assert champion["alias"] == "champion", champion
            run_containers = [c for c in json.loads(stack.podman("ps", "-a", "--format", "json").stdout)
                              if "dagster/run_id" in (c.get("Labels") or {}) and c["Id"][:12] not in before]
            assert len(run_containers) >= 4, [c.get("Names") for c in run_containers]  # windows, split, ..., model
            for c in run_containers:
                mounts = json.loads(stack.podman("inspect", "--format", "{{json .Mounts}}", c["Id"]).stdout)
                writable = [m for m in mounts if m.get("RW")]
                assert not writable, (c["Names"], writable)  # the raw folder and settings, read-only: nothing else
            # the assets and the model's artifacts are on the object store, nothing on the services' assets volume
            listing = _s3_keys(weed.server.endpoint)
            assert any(k.startswith("assets/windows/") for k in listing), listing[:20]
            assert any(k.startswith("mlflow/") and k.endswith("MLmodel") for k in listing), listing[:20]
            left = stack.exec_python("code", "import os; print(sum(len(f) for _, _, f in os.walk('/har/assets')))")
            assert int(left) == 0, "a run wrote to the shared assets volume"
    finally:
        weed.stop()
        shutil.rmtree(tmp_path / "s3", ignore_errors=True)
        ours = sorted(set(_run_containers(images)) - before)  # kept by the launcher (auto_remove: false)
        if ours:
            subprocess.run(["podman", "rm", "-f", *ours], env=os.environ | _podman_env(images), capture_output=True,
                           timeout=120)
        _remove_fixed_names(images)


def _remove_fixed_names(images: dict[str, str]) -> None:
    """The volumes and network deploy/docker-compose.docker-runs.yml names for run containers (bind volumes:
    removing them leaves the folders they point at)."""
    env = os.environ | _podman_env(images)
    subprocess.run(["podman", "volume", "rm", "-f", "har-raw", "har-settings"], env=env, capture_output=True,
                   timeout=60)
    subprocess.run(["podman", "network", "rm", "-f", "har-net"], env=env, capture_output=True, timeout=60)


def _podman_env(images: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in images.items() if k == "CONTAINERS_CONF"}


def _run_containers(images: dict[str, str]) -> list[str]:
    """The containers the Docker run launcher started (it labels each with its run id)."""
    out = subprocess.run(["podman", "ps", "-a", "--filter", "label=dagster/run_id", "--format", "{{.ID}}"],
                         env=os.environ | _podman_env(images), capture_output=True, text=True, timeout=60)
    return out.stdout.split()


def _s3_keys(endpoint: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                      region_name="us-east-1")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys
