"""Backfill batches: one run over several participants keeps per-participant metadata and checks, stores
nothing when one participant fails, and the failed batch is re-run one participant per run."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from har_assets.definitions import build_resources
from har_assets.home import HarHome
from har_assets.orchestration.check_gate import PREPROCESSING_CHECKS, failed_blocking_checks
from har_assets.orchestration.participant_batches import PARTICIPANTS_PER_RUN
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.sensors import study_sensors
from har_assets.signal.windowing import WindowSet
from har_assets_tests.rawfiles import edit_cell, write_participant

_, isolate_failed_batches, retry_transient_failures = study_sensors()  # as deployed (running)

PIDS = ["p01", "p02", "p03"]


@pytest.fixture
def home(tmp_path) -> HarHome:
    home = HarHome(tmp_path / "home")
    for i, pid in enumerate(PIDS):
        write_participant(home.raw / pid, seconds=20 + 5 * i)
    return home


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("participants", PIDS)
        yield inst


def run_batch(home: HarHome, instance: dg.DagsterInstance, first: str, last: str) -> dg.ExecuteInJobResult:
    """What a backfill's run over partitions first..last executes."""
    return dg.materialize(PREPROCESSING_ASSETS, instance=instance, resources=build_resources(home),
                          raise_on_error=False, tags={"dagster/asset_partition_range_start": first,
                                                      "dagster/asset_partition_range_end": last})


def failure(result: dg.ExecuteInJobResult) -> dg.Failure:
    [event] = result.get_step_failure_events()
    return event.step_failure_data.user_failure_data


def stored(home: HarHome) -> list[str]:
    return sorted(str(p.relative_to(home.assets)) for p in home.assets.rglob("*") if p.is_file()) \
        if home.assets.exists() else []


def test_backfills_batch_participants() -> None:
    policy = PREPROCESSING_ASSETS[0].backfill_policy
    assert policy.max_partitions_per_run == PARTICIPANTS_PER_RUN > 1
    assert all(a.backfill_policy == policy for a in PREPROCESSING_ASSETS)


def test_a_batch_keeps_per_participant_results(home: HarHome, instance: dg.DagsterInstance) -> None:
    result = run_batch(home, instance, "p01", "p03")
    assert result.success
    windows = {m.partition: m.metadata for m in result.asset_materializations_for_node("windows")}
    assert sorted(windows) == PIDS
    for pid in PIDS:
        ws = WindowSet.load(home.assets / "windows" / f"{pid}.npz")
        assert windows[pid]["windows"].value == len(ws) > 0
    assert len({m["windows"].value for m in windows.values()}) == 3  # each participant's own figures
    raw = {m.partition: m.metadata["raw_fingerprint"].value for m in result.asset_materializations_for_node(
        "raw_recording")}
    assert len(set(raw.values())) == 3

    evaluations = result.get_asset_check_evaluations()
    expected = {(asset, name, pid) for asset, table in PREPROCESSING_CHECKS.items() for name in table for pid in PIDS}
    assert {(e.asset_key.to_user_string(), e.check_name, e.partition) for e in evaluations} == expected
    assert all(e.passed for e in evaluations if e.blocking)
    keys = [dg.AssetCheckKey(dg.AssetKey(a), n) for a, table in PREPROCESSING_CHECKS.items() for n in table]
    infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=PIDS)
    assert len(infos) == len(expected) and all(i.is_current for i in infos)  # each targets its materialization
    assert failed_blocking_checks(instance, PIDS) == {}


def test_a_broken_participant_fails_its_batch_and_nothing_is_stored(home: HarHome,
                                                                   instance: dg.DagsterInstance) -> None:
    edit_cell(home.raw / "p02" / "gyroscope.csv", "calibrated_gyro_y", 2, "[1, 2]")
    result = run_batch(home, instance, "p01", "p03")
    assert not result.success
    data = failure(result)
    assert "1 participant(s) of this batch failed, nothing of the batch was stored" in data.description
    assert "p02: participant 'p02': gyroscope.csv, column 'calibrated_gyro_y', row 4" in data.description
    assert data.metadata["failed_participants"].value == ["p02"]
    assert stored(home) == []
    assert not result.asset_materializations_for_node("raw_recording")


def test_a_failed_blocking_check_fails_its_batch(home: HarHome, instance: dg.DagsterInstance) -> None:
    (home.raw / "p03" / "participant.json").write_text(json.dumps({"units": {"accelerometer": "g"}}))
    result = run_batch(home, instance, "p01", "p03")
    assert not result.success
    description = failure(result).description
    assert "p03: blocking check raw_recording.accel_magnitude_plausible failed: median |acc|" in description
    assert stored(home) == []


