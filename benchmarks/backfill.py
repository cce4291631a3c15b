"""A backfill of many demo participants through Dagster itself: wall time, runs, peak memory.

    python benchmarks/backfill.py                                  # 100 participants × 3 min, CSV
    python benchmarks/backfill.py --participants 20 --minutes 1 --max-concurrent-runs 2 --json

What runs is exactly the local deployment: a temporary HAR_HOME with demo participants, the local
(SQLite) Dagster instance of `har dev` with its run queue (`max_concurrent_runs`), the
participants registered as partitions, one backfill of the four preprocessing assets over all of
them, and a real `dagster-daemon run` (backfill daemon → run queue → default run launcher: one
process per run, launched through the code location's gRPC server). The sensors are deployed
stopped (HAR_AUTOSTART_SENSOR=0, HAR_AUTOSTART_RETRAIN=0, HAR_AUTOSTART_SCORING=0) so the backfill
is the only work.

`--launch asset` (default) creates the asset backfill that the UI's "Materialize" of every
participant creates; it honours the assets' backfill policy (PARTICIPANTS_PER_RUN per run). The
UI and GraphQL create it through the webserver; with no webserver running here, the benchmark
adds the same PartitionBackfill record itself (Dagster-internal API). `--launch job` submits
`dagster job backfill -j preprocess_participant`, which ignores backfill policies: one run per
participant.

Memory is sampled from /proc every 0.5 s over the daemon's whole process tree (daemon, its
code-location gRPC server, and every run worker it launches): the peak of the summed RSS, the
largest single run worker, and the most run workers alive at once. Run workers are the code server's
spawned children. The script stops the daemon and gives up after --timeout seconds, printing what finished by then.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from har_assets.cli import LOCAL_MAX_CONCURRENT_RUNS, local_instance_yaml
from har_assets.demo import write_demo_dataset
from har_assets.settings import HarSettings

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    children, tree, todo = _children_map(), [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB / 1024
    except (OSError, IndexError, ValueError):
        return 0.0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class TreeSampler(threading.Thread):
    """Peak summed RSS of a process tree, the largest run worker, and the most run workers at once."""

    def __init__(self, root: int, interval_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root, self.interval_s = root, interval_s
        self.stop_event = threading.Event()
        self.peak_total_mb = 0.0
        self.peak_worker_mb = 0.0
        self.peak_workers = 0
        self.peak_base_mb = 0.0  # daemon + code server, without run workers
        self.samples = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            total = base = 0.0
            workers = 0
            for pid in process_tree(self.root):
                mb = rss_mb(pid)
                total += mb
                command = cmdline(pid)  # run workers: spawned by the code server (multiprocessing) or `api execute_run`
                if "spawn_main" in command or "execute_run" in command:
                    workers += 1
                    self.peak_worker_mb = max(self.peak_worker_mb, mb)
                else:
                    base += mb
            self.peak_total_mb = max(self.peak_total_mb, total)
            self.peak_base_mb = max(self.peak_base_mb, base)
            self.peak_workers = max(self.peak_workers, workers)
            self.samples += 1
            self.stop_event.wait(self.interval_s)


def submit(ids: list[str], home: Path, env: dict[str, str]) -> str:
    """Add the asset backfill of the preprocessing assets over `ids`, as the UI's Materialize does; its id."""
    import dagster as dg
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from har_assets.definitions import build_definitions
    from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=make_new_backfill_id(),
            asset_graph=build_definitions(HarSettings(home=home)).resolve_asset_graph(),
            partition_names=ids, asset_selection=[k for a in PREPROCESSING_ASSETS for k in a.keys],
            backfill_timestamp=time.time(), tags={}, dynamic_partitions_store=instance, all_partitions=False,
            title="benchmark", description=None, run_config=None)
        instance.add_backfill(backfill)
        return backfill.backfill_id


def finished(instance, participants: int, backfill_id: str | None) -> bool:
    """No run is queued or running, and every participant has windows or the backfill (or, for a job backfill,
    every run) is over."""
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus

    active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED]
    if instance.get_runs_count(dg.RunsFilter(statuses=active)) or not instance.get_runs_count():
        return False
    if len(instance.get_materialized_partitions(dg.AssetKey("windows"))) >= participants:
        return True
    if backfill_id is not None:
        return instance.get_backfill(backfill_id).status != BulkActionStatus.REQUESTED
    done = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
    return instance.get_runs_count(dg.RunsFilter(statuses=done)) >= participants


