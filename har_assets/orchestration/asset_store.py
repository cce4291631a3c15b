"""The asset store's resources: one IO manager per stored format, all under one base (`HAR_ASSETS_URI`)."""

from __future__ import annotations

from har_assets.orchestration.io_manager import (
    HarStoreIOManager,
    ParquetIOManager,
    RecordingIOManager,
    WindowsIOManager,
)
from har_assets.orchestration.json_io import JsonIOManager

RECORDING_IO = "har_recordings"
TABLE_IO = "har_tables"
WINDOWS_IO = "har_windows"
JSON_IO = "har_json"

FORMATS: dict[str, type[HarStoreIOManager]] = {
    RECORDING_IO: RecordingIOManager, TABLE_IO: ParquetIOManager, WINDOWS_IO: WindowsIOManager, JSON_IO: JsonIOManager,
}


def store_resources(base_uri: str) -> dict[str, HarStoreIOManager]:
    """The IO manager resources of an asset store at `base_uri` (a folder or e.g. `s3://bucket/prefix`)."""
    return {key: manager(base_uri=base_uri) for key, manager in FORMATS.items()}
