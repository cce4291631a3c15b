"""Accidents during a real `har pipeline`. Services go down for real and come back: the object store
(SeaweedFS) and the MLflow tracking server are killed while the job runs and restarted on the same port and
data seconds later; the job finishes by itself, every participant stored once, the champion registered. And
a second `har pipeline` on the same home is refused while the first runs."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
import s3fs

from har_assets_tests.objectstore_server import SeaweedFS
from har_assets_tests.stack import BIN, LOOPBACK, Processes, artifacts_dir, base_env, free_port, http_ok, wait_until
from har_assets_tests.trainfiles import write_two_class_participant

pytestmark = pytest.mark.slow

PARTICIPANTS = 4
DOWN_S = 8.0


def _study(home: Path) -> None:
    for i in range(PARTICIPANTS):  # two classes everyone has: any split trains and tests
        write_two_class_participant(home / "raw" / f"p0{i + 1}", seconds=60, gain=0.8 + 0.1 * i)
    (home / "training.json").write_text(json.dumps({"train": {"epochs": 2, "num_threads": 1}}))


def _materialized(home: Path, asset: str) -> int:
    """How many participants the home's instance has materialized `asset` for (0 before its first run)."""
    if not (home / "dagster_home" / "storage").is_dir():
        return 0
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        return len(instance.get_materialized_partitions(dg.AssetKey(asset)))


def _pipeline(home: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "har"), "pipeline", "--json", "--home", str(home)], env=env, cwd=home,
                            stdout=subprocess.PIPE, stderr=log.open("wb"), text=True)


def _finished(proc: subprocess.Popen, log: Path) -> dict:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, f"har pipeline exited {proc.returncode}\n{out[-2000:]}\n{log.read_text()[-4000:]}"
    summary = json.loads(out)
    assert summary["failed"] == {} and summary["materialized"] == PARTICIPANTS
    assert summary["model"]["status"] == "trained" and summary["model"]["champion"]
    return summary


def test_the_object_store_goes_down_during_a_run(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    logs = artifacts_dir(tmp_path_factory, "outage-s3")
    home = tmp_path / "home"
    _study(home)
    with SeaweedFS(tmp_path / "seaweedfs") as s3:
        env = base_env(HAR_ASSETS_URI=f"s3://{s3.server.bucket}/study", **s3.server.env())
        proc = _pipeline(home, env, logs / "pipeline.log")
        wait_until("the first participant on the object store", lambda: _materialized(home, "windows") >= 1, 300,
                   interval_s=0.2)
        s3.kill()
        time.sleep(DOWN_S)
        s3.start()
        summary = _finished(proc, logs / "pipeline.log")
        fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                               client_kwargs={"endpoint_url": s3.server.endpoint})
        stored = fs.ls(f"{s3.server.bucket}/study/windows")
        assert sorted(Path(p).name for p in stored) == [f"{pid}.npz" for pid in sorted(summary["participants"])]
    assert not (home / "assets").exists()  # nothing fell back to the local disk


def test_the_mlflow_server_goes_down_during_a_run(tmp_path: Path,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    logs = artifacts_dir(tmp_path_factory, "outage-mlflow")
    home = tmp_path / "home"
    _study(home)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    server = [str(BIN / "mlflow"), "server", "--host", LOOPBACK, "--port", str(port), "--workers", "1",
              "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
              "--artifacts-destination", (tmp_path / "artifacts").as_uri()]
    procs = Processes(logs)
    try:
        mlflow = procs.start("mlflow", server, base_env(), cwd=tmp_path)
        wait_until("the MLflow server", http_ok(f"{url}/health"), 120, procs)
        proc = _pipeline(home, base_env(MLFLOW_TRACKING_URI=url), logs / "pipeline.log")
        wait_until("the preprocessing to finish", lambda: _materialized(home, "windows") == PARTICIPANTS, 300,
                   interval_s=0.2)
        procs.services.remove(mlflow)
        procs_down = Processes(logs)
        procs_down.services.append(mlflow)
        procs_down.stop(grace_s=0)  # SIGTERM then SIGKILL to its process group, at once
        time.sleep(DOWN_S)
        procs.start("mlflow-again", server, base_env(), cwd=tmp_path)
        wait_until("the MLflow server again", http_ok(f"{url}/health"), 120, procs)
        summary = _finished(proc, logs / "pipeline.log")
        assert summary["model"]["model_uri"].startswith("models:/har-activity/")
    finally:
        procs.stop()


def test_two_pipelines_at_once(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A second `har pipeline` on the same home is refused at once, naming the first; the first finishes alone."""
    logs = artifacts_dir(tmp_path_factory, "two-pipelines")
    home = tmp_path / "home"
    _study(home)
    first = _pipeline(home, base_env(), logs / "first.log")
    wait_until("the first pipeline to hold the home", lambda: b'"pid"' in (home / ".har.lock").read_bytes()
               if (home / ".har.lock").exists() else False, 120, interval_s=0.1)
    second = subprocess.run([str(BIN / "har"), "pipeline", "--json", "--home", str(home)], env=base_env(), cwd=home,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert f"is in use by har pipeline (pid {first.pid}" in second.stderr
    _finished(first, logs / "first.log")


def _training_runs(home: Path, status: dg.DagsterRunStatus) -> list[dg.DagsterRun]:
    """The home's runs in `status` that materialize the model."""
    if not (home / "dagster_home" / "storage").is_dir():
        return []
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(statuses=[status]))
    return [r for r in runs if "model" in (r.step_keys_to_execute or [])]


def test_a_pipeline_killed_while_it_trains_is_finished_by_the_next(tmp_path: Path,
                                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    """`har pipeline` killed (SIGKILL) in the middle of training: the next `har pipeline` on the home marks the
    killed run failed, trains again and registers the champion; no run is left STARTED."""
    logs = artifacts_dir(tmp_path_factory, "killed-while-training")
    home = tmp_path / "home"
    _study(home)
    (home / "training.json").write_text(json.dumps({"train": {"epochs": 400, "num_threads": 1}}))  # long enough
    first = _pipeline(home, base_env(), logs / "first.log")
    try:
        wait_until("the first pipeline to be training", lambda: bool(_training_runs(
            home, dg.DagsterRunStatus.STARTED)), 600, interval_s=0.2)
        time.sleep(1.0)  # well inside the 400 epochs
    finally:
        first.kill()
        first.communicate(timeout=60)
    assert first.returncode == -9
    (killed,) = _training_runs(home, dg.DagsterRunStatus.STARTED)  # what a killed process leaves behind
    (home / "training.json").write_text(json.dumps({"train": {"epochs": 2, "num_threads": 1}}))
    second = _pipeline(home, base_env(), logs / "second.log")
    out, _ = second.communicate(timeout=900)
    assert second.returncode == 0, f"{out[-2000:]}\n{(logs / 'second.log').read_text()[-4000:]}"
    summary = json.loads(out)
    assert summary["failed"] == {} and summary["up_to_date"] == PARTICIPANTS  # preprocessed before the kill
    model = summary["model"]
    assert model["status"] == "trained" and model["champion"] and model["version"] == 1
    assert _training_runs(home, dg.DagsterRunStatus.STARTED) == []
    assert killed.run_id in {r.run_id for r in _training_runs(home, dg.DagsterRunStatus.FAILURE)}
