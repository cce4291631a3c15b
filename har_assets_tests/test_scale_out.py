"""Scale-out inside one run: Dagster's multiprocess executor with a concurrency limit.

A fan-out job preprocesses several participants, one step per participant (the same pure
functions the assets run), under `multiprocess_executor.configured({"max_concurrent": 2})` on a
real (SQLite) instance. The event log then shows each step ran in its own process, every step
succeeded, and at no point were more than two step processes alive, while two were (the limit is
used, not just respected). Concurrency is read from the order of the events in the log, not from
clocks: a slot is taken by "Launching subprocess" and held until that step's success or failure.

This is the executor `docs/scale-out.md` swaps for `k8s_job_executor` / `docker_executor` / Celery
when one machine is not enough; the run-level limit (the instance's run queue) is exercised by
the daemon in test_stack_integration.py and measured by benchmarks/backfill.py.
"""


import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from har_assets.config import PreprocessConfig
from har_assets.demo import write_demo_dataset
from har_assets.raw.layout import locate_files
from har_assets.raw.reader import read_files
from har_assets.signal.pipeline import preprocess

MAX_CONCURRENT = 2
PARTICIPANTS = 5


class RawRoot(dg.Config):
    root: str


@dg.op(out=dg.DynamicOut(str))
def participant_folders(config: RawRoot) -> Iterator[dg.DynamicOutput[str]]:
    for folder in sorted(p for p in Path(config.root).iterdir() if p.is_dir()):
        yield dg.DynamicOutput(str(folder), mapping_key=folder.name)


@dg.op
def preprocess_participant(folder: str) -> dict:
    cfg = PreprocessConfig()
    recording = read_files(locate_files(Path(folder)), cfg)
    windows, _ = preprocess(recording, cfg)
    return {"participant": recording.participant, "windows": len(windows), "pid": os.getpid()}


@dg.op
def summarize(results: list[dict]) -> dict:
    return {r["participant"]: r["windows"] for r in results}


@dg.job(executor_def=dg.multiprocess_executor.configured({"max_concurrent": MAX_CONCURRENT}))
def preprocess_fan_out() -> None:
    summarize(participant_folders().map(preprocess_participant).collect())


def test_multiprocess_executor_respects_its_concurrency_limit(tmp_path: Path) -> None:
    ids = write_demo_dataset(tmp_path / "raw", PARTICIPANTS, seed=5, minutes=2, fmt="csv")
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        run_config = {"ops": {"participant_folders": {"config": {"root": str(tmp_path / "raw")}}}}
        with dg.execute_job(dg.reconstructable(preprocess_fan_out), instance=instance,
                            run_config=run_config) as result:
            assert result.success
            windows = result.output_for_node("summarize")
        events = [e.dagster_event for e in instance.all_logs(result.run_id) if e.dagster_event is not None]

    assert sorted(windows) == ids and all(n > 0 for n in windows.values()), windows
    mapped = {f"preprocess_participant[{pid}]" for pid in ids}
    succeeded = {e.step_key for e in events if e.event_type_value == "STEP_SUCCESS"}
    assert mapped <= succeeded and not any(e.event_type_value == "STEP_FAILURE" for e in events)

    # every step in its own process (not the test's, not the run's)
    worker_pid = {e.step_key: e.event_specific_data.metadata["pid"].value for e in events
                  if e.event_type_value == "STEP_WORKER_STARTED"}
    assert set(worker_pid) >= mapped
    assert len({worker_pid[k] for k in mapped}) == len(mapped)
    assert str(os.getpid()) not in worker_pid.values()

    # concurrency, from the order of the events: a slot is held from launch to success/failure
    active: set[str] = set()
    peak = 0
    for event in events:
        if event.event_type_value == "STEP_WORKER_STARTING":
            active.add(event.step_key)
            peak = max(peak, len(active))
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            active.discard(event.step_key)
    assert peak == MAX_CONCURRENT, f"at most {MAX_CONCURRENT} step processes at once, and the limit was reached"
