"""Dagster is the one orchestrator: one study run headless (`har pipeline`) and, in a second home with the same
files, by the daemon behind the UI (`har dev`: its sensors and automation conditions, real processes) runs the
same assets, each as often, and stores the same data."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from har_assets.pipeline_run import ORDER
from har_assets_tests.rawfiles import age
from har_assets_tests.stack import BIN, LOOPBACK, artifacts_dir, base_env, free_port, processes, wait_until
from har_assets_tests.trainfiles import write_two_class_participant

pytestmark = pytest.mark.slow

LABELLED = ["p01", "p02", "p03", "p04", "p05"]
PEOPLE = [*LABELLED, "u01"]
TRAINING = {"split": {"validation_share": 0.2},
            "model": {"conv_filters": 8, "conv_layers": 2, "lstm_units": 8, "dropout": 0.1},
            "train": {"epochs": 3, "batch_size": 16, "lr": 0.003, "patience": 3, "device": "cpu"}}
ONCE_EACH = {*ORDER} - {dg.AssetKey("cohort_overview"), dg.AssetKey("study_participants")}


def write_study(home: Path) -> None:
    for i, pid in enumerate(LABELLED):
        write_two_class_participant(home / "raw" / pid, gain=0.8 + 0.1 * i)
    write_two_class_participant(home / "raw" / "u01", labelled=False)
    for folder in (home / "raw").iterdir():
        age(folder)  # finished files: the sensor need not wait for them to settle
    (home / "training.json").write_text(json.dumps(TRAINING))


def materialized(instance: dg.DagsterInstance) -> Counter[tuple[str, str | None]]:
    """(asset, participant) -> how many times it was materialized."""
    return Counter((key.to_user_string(), r.partition_key) for key in ORDER
                   for r in instance.fetch_materializations(key, limit=1000).records)


def quiet(instance: dg.DagsterInstance) -> bool:
    active = instance.get_runs(filters=dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED]))
    backfills = [b for b in instance.get_backfills() if b.status.value == "REQUESTED"]
    return not active and not backfills


@pytest.mark.skipif(sys.platform != "linux", reason="runs the daemon as real processes")
def test_headless_and_the_daemon_run_and_store_the_same(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("one-orchestrator")
    headless, ui = root / "headless", root / "ui"
    write_study(headless)
    write_study(ui)
    env = base_env(HAR_AUTOMATION_INTERVAL_S="10")  # the daemon evaluates the conditions every 10 s, not 60

    done = subprocess.run([str(BIN / "har"), "pipeline", "--home", str(headless), "--json"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout)
    assert summary["model"]["status"] == "trained" and summary["overview"]["status"] == "refreshed"
    assert {p["predictions"]["status"] for p in summary["participants"].values()} == {"scored"}

    expected = {(k.to_user_string(), pid) for k in ONCE_EACH for pid in
                (PEOPLE if k.to_user_string() not in {"dataset_split", "scaler", "model", "model_evaluation",
                                                     "registered_model"} else [None])}
    logs = artifacts_dir(tmp_path_factory, "one-orchestrator")
    with processes(logs) as procs:
        procs.start("har-dev", [str(BIN / "har"), "dev", "--home", str(ui), "--host", LOOPBACK,
                                "--port", str(free_port())], env, cwd=ui)
        wait_until("the Dagster instance", lambda: (ui / "dagster_home" / "storage").is_dir(), 120, procs)
        with dg.DagsterInstance.from_config(str(ui / "dagster_home")) as instance:
            seen: list[Counter] = []

            def settled() -> Counter | None:
                """What ran, once everything expected ran and nothing changed over three automation intervals."""
                ran = materialized(instance)
                seen.append(ran if expected <= set(ran) and quiet(instance) else Counter())
                return ran if len(seen) > 6 and seen[-7] == ran else None

            by_daemon = wait_until("the daemon to run the whole chain and stop", settled, 720, procs, interval_s=5)
    with dg.DagsterInstance.from_config(str(headless / "dagster_home")) as instance:
        by_pipeline = materialized(instance)

    assert set(by_pipeline) == set(by_daemon) == expected | {("cohort_overview", None)}
    once = {k: v for k, v in by_pipeline.items() if k[0] in {key.to_user_string() for key in ONCE_EACH}}
    assert set(once.values()) == {1}, f"headless ran something twice: {once}"
    assert {k: by_daemon[k] for k in once} == once, "the daemon ran something a different number of times"

    # what was stored: the same windows, split and registered version; every participant scored window by window
    for pid in PEOPLE:
        for asset in ("windows", "normalized_windows"):
            assert (headless / "assets" / asset / f"{pid}.npz").read_bytes() == \
                (ui / "assets" / asset / f"{pid}.npz").read_bytes(), f"{asset} of {pid}"
        stored = [pl.read_parquet(home / "assets" / "participant_predictions" / f"{pid}.parquet")
                  for home in (headless, ui)]
        assert stored[0].select("window", "start_ms", "model_version").equals(
            stored[1].select("window", "start_ms", "model_version")), pid
    split, registered = ([json.loads((home / "assets" / a / "__all__.json").read_text())["value"]
                          for home in (headless, ui)] for a in ("dataset_split", "registered_model"))
    assert split[0] == split[1]
    assert registered[0]["version"] == registered[1]["version"] == 1
    assert registered[0]["champion"] and registered[1]["champion"]