def run_benchmark(participants: int, minutes: float, max_concurrent_runs: int, timeout_s: float, fmt: str,
                  workdir: Path, launch: str = "asset") -> dict:
    import dagster as dg

    home = workdir / "home"
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(local_instance_yaml(max_concurrent_runs))
    start = time.perf_counter()
    ids = write_demo_dataset(home / "raw", participants, seed=11, minutes=minutes, fmt=fmt)
    write_s = time.perf_counter() - start
    raw_mb = sum(f.stat().st_size for f in (home / "raw").rglob("*") if f.is_file()) / 1e6
    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI"} and not k.startswith("DAGSTER_")}
    env |= {"HAR_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "HAR_AUTOSTART_SENSOR": "0",
            "HAR_AUTOSTART_RETRAIN": "0", "HAR_AUTOSTART_SCORING": "0", "DAGSTER_DISABLE_TELEMETRY": "1"}
    bin_dir = Path(sys.executable).parent
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.add_dynamic_partitions("participants", ids)
    start = time.perf_counter()
    backfill_id = submit(ids, home, env) if launch == "asset" else None
    if launch == "job":
        subprocess.run([str(bin_dir / "dagster"), "job", "backfill", "-m", "har_assets.definitions", "-j",
                        "preprocess_participant", "--partitions", ",".join(ids), "--noprompt"],
                       env=env, cwd=home, check=True, capture_output=True, timeout=600)
    submitted_s = time.perf_counter() - start
    daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-m", "har_assets.definitions"], env=env,
                              cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    sampler = TreeSampler(daemon.pid)
    sampler.start()
    timed_out = False
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            while not finished(instance, len(ids), backfill_id):
                if time.perf_counter() - start > timeout_s:
                    timed_out = True
                    break
                if daemon.poll() is not None:
                    raise RuntimeError(f"dagster-daemon exited with {daemon.returncode}")
                time.sleep(0.5)
            wall_s = time.perf_counter() - start
            records = instance.get_run_records()
            windows = len(instance.get_materialized_partitions(dg.AssetKey("windows")))
    finally:
        sampler.stop_event.set()
        sampler.join()
        os.killpg(daemon.pid, signal.SIGTERM)  # the daemon's session: itself, its code server, run workers
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    statuses = [r.dagster_run.status.value for r in records]
    durations = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
    return {
        "participants": participants, "minutes_each": minutes, "format": fmt, "raw_mb": round(raw_mb, 1),
        "launch": launch, "participants_with_windows": windows,
        "seconds_per_participant": round(wall_s / participants, 3),
        "run_seconds_per_participant": round(sum(durations) / participants, 3),
        "slot_seconds_outside_runs_per_participant": round(
            (wall_s * max_concurrent_runs - sum(durations)) / participants, 3),
        "max_concurrent_runs": max_concurrent_runs, "cpu_cores": os.cpu_count(),
        "demo_write_s": round(write_s, 1), "backfill_submit_s": round(submitted_s, 1),
        "wall_s": round(wall_s, 1), "timed_out": timed_out,
        "runs_launched": len(records), "runs_succeeded": statuses.count("SUCCESS"),
        "runs_failed": statuses.count("FAILURE"),
        "run_seconds_median": round(statistics.median(durations), 2) if durations else None,
        "run_seconds_max": round(max(durations), 2) if durations else None,
        "participants_per_minute": round(60 * windows / wall_s, 1) if wall_s else None,
        "peak_rss_total_mb": round(sampler.peak_total_mb), "peak_rss_daemon_and_code_server_mb":
            round(sampler.peak_base_mb), "peak_rss_one_run_mb": round(sampler.peak_worker_mb),
        "peak_run_workers_alive": sampler.peak_workers, "memory_samples": sampler.samples,
    }


def report(r: dict) -> str:
    return "\n".join([
        f"## Backfill: {r['participants']} participants × {r['minutes_each']:g} min ({r['format'].upper()}, "
        f"{r['raw_mb']:.0f} MB) → windows, local instance + dagster-daemon, {r['cpu_cores']} cores\n",
        f"- demo data written in {r['demo_write_s']} s; backfill submitted in {r['backfill_submit_s']} s "
        "(counted in the wall time)",
        f"- wall time from submission until every run finished: {r['wall_s']} s"
        + (" (TIMED OUT: figures cover what finished)" if r["timed_out"] else "")
        + f"; {r['participants_per_minute']} participants/min",
        f"- runs launched: {r['runs_launched']} ({r['runs_succeeded']} succeeded, {r['runs_failed']} failed) by "
        f"{'an asset backfill (batches per the backfill policy)' if r['launch'] == 'asset' else 'a job backfill'}"
        f"; run queue limit {r['max_concurrent_runs']}; {r['participants_with_windows']} participants have windows",
        f"- per participant: {r['seconds_per_participant']} s of wall time, "
        f"{r['run_seconds_per_participant']} s inside runs, "
        f"{r['slot_seconds_outside_runs_per_participant']} slot-seconds outside runs (launch, imports, queue)",
        f"- run duration as Dagster records it (RUN_START → end, after the worker process started): median "
        f"{r['run_seconds_median']} s, "
        f"max {r['run_seconds_max']} s",
        f"- peak memory, daemon's whole process tree (daemon + code-location server + run workers): "
        f"{r['peak_rss_total_mb']} MB; daemon + code server alone: {r['peak_rss_daemon_and_code_server_mb']} MB; "
        f"largest run worker: {r['peak_rss_one_run_mb']} MB; most run workers alive at once: "
        f"{r['peak_run_workers_alive']} ({r['memory_samples']} samples)",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=3.0, help="recording length of each demo participant")
    parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    parser.add_argument("--max-concurrent-runs", type=int, default=LOCAL_MAX_CONCURRENT_RUNS,
                        help="the run queue limit (default: the local instance's)")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    parser.add_argument("--launch", choices=["asset", "job"], default="asset",
                        help="asset: the UI's asset backfill (batched); job: dagster job backfill (one run each)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="har-backfill-"))
    try:
        result = run_benchmark(args.participants, args.minutes, args.max_concurrent_runs, args.timeout,
                               args.format, workdir, args.launch)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
