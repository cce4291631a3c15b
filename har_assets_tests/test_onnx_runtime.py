"""ONNX Runtime, as serving and scoring run the network: the graph exported once into the bundle, the same
probabilities as PyTorch, its thread count; bundles without a usable graph run where torch is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from har_assets.config import PreprocessConfig
from har_assets.inference.predictor import Predictor, load_model_version
from har_assets.ml.bundle import ModelBundle
from har_assets.ml.bundle_runtime import bundle_runtime
from har_assets.ml.hyperparams import ModelConfig
from har_assets.ml.inference import predict_proba
from har_assets.ml.inference_bundle import GRAPH_FILE, PARITY_FILE, InferenceBundle, OnnxGraph
from har_assets.ml.mlflow_model import bundle_digest
from har_assets.ml.model import build_model
from har_assets.ml.onnx_export import TorchClassifier, cpu_classifier, export_graph, export_onnx
from har_assets.ml.onnx_runtime import OnnxClassifier, RuntimeMismatch
from har_assets.ml.scaler import ChannelScaler
from har_assets_tests.modelstore import ModelStore, two_versions

DEEPER = ModelConfig(conv_layers=3, kernel_size=7, lstm_layers=2, lstm_units=32)
CFG = PreprocessConfig()


@pytest.mark.parametrize("cfg", [ModelConfig(), DEEPER], ids=["default", "deeper"])
def test_onnx_runtime_reproduces_pytorch_on_every_batch_size(cfg: ModelConfig) -> None:
    torch.manual_seed(0)
    model = build_model(cfg, 6, 11).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    runtime = OnnxClassifier(export_graph(model, 200, 6).onnx, threads=1)
    rng = np.random.default_rng(1)
    for n in (1, 2, 17, 256):
        X = rng.normal(0, 1.5, size=(n, 200, 6)).astype(np.float32)
        got, expected = runtime.predict_proba(X), predict_proba(model, X)
        assert got.shape == (n, 11) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        assert (got.argmax(1) == expected.argmax(1)).all()
        np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    assert model.training is False  # the export left the module as it was


def test_the_export_is_a_graph_with_a_dynamic_batch() -> None:
    import onnx

    graph = onnx.load_from_string(export_onnx(build_model(ModelConfig(), 6, 5).eval(), 200, 6)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 200, 6]
    assert [o.name for o in graph.output] == ["logits", "embedding"]  # the embedding: what the default decoder reads
    assert [d.dim_param or d.dim_value for d in graph.output[1].type.tensor_type.shape.dim] == ["batch", 128]


class BatchDependent(nn.Module):
    """A module whose output depends on Python control flow: the traced graph keeps only the batch-of-1 branch."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(x.mean(dim=1))
        return out if x.shape[0] == 1 else out.flip(1)


def test_an_export_that_differs_from_pytorch_is_refused_and_pytorch_serves() -> None:
    torch.manual_seed(0)
    model = BatchDependent().eval()
    with pytest.raises(RuntimeMismatch, match=r"differs from PyTorch by .* on a batch of 5"):
        export_graph(model, 20, 6)
    runtime, note = cpu_classifier(model, 20, 6)
    assert isinstance(runtime, TorchClassifier) and runtime.name == "torch"
    assert note is not None and note.startswith("RuntimeMismatch")
    X = np.random.default_rng(0).normal(size=(5, 20, 6)).astype(np.float32)
    np.testing.assert_array_equal(runtime.predict_proba(X), predict_proba(model, X))


def tiny_bundle(model: nn.Module, window: int = 20) -> ModelBundle:
    cfg = PreprocessConfig(window_size=window, window_step=window)
    X = np.random.default_rng(0).normal(size=(4, window, len(cfg.channels))).astype(np.float32)
    return ModelBundle(model=model, model_config=ModelConfig(conv_filters=4, lstm_units=4), preprocess=cfg,
                       scaler=ChannelScaler.fit(X, cfg.channels), classes=["a", "b", "c"])


