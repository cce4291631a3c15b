"""Study-life accidents against a real home: what happened, what data was lost, how long recovery took.

    python benchmarks/chaos.py                    # all eight, about 25 minutes on 2 cores
    python benchmarks/chaos.py --only 1,2 --keep  # a subset; keep the temporary homes
    python benchmarks/chaos.py --json             # the rows as JSON too

Each accident gets its own fresh home under a temporary folder (`tempfile.mkdtemp`): 4 demo participants ×
3 min written by `har demo-data --format csv`, and `training.json` with 2 epochs on one thread. (With
`--minutes 1.5` each participant gets 2 activities, disjoint across the 4, so the test participant has no class
the model was trained on and every `har pipeline` ends "model failed: no labelled test windows of a known
class"; 3 min gives 4 activities each, overlapping.) It drives
the real `har` CLI as subprocesses with HAR_HOME set, next to real services (`har dev`, SeaweedFS, `mlflow
server`), and does each accident for real: folders renamed, processes killed with SIGKILL by pid or process
group, services stopped and started again on the same port and data.

1. raw volume unmounted: `raw/` renamed away, `har pipeline` (expected: exit 2 naming the raw root, nothing
   changed, no demo data written into raw/); renamed back, `har pipeline` again (expected: up to date).
2. a participant folder renamed: raw/p002 → raw/p002-old, `har pipeline --json` (expected: p002 "missing",
   p002-old "failed" as a copy, p002's assets unchanged); renamed back (expected: up to date).
3. a run worker SIGKILLed under `har dev` (sensor on, the three automations off) once its run has materialized
   something: time from the kill until the run is FAILURE, and until its retry (tag dagster/parent_run_id) is
   SUCCESS; any other run launched within 75 s of the kill is listed.
4. the object store (SeaweedFS, HAR_ASSETS_URI=s3://har/study) killed after the first `windows`
   materialization, started 8 s later; compared with a baseline run without outage in another home.
5. the MLflow tracking server killed once all 4 `windows` are materialized, restarted 8 s later on the same
   port; compared with a baseline run (its own server, another home).
6. `har pipeline` SIGKILLed as soon as `<home>/mlflow/` holds the store's temporary file (`*.creating*`) or
   `mlflow.db` (the creation lock file `.mlflow.db.lock` does not count), then `har pipeline` again.
7. two `har pipeline` on one fresh home, started 0.5 s apart: both exit codes, the second's first stderr line,
   and the `champion` alias read from the home's MLflow store.
8. `har participants remove p003`, `restore p003`, `har pipeline` (up to date?), remove again, `purge p003
   --yes` (what it printed).

Data lost is measured, not asserted. A snapshot maps every key of the asset store (every file under
`<home>/assets`, or every object under `s3://har/study`) to the sha256 of its bytes. "Before" is taken just
before the accident (just after the kill where the killed process was the only writer, 3 and 6; before the
kill where the store itself goes down, 4). "After" is taken once recovery ended. Study data is every key none
of whose path parts starts with a dot: the removal archive and audit (`.removed/`, `.audit/`, changed by
design) and atomic-write temporaries (`.name.<hex>.tmp`) are left out. Compared on study data:

- vanished: a key before and not after (except, in 8, the purged participant's: deleting them is the point);
- changed: different bytes, unless the Dagster event log records a materialization of that asset (and
  partition: `<asset>/<participant>.<ext>`; `__all__` is an unpartitioned asset) after "before" was taken,
  which makes it a legitimate rewrite (a re-materialization writes new bytes for the same participant);
- absent: after recovery, a participant of the study missing from a per-participant asset folder.

"none" means nothing vanished and nothing changed without a materialization; the counts of keys kept
byte-identical and rewritten follow. Where the platform does not behave as expected the row says what happened.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from har_assets_tests.objectstore_server import S3Server, SeaweedFS
from har_assets_tests.rawfiles import age
from har_assets_tests.stack import BIN, LOOPBACK, Processes, Service, base_env, free_port, http_ok, wait_until

PARTICIPANTS = 4
MINUTES = 3.0  # 1.5 min gives each demo participant 2 activities, disjoint across 4: no model can be evaluated
PIDS = [f"p{i:03d}" for i in range(1, PARTICIPANTS + 1)]
TRAINING = {"train": {"epochs": 2, "num_threads": 1}}
DOWN_S = 8.0
PIPELINE_TIMEOUT_S = 900.0
WATCH_AFTER_KILL_S = 75.0  # runs launched after a kill are looked for this long (run-failure sensors: every 30 s)
MODEL_NAME = "har-activity"
INFO_LOG = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO ")
PID_MESSAGE = re.compile(r"Started process for run \(pid: (\d+)\)")
Snapshot = dict[str, str]
NAMES: dict[int, str] = {
    1: "raw volume unmounted", 2: "participant folder renamed (p002 → p002-old)",
    3: "run worker SIGKILLed under har dev", 4: f"object store down {DOWN_S:.0f} s during har pipeline",
    5: f"MLflow server down {DOWN_S:.0f} s during har pipeline",
    6: "har pipeline SIGKILLed during MLflow store creation", 7: "two har pipeline at once on one home",
    8: "p003 removed, restored, removed again and purged",
}


@dataclass
class Row:
    number: int
    accident: str
    outcome: str = ""
    data_lost: str = ""
    time_to_recover: str = ""
    details: list[str] = field(default_factory=list)


@dataclass
class Done:
    """A finished `har` command: exit code (None: killed at its timeout), output, wall time."""

    code: int | None
    out: str
    err: str
    seconds: float

    def first_err(self) -> str:
        """The CLI's own error line (`har <command>: ...`) if any, else stderr's first line that is not a library's
        INFO log line (MLflow announces creating its tables there); a traceback's first and last lines."""
        lines = [line.strip() for line in self.err.splitlines() if line.strip() and not INFO_LOG.match(line)]
        if not lines:
            return "(stderr empty)" if not self.err.strip() else "(only INFO log lines on stderr)"
        own = next((line for line in lines if line.startswith("har ")), None)
        if own:
            return own
        return f"{lines[0]} … {lines[-1]}" if lines[0].startswith("Traceback") else lines[0]

    def summary(self) -> dict[str, Any] | None:
        with contextlib.suppress(ValueError):
            return json.loads(self.out)
        return None