def test_a_failed_batch_is_rerun_one_participant_per_run(home: HarHome, instance: dg.DagsterInstance) -> None:
    edit_cell(home.raw / "p02" / "gyroscope.csv", "calibrated_gyro_y", 2, "[1, 2]")
    batch = run_batch(home, instance, "p01", "p03")
    assert not batch.success
    run = instance.get_run_by_id(batch.run_id)
    failure_event = next(e for e in instance.all_logs(batch.run_id) if e.dagster_event
                         and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE).dagster_event
    context = dg.build_run_status_sensor_context(sensor_name="isolate_failed_batches", dagster_event=failure_event,
                                                 dagster_instance=instance, dagster_run=run).for_run_failure()
    requests = isolate_failed_batches(context)
    assert [r.partition_key for r in requests] == PIDS
    assert len({r.run_key for r in requests}) == 3
    results = {r.partition_key: dg.materialize(PREPROCESSING_ASSETS, partition_key=r.partition_key,
                                               instance=instance, resources=build_resources(home),
                                               raise_on_error=False, tags=r.tags) for r in requests}
    assert {pid: r.success for pid, r in results.items()} == {"p01": True, "p02": False, "p03": True}
    for asset, suffix in (("raw_recording", ".zip"), ("fused_recording", ".parquet"), ("windows", ".npz")):
        assert [pid for pid in PIDS if (home.assets / asset / f"{pid}{suffix}").exists()] == ["p01", "p03"], asset
    assert "p02: participant 'p02': gyroscope.csv" in failure(batch).description


def test_a_single_partition_run_is_not_a_batch(home: HarHome, instance: dg.DagsterInstance) -> None:
    result = dg.materialize(PREPROCESSING_ASSETS, partition_key="p01", instance=instance,
                            resources=build_resources(home), raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    event = next(e for e in instance.all_logs(result.run_id) if e.dagster_event
                 and e.dagster_event.event_type == dg.DagsterEventType.RUN_SUCCESS).dagster_event
    context = dg.build_run_status_sensor_context(sensor_name="isolate_failed_batches", dagster_event=event,
                                                 dagster_instance=instance, dagster_run=run).for_run_failure()
    assert isinstance(isolate_failed_batches(context), dg.SkipReason)
    [raw] = result.asset_materializations_for_node("raw_recording")
    assert raw.tags["dagster/data_version"] == raw.metadata["raw_fingerprint"].value  # a run of one keeps it


def _failure_context(instance: dg.DagsterInstance, run_id: str) -> dg.RunFailureSensorContext:
    event = next(e for e in instance.all_logs(run_id) if e.dagster_event
                 and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE).dagster_event
    return dg.build_run_status_sensor_context(sensor_name="retry_transient_failures", dagster_event=event,
                                              dagster_instance=instance,
                                              dagster_run=instance.get_run_by_id(run_id)).for_run_failure()


def test_a_run_that_failed_on_its_data_is_not_asked_for_again(home: HarHome, instance: dg.DagsterInstance) -> None:
    edit_cell(home.raw / "p02" / "gyroscope.csv", "calibrated_gyro_y", 2, "[1, 2]")
    result = dg.materialize(PREPROCESSING_ASSETS, partition_key="p02", instance=instance,
                            resources=build_resources(home), raise_on_error=False)
    assert not result.success
    assert not [e for e in instance.all_logs(result.run_id) if e.dagster_event
                and e.dagster_event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]  # a bad file is final
    skipped = retry_transient_failures(_failure_context(instance, result.run_id))
    assert isinstance(skipped, dg.SkipReason) and "failed on its data" in skipped.skip_message


@dg.op
def store_unreachable() -> None:
    """Stands for a step whose store stayed down through its retries."""
    raise ConnectionRefusedError("[Errno 111] Connection refused: 127.0.0.1:9")


@dg.job
def unreachable_job() -> None:
    store_unreachable()


def test_a_run_that_failed_for_a_transient_reason_is_asked_for_again(instance: dg.DagsterInstance) -> None:
    def failed_run(attempt: int | None) -> str:
        tags = {"dagster/partition": "p01", "har/raw_fingerprint": "abc"}
        tags |= {"har/attempt": str(attempt)} if attempt else {}
        result = unreachable_job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
        assert not result.success
        return result.run_id

    first = failed_run(None)
    request = retry_transient_failures(_failure_context(instance, first))
    assert isinstance(request, dg.RunRequest) and request.partition_key == "p01"
    assert request.tags == {"har/attempt": "1", "har/recovered_from": first, "har/raw_fingerprint": "abc"}
    assert request.run_key == f"recover:{first}"
    gave_up = retry_transient_failures(_failure_context(instance, failed_run(3)))
    assert isinstance(gave_up, dg.SkipReason) and "failed 4 times for transient reasons" in gave_up.skip_message


def test_a_batch_whose_worker_died_is_left_to_the_run_retries(instance: dg.DagsterInstance) -> None:
    """No step failed (the worker was killed; monitoring reported the run failed): re-running it per participant
    beside Dagster's own run retry would process everyone twice, at the same time."""
    run = instance.add_run(dg.DagsterRun(
        job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset(key for asset in PREPROCESSING_ASSETS for key in asset.keys),
        tags={"dagster/asset_partition_range_start": "p01", "dagster/asset_partition_range_end": "p03"}))
    instance.report_run_failed(run, "the run worker died")
    skipped = isolate_failed_batches(_failure_context(instance, run.run_id))
    assert isinstance(skipped, dg.SkipReason) and "its worker died" in skipped.skip_message