def test_the_graph_is_saved_in_the_bundle_once_and_covered_by_its_hash(tmp_path: Path) -> None:
    torch.manual_seed(0)
    bundle = tiny_bundle(build_model(ModelConfig(conv_filters=4, lstm_units=4), 6, 3).eval())
    assert bundle.save(tmp_path / "b") is None
    stored = InferenceBundle.read(tmp_path / "b")
    assert stored.graph is not None and (tmp_path / "b" / GRAPH_FILE).stat().st_size > 1000
    assert stored.graph.parity_windows.shape == (6, 20, 6) and stored.graph.parity_probabilities.shape == (6, 3)
    np.testing.assert_allclose(stored.graph.parity_probabilities,
                               predict_proba(bundle.model, stored.graph.parity_windows), atol=1e-6)
    runtime, note = bundle_runtime(tmp_path / "b", stored, 1, "the test's bundle")
    assert isinstance(runtime, OnnxClassifier) and note is None
    X = np.random.default_rng(3).normal(size=(9, 20, 6)).astype(np.float32)
    np.testing.assert_allclose(runtime.predict_proba(bundle.scaler.transform(X)), bundle.predict_windows(X),
                               atol=1e-5)

    digest = bundle_digest(tmp_path / "b")
    (tmp_path / "b" / GRAPH_FILE).write_bytes((tmp_path / "b" / GRAPH_FILE).read_bytes() + b"\0")
    assert bundle_digest(tmp_path / "b") != digest  # a changed graph is a changed bundle


def test_a_refused_export_leaves_the_bundle_without_a_graph(tmp_path: Path) -> None:
    note = tiny_bundle(BatchDependent().eval()).save(tmp_path / "b")
    assert note is not None and note.startswith("RuntimeMismatch")
    assert not (tmp_path / "b" / GRAPH_FILE).exists() and not (tmp_path / "b" / PARITY_FILE).exists()
    assert InferenceBundle.read(tmp_path / "b").graph is None


def test_a_graph_that_fails_parity_on_this_runtime_is_replaced(tmp_path: Path) -> None:
    torch.manual_seed(0)
    bundle = tiny_bundle(build_model(ModelConfig(conv_filters=4, lstm_units=4), 6, 3).eval())
    bundle.save(tmp_path / "b")
    stored = InferenceBundle.read(tmp_path / "b")
    assert stored.graph is not None
    wrong = OnnxGraph(stored.graph.onnx, stored.graph.parity_windows, stored.graph.parity_probabilities[:, ::-1])
    runtime, note = bundle_runtime(tmp_path / "b", InferenceBundle(
        stored.model_config, stored.preprocess, stored.scaler, stored.classes, wrong, stored.decoder,
        stored.reliability), None,
        "the test's bundle")
    assert runtime.name == "onnxruntime"
    assert note is not None and note.startswith("exported to ONNX in memory at load: its ONNX graph fails the "
                                                "parity check here (ONNX Runtime differs from PyTorch by")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelStore, list[ModelBundle]]:
    """Two tiny registered models; version 1 is the champion."""
    folder = tmp_path_factory.mktemp("onnx-store")
    store, bundles = two_versions(folder, CFG)
    return store, bundles


def test_the_predictor_runs_every_model_it_loads_on_its_thread_count(
        store: tuple[ModelStore, list[ModelBundle]]) -> None:
    registry, _ = store
    predictor = Predictor(registry.uri, registry.name, threads=2)
    assert predictor.refresh() is True
    first = predictor.require()
    assert first.version == "1" and isinstance(first.runtime, OnnxClassifier)
    assert first.runtime.intra_op_threads == 2
    registry.set_alias("champion", "2")
    try:
        assert predictor.refresh() is True
        second = predictor.require()
        assert second.version == "2" and second.runtime is not first.runtime
        assert isinstance(second.runtime, OnnxClassifier) and second.runtime.intra_op_threads == 2
    finally:
        registry.set_alias("champion", "1")
    assert Predictor(registry.uri, registry.name, threads=1).refresh()
    assert load_model_version(registry.uri, registry.name, "1", threads=1).runtime.intra_op_threads == 1


def test_a_version_registered_before_graphs_is_exported_at_load_where_torch_is(
        tmp_path_factory: pytest.TempPathFactory, store: tuple[ModelStore, list[ModelBundle]]) -> None:
    _, bundles = store
    old = ModelStore(tmp_path_factory.mktemp("before-graphs"))
    version = old.register(bundles[1], np.zeros((2, *bundles[1].window_shape), np.float32), {"macro_f1": 0.5})
    old.remove_graph(version)
    loaded = load_model_version(old.uri, old.name, version, threads=1)
    assert loaded.bundle.graph is None and loaded.bundle_sha256 is not None
    assert loaded.runtime.name == "onnxruntime"
    assert loaded.runtime_note is not None and loaded.runtime_note.startswith(
        "exported to ONNX in memory at load: its bundle holds no ONNX graph")
    X = np.random.default_rng(0).normal(0, 3, size=(7, *loaded.window_shape)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict_windows(X), bundles[1].predict_windows(X), atol=1e-5)