@dataclass
class Background:
    name: str
    proc: subprocess.Popen
    out: Path
    err: Path
    started: float


def log(number: int, text: str) -> None:
    print(f"[{number}] {text}", file=sys.stderr, flush=True)


def poll(check: Callable[[], Any], timeout_s: float, interval_s: float = 0.5) -> Any:
    """`check`'s first truthy value, or None after `timeout_s` (errors while a writer holds SQLite: retried)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # e.g. "database is locked" or a schema being created by the process under test
            value = None
        if value:
            return value
        time.sleep(interval_s)
    return None


# ------------------------------------------------------------------------------------------ one accident's lab


class Lab:
    """One accident's temporary folder, home and processes; every process stopped (by group) on exit."""

    def __init__(self, number: int, keep: bool, minutes: float) -> None:
        self.number, self.keep, self.minutes = number, keep, minutes
        self.root = Path(tempfile.mkdtemp(prefix=f"har-chaos-{number}-"))
        self.home = self.root / "home"
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.procs = Processes(self.logs)
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.procs.stop(grace_s=10)
            self.stack.close()
        finally:
            if self.keep:
                log(self.number, f"kept {self.root}")
            else:
                shutil.rmtree(self.root, ignore_errors=True)

    def env(self, home: Path | None = None, **extra: str) -> dict[str, str]:
        return base_env(HAR_HOME=str(home or self.home), **extra)

    def short(self, text: str) -> str:
        return text.replace(str(self.home), "<home>").replace(str(self.root), "<tmp>")

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Background:
        """`har <args>` in its own session (stdout, stderr to files), stopped with the lab if still running."""
        out, err = self.logs / f"{name}.out", self.logs / f"{name}.err"
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen([str(BIN / "har"), *args], env=env or self.env(), cwd=self.root, stdout=o,
                                    stderr=e, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.services.append(Service(name, proc, err))
        return Background(name, proc, out, err, time.monotonic())

    def finish(self, bg: Background, timeout_s: float = PIPELINE_TIMEOUT_S) -> Done:
        """Wait for a started command; past `timeout_s` its process group is killed (code None)."""
        try:
            code: int | None = bg.proc.wait(timeout=max(0.1, timeout_s - (time.monotonic() - bg.started)))
        except subprocess.TimeoutExpired:
            kill_group(bg.proc)
            code = None
        seconds = time.monotonic() - bg.started
        self.procs.services = [s for s in self.procs.services if s.proc is not bg.proc]
        return Done(code, bg.out.read_text(errors="replace"), bg.err.read_text(errors="replace"), seconds)

    def har(self, *args: str, env: dict[str, str] | None = None, timeout_s: float = PIPELINE_TIMEOUT_S) -> Done:
        name = f"{args[0]}-{len(list(self.logs.iterdir()))}"
        return self.finish(self.start(name, list(args), env), timeout_s)

    def study(self, home: Path | None = None) -> Path:
        """A fresh home: demo data by `har demo-data`, a short training."""
        home = home or self.home
        home.mkdir(parents=True)
        done = self.har("demo-data", "--out", str(home / "raw"), "--participants", str(PARTICIPANTS),
                        "--minutes", str(self.minutes), "--format", "csv", timeout_s=300)
        if done.code != 0:
            raise RuntimeError(f"har demo-data exited {done.code}: {done.first_err()}")
        (home / "training.json").write_text(json.dumps(TRAINING))
        return home

    def prepared(self) -> Done:
        """A fresh home after one successful `har pipeline`."""
        self.study()
        log(self.number, "setting up: har pipeline on a fresh home")
        done = self.har("pipeline", "--json")
        if done.code != 0:
            raise RuntimeError(f"setup: har pipeline {self.short(pipeline_outcome(done))}; stderr: "
                               f"{self.short(done.first_err())}")
        return done


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal a process we started in its own session (its group id is its pid), and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


# ------------------------------------------------------------------------------------------ snapshots


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_snapshot(assets: Path) -> Snapshot:
    """Key (path under `assets`) → sha256 of every file; files renamed away meanwhile are skipped."""
    snap: Snapshot = {}
    for path in sorted(assets.rglob("*")) if assets.is_dir() else []:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            snap[path.relative_to(assets).as_posix()] = sha256(path.read_bytes())
    return snap


def s3_filesystem(endpoint: str, env: dict[str, str]) -> Any:
    import s3fs

    return s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                             client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)


