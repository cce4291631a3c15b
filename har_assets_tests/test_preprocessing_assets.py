"""The per-participant assets through a real Dagster instance and the file IO manager."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from har_assets.config import GravityMode, PreprocessConfig
from har_assets.definitions import build_definitions, build_resources
from har_assets.home import HarHome
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
from har_assets.orchestration.resources import PreprocessingResource
from har_assets.raw.layout import content_fingerprint, locate_files
from har_assets.settings import HarSettings
from har_assets.signal.windowing import WindowSet
from har_assets_tests.rawfiles import edit_cell, write_participant


@pytest.fixture
def home(tmp_path: Path) -> HarHome:
    home = HarHome(tmp_path / "home")
    write_participant(home.raw / "p01", seconds=30, gap_after_s=12, gap_s=3)
    write_participant(home.raw / "p02", seconds=25, fmt="xlsx")
    return home


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("participants", ["p01", "p02", "p03"])
        yield inst


def run(home: HarHome, instance: dg.DagsterInstance, pid: str, **resources) -> dg.ExecuteInJobResult:
    return dg.materialize(PREPROCESSING_ASSETS, partition_key=pid, instance=instance,
                          resources={**build_resources(home), **resources}, raise_on_error=False)


def failure_description(result: dg.ExecuteInJobResult) -> str:
    return next(e.step_failure_data.user_failure_data.description for e in result.get_step_failure_events())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_definitions_load(home: HarHome) -> None:
    defs = build_definitions(HarSettings(home=home.root))
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("preprocess_participant")
    assert {n.name for n in job.graph.node_defs} >= {"raw_recording", "fused_recording", "filtered_recording",
                                                     "windows"}


def test_one_participant_end_to_end(home: HarHome, instance: dg.DagsterInstance) -> None:
    for pid in ("p01", "p02"):
        result = run(home, instance, pid)
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert len(checks) == 8 and all(c.passed for c in checks)
    raw = result.asset_materializations_for_node("raw_recording")[0]
    assert raw.tags["dagster/data_version"] == content_fingerprint(locate_files(home.raw / "p02"))
    mat = run(home, instance, "p01").asset_materializations_for_node("fused_recording")[0].metadata
    assert mat["segments"].value == 2 and mat["gaps_accelerometer"].value == 1
    assert mat["accelerometer_native_hz"].value == pytest.approx(100, rel=0.01)
    fused = pl.read_parquet(home.assets / "fused_recording" / "p01.parquet")
    assert mat["dagster/row_count"].value == fused.height
    assert [c.name for c in mat["dagster/column_schema"].schema.columns] == fused.columns
    png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", mat["plot"].value)  # the recording's picture
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")
    assert len(base64.b64decode(png.group(1))) == mat["plot_bytes"].value <= 60_000
    windows = WindowSet.load(home.assets / "windows" / "p01.npz")
    assert windows.X.shape[1:] == (200, len(PreprocessConfig().channels)) and windows.class_counts()
    assert (home.assets / "raw_recording" / "p01.zip").is_file()
    assert (home.assets / "fused_recording" / "p01.parquet").is_file()


def test_bad_participant_fails_alone_and_keeps_earlier_results(home: HarHome, instance: dg.DagsterInstance) -> None:
    assert run(home, instance, "p01").success
    stored = home.assets / "windows" / "p01.npz"
    before = digest(stored)

    write_participant(home.raw / "p03", seconds=25)
    edit_cell(home.raw / "p03" / "gyroscope.csv", "calibrated_gyro_y", 2, "[1, 2]")
    result = run(home, instance, "p03")
    assert not result.success
    assert failure_description(result) == ("participant 'p03': gyroscope.csv, column 'calibrated_gyro_y', row 4: "
                                           "list has 2 values but sample_time_offset has 25")
    assert not (home.assets / "raw_recording" / "p03.zip").exists()

    # p01's files are broken later: the failed re-run leaves the earlier materialization intact
    edit_cell(home.raw / "p01" / "accelerometer.csv", "timestamp", 0, "garbage")
    result = run(home, instance, "p01")
    assert not result.success and "participant 'p01': accelerometer.csv, column 'timestamp'" in \
        failure_description(result)
    assert digest(stored) == before
    assert not list(stored.parent.glob(".*tmp")), "temporary files left behind"


def test_wrong_unit_blocks_downstream(home: HarHome, instance: dg.DagsterInstance) -> None:
    (home.raw / "p01" / "participant.json").write_text(json.dumps({"units": {"accelerometer": "g"}}))
    result = run(home, instance, "p01")
    assert not result.success
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "accel_magnitude_plausible")
    assert not check.passed and "is the unit really g" in check.metadata["detail"].value
    assert not (home.assets / "windows" / "p01.npz").exists()


def test_gravity_mode_from_resource_config(home: HarHome, instance: dg.DagsterInstance) -> None:
    cfg = PreprocessConfig(gravity=GravityMode.KEEP, window_step=50)
    result = run(home, instance, "p02", preprocessing=PreprocessingResource.from_config(cfg))
    assert result.success
    ws = WindowSet.load(home.assets / "windows" / "p02.npz")
    assert ws.channels == cfg.channels and ws.X.shape[2] == 6
    assert np.mean(ws.X[:, :, 2]) == pytest.approx(9.80665, abs=0.01)
    filtered = result.asset_materializations_for_node("filtered_recording")[0].metadata
    assert filtered["gravity"].value == "keep"


def test_resource_mirrors_config_fields() -> None:
    cfg = PreprocessConfig(gravity=GravityMode.REMOVE, activities=("a", "b"), window_size=100, window_step=25)
    assert PreprocessingResource.from_config(cfg).to_config() == cfg
    assert set(PreprocessingResource.model_fields) >= set(PreprocessConfig.model_fields)
