"""Typed training records in the JSON asset store, and MLflow written through explicit clients: records stored as
plain JSON by older versions load as their types (or fail naming the asset), and runs land in the resource's store
whatever MLflow's process-global one is."""

import json
import os
from pathlib import Path

import dagster as dg
import mlflow
import pytest

from har_assets.ml.mlflow_store import global_uris, log_batch
from har_assets.orchestration.json_io import JsonIOManager, StoredValueError, encode
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.retries import TRANSIENT_RETRY
from har_assets.orchestration.training_records import TrainedModel

MODEL = dg.AssetKey("model")
# the `model` asset's value as the dict record older versions stored (type "json")
LEGACY_MODEL = {"mlflow_run_id": "0123abcd", "model_uri": "models:/m-0123abcd", "classes": ["sitting", "walking"],
                "train_windows": 120, "validation_windows": 30, "best_epoch": 3, "epochs_run": 5,
                "best_val_macro_f1": 0.81, "stopped_early": True, "device": "cpu", "train_seconds": 12.5}


def _store_legacy(tmp_path: Path, value: dict) -> JsonIOManager:
    store = JsonIOManager(base_uri=str(tmp_path / "assets"))
    path = tmp_path / "assets" / "model" / "__all__.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"type": "json", "value": value}))
    return store


@dg.asset(retry_policy=TRANSIENT_RETRY)
def run_of_model(model: TrainedModel) -> str:
    """Reads the stored `model` as its declared type, as `model_evaluation` and `registered_model` do."""
    return model.mlflow_run_id


def _read_in_a_run(store: JsonIOManager) -> dg.ExecuteInProcessResult:
    stored_model = dg.AssetSpec(MODEL).with_io_manager_key("har_json")
    with dg.instance_for_test() as instance:
        return dg.materialize([stored_model, run_of_model], selection=[run_of_model], instance=instance,
                              resources={"har_json": store}, raise_on_error=False)


def test_typed_records_store_the_json_of_the_dict_records_they_replace() -> None:
    assert encode(TrainedModel(**LEGACY_MODEL)) == {"type": "TrainedModel", "value": LEGACY_MODEL}


def test_a_record_stored_as_plain_json_loads_as_its_type(tmp_path: Path) -> None:
    store = _store_legacy(tmp_path, LEGACY_MODEL)
    assert store.stored(MODEL, TrainedModel) == TrainedModel(**LEGACY_MODEL)  # `har pipeline`'s model summary
    assert store.stored(dg.AssetKey("registered_model"), TrainedModel) is None  # never materialized
    result = _read_in_a_run(store)
    assert result.success and result.output_for_node("run_of_model") == "0123abcd"


def test_a_stored_record_that_does_not_fit_fails_naming_the_asset_without_retries(tmp_path: Path) -> None:
    store = _store_legacy(tmp_path, {k: v for k, v in LEGACY_MODEL.items() if k != "device"})
    with pytest.raises(StoredValueError, match=r"the stored model is not a TrainedModel.*re-materialize model"):
        store.stored(MODEL, TrainedModel)
    result = _read_in_a_run(store)
    assert not result.success
    failures = result.get_step_failure_events()
    assert len(failures) == 1 and "re-materialize model" in failures[0].step_failure_data.user_failure_data.description
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def _tracking(folder: Path) -> MlflowTracking:
    return MlflowTracking(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
                          artifact_location=(folder / "artifacts").as_uri())


def test_runs_land_in_the_resource_store_whatever_mlflow_global_store(tmp_path: Path) -> None:
    ours, other = _tracking(tmp_path / "ours"), _tracking(tmp_path / "other")
    client = ours.client()
    with other.global_uris():  # the process-global store is another one, as after another study's run
        with ours.run(client, "good", tags={"har.asset": "test"}) as good:
            log_batch(client, good, metrics={"loss": 0.5, "none": None, "nan": float("nan")}, params={"epochs": 3})
            client.log_dict(good, {"k": 1}, "inputs/k.json")
        with pytest.raises(RuntimeError), ours.run(client, "bad") as bad:
            raise RuntimeError("training failed")
    run = client.get_run(good)
    assert run.info.status == "FINISHED" and run.info.run_name == "good" and run.data.tags["har.asset"] == "test"
    assert run.data.metrics == {"loss": 0.5} and run.data.params == {"epochs": "3"}
    assert [a.path for a in client.list_artifacts(good, "inputs")] == ["inputs/k.json"]
    assert client.get_run(bad).info.status == "FAILED"
    assert other.client().search_runs([other.experiment_id()]) == []


def test_global_uris_leave_mlflow_process_state_as_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outer, inner = f"sqlite:///{tmp_path / 'outer.db'}", f"sqlite:///{tmp_path / 'inner.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", outer)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with global_uris(inner):
        assert mlflow.get_tracking_uri() == inner == mlflow.get_registry_uri()
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
    assert os.environ["MLFLOW_TRACKING_URI"] == outer and "MLFLOW_REGISTRY_URI" not in os.environ