def s3_snapshot(fs: Any, prefix: str) -> Snapshot:
    """Key (path under `prefix`) → sha256 of every object."""
    fs.invalidate_cache()
    return {key.removeprefix(prefix + "/"): sha256(fs.cat_file(key)) for key in sorted(fs.find(prefix))}


def study_data(snap: Snapshot) -> Snapshot:
    return {k: v for k, v in snap.items() if not any(part.startswith(".") for part in k.split("/"))}


def split_key(key: str) -> tuple[str, str]:
    """`<asset>/<partition>.<ext>` → (asset, partition)."""
    asset, _, name = key.partition("/")
    return asset, name.split(".", 1)[0]


@contextlib.contextmanager
def instance_of(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        yield instance


def materialized_since(instance: dg.DagsterInstance, key: str, since: float) -> bool:
    asset, partition = split_key(key)
    record_filter = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_timestamp=since,
                                          asset_partitions=None if partition == "__all__" else [partition])
    return bool(instance.fetch_materializations(record_filter, limit=1).records)


def windows_count(instance: dg.DagsterInstance) -> int:
    """Participants whose `windows` the instance has materialized."""
    return len(instance.get_materialized_partitions(dg.AssetKey("windows")))


def wait_for_windows(home: Path, bg: Background, count: int, timeout_s: float) -> bool:
    """Until `windows` is materialized for `count` participants while `bg` runs; False if it ended or timed out."""
    def running() -> bool:
        return bg.proc.poll() is None

    storage = home / "dagster_home" / "storage"
    if not poll(lambda: not running() or storage.is_dir(), timeout_s, 0.2) or not running():
        return False
    with instance_of(home) as instance:
        poll(lambda: not running() or windows_count(instance) >= count, timeout_s, 0.3)
        return running() and windows_count(instance) >= count


def absent(after: Snapshot, expected: list[str]) -> list[str]:
    """`<asset>/<participant>` missing from a per-participant asset folder, for each expected participant."""
    folders: dict[str, set[str]] = {}
    for key in after:
        asset, partition = split_key(key)
        if partition != "__all__":
            folders.setdefault(asset, set()).add(partition)
    return [f"{asset}/{pid}" for asset, held in sorted(folders.items()) for pid in expected if pid not in held]


def data_lost(home: Path, before: Snapshot, after: Snapshot, since: float, expected: list[str] = PIDS,
              gone_by_design: Callable[[str], bool] = lambda _: False) -> str:
    """The 'data lost' cell: vanished, changed without a materialization, absent; kept and rewritten counts."""
    before, after = study_data(before), study_data(after)
    vanished = [k for k in before if k not in after and not gone_by_design(k)]
    differing = [k for k in before if k in after and before[k] != after[k]]
    with instance_of(home) as instance:
        rewritten = [k for k in differing if materialized_since(instance, k, since)]
    changed = [k for k in differing if k not in rewritten]
    kept = sum(1 for k in before if after.get(k) == before[k])
    parts = [f"vanished: {', '.join(vanished)}"] if vanished else []
    parts += [f"changed without a materialization: {', '.join(changed)}"] if changed else []
    cell = "; ".join(parts) or "none"
    cell += f" ({kept} kept, {len(rewritten)} rewritten, {len(set(after) - set(before))} new)"
    missing = absent(after, expected)
    return cell + (f"; absent: {', '.join(missing)}" if missing else "")


