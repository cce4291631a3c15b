"""A run worker killed for real (SIGKILL) under a real daemon (`har dev`): the run is marked failed, its queue slot
freed, and the instance's run retries start it again, which succeeds. Nobody's data is lost."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

from har_assets.orchestration.run_health import CodeServerRunLauncher
from har_assets_tests.rawfiles import age, write_participant
from har_assets_tests.stack import BIN, LOOPBACK, artifacts_dir, base_env, free_port, processes, wait_until

PID_MESSAGE = re.compile(r"Started process for run \(pid: (\d+)\)")


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        found = PID_MESSAGE.search(entry.message or "")
        if found:
            return int(found.group(1))
    return None


@pytest.mark.skipif(sys.platform != "linux", reason="kills a process by pid")
def test_a_killed_run_worker_is_failed_and_retried(tmp_path_factory: pytest.TempPathFactory) -> None:
    logs = artifacts_dir(tmp_path_factory, "run-recovery")
    home = tmp_path_factory.mktemp("recovery-home")
    write_participant(home / "raw" / "p01", seconds=600)
    age(home / "raw" / "p01")
    env = base_env(HAR_HOME=str(home), DAGSTER_HOME=str(home / "dagster_home"), HAR_AUTOSTART_RETRAIN="0",
                   HAR_AUTOSTART_SCORING="0", HAR_AUTOSTART_OVERVIEW="0")
    with processes(logs) as procs:
        procs.start("har-dev", [str(BIN / "har"), "dev", "--home", str(home), "--host", LOOPBACK,
                                "--port", str(free_port())], env, cwd=home)
        wait_until("the Dagster instance", lambda: (home / "dagster_home" / "storage").is_dir(), 120, procs)
        with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
            def started_worker() -> tuple[str, int] | None:
                for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
                    pid = _worker_pid(instance, run.run_id)
                    if pid:
                        return run.run_id, pid
                return None

            run_id, pid = wait_until("the sensor's run of p01 to start", started_worker, 240, procs, interval_s=0.2)
            assert isinstance(instance.run_launcher, CodeServerRunLauncher)
            health = instance.run_launcher.check_run_worker_health(instance.get_run_by_id(run_id))
            assert health.status == WorkerStatus.RUNNING, health
            os.kill(pid, signal.SIGKILL)

            def status(rid: str) -> dg.DagsterRunStatus | None:
                run = instance.get_run_by_id(rid)
                return run.status if run else None

            wait_until("the killed run to be marked failed", lambda: status(run_id) == dg.DagsterRunStatus.FAILURE,
                       180, procs)
            retry = wait_until("its retry", lambda: next(iter(instance.get_runs(
                filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))), None), 180, procs)
            finished = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
            wait_until("the retry to finish", lambda: status(retry.run_id) in finished, 300, procs)
            assert status(retry.run_id) == dg.DagsterRunStatus.SUCCESS, procs.tails()
            failed = instance.get_run_by_id(run_id)
            assert failed.tags.get("dagster/partition") == retry.tags.get("dagster/partition") == "p01"
            in_flight = instance.get_runs(filters=dg.RunsFilter(statuses=[
                dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.QUEUED]))
            assert not in_flight, "the killed run must not hold a queue slot"
            windows = instance.fetch_materializations(dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("windows"), asset_partitions=["p01"]), limit=1).records
            assert windows and windows[0].run_id == retry.run_id
    assert (Path(home) / "assets" / "windows" / "p01.npz").is_file()


def test_a_run_its_code_server_no_longer_executes_is_failed(tmp_path: Path,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    """A run whose code server restarted without it (its worker died with the old server) is reported FAILED by
    the launcher's health check, so run monitoring fails it; a server that does not answer is no verdict."""
    logs = artifacts_dir(tmp_path_factory, "run-health")
    port = free_port()
    (tmp_path / "dagster.yaml").write_text("run_launcher:\n  module: har_assets.orchestration.run_health\n"
                                           "  class: CodeServerRunLauncher\n")
    env = base_env(HAR_HOME=str(tmp_path), DAGSTER_HOME=str(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        def run_on(grpc_port: int) -> dg.DagsterRun:
            grpc = json.dumps({"host": LOOPBACK, "port": grpc_port})
            return instance.add_run(dg.DagsterRun(job_name="preprocess_participant",
                                                  status=dg.DagsterRunStatus.STARTED, tags={GRPC_INFO_TAG: grpc}))

        unanswered = instance.run_launcher.check_run_worker_health(run_on(port))
        assert unanswered.status == WorkerStatus.RUNNING and "not answering" in unanswered.msg
        with processes(logs) as procs:
            procs.start("code-server", [str(BIN / "dagster"), "api", "grpc", "-m", "har_assets.definitions",
                                        "--host", LOOPBACK, "--port", str(port)], env, cwd=tmp_path)
            orphan = run_on(port)
            health = wait_until("the code server's verdict", lambda: (
                r := instance.run_launcher.check_run_worker_health(orphan)).status == WorkerStatus.FAILED and r,
                120, procs)
            assert "no longer executes this run" in health.msg
