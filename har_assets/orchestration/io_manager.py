"""Stores assets as Parquet / NumPy files under a root folder, one file per partition.

Layout: `<base_dir>/<asset>/<partition>.parquet` (DataFrames), `.npz` (WindowSet), or a folder
(RawRecording). Every write goes to a temporary name first and is renamed into place, so a
failed or interrupted run never leaves a half-written file or destroys the previous version.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from har_assets.raw.recording import RawRecording
from har_assets.signal.windowing import WindowSet

# suffix -> (type, writer(obj, path), reader(path))
FORMATS: dict[str, tuple[type, Callable[[Any, Path], None], Callable[[Path], Any]]] = {
    ".parquet": (pl.DataFrame, lambda obj, path: obj.write_parquet(path), pl.read_parquet),
    ".npz": (WindowSet, lambda obj, path: obj.save(path), WindowSet.load),
    "": (RawRecording, lambda obj, path: obj.save(path), RawRecording.load),
}


def _suffix_for(obj: Any) -> str:
    for suffix, (kind, _, _) in FORMATS.items():
        if isinstance(obj, kind):
            return suffix
    raise TypeError(f"cannot store {type(obj).__name__}: expected a DataFrame, WindowSet or RawRecording")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary sibling and rename it over `path` only once the write succeeded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        if tmp.is_dir() and path.exists():
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex}.old")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


class HarFileIOManager(dg.ConfigurableIOManager):
    """Parquet/NPZ/folder store for partitioned and unpartitioned assets."""

    base_dir: str

    def _stem(self, asset_key: dg.AssetKey, partition: str | None) -> Path:
        folder = Path(self.base_dir, *asset_key.path)
        return folder / partition if partition is not None else folder / "__all__"

    def path_for(self, asset_key: dg.AssetKey, partition: str | None) -> Path | None:
        """The stored file of an asset partition, or None if it was never materialized."""
        stem = self._stem(asset_key, partition)
        for suffix in FORMATS:
            candidate = stem.with_name(stem.name + suffix)
            if candidate.exists() and (suffix != "" or candidate.is_dir()):
                return candidate
        return None

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """Store one value, or for a step over several partitions a {partition: value} dict (one file each)."""
        if obj is None:
            return
        if not context.has_asset_partitions:
            self._store(context.asset_key, None, obj)
            return
        partitions = context.asset_partition_keys
        if len(partitions) == 1:
            path = self._store(context.asset_key, partitions[0], obj)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})
            return
        if not isinstance(obj, dict) or set(obj) != set(partitions):
            raise TypeError(f"a step over {len(partitions)} partitions of {context.asset_key.to_user_string()} "
                            "must return a dict with exactly those partitions")
        for partition in partitions:
            self._store(context.asset_key, partition, obj[partition])

    def _store(self, asset_key: dg.AssetKey, partition: str | None, obj: Any) -> Path:
        suffix = _suffix_for(obj)
        path = self._stem(asset_key, partition)
        path = path.with_name(path.name + suffix)
        _, writer, _ = FORMATS[suffix]
        atomic_write(path, lambda tmp: writer(obj, tmp))
        return path

    def _load(self, asset_key: dg.AssetKey, partition: str | None) -> Any:
        path = self.path_for(asset_key, partition)
        if path is None:
            where = f" partition '{partition}'" if partition else ""
            raise FileNotFoundError(f"asset {asset_key.to_user_string()}{where} has not been materialized")
        _, _, reader = FORMATS[path.suffix if path.suffix in FORMATS else ""]
        return reader(path)

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        if not context.has_asset_partitions:
            return self._load(key, None)
        partitions = context.asset_partition_keys
        consumer_partitioned = context.has_partition_key
        if consumer_partitioned and len(partitions) == 1:
            return self._load(key, partitions[0])
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions", False))
        loaded = {}
        for partition in partitions:
            if allow_missing and self.path_for(key, partition) is None:
                continue
            loaded[partition] = self._load(key, partition)
        return loaded