def differences(a: Snapshot, b: Snapshot) -> str:
    """Every difference between two snapshots (bookkeeping included), or 'nothing changed'."""
    added = sorted(set(b) - set(a))
    gone = sorted(set(a) - set(b))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    parts = [f"{label}: {', '.join(keys)}" for label, keys in (("added", added), ("vanished", gone),
                                                               ("changed", changed)) if keys]
    return "; ".join(parts) or "nothing changed"


def leftovers(snap: Snapshot) -> list[str]:
    return [k for k in snap if k.rsplit("/", 1)[-1].startswith(".") and k.endswith(".tmp")]


# ------------------------------------------------------------------------------------------ summaries


def up_to_date(done: Done) -> str:
    """Whether a `har pipeline --json` found everything up to date, in words."""
    s = done.summary()
    if done.code != 0 or s is None:
        return f"exit {done.code}: {done.first_err()}"
    status = (s.get("model") or {}).get("status")
    if s["materialized"] == 0 and not s["failed"] and status == "up-to-date":
        return f"up to date ({s['up_to_date']} participants, model up-to-date)"
    return (f"NOT up to date: {s['materialized']} materialized, {s['up_to_date']} up to date, failed "
            f"{sorted(s['failed'])}, model {status}")


def pipeline_outcome(done: Done) -> str:
    """Exit code, participants materialized, failures and the model's status of one `har pipeline --json`."""
    s = done.summary()
    if s is None:
        return f"exit {done.code}, no summary: {done.first_err()}"
    model = s.get("model") or {}
    text = f"exit {done.code}; {s['materialized']}/{PARTICIPANTS} participants materialized"
    if s["failed"]:
        text += "; failed " + "; ".join(f"{p}: {e[:120]}" for p, e in sorted(s["failed"].items()))
    text += f"; model {model.get('status')}"
    if model.get("version"):
        text += f" v{model['version']}{' champion' if model.get('champion') else ''}"
    if model.get("error"):
        text += f": {model['error'][:160]}"
    return text


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


# ------------------------------------------------------------------------------------------ the accidents


def unmounted_raw(lab: Lab) -> Row:
    row = Row(1, NAMES[1])
    lab.prepared()
    since, before = time.time(), local_snapshot(lab.home / "assets")
    raw, aside = lab.home / "raw", lab.home / "raw-unmounted"
    raw.rename(aside)
    try:
        refused = lab.har("pipeline")
        written = sorted(p.name for p in raw.iterdir()) if raw.is_dir() else None
        during = local_snapshot(lab.home / "assets")
    finally:
        if raw.exists():  # the refused run created it: kept aside as evidence
            raw.rename(lab.home / "raw-created-during-outage")
        aside.rename(raw)
    row.outcome = (f"exit {refused.code}: {lab.short(refused.first_err())}; raw/ afterwards: "
                   + ("not created" if written is None else f"created, holding {written or 'nothing'}"))
    again = lab.har("pipeline", "--json")
    row.outcome += f"; back: {up_to_date(again)}"
    row.data_lost = (f"refused run: {differences(before, during)}; after recovery: "
                     f"{data_lost(lab.home, before, local_snapshot(lab.home / 'assets'), since)}")
    row.time_to_recover = seconds(again.seconds)
    return row


def renamed_participant(lab: Lab) -> Row:
    row = Row(2, NAMES[2])
    lab.prepared()
    since, before = time.time(), local_snapshot(lab.home / "assets")
    folder, renamed = lab.home / "raw" / "p002", lab.home / "raw" / "p002-old"
    folder.rename(renamed)
    try:
        during = lab.har("pipeline", "--json")
        snap = local_snapshot(lab.home / "assets")
    finally:
        renamed.rename(folder)
    s = during.summary() or {}
    failed = {p: e.split(":")[0] for p, e in (s.get("failed") or {}).items()}
    p002 = {k: v for k, v in study_data(before).items() if split_key(k)[1] == "p002"}
    kept = sum(1 for k, v in p002.items() if snap.get(k) == v)
    row.outcome = (f"exit {during.code}; missing {s.get('missing')}; failed {failed}; p002's assets "
                   f"{kept}/{len(p002)} byte-identical")
    if not s:
        row.outcome += f"; no summary: {during.first_err()}"
    again = lab.har("pipeline", "--json")
    row.outcome += f"; back: {up_to_date(again)}"
    row.data_lost = data_lost(lab.home, before, local_snapshot(lab.home / "assets"), since)
    row.time_to_recover = seconds(again.seconds)
    if during.code and during.first_err() != "(stderr empty)":
        row.details.append(f"run during the rename, stderr: {lab.short(during.first_err())}")
    return row


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        found = PID_MESSAGE.search(entry.message or "")
        if found:
            return int(found.group(1))
    return None


