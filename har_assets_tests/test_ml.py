"""Model, training, inference and metrics on small synthetic sine-wave data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from har_assets.ml.hyperparams import ModelConfig
from har_assets.ml.inference import predict_proba
from har_assets.ml.metrics import (
    channel_permutation_importance,
    confusion_matrix_png,
    dummy_baselines,
    evaluate_predictions,
    macro_f1,
    per_group_scores,
)
from har_assets.ml.model import build_model
from har_assets.ml.training import (
    EpochStats,
    TrainConfig,
    balanced_class_weights,
    select_device,
    train_model,
)

CLASSES = ["slow", "medium", "fast"]
CHANNELS = ["sig", "c1", "c2", "c3", "c4", "noise"]
SMALL = ModelConfig(conv_filters=16, conv_layers=2, lstm_units=16, dropout=0.1)


def plain_cfg(**fields) -> TrainConfig:
    """A training config for these abstract channels: no xyz triplets, so no rotation augmentation."""
    return TrainConfig(augment_rotation_deg=0.0, **fields)


def make_sines(n: int, seed: int, window: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Class = frequency of a random-phase sine in channel 0 only; the other channels are noise
    (channels 1-4 carry a class-independent sine, channel 5 pure noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    t = np.arange(window) / window
    freq = np.array([2.0, 5.0, 9.0])[y]
    X = rng.normal(0.0, 0.3, size=(n, window, len(CHANNELS)))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    X[:, :, 0] += np.sin(2 * np.pi * freq[:, None] * t + phase)
    X[:, :, 1:5] += np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 2 * np.pi, size=(n, 1)))[:, :, None]
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    X, y = make_sines(300, seed=1)
    Xv, yv = make_sines(120, seed=2)
    return {"X": X, "y": y, "Xv": Xv, "yv": yv}


@pytest.fixture(scope="module")
def trained(data):
    seen: list[EpochStats] = []
    cfg = plain_cfg(epochs=6, batch_size=32, lr=3e-3, patience=10, device="cpu")
    res = train_model(data["X"], data["y"], data["Xv"], data["yv"], CLASSES, SMALL, cfg, on_epoch=seen.append)
    return res, seen


def test_model_shapes_and_window_lengths():
    for window in (200, 64, 3):
        model = build_model(ModelConfig(), n_channels=9, n_classes=11)
        assert model(torch.zeros(4, window, 9)).shape == (4, 11)
    with pytest.raises(ValueError, match="expected input"):
        model(torch.zeros(4, 200, 6))
    with pytest.raises(Exception, match="extra"):
        ModelConfig(filters=3)  # type: ignore[call-arg]


def test_model_learns_sines(trained, data):
    res, _ = trained
    assert res.best_val_macro_f1 > 0.8
    pred = predict_proba(res.model, data["Xv"]).argmax(axis=1)
    report = evaluate_predictions(data["yv"], pred, CLASSES)
    assert report["macro_f1"] > 0.8
    # the best epoch's state is the one returned
    assert report["macro_f1"] == pytest.approx(res.best_val_macro_f1)
    assert not res.model.training
    assert next(res.model.parameters()).device.type == "cpu"
    assert res.device == "cpu" and not res.stopped_early


def test_on_epoch_called_once_per_epoch_with_finite_numbers(trained):
    res, seen = trained
    assert seen == res.history
    assert [s.epoch for s in seen] == list(range(1, len(seen) + 1)) and len(seen) == 6
    for s in seen:
        for v in (s.train_loss, s.val_loss, s.val_accuracy, s.val_macro_f1, s.seconds, s.lr):
            assert v is not None and math.isfinite(v)
        assert 0 <= s.val_accuracy <= 1 and s.seconds > 0 and 0 <= s.lr <= 3e-3  # cosine from 3e-3
    assert seen[-1].train_loss < seen[0].train_loss


def test_predict_proba(trained, data):
    model = trained[0].model
    p = predict_proba(model, data["Xv"], batch_size=7)
    assert p.dtype == np.float32 and p.shape == (120, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p, predict_proba(model, data["Xv"]), atol=1e-5)
    assert predict_proba(model, data["Xv"][:0]).shape == (0, 3)


def test_same_seed_gives_identical_weights(data):
    cfg = plain_cfg(epochs=2, batch_size=32, seed=7, device="cpu")
    args = (data["X"][:96], data["y"][:96], data["Xv"][:32], data["yv"][:32], CLASSES, SMALL, cfg)
    torch.manual_seed(123)
    outside = torch.rand(1)
    a = train_model(*args).model.state_dict()
    b = train_model(*args).model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    c = train_model(*args[:-1], cfg.model_copy(update={"seed": 8})).model.state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)
    # the caller's global RNG stream and determinism flag are left alone
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), outside)
    assert not torch.are_deterministic_algorithms_enabled()


def test_early_stopping_stops_after_patience():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 32, 3)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    Xv = rng.normal(size=(32, 32, 3)).astype(np.float32)
    yv = rng.integers(0, 3, 32)
    cfg = plain_cfg(epochs=30, batch_size=32, lr=1e-9, patience=2, device="cpu")
    res = train_model(X, y, Xv, yv, CLASSES, SMALL, cfg)
    assert len(res.history) < 30
    assert res.stopped_early
    assert len(res.history) == res.best_epoch + cfg.patience
    assert res.best_val_macro_f1 == max(s.val_macro_f1 for s in res.history)


def test_empty_validation_runs_all_epochs_and_keeps_last(data):
    cfg = plain_cfg(epochs=3, batch_size=64, device="cpu")
    res = train_model(data["X"][:64], data["y"][:64], None, None, CLASSES, SMALL, cfg)
    assert len(res.history) == 3 and res.best_epoch == 3 and res.best_val_macro_f1 is None
    assert not res.stopped_early
    assert all(s.val_macro_f1 is None and s.val_loss is None for s in res.history)
    res2 = train_model(data["X"][:64], data["y"][:64], data["Xv"][:0], data["yv"][:0], CLASSES, SMALL, cfg)
    assert len(res2.history) == 3 and not res2.stopped_early


def test_balanced_class_weights():
    w = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(w, [4 / (2 * 3), 4 / (2 * 1), 0.0])
    assert np.isfinite(w).all()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 16, 2)).astype(np.float32)
    y = np.array([0] * 30 + [2] * 10)
    res = train_model(X, y, None, None, CLASSES, SMALL, plain_cfg(epochs=1, device="cpu"))
    np.testing.assert_allclose(res.class_weights, [40 / 60, 0.0, 40 / 20])
    none = train_model(X, y, None, None, CLASSES, SMALL, plain_cfg(epochs=1, device="cpu", class_weighting="none"))
    assert none.class_weights == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda X, y: (X[:0], y[:0]), "training set is empty"),
        (lambda X, y: (X, y[:-1]), "differ in length"),
        (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), y), "NaN or infinite"),
        (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X), y), "NaN or infinite"),
        (lambda X, y: (X, np.where(np.arange(len(y)) == 0, 3, y)), "outside"),
        (lambda X, y: (X, np.where(np.arange(len(y)) == 0, -1, y)), "outside"),
        (lambda X, y: (X, np.zeros_like(y)), "at least 2 classes"),
        (lambda X, y: (X[:, :, 0], y), "shape"),
        (lambda X, y: (X, y.astype(float)), "integer class indices"),
    ],
)
def test_training_rejects_bad_input(mutate, message):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 16, 2)).astype(np.float32)
    y = np.array([0, 1] * 5)
    Xb, yb = mutate(X, y)
    with pytest.raises(ValueError, match=message):
        train_model(Xb, yb, None, None, CLASSES, SMALL, plain_cfg(epochs=1, device="cpu"))


def test_training_rejects_mismatched_validation():
    X = np.zeros((10, 16, 2), np.float32)
    y = np.array([0, 1] * 5)
    with pytest.raises(ValueError, match="X_val windows"):
        train_model(X, y, np.zeros((4, 8, 2), np.float32), y[:4], CLASSES, SMALL, plain_cfg(epochs=1))
    with pytest.raises(ValueError, match="both"):
        train_model(X, y, X, None, CLASSES, SMALL, plain_cfg(epochs=1))


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
def test_learning_rate_schedules(data, schedule):
    cfg = plain_cfg(epochs=4, batch_size=100, lr=1e-2, device="cpu", lr_schedule=schedule)
    res = train_model(data["X"], data["y"], None, None, CLASSES, SMALL, cfg)
    lrs = [s.lr for s in res.history]  # the rate after each epoch's last step
    if schedule == "constant":
        assert lrs == [1e-2] * 4
    elif schedule == "cosine":  # annealed to 0 over the 4 x 3 steps
        assert lrs[0] == pytest.approx(1e-2 * (1 + math.cos(math.pi * 3 / 12)) / 2) and lrs[-1] == pytest.approx(0)
        assert lrs == sorted(lrs, reverse=True)
    else:  # warm-up to lr in the first 30 % of the steps, then annealed far below it
        assert 0.9e-2 < max(lrs) <= 1e-2 and lrs[-1] < lrs[0] / 10 and lrs == sorted(lrs, reverse=True)


def test_evaluate_predictions_hand_made():
    classes = ["a", "b", "c"]
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 0, 0]
    r = evaluate_predictions(y_true, y_pred, classes)
    assert r["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [1, 0, 0]]
    assert r["accuracy"] == pytest.approx(3 / 6)
    # a: P=2/4 R=2/3 F1=4/7; b: P=1/2 R=1/2 F1=1/2; c: 0
    assert r["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "support": 3})
    assert r["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert r["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["macro_f1"] == pytest.approx((4 / 7 + 0.5 + 0) / 3)
    assert "macro avg" in r["classification_report"] and "0.357" in r["classification_report"]
    with pytest.raises(ValueError, match="labels must lie"):
        evaluate_predictions([0, 3], [0, 0], classes)
    with pytest.raises(ValueError, match="empty"):
        evaluate_predictions([], [], classes)


def test_dummy_baselines():
    classes = ["a", "b", "c"]
    out = dummy_baselines([0, 0, 0, 1, 2], [0, 1, 2, 0], classes, seed=0)
    assert set(out) == {"most_frequent", "stratified"}
    assert out["most_frequent"]["accuracy"] == pytest.approx(0.5)
    assert out["most_frequent"]["macro_f1"] == pytest.approx((2 / 3) / 3)
    assert 0 <= out["stratified"]["accuracy"] <= 1
    assert dummy_baselines([0, 0, 0, 1, 2], [0, 1, 2, 0], classes, seed=0) == out


def test_one_macro_f1_over_the_classes_in_the_truth():
    classes = ["a", "b", "c"]
    y_true, y_pred = [0, 0, 1, 1], [0, 2, 1, 1]  # nobody did c, one window was predicted as c
    # a: P=1 R=1/2 F1=2/3; b: F1=1; c is not in the truth: no term, but its false positive cost a its recall
    assert macro_f1(y_true, y_pred) == pytest.approx((2 / 3 + 1) / 2)
    report = evaluate_predictions(y_true, y_pred, classes)
    assert report["macro_f1"] == macro_f1(y_true, y_pred)
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert "not in the truth (no F1 term): c (1 predicted)" in report["classification_report"]
    assert macro_f1(["x", "y"], ["x", "x"]) == pytest.approx((2 / 3 + 0) / 2)  # class names work the same
    assert macro_f1([], []) == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        macro_f1([0], [0, 1])


def test_per_group_scores():
    out = per_group_scores([0, 1, 1, 0, 2], [0, 1, 0, 0, 2], ["p2", "p2", "p2", "p1", "p1"])
    assert list(out) == ["p1", "p2"]
    assert out["p1"] == {"n_windows": 2, "accuracy": 1.0, "macro_f1": 1.0}
    assert out["p2"]["n_windows"] == 3
    assert out["p2"]["accuracy"] == pytest.approx(2 / 3)
    assert out["p2"]["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="differ in length"):
        per_group_scores([0], [0, 1], ["p"])


def test_confusion_matrix_png(tmp_path):
    classes = [f"activity_{i:02d}" for i in range(11)]
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 50, size=(11, 11))
    cm[3] = 0  # a class without windows must not break normalisation
    path = confusion_matrix_png(cm, classes, tmp_path / "sub" / "cm.png", title="test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(ValueError, match="does not match"):
        confusion_matrix_png(cm[:2, :2], classes, tmp_path / "x.png", "t")


def test_channel_permutation_importance(trained, data):
    imp = channel_permutation_importance(trained[0].model, data["Xv"], data["yv"], CHANNELS, n_repeats=2, seed=0)
    assert list(imp) == CHANNELS
    assert imp["sig"] > 0.3
    assert imp["sig"] > imp["noise"] + 0.25
    assert abs(imp["noise"]) < 0.1
