"""ONNX Runtime, as serving and scoring run the network: the same probabilities as PyTorch, or PyTorch itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from har_assets.ml.hyperparams import ModelConfig
from har_assets.ml.inference import predict_proba
from har_assets.ml.model import build_model
from har_assets.ml.onnx_runtime import (
    OnnxClassifier,
    RuntimeMismatch,
    TorchClassifier,
    cpu_classifier,
    export_onnx,
)

DEEPER = ModelConfig(conv_layers=3, kernel_size=7, lstm_layers=2, lstm_units=32)


@pytest.mark.parametrize("cfg", [ModelConfig(), DEEPER], ids=["default", "deeper"])
def test_onnx_runtime_reproduces_pytorch_on_every_batch_size(cfg: ModelConfig) -> None:
    torch.manual_seed(0)
    model = build_model(cfg, 6, 11).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    runtime = OnnxClassifier(model, 200, 6, threads=1)
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
    assert [o.name for o in graph.output] == ["logits"]


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
        OnnxClassifier(model, 20, 6)
    runtime, note = cpu_classifier(model, 20, 6)
    assert isinstance(runtime, TorchClassifier) and runtime.name == "torch"
    assert note is not None and note.startswith("RuntimeMismatch")
    X = np.random.default_rng(0).normal(size=(5, 20, 6)).astype(np.float32)
    np.testing.assert_array_equal(runtime.predict_proba(X), predict_proba(model, X))