def materializations_in(instance: dg.DagsterInstance, run_id: str) -> int:
    return len(instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION))


def working_worker(instance: dg.DagsterInstance) -> tuple[dg.DagsterRun, int] | None:
    """A started run whose worker pid is known and which has materialized something (killed mid-run)."""
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        pid = worker_pid(instance, run.run_id)
        if pid and materializations_in(instance, run.run_id):
            return run, pid
    return None


def runs_after(instance: dg.DagsterInstance, killed_at: float, skip: set[str]) -> list[str]:
    """Runs created after the kill (but `skip`): launcher, partition, status, seconds from the kill to start–end."""
    rows = []
    for record in instance.get_run_records(filters=dg.RunsFilter(
            created_after=dt.datetime.fromtimestamp(killed_at, dt.UTC)), ascending=True):
        run = record.dagster_run
        if run.run_id in skip:
            continue
        span = "–".join("?" if t is None else f"{t - killed_at:.0f}" for t in (record.start_time, record.end_time))
        rows.append(f"{run.tags.get('dagster/sensor_name', run.job_name)} {run.tags.get('dagster/partition', '')} "
                    f"{run.status.value} {span} s")
    return rows


def run_status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus | None:
    run = instance.get_run_by_id(run_id)
    return run.status if run else None


def ended(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus | None:
    status = run_status(instance, run_id)
    done = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    return status if status in done else None


def in_flight(instance: dg.DagsterInstance) -> int:
    return len(instance.get_runs(filters=dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.QUEUED])))


def start_dev(lab: Lab) -> None:
    """`har dev` on the lab's home with the demo folders settled; waits for its instance."""
    lab.study()
    for folder in (lab.home / "raw").iterdir():
        age(folder)
    env = lab.env(DAGSTER_HOME=str(lab.home / "dagster_home"), HAR_AUTOSTART_RETRAIN="0",
                  HAR_AUTOSTART_SCORING="0", HAR_AUTOSTART_OVERVIEW="0")
    lab.procs.start("har-dev", [str(BIN / "har"), "dev", "--home", str(lab.home), "--host", LOOPBACK,
                                "--port", str(free_port())], env, cwd=lab.home)
    wait_until("the Dagster instance", lambda: (lab.home / "dagster_home" / "storage").is_dir(), 120, lab.procs)


def killed_run_worker(lab: Lab) -> Row:
    row = Row(3, NAMES[3])
    start_dev(lab)
    with instance_of(lab.home) as instance:
        run, pid = wait_until("a run worker to materialize something", lambda: working_worker(instance), 240,
                              lab.procs, interval_s=0.2)
        os.kill(pid, signal.SIGKILL)
        killed, killed_wall = time.monotonic(), time.time()
        done_before = materializations_in(instance, run.run_id)
        since, before = time.time(), local_snapshot(lab.home / "assets")
        what = run.tags.get("dagster/partition") or "–".join(run.tags.get(t, "?") for t in (
            "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"))
        failed = poll(lambda: run_status(instance, run.run_id) == dg.DagsterRunStatus.FAILURE, 180)
        to_failure = time.monotonic() - killed if failed else None
        retry = poll(lambda: next(iter(instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}))), None), 180)
        final = poll(lambda: ended(instance, retry.run_id), 300) if retry else None
        to_retry = time.monotonic() - killed if final else None
        settled = poll(lambda: time.monotonic() - killed >= WATCH_AFTER_KILL_S and in_flight(instance) == 0
                       and windows_count(instance) >= PARTICIPANTS, 300 + WATCH_AFTER_KILL_S, 1.0)
        status = run_status(instance, run.run_id)
        row.outcome = (f"run {run.run_id[:8]} ({what}, worker pid {pid}) killed after {done_before} "
                       f"materializations: marked {status.value if status else '?'}"
                       + (f"; retry {retry.run_id[:8]} {final.value if final else 'not finished in 300 s'}"
                          if retry else "; no retry run within 180 s"))
        if not settled:
            row.outcome += f"; {in_flight(instance)} runs still in flight {300 + WATCH_AFTER_KILL_S:.0f} s after"
        others = runs_after(instance, killed_wall, {run.run_id, retry.run_id if retry else ""})
        if others:
            row.outcome += f"; {len(others)} more runs launched after the kill (details)"
            row.details += [f"run after the kill: {line}" for line in others]
        record = instance.get_run_record_by_id(retry.run_id) if retry else None
        if record:
            span = [None if t is None else f"{t - killed_wall:.0f}" for t in (record.start_time, record.end_time)]
            row.details.append(f"the retry ran {span[0]}–{span[1]} s after the kill")
    row.data_lost = data_lost(lab.home, before, local_snapshot(lab.home / "assets"), since)
    row.time_to_recover = f"{seconds(to_failure)} to FAILURE, {seconds(to_retry)} to retry SUCCESS"
    if final and final != dg.DagsterRunStatus.SUCCESS:
        row.time_to_recover = f"{seconds(to_failure)} to FAILURE; retry ended {final.value} after {seconds(to_retry)}"
    return row


