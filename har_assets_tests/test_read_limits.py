"""The reader's limits (`$HAR_HOME/reading.json`): decompression bombs, far cells and overlong files are refused
before they are decoded, with the participant, the file and the setting to raise named."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import dagster as dg
import pytest

from har_assets.config import PreprocessConfig
from har_assets.definitions import build_resources
from har_assets.errors import RawDataError
from har_assets.home import HarHome, HomeConfigError
from har_assets.orchestration.preprocessing import raw_recording
from har_assets.orchestration.resources import RawStore
from har_assets.raw.limits import DEFAULT_LIMITS, ReadLimits
from har_assets.raw.reader import UNPACK_CHUNK, read_participant
from har_assets_tests.rawfiles import (
    SHEET_START,
    T0,
    labels_table,
    sensor_header,
    understate_sizes,
    write_participant,
    write_xlsx,
    write_xlsx_bomb,
    xlsx_row,
)

CFG = PreprocessConfig()
RSS_PROBE = """
import resource, sys
from pathlib import Path
from har_assets.config import PreprocessConfig
from har_assets.errors import RawDataError
from har_assets.raw.reader import read_participant

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_participant(Path(sys.argv[1]), PreprocessConfig())
except RawDataError as exc:
    print(exc)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "accelerometer.xlsx"
    write_xlsx_bomb(path)
    return path


@pytest.fixture
def pdir(tmp_path: Path) -> Path:
    return write_participant(tmp_path / "p07", seconds=12)  # 48 rows per sensor file


def _with_accelerometer(folder: Path, xlsx: Path) -> Path:
    (folder / "accelerometer.csv").unlink()
    shutil.copy(xlsx, folder / "accelerometer.xlsx")
    return folder


def _raises(folder: Path, *patterns: str, limits: ReadLimits = DEFAULT_LIMITS) -> None:
    with pytest.raises(RawDataError) as info:
        read_participant(folder, CFG, limits)
    for pattern in ("^participant 'p07': ", *patterns):
        assert re.search(pattern, str(info.value)), f"{pattern!r} not in {info.value}"


def test_xlsx_bomb_is_refused_without_decoding(pdir: Path, bomb: Path) -> None:
    _with_accelerometer(pdir, bomb)
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, str(pdir)], capture_output=True, text=True, check=True)
    message, grown_kib = out.stdout.strip().splitlines()
    assert re.match(r"participant 'p07': accelerometer\.xlsx: workbook unpacks to more than 100 times its size on "
                    r"disk.*reading\.json max_xlsx_ratio", message), message
    assert int(grown_kib) < 100 * 1024, f"peak memory grew by {int(grown_kib) // 1024} MiB"  # reading it: ~900 MiB


def test_bomb_that_understates_its_size_is_refused(pdir: Path, bomb: Path) -> None:
    understate_sizes(_with_accelerometer(pdir, bomb) / "accelerometer.xlsx")
    _raises(pdir, r"accelerometer\.xlsx: workbook unpacks to more than 100 times", "max_xlsx_ratio")


def test_xlsx_unpacking_past_max_xlsx_mb(tmp_path: Path) -> None:
    folder = write_participant(tmp_path / "p07", seconds=12, fmt="xlsx")
    _raises(folder, r"accelerometer\.xlsx: workbook unpacks to more than 0.01 MiB", "reading.json max_xlsx_mb",
            limits=ReadLimits(max_xlsx_mb=0.01))


def test_cell_past_the_last_column_is_refused_before_decoding(pdir: Path, tmp_path: Path) -> None:
    # one such cell at XFD200000 would make the decoder ask for 100 GB and abort the process
    path = tmp_path / "accelerometer.xlsx"
    write_xlsx(path, [xlsx_row(sensor_header("accelerometer")), xlsx_row(["note"], refs=["AH2"])])
    _with_accelerometer(pdir, path)
    _raises(pdir, r"accelerometer\.xlsx: the sheet has a cell in column AH, past column AF", "max_columns")


