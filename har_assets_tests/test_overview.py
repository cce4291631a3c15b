"""cohort_overview on a real instance: a row per registered participant with what every stage found, the person
whose watch sits differently flagged, pictures small, and the automation refreshing it when a participant changes."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from har_assets.cli import prepare_home
from har_assets.definitions import ASSETS, build_definitions, build_resources
from har_assets.home import HarHome
from har_assets.orchestration.overview import cohort_overview
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.training import dataset_split
from har_assets.settings import HarSettings
from har_assets_tests.rawfiles import age
from har_assets_tests.trainfiles import write_two_class_participant

PIDS = ["p01", "p02", "p03", "p04", "p05", "p06"]


def rotate_watch(folder: Path) -> None:
    """The watch worn turned a quarter: gravity along x instead of z (the accelerometer's x and z swapped)."""
    path = folder / "accelerometer.csv"
    table = pl.read_csv(path, infer_schema_length=0)
    table.rename({"calibrated_accel_x": "calibrated_accel_z", "calibrated_accel_z": "calibrated_accel_x"}) \
        .select(table.columns).write_csv(path)


@pytest.fixture
def study(tmp_path: Path):
    home = HarHome(tmp_path / "home")
    for i, pid in enumerate(PIDS):
        write_two_class_participant(home.raw / pid, seconds=20, gain=0.8 + 0.1 * i)
    rotate_watch(home.raw / "p04")
    (home.raw / "p06" / "participant.json").write_text(json.dumps({"units": {"accelerometer": "g"}}))  # wrong
    for folder in home.raw.iterdir():
        age(folder)
    prepare_home(home, demo_participants=0, demo_minutes=1, seed=0)
    resources = build_resources(home)
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        instance.add_dynamic_partitions("participants", PIDS)
        for pid in PIDS:  # p06 fails its blocking units check: stored, flagged, no windows
            dg.materialize(PREPROCESSING_ASSETS, partition_key=pid, instance=instance, resources=resources,
                           raise_on_error=False)
        assert dg.materialize(ASSETS, selection=[dataset_split], instance=instance, resources=resources).success
        yield home, instance, resources


def png_of(markdown: str) -> bytes:
    return base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown).group(1))


def test_a_row_per_participant_and_the_rotated_watch_stands_out(study) -> None:
    home, instance, resources = study
    result = dg.materialize(ASSETS, selection=[cohort_overview], instance=instance, resources=resources)
    assert result.success
    meta = result.asset_materializations_for_node("cohort_overview")[0].metadata
    rows = {r.data["participant"]: r.data for r in meta["participants"].records}
    assert sorted(rows) == PIDS and meta["dagster/row_count"].value == len(PIDS)
    stored = pl.read_parquet(home.assets / "cohort_overview" / "__all__.parquet")
    assert stored["participant"].to_list() == PIDS
    assert "acc_x" in rows["p04"]["differs_from_cohort"] or "acc_z" in rows["p04"]["differs_from_cohort"]
    assert all(rows[p]["differs_from_cohort"] == "no" for p in ("p01", "p02", "p03", "p05"))
    assert meta["participants_differing"].value == 1
    assert rows["p06"]["windows"] == 0 and "raw_recording.accel_magnitude_plausible" in rows["p06"]["failed_checks"]
    assert meta["participants_failing_checks"].value == 1
    assert {rows[p]["split_role"] for p in PIDS[:5]} <= {"train", "validation", "test"}
    assert rows["p06"]["split_role"] == "not in a split" and rows["p01"]["drift"] == "not scored"
    assert rows["p01"]["accelerometer_hz"] == pytest.approx(100, rel=0.01)
    assert rows["p01"]["windows_per_class"].startswith("hand_tapping=") and rows["p01"]["labelled_share"] > 0.5
    for name in ("class_distribution", "channel_levels", "channel_correlations"):
        png = png_of(meta[name].value)
        assert png.startswith(b"\x89PNG") and len(png) <= 60_000, name


def test_automation_refreshes_it_when_a_participant_changes(study) -> None:
    home, instance, resources = study
    defs = build_definitions(HarSettings(home=home.root))
    first = dg.evaluate_automation_conditions(defs, instance)
    assert first.get_num_requested(dg.AssetKey("cohort_overview")) == 1  # windows and a split since (never) made
    assert dg.materialize(ASSETS, selection=[cohort_overview], instance=instance, resources=resources).success
    quiet = dg.evaluate_automation_conditions(defs, instance, cursor=first.cursor)
    assert quiet.get_num_requested(dg.AssetKey("cohort_overview")) == 0
    assert dg.materialize(PREPROCESSING_ASSETS, partition_key="p02", instance=instance, resources=resources).success
    again = dg.evaluate_automation_conditions(defs, instance, cursor=quiet.cursor)
    assert again.get_num_requested(dg.AssetKey("cohort_overview")) == 1


def test_an_empty_study_has_an_empty_overview(tmp_path: Path) -> None:
    home = HarHome(tmp_path / "empty")
    prepare_home(home, demo_participants=0, demo_minutes=1, seed=0)
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        result = dg.materialize(ASSETS, selection=[cohort_overview], instance=instance,
                                resources=build_resources(home))
    meta = result.asset_materializations_for_node("cohort_overview")[0].metadata
    assert meta["dagster/row_count"].value == 0 and "channel_levels" not in meta