def s3_env(lab: Lab, home: Path, server: S3Server, prefix: str) -> dict[str, str]:
    return lab.env(home, HAR_ASSETS_URI=f"s3://{server.bucket}/{prefix}", **server.env())


def object_store_down(lab: Lab) -> Row:
    row = Row(4, NAMES[4])
    weed = lab.stack.enter_context(SeaweedFS(lab.root / "seaweedfs"))
    server = weed.server
    fs = s3_filesystem(server.endpoint, server.env())
    baseline_home = lab.study(lab.root / "baseline")
    log(4, "baseline: har pipeline on the object store, no outage")
    baseline = lab.har("pipeline", "--json", env=s3_env(lab, baseline_home, server, "baseline"))
    lab.study()
    bg = lab.start("pipeline", ["pipeline", "--json"], s3_env(lab, lab.home, server, "study"))
    if not wait_for_windows(lab.home, bg, 1, 300):
        raise RuntimeError(f"har pipeline exited ({bg.proc.poll()}) or stalled before the first windows")
    since, before = time.time(), s3_snapshot(fs, f"{server.bucket}/study")
    weed.kill()
    down = time.monotonic()
    log(4, f"object store killed with {len(before)} objects stored; back in {DOWN_S:.0f} s")
    time.sleep(DOWN_S)
    weed.start()
    unavailable = time.monotonic() - down
    done = lab.finish(bg)
    after = s3_snapshot(s3_filesystem(server.endpoint, server.env()), f"{server.bucket}/study")
    row.outcome = pipeline_outcome(done)
    if done.code != 0:
        row.outcome += f"; stderr: {lab.short(done.first_err())}"
    if (lab.home / "assets").exists():
        row.outcome += "; FELL BACK to the local disk: <home>/assets exists"
    row.data_lost = data_lost(lab.home, before, after, since)
    row.time_to_recover = (f"{seconds(done.seconds)} vs {seconds(baseline.seconds)} baseline "
                           f"({done.seconds - baseline.seconds:+.1f} s; store unavailable {unavailable:.1f} s)")
    row.details.append(f"baseline: {pipeline_outcome(baseline)}")
    return row


def mlflow_command(folder: Path, port: int) -> list[str]:
    return [str(BIN / "mlflow"), "server", "--host", LOOPBACK, "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", (folder / "artifacts").as_uri()]


def start_mlflow(lab: Lab, name: str, command: list[str], url: str) -> Service:
    """`mlflow server` started and answering /health (not checking the lab's other processes: a pipeline may end)."""
    service = lab.procs.start(name, command, base_env(), cwd=lab.root)
    healthy = http_ok(f"{url}/health")

    def up() -> bool:
        if service.proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {service.proc.returncode}\n{service.tail()}")
        return healthy()

    wait_until(f"the MLflow server ({name})", up, 180)
    return service


def stop_service(lab: Lab, service: Service) -> None:
    """SIGKILL to the service's process group at once, as a crash."""
    kill_group(service.proc)
    lab.procs.services.remove(service)


def mlflow_baseline(lab: Lab) -> Done:
    """`har pipeline` against its own MLflow server, no outage, in another home."""
    folder, port = lab.root / "mlflow-baseline", free_port()
    url = f"http://{LOOPBACK}:{port}"
    server = start_mlflow(lab, "mlflow-baseline", mlflow_command(folder, port), url)
    home = lab.study(lab.root / "baseline")
    log(5, "baseline: har pipeline with an MLflow server, no outage")
    done = lab.har("pipeline", "--json", env=lab.env(home, MLFLOW_TRACKING_URI=url))
    stop_service(lab, server)
    return done


