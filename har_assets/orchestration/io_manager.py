"""Stores assets on a local folder or an object store (`HAR_ASSETS_URI`), one object per partition.

Dagster's `UPathIOManager` does the paths and the partition loading (a dict for a step over many
partitions, `allow_missing_partitions`); each subclass is one format, chosen per asset by its
`io_manager_key`. Layout: `<base>/<asset>/<partition><extension>`, `<base>/<asset>/__all__<extension>`
for unpartitioned assets. Every write is one object (`objectstore.write_atomically`).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, ClassVar

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from har_assets.objectstore import is_local, local, store_path, write_atomically
from har_assets.raw.recording import RawRecording
from har_assets.signal.windowing import WindowSet

if TYPE_CHECKING:
    from upath import UPath

UNPARTITIONED = "__all__"


class HarStoreIOManager(dg.ConfigurableIOManager, dg.UPathIOManager):
    """One format of the asset store; subclasses set `extension` and `kind` (whose `to_bytes`/`from_bytes` are the
    format unless they override them)."""

    base_uri: str
    _base_path: Any = PrivateAttr()
    extension: ClassVar[str]
    kind: ClassVar[type]

    def model_post_init(self, context: Any, /) -> None:
        self._base_path = store_path(self.base_uri)

    def to_bytes(self, obj: Any) -> bytes:
        return obj.to_bytes()

    def from_bytes(self, data: bytes) -> Any:
        return self.kind.from_bytes(data)

    def get_asset_relative_path(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        from upath import UPath

        path = context.asset_key.path
        return UPath(*path) if context.has_asset_partitions else UPath(*path, UNPARTITIONED)

    def make_directory(self, path: UPath) -> None:
        if is_local(path):  # an object store has no directories
            local(path).mkdir(parents=True, exist_ok=True)

    def path_of(self, asset_key: dg.AssetKey, partition: str | None = None) -> UPath:
        stem = self._base_path.joinpath(*asset_key.path)
        return stem / f"{partition or UNPARTITIONED}{self.extension}"

    def partition_paths(self, context: dg.InputContext | dg.OutputContext) -> dict[str, UPath]:
        """The object of each partition of the step."""
        return {pid: self.path_of(context.asset_key, pid) for pid in context.asset_partition_keys}

    def exists(self, asset_key: dg.AssetKey, partition: str | None = None) -> bool:
        return self.path_of(asset_key, partition).exists()

    def load(self, asset_key: dg.AssetKey, partition: str | None = None) -> Any:
        """The stored value (outside a run: `har pipeline`, the search job)."""
        return self._read(self.path_of(asset_key, partition), asset_key, partition)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        if not isinstance(obj, self.kind):
            raise TypeError(f"{context.asset_key.to_user_string()}: {type(self).__name__} stores "
                            f"{self.kind.__name__}, got {type(obj).__name__}")
        write_atomically(path, self.to_bytes(obj))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        partition = path.name.removesuffix(self.extension)
        return self._read(path, context.asset_key, None if partition == UNPARTITIONED else partition)

    def _read(self, path: UPath, asset_key: dg.AssetKey, partition: str | None) -> Any:
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:  # still a FileNotFoundError: allow_missing_partitions relies on it
            where = f" partition '{partition}'" if partition else ""
            raise FileNotFoundError(f"asset {asset_key.to_user_string()}{where} has not been materialized "
                                    f"({path})") from exc
        return self.from_bytes(data)

    def load_input(self, context: dg.InputContext) -> Any:
        try:
            return super().load_input(context)
        except FileNotFoundError as exc:  # nothing stored: final, unlike a store that does not answer
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    def load_partitions(self, context: dg.InputContext) -> Any:
        """One partition's value, or {partition: value} for several, logged once per step instead of once per
        partition as the base class does (each log line is an event-log write: 10 s for 1,000 partitions)."""
        keys = context.asset_partition_keys
        if len(keys) == 1:
            return super().load_partitions(context)
        paths = self.partition_paths(context)
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions", False))
        context.log.debug(f"loading {len(keys)} partitions of {context.asset_key.to_user_string()} "
                          f"from {self._base_path}")
        values, missing = {}, []
        for key in keys:
            try:
                values[key] = self.load_from_path(context, paths[key])
            except FileNotFoundError:
                if not allow_missing:
                    raise
                missing.append(key)
        if missing:
            context.log.warning(f"{len(missing)} partitions of {context.asset_key.to_user_string()} are not "
                                f"materialized and were left out: {', '.join(missing[:20])}"
                                + (" ..." if len(missing) > 20 else ""))
        return values

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """One value, or for a step over several partitions a {partition: value} dict (one object each)."""
        if obj is None:
            return
        if not context.has_asset_partitions or len(context.asset_partition_keys) == 1:
            super().handle_output(context, obj)
            return
        paths = self.partition_paths(context)
        if not isinstance(obj, dict) or set(obj) != set(paths):
            raise TypeError(f"a step over {len(paths)} partitions of {context.asset_key.to_user_string()} "
                            "must return a dict with exactly those partitions")
        for partition, path in paths.items():
            self.make_directory(path.parent)
            self.dump_to_path(context, obj[partition], path)


class ParquetIOManager(HarStoreIOManager):
    """Tables (polars DataFrames) as Parquet."""

    extension: ClassVar[str] = ".parquet"
    kind: ClassVar[type] = pl.DataFrame

    def to_bytes(self, obj: pl.DataFrame) -> bytes:
        buffer = io.BytesIO()
        obj.write_parquet(buffer)
        return buffer.getvalue()

    def from_bytes(self, data: bytes) -> pl.DataFrame:
        return pl.read_parquet(data)


class WindowsIOManager(HarStoreIOManager):
    """Window sets as NumPy .npz (loaded without pickle)."""

    extension: ClassVar[str] = ".npz"
    kind: ClassVar[type] = WindowSet


class RecordingIOManager(HarStoreIOManager):
    """Raw recordings as one zip object each (three Parquet tables and recording.json)."""

    extension: ClassVar[str] = ".zip"
    kind: ClassVar[type] = RawRecording

    def _read(self, path: UPath, asset_key: dg.AssetKey, partition: str | None) -> Any:
        legacy = path.with_name(path.name.removesuffix(self.extension))  # a folder, before recordings were objects
        if is_local(path) and not path.exists() and local(legacy).is_dir():
            return RawRecording.load_folder(local(legacy))
        return super()._read(path, asset_key, partition)
