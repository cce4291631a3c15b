"""Stores the small cross-participant assets (split, scaler, model and evaluation records) as JSON.

Layout: `<base>/<asset>/__all__.json`, one object written atomically. Each file names the type of its
value, so a `ChannelScaler`, `DatasetSplit` or training record comes back as one; anything else must be plain
JSON. A record stored as plain JSON before its type was named here (by an older version) loads as the type its
reader declares, or fails naming the asset when its fields do not fit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import dagster as dg
from pydantic import BaseModel, ValidationError

from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.split import DatasetSplit
from har_assets.orchestration.io_manager import HarStoreIOManager
from har_assets.orchestration.training_records import ModelEvaluation, RegisteredModel, TrainedModel

if TYPE_CHECKING:
    from upath import UPath

T = TypeVar("T")


def _pydantic(kind: type[BaseModel]) -> tuple[type, Callable[[Any], Any], Callable[[Any], Any]]:
    return kind, lambda obj: obj.model_dump(mode="json"), kind.model_validate


# type name -> (type, to JSON-able, from JSON-able)
TYPES: dict[str, tuple[type, Callable[[Any], Any], Callable[[Any], Any]]] = {
    "ChannelScaler": (ChannelScaler, lambda obj: obj.to_dict(), ChannelScaler.from_dict),
    **{kind.__name__: _pydantic(kind) for kind in (DatasetSplit, TrainedModel, ModelEvaluation, RegisteredModel)},
}


class StoredValueError(ValueError):
    """A stored value that is not of the type its reader declares."""


def encode(obj: Any) -> dict:
    for name, (kind, dump, _) in TYPES.items():
        if isinstance(obj, kind):
            return {"type": name, "value": dump(obj)}
    if isinstance(obj, dict | list | str | int | float | bool):
        return {"type": "json", "value": obj}
    raise TypeError(f"cannot store {type(obj).__name__} as JSON: expected plain JSON or one of {sorted(TYPES)}")


def decode(doc: dict) -> Any:
    kind = doc["type"]
    return doc["value"] if kind == "json" else TYPES[kind][2](doc["value"])


def as_declared(value: Any, kind: Any, asset_key: dg.AssetKey) -> Any:
    """`value` as `kind` when that is one of TYPES: plain JSON (stored before the type was named) is validated into
    it; StoredValueError, naming the asset, when it does not fit."""
    load = next((load for known, _, load in TYPES.values() if known is kind), None)
    if load is None or isinstance(value, kind):
        return value
    asset = asset_key.to_user_string()
    try:
        return load(value)
    except (ValidationError, TypeError, KeyError) as exc:
        raise StoredValueError(f"the stored {asset} is not a {kind.__name__} (stored by another version of "
                               f"har-assets?): re-materialize {asset}. {exc}") from exc


class JsonIOManager(HarStoreIOManager):
    """JSON objects for unpartitioned assets (partitioned ones use the other formats)."""

    extension: ClassVar[str] = ".json"
    kind: ClassVar[type] = object

    def to_bytes(self, obj: Any) -> bytes:
        return json.dumps(encode(obj), indent=2, sort_keys=True).encode()

    def from_bytes(self, data: bytes) -> Any:
        return decode(json.loads(data))

    def stored_json(self, asset_key: dg.AssetKey) -> Any:
        """The stored value as plain JSON (no type conversion), or None if never materialized."""
        path = self.path_of(asset_key)
        try:
            return json.loads(path.read_bytes())["value"]
        except FileNotFoundError:
            return None

    def stored(self, asset_key: dg.AssetKey, kind: type[T]) -> T | None:
        """The stored value as `kind` (see `as_declared`), or None if never materialized."""
        try:
            value = self.load(asset_key)
        except FileNotFoundError:
            return None
        return as_declared(value, kind, asset_key)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        return as_declared(super().load_from_path(context, path), context.dagster_type.typing_type, context.asset_key)

    def load_input(self, context: dg.InputContext) -> Any:
        try:
            return super().load_input(context)
        except StoredValueError as exc:  # stays wrong until re-materialized: no retry
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if context.has_asset_partitions:
            raise ValueError(f"{context.asset_key.to_user_string()}: JsonIOManager stores unpartitioned assets only")
        super().handle_output(context, obj)
