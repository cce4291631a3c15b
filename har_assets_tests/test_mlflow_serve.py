"""The registered MLflow model is a model from code (no pickle) that MLflow's own server runs: `mlflow models serve`
on the champion, as a real process that cannot import torch or onnx, answers /invocations with the probabilities our
own inference path gives."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from har_assets.config import PreprocessConfig
from har_assets.inference.predictor import load_model_version
from har_assets.ml.mlflow_model import MODEL_CODE
from har_assets.raw.reader import read_participant
from har_assets.signal.pipeline import preprocess
from har_assets_tests.modelstore import ModelStore, train_bundle
from har_assets_tests.rawfiles import write_participant
from har_assets_tests.stack import BIN, LOOPBACK, artifacts_dir, client, free_port, processes, wait_until
from har_assets_tests.test_serve_without_torch import torchless_env

CFG = PreprocessConfig()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    folder = tmp_path_factory.mktemp("mlflow-serve")
    recs = [read_participant(write_participant(folder / "raw" / p, seconds=s), CFG) for p, s in (("p01", 30),
                                                                                              ("p02", 25))]
    store = ModelStore(folder / "mlflow")
    bundle, X = train_bundle(recs, CFG)
    store.register(bundle, X, {"macro_f1": 0.5})
    return store


def test_the_logged_model_is_code_and_the_bundle_not_a_pickle(registry: ModelStore) -> None:
    model = registry.bundle_folder("1").parents[1]
    assert not list(model.rglob("*.pkl")), "the MLflow model holds a pickle"
    flavor = yaml.safe_load((model / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert (model / Path(flavor["model_code_path"]).name).read_text() == MODEL_CODE.read_text()


def test_mlflow_models_serve_runs_the_champion_without_torch(registry: ModelStore,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    windows, _ = preprocess(read_participant(write_participant(registry.folder / "p09", seconds=15), CFG), CFG)
    expected = load_model_version(registry.uri, registry.name, "1").predict_windows(windows.X)
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    with processes(artifacts_dir(tmp_path_factory, "mlflow-models-serve")) as procs:
        server = procs.start("mlflow-models-serve", [
            str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{registry.name}@champion", "--env-manager",
            "local", "-h", LOOPBACK, "-p", str(port)],
            # MLflow starts `uvicorn` by name: this venv's, with the same refusal of torch and onnx
            torchless_env(MLFLOW_TRACKING_URI=registry.uri, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}"))

        def pings() -> bool:
            with client() as http:
                return http.get(f"{base}/ping", timeout=5.0).status_code == 200

        wait_until("mlflow models serve to answer /ping", pings, 180, procs, interval_s=0.5)
        with client() as http:
            r = http.post(f"{base}/invocations", json={"inputs": {"windows": windows.X.tolist()}})
        assert r.status_code == 200, r.text + procs.tails()
        got = np.array(r.json()["predictions"], dtype=np.float32)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        procs.stop()  # by its pid: the server's process group
        assert server.proc.poll() is not None
        with client() as http, pytest.raises(httpx.ConnectError):
            http.get(f"{base}/ping", timeout=2.0)