def mlflow_down(lab: Lab) -> Row:
    row = Row(5, NAMES[5])
    baseline = mlflow_baseline(lab)
    port = free_port()
    url, command = f"http://{LOOPBACK}:{port}", mlflow_command(lab.root / "mlflow-server", port)
    server = start_mlflow(lab, "mlflow", command, url)
    lab.study()
    bg = lab.start("pipeline", ["pipeline", "--json"], lab.env(MLFLOW_TRACKING_URI=url))
    if not wait_for_windows(lab.home, bg, PARTICIPANTS, 400):
        raise RuntimeError(f"har pipeline exited ({bg.proc.poll()}) or stalled before preprocessing finished")
    stop_service(lab, server)
    down = time.monotonic()
    since, before = time.time(), local_snapshot(lab.home / "assets")
    log(5, f"MLflow server killed after preprocessing; back in {DOWN_S:.0f} s")
    time.sleep(max(0.0, DOWN_S - (time.monotonic() - down)))
    start_mlflow(lab, "mlflow-again", command, url)
    unavailable = time.monotonic() - down
    done = lab.finish(bg)
    row.outcome = pipeline_outcome(done)
    if done.code != 0:
        row.outcome += f"; stderr: {lab.short(done.first_err())}"
    row.data_lost = data_lost(lab.home, before, local_snapshot(lab.home / "assets"), since)
    row.time_to_recover = (f"{seconds(done.seconds)} vs {seconds(baseline.seconds)} baseline "
                           f"({done.seconds - baseline.seconds:+.1f} s; server unavailable {unavailable:.1f} s: "
                           f"{DOWN_S:.0f} s down + its restart)")
    row.details.append(f"baseline: {pipeline_outcome(baseline)}")
    return row


def store_file(folder: Path) -> str | None:
    """The MLflow store's database or its temporary file being created, if `folder` holds one."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.name == "mlflow.db" or ".creating" in entry.name:
                return entry.name
    return None


def killed_during_store_creation(lab: Lab) -> Row:
    row = Row(6, NAMES[6])
    lab.study()
    bg = lab.start("pipeline", ["pipeline", "--json"])
    found = poll(lambda: store_file(lab.home / "mlflow") or (bg.proc.poll() is not None and "(exited)"),
                 PIPELINE_TIMEOUT_S, interval_s=0.02)
    if found in (None, "(exited)"):
        raise RuntimeError(f"no MLflow store file appeared before har pipeline ended ({bg.proc.poll()})")
    killed_at = time.monotonic() - bg.started
    kill_group(bg.proc)
    lab.finish(bg)
    left = sorted(p.name for p in (lab.home / "mlflow").iterdir())
    since, before = time.time(), local_snapshot(lab.home / "assets")
    again = lab.har("pipeline", "--json")
    row.outcome = (f"killed {killed_at:.1f} s in on seeing mlflow/{found}; left in mlflow/: {left}; rerun: "
                   f"{pipeline_outcome(again)}")
    if again.code != 0:
        row.outcome += f"; stderr: {lab.short(again.first_err())}"
    after = local_snapshot(lab.home / "assets")
    row.data_lost = data_lost(lab.home, before, after, since)
    debris = leftovers(after)
    if debris:
        row.data_lost += f"; temporary files left: {', '.join(debris)}"
    row.time_to_recover = seconds(again.seconds)
    row.details.append(f"mlflow/ after the rerun: {sorted(p.name for p in (lab.home / 'mlflow').iterdir())}")
    return row


def champion(home: Path) -> str:
    """Where the `champion` alias points, and how many versions are registered, in the home's MLflow store."""
    db = home / "mlflow" / "mlflow.db"
    if not db.is_file():
        return "no MLflow store"
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    try:
        version = client.get_model_version_by_alias(MODEL_NAME, "champion").version
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'"))
        aliases = client.get_registered_model(MODEL_NAME).aliases
    except MlflowException as exc:
        return f"champion unreadable: {str(exc).splitlines()[0]}"
    return f"champion → v{version} (versions registered {versions}; aliases {aliases})"


def two_pipelines(lab: Lab) -> Row:
    row = Row(7, NAMES[7])
    lab.study()
    since = time.time()
    first = lab.start("pipeline-a", ["pipeline", "--json"])
    time.sleep(0.5)
    second = lab.start("pipeline-b", ["pipeline", "--json"])
    b = lab.finish(second)
    a = lab.finish(first)
    row.outcome = (f"A exit {a.code}, B exit {b.code} after {b.seconds:.1f} s; B's stderr: {lab.short(b.first_err())}"
                   f"; {champion(lab.home)}")
    for name, done in (("A", a), ("B", b)):
        stderr = f"; stderr: {lab.short(done.first_err())}" if done.code and done.summary() else ""
        row.details.append(f"{name}: {pipeline_outcome(done)}{stderr}")
    with instance_of(lab.home) as instance:
        counts = {pid: len(instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("windows"), asset_partitions=[pid]), limit=10).records) for pid in PIDS}
    row.details.append(f"windows materializations per participant: {counts}")
    row.data_lost = data_lost(lab.home, {}, local_snapshot(lab.home / "assets"), since)
    row.time_to_recover = f"A {seconds(a.seconds)}, B {seconds(b.seconds)}"
    return row