def test_far_cell_split_between_two_chunks_is_found(pdir: Path, tmp_path: Path) -> None:
    header, far = xlsx_row(sensor_header("accelerometer")), xlsx_row(["note"], refs=["AH2"])
    at = UNPACK_CHUNK - 4  # ` r="` in the first chunk the reader unpacks, `AH2"` in the second
    padding = at - far.index(b' r="') - len(SHEET_START) - len(header) - len(xlsx_row([""]))
    path = tmp_path / "accelerometer.xlsx"
    write_xlsx(path, [header, xlsx_row(["x" * padding]), far])
    with zipfile.ZipFile(path) as book:
        assert book.read("xl/worksheets/sheet1.xml")[at:at + 8] == b' r="AH2"'
    _raises(_with_accelerometer(pdir, path), r"accelerometer\.xlsx: the sheet has a cell in column AH", "max_columns",
            limits=ReadLimits(max_xlsx_ratio=100_000))  # the padding unpacks 1000-fold


def test_rows_past_max_rows(pdir: Path, tmp_path: Path) -> None:
    limits = ReadLimits(max_rows=40)
    _raises(pdir, r"accelerometer\.csv: more than 40 data rows", r"reading\.json max_rows", limits=limits)
    xlsx = write_participant(tmp_path / "xlsx" / "p07", seconds=12, fmt="xlsx")  # cells at A2..F49
    _raises(xlsx, r"accelerometer\.xlsx: the sheet has a cell in row 42, past 40 data rows", "max_rows",
            limits=limits)
    unplaced = tmp_path / "accelerometer.xlsx"  # cells without references: counted once decoded
    write_xlsx(unplaced, [xlsx_row(sensor_header("accelerometer")), *[xlsx_row(["x"] * 6)] * 41])
    _raises(_with_accelerometer(pdir, unplaced), r"accelerometer\.xlsx: more than 40 data rows", limits=limits)


def test_labels_past_max_rows(pdir: Path) -> None:
    labels_table(T0, [(i / 10, (i + 1) / 10, "sitting") for i in range(49)]).write_csv(pdir / "labels.csv")
    _raises(pdir, r"labels\.csv: more than 48 data rows", limits=ReadLimits(max_rows=48))


def test_file_past_max_file_mb(pdir: Path) -> None:
    _raises(pdir, r"accelerometer\.csv: file is [\d.]+ MiB, more than 0.001 MiB", r"reading\.json max_file_mb",
            limits=ReadLimits(max_file_mb=0.001))


def test_reading_json_raises_the_limits(pdir: Path, tmp_path: Path) -> None:
    home = HarHome(tmp_path / "home")
    home.root.mkdir()
    assert home.read_limits() == ReadLimits()
    (home.root / "reading.json").write_text(json.dumps({"max_rows": 40}))
    _raises(pdir, r"accelerometer\.csv: more than 40 data rows", limits=home.read_limits())
    (home.root / "reading.json").write_text(json.dumps({"max_rows": 48}))
    rec = read_participant(pdir, CFG, home.read_limits())
    assert rec.accel.height == 48 * 25
    store = RawStore.from_limits(str(home.raw), home.read_limits())
    assert store.limits() == ReadLimits(max_rows=48)
    assert RawStore(root=str(home.raw)).limits() == ReadLimits()


def test_raw_recording_reads_under_the_homes_limits(tmp_path: Path) -> None:
    home = HarHome(tmp_path / "home")
    write_participant(home.raw / "p07", seconds=12)
    (home.root / "reading.json").write_text(json.dumps({"max_rows": 40}))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("participants", ["p07"])
        result = dg.materialize([raw_recording], partition_key="p07", instance=instance,
                                resources=build_resources(home), raise_on_error=False)
    failure = next(e.step_failure_data.user_failure_data.description for e in result.get_step_failure_events())
    assert failure == ("participant 'p07': accelerometer.csv: more than 40 data rows (raise reading.json max_rows "
                       "to read it)")


@pytest.mark.parametrize(
    ("content", "pattern"),
    [('{"max_rows": "many"}', r"reading\.json: max_rows: Input should be a valid integer"),
     ('{"max_rows": 0}', r"reading\.json: max_rows: Input should be greater than 0"),
     ('{"max_row": 5}', r"reading\.json: max_row: Extra inputs are not permitted"),
     ("{not json", r"reading\.json: \(file\): Invalid JSON")],
)
def test_malformed_reading_json_names_file_and_field(tmp_path: Path, content: str, pattern: str) -> None:
    (tmp_path / "reading.json").write_text(content)
    with pytest.raises(HomeConfigError, match=pattern):
        HarHome(tmp_path).read_limits()


def test_default_limits_read_an_xlsx(tmp_path: Path) -> None:
    rec = read_participant(write_participant(tmp_path / "p07", seconds=12, fmt="xlsx"), CFG)
    assert rec.accel.height == rec.gyro.height == 48 * 25
