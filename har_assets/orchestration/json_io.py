"""Stores the small cross-participant assets (split, scaler, model and evaluation records) as JSON.

Layout: `<base_dir>/<asset>/__all__.json`, written atomically. Each file names the type of its
value, so a `ChannelScaler` or `DatasetSplit` comes back as one; anything else must be plain JSON.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.split import DatasetSplit
from har_assets.orchestration.io_manager import atomic_write

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


class JsonIOManager(dg.ConfigurableIOManager):
    """JSON files for unpartitioned assets (partitioned ones use HarFileIOManager)."""

    base_dir: str

    def path_for(self, asset_key: dg.AssetKey) -> Path:
        return Path(self.base_dir, *asset_key.path, "__all__.json")

    def stored_json(self, asset_key: dg.AssetKey) -> Any:
        """The stored value as plain JSON (no type conversion), or None if never materialized."""
        path = self.path_for(asset_key)
        return json.loads(path.read_text())["value"] if path.is_file() else None

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if context.has_asset_partitions:
            raise ValueError(f"{context.asset_key.to_user_string()}: JsonIOManager stores unpartitioned assets only")
        text = json.dumps(encode(obj), indent=2, sort_keys=True)
        path = self.path_for(context.asset_key)
        atomic_write(path, lambda tmp: tmp.write_text(text))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        path = self.path_for(context.asset_key)
        if not path.is_file():
            raise FileNotFoundError(f"asset {context.asset_key.to_user_string()} has not been materialized ({path})")
        return decode(json.loads(path.read_text()))
