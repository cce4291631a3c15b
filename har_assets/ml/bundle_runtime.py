"""The runtime a verified bundle folder runs on, for serving, scoring and the MLflow model: its stored ONNX graph on
ONNX Runtime, without torch or onnx; where torch is installed, a fallback for a bundle without a usable graph
(registered before graphs were exported at registration, or its export was refused): the weights exported in
memory, or PyTorch itself, with the reason in the runtime note.
"""

from __future__ import annotations

from pathlib import Path

from har_assets.ml.inference_bundle import InferenceBundle
from har_assets.ml.onnx_runtime import Classifier, OnnxClassifier, RuntimeMismatch, check_parity


class RuntimeUnavailable(RuntimeError):
    """A bundle needs PyTorch to run (it has no usable ONNX graph) and torch is not installed."""


def bundle_runtime(folder: Path, bundle: InferenceBundle, threads: int | None, label: str
                   ) -> tuple[Classifier, str | None]:
    """The runtime of a verified bundle folder, and a note when it is not the bundle's own graph.

    The bundle's graph on ONNX Runtime (`threads` intra-op threads) when it reproduces PyTorch's recorded
    probabilities. Otherwise, where torch is installed, the weights exported in memory, or PyTorch itself where
    that export is refused too; without torch RuntimeUnavailable, naming `label` (the model version).
    """
    if bundle.graph is not None:
        runtime = OnnxClassifier(bundle.graph.onnx, threads)
        try:
            check_parity(runtime, bundle.graph)
            return runtime, None
        except RuntimeMismatch as exc:
            reason = f"its ONNX graph fails the parity check here ({exc})"
    else:
        reason = ("its bundle holds no ONNX graph (registered before graphs were exported at registration, or "
                  "the export was refused)")
    try:
        from har_assets.ml.bundle import ModelBundle
        from har_assets.ml.onnx_export import cpu_classifier
    except ImportError as exc:  # the serving install ("har-assets[serve]") has neither torch nor onnx
        raise RuntimeUnavailable(
            f"{label} cannot run here: {reason}, and PyTorch, which would run it, cannot be imported ({exc}). "
            "Serve it where the platform is installed (pip install 'har-assets[platform]'), or train and "
            "register the model again") from exc
    runtime, refused = cpu_classifier(ModelBundle.load(folder).model, *bundle.window_shape, threads)
    if refused is None:
        return runtime, f"exported to ONNX in memory at load: {reason}"
    return runtime, f"PyTorch serves: {reason}; the export at load was refused too ({refused})"
