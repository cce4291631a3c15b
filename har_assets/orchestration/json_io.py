"""Stores the small cross-participant assets (split, scaler, model and evaluation records) as JSON.

Layout: `<base>/<asset>/__all__.json`, one object written atomically. Each file names the type of its
value, so a `ChannelScaler` or `DatasetSplit` comes back as one; anything else must be plain JSON.
"""

import json
from collections.abc import Callable
from typing import Any, ClassVar

import dagster as dg

from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.split import DatasetSplit
from har_assets.orchestration.io_manager import HarStoreIOManager

# type name -> (type, to JSON-able, from JSON-able)
TYPES: dict[str, tuple[type, Callable[[Any], Any], Callable[[Any], Any]]] = {
    "ChannelScaler": (ChannelScaler, lambda obj: obj.to_dict(), ChannelScaler.from_dict),
    "DatasetSplit": (DatasetSplit, lambda obj: obj.model_dump(mode="json"), DatasetSplit.model_validate),
}


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

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if context.has_asset_partitions:
            raise ValueError(f"{context.asset_key.to_user_string()}: JsonIOManager stores unpartitioned assets only")
        super().handle_output(context, obj)