def participant_removal(lab: Lab) -> Row:
    row = Row(8, NAMES[8])
    lab.prepared()
    since, before = time.time(), local_snapshot(lab.home / "assets")
    removed = lab.har("participants", "remove", "p003", "--reason", "test")
    restored = lab.har("participants", "restore", "p003")
    back = differences(study_data(before), study_data(local_snapshot(lab.home / "assets")))
    again = lab.har("pipeline", "--json")
    settled = local_snapshot(lab.home / "assets")
    since_settled = time.time()
    removed_again = lab.har("participants", "remove", "p003", "--reason", "test")
    purged = lab.har("participants", "purge", "p003", "--yes")
    after = local_snapshot(lab.home / "assets")
    remains = [k for k in after if "p003" in k and not k.startswith(".audit/")]
    said = lab.short(purged.out.strip() or purged.first_err())
    row.outcome = (f"remove exit {removed.code}, restore exit {restored.code} ({back} against before the removal); "
                   f"pipeline: {up_to_date(again)}; remove exit {removed_again.code}, purge exit {purged.code}: {said}"
                   f"; p003 keys left outside .audit/: {remains or 'none'}")
    others = [p for p in PIDS if p != "p003"]
    purge_loss = data_lost(lab.home, settled, after, since_settled, others, lambda k: "p003" in k)
    row.data_lost = (f"after restore + pipeline: {data_lost(lab.home, before, settled, since)}; after purge, "
                     f"others: {purge_loss}")
    row.time_to_recover = f"restore {seconds(restored.seconds)} + pipeline {seconds(again.seconds)}"
    for name, done in (("remove", removed), ("restore", restored), ("purge", purged)):
        if done.code:
            row.details.append(f"{name}: {lab.short(done.first_err())}")
    return row


ACCIDENTS: dict[int, Callable[[Lab], Row]] = {
    1: unmounted_raw, 2: renamed_participant, 3: killed_run_worker, 4: object_store_down, 5: mlflow_down,
    6: killed_during_store_creation, 7: two_pipelines, 8: participant_removal,
}


def run_accident(number: int, keep: bool, minutes: float) -> Row:
    """One accident in its own lab; an exception becomes an 'error: ...' row."""
    started = time.monotonic()
    log(number, f"{NAMES[number]}: starting")
    with Lab(number, keep, minutes) as lab:
        try:
            row = ACCIDENTS[number](lab)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            row = Row(number, NAMES[number], outcome=f"error: {type(exc).__name__}: {lab.short(first)}", data_lost="-",
                      time_to_recover="-")
        row = Row(row.number, row.accident, lab.short(row.outcome), lab.short(row.data_lost), row.time_to_recover,
                  [lab.short(d) for d in row.details])
    log(number, f"done in {time.monotonic() - started:.0f} s")
    return row


def table(rows: list[Row]) -> str:
    lines = ["| # | accident | outcome | data lost | time to recover |", "|---|---|---|---|---|"]
    lines += [f"| {r.number} | {r.accident} | {r.outcome} | {r.data_lost} | {r.time_to_recover} |" for r in rows]
    notes = [f"{r.number}. {d}" for r in rows for d in r.details]
    return "\n".join(lines + (["", "details:", *notes] if notes else []))


def parse_only(text: str | None) -> list[int]:
    numbers = sorted({int(n) for n in text.split(",") if n.strip()}) if text else sorted(ACCIDENTS)
    unknown = [n for n in numbers if n not in ACCIDENTS]
    if unknown:
        raise SystemExit(f"unknown accident(s) {unknown}: choose among {sorted(ACCIDENTS)}")
    return numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated accident numbers, e.g. 1,3")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes (and logs) afterwards")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    parser.add_argument("--minutes", type=float, default=MINUTES,
                        help=f"length of each demo participant's recording (default {MINUTES:g})")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = [run_accident(n, args.keep, args.minutes) for n in parse_only(args.only)]
    print(table(rows))
    print(f"\n{len(rows)} accident(s) in {time.monotonic() - started:.0f} s")
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
