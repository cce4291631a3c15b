"""`pip install ".[serve]"` brings neither torch nor onnx nor dagster, and `har serve` works without them: in a
process that cannot import torch or onnx, over real HTTP, it starts, serves a registered model's stored ONNX graph
with PyTorch's probabilities, and refuses, naming it, a version registered before graphs were exported (which would
need torch), while the champion keeps serving."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from har_assets.config import PreprocessConfig
from har_assets.ml.bundle import ModelBundle
from har_assets.raw.reader import read_participant
from har_assets.signal.pipeline import preprocess
from har_assets_tests.modelstore import ModelStore, two_versions
from har_assets_tests.rawfiles import write_participant
from har_assets_tests.stack import (
    BIN,
    LOOPBACK,
    artifacts_dir,
    base_env,
    client,
    free_port,
    http_ok,
    processes,
    wait_until,
)

CFG = PreprocessConfig()
ROOT = Path(__file__).resolve().parents[1]
WITHOUT_TORCH = Path(__file__).with_name("without_torch")  # its sitecustomize refuses torch and onnx


def torchless_env(**extra: str) -> dict[str, str]:
    """A child's environment in which importing torch or onnx fails, as where they are not installed."""
    return base_env(PYTHONPATH=str(WITHOUT_TORCH), **extra)


@dataclass
class Served:
    base: str
    store: ModelStore
    bundles: list[ModelBundle]
    folder: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`har serve` without torch on a champion (version 1) of a temporary registry; version 2 has no graph, as a
    version registered before graphs were exported."""
    folder = tmp_path_factory.mktemp("torchless")
    store, bundles = two_versions(folder, CFG)
    store.remove_graph("2")
    port = free_port()
    with processes(artifacts_dir(tmp_path_factory, "serve-without-torch")) as procs:
        procs.start("har-serve", [str(BIN / "har"), "serve", "--host", LOOPBACK, "--port", str(port),
                                  "--tracking-uri", store.uri, "--poll-seconds", "0"], torchless_env())
        base = f"http://{LOOPBACK}:{port}"
        wait_until("har serve (without torch) to be ready", http_ok(f"{base}/ready"), 120, procs, interval_s=0.5)
        yield Served(base, store, bundles, folder)


def installed_closure(requirements: list[str], extras: dict[str, list[str]]) -> set[str]:
    """Every distribution `requirements` pull in, by the installed distributions' own metadata (markers evaluated,
    extras followed; har-assets' own extras from `extras`)."""
    found: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name == "har-assets":
            todo += [Requirement(r) for extra in req.extras for r in extras[extra]]
            continue
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in found:
            continue
        found.add(key)
        for text in metadata.distribution(req.name).requires or []:
            dep = Requirement(text)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in req.extras or {""}):
                todo.append(dep)
    return {key.partition("[")[0] for key in found}


def test_the_serve_install_has_neither_torch_nor_onnx_nor_dagster() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    serve = installed_closure([*project["dependencies"], "har-assets[serve]"], extras)
    assert {"onnxruntime", "mlflow", "fastapi", "uvicorn", "polars"} <= serve
    assert not serve & {"torch", "onnx", "dagster", "optuna"}, serve & {"torch", "onnx", "dagster", "optuna"}
    assert {"torch", "onnx", "dagster", "fastapi"} <= installed_closure([*project["dependencies"],
                                                                         "har-assets[platform]"], extras)


def test_the_environment_really_refuses_torch_and_onnx() -> None:
    for module in ("torch", "onnx", "dagster"):
        probe = subprocess.run([sys.executable, "-c", f"import {module}"], env=torchless_env(), capture_output=True,
                               text=True)
        assert probe.returncode != 0 and f"ModuleNotFoundError: No module named '{module}'" in probe.stderr
    assert subprocess.run([sys.executable, "-c", "import onnxruntime, har_assets.serving.api"], env=torchless_env(),
                          capture_output=True).returncode == 0


def test_predictions_without_torch_are_pytorchs(served: Served) -> None:
    ws, _ = preprocess(read_participant(write_participant(served.folder / "p09", seconds=20), CFG), CFG)
    expected = served.bundles[0].predict_windows(ws.X)  # PyTorch, in this process
    with client() as http:
        info = http.get(f"{served.base}/model").json()
        assert info["version"] == "1" and info["runtime"] == "onnxruntime" and info["runtime_note"] is None
        r = http.post(f"{served.base}/predict/windows", json={"windows": ws.X.tolist()})
    assert r.status_code == 200, r.text
    assert r.json()["classes"] == served.bundles[0].classes
    np.testing.assert_allclose(np.array(r.json()["probabilities"]), expected, rtol=0, atol=1e-5)
    assert r.json()["labels"] == [served.bundles[0].classes[i] for i in expected.argmax(1)]


def test_predict_on_raw_samples_without_torch(served: Served) -> None:
    watch = read_participant(write_participant(served.folder / "p10", seconds=12),
                             PreprocessConfig(accel_unit="m/s^2", gyro_unit="rad/s"))  # the file's numbers as is
    payload = {sensor: {"timestamps_ms": frame["t_ms"].to_list(), "x": frame["x"].to_list(),
                        "y": frame["y"].to_list(), "z": frame["z"].to_list(), "unit": unit}
               for sensor, frame, unit in (("accelerometer", watch.accel, "milli-g"),
                                           ("gyroscope", watch.gyro, "deg/s"))}
    with client() as http:
        r = http.post(f"{served.base}/predict", json=payload)
    assert r.status_code == 200, r.text
    ws, _ = preprocess(read_participant(served.folder / "p10", CFG), CFG)
    expected = served.bundles[0].predict_windows(ws.X)
    got = np.array([[w["probabilities"][c] for c in r.json()["classes"]] for w in r.json()["windows"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_a_version_without_graph_is_refused_by_name_and_the_champion_serves_on(served: Served) -> None:
    served.store.set_alias("champion", "2")
    try:
        with client() as http:
            reload = http.post(f"{served.base}/model/reload").json()
            assert reload["changed"] is False and reload["model"]["version"] == "1"
            error = reload["last_error"]
            assert "RuntimeUnavailable" in error and "version 2 of registered model 'har-activity'" in error
            assert "holds no ONNX graph" in error and "No module named 'torch'" in error
            assert http.get(f"{served.base}/ready").json()["last_error"] == error
            windows = {"windows": np.zeros((1, *served.bundles[0].window_shape)).tolist()}
            assert http.post(f"{served.base}/predict/windows", json=windows).json()["model"]["version"] == "1"
    finally:
        served.store.set_alias("champion", "1")
