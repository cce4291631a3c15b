"""Training-time augmentation: rotations of the sensor frame and amplitude scaling, on physical values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from har_assets.ml.augment import WindowAugmenter, random_rotations
from har_assets.ml.hyperparams import ModelConfig, TrainConfig
from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.training import train_model

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z", "grav_x", "grav_y", "grav_z")


def test_random_rotations_are_rotations_within_the_angle() -> None:
    rot = random_rotations(500, 30.0, torch.Generator().manual_seed(0)).double()
    eye = torch.eye(3, dtype=torch.float64).expand(500, 3, 3)
    assert torch.allclose(rot @ rot.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(500, dtype=torch.float64), atol=1e-5)
    angle = torch.rad2deg(torch.arccos(((rot.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1, 1)))
    assert angle.max() <= 30.0 + 1e-3 and angle.max() > 25.0 and angle.min() >= 0


def _windows(n: int = 64) -> tuple[np.ndarray, ChannelScaler]:
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (n, 50, len(CHANNELS))).astype(np.float32)
    X[:, :, 2] += 9.8  # gravity on z
    return X, ChannelScaler.fit(X, CHANNELS)


def test_rotation_turns_every_triplet_alike_and_keeps_magnitudes() -> None:
    X, scaler = _windows()
    augment = WindowAugmenter(scaler, rotation_deg=45.0, scale=0.0)
    out = augment(torch.from_numpy(scaler.transform(X)), torch.Generator().manual_seed(1)).numpy()
    phys = out * scaler.std + scaler.mean
    for lo in (0, 3, 6):
        np.testing.assert_allclose(np.linalg.norm(phys[:, :, lo:lo + 3], axis=2),
                                   np.linalg.norm(X[:, :, lo:lo + 3], axis=2), rtol=1e-4, atol=1e-4)
    assert not np.allclose(phys, X, atol=1e-2)
    # one rotation per window, shared by its sensors: acc·gyro inner products are unchanged
    np.testing.assert_allclose((phys[:, :, 0:3] * phys[:, :, 3:6]).sum(2), (X[:, :, 0:3] * X[:, :, 3:6]).sum(2),
                               rtol=1e-3, atol=1e-3)
    again = augment(torch.from_numpy(scaler.transform(X)), torch.Generator().manual_seed(1)).numpy()
    np.testing.assert_array_equal(out, again)


def test_scaling_stays_within_its_range() -> None:
    X, scaler = _windows()
    out = WindowAugmenter(scaler, rotation_deg=0.0, scale=0.2)(torch.from_numpy(scaler.transform(X)),
                                                               torch.Generator().manual_seed(2)).numpy()
    ratio = (out * scaler.std + scaler.mean)[:, 0, 2] / X[:, 0, 2]
    assert ratio.min() >= 0.8 - 1e-4 and ratio.max() <= 1.2 + 1e-4 and ratio.std() > 0.05


def test_training_with_augmentation_needs_the_scaler_and_is_reproducible() -> None:
    X, scaler = _windows(96)
    y = (np.arange(96) % 2).astype(np.int64)
    Xs = scaler.transform(X)
    Xs[y == 1, :, 0] += 1.0
    cfg = TrainConfig(epochs=2, batch_size=32, device="cpu", augment_rotation_deg=20.0, augment_scale=0.1)
    tiny = ModelConfig(conv_filters=4, lstm_units=4)
    with pytest.raises(ValueError, match="augmentation needs the scaler"):
        train_model(Xs, y, None, None, ["a", "b"], tiny, cfg)
    first = train_model(Xs, y, None, None, ["a", "b"], tiny, cfg, scaler=scaler)
    second = train_model(Xs, y, None, None, ["a", "b"], tiny, cfg, scaler=scaler)
    plain = train_model(Xs, y, None, None, ["a", "b"], tiny, cfg.model_copy(update={"augment_rotation_deg": 0.0,
                                                                                     "augment_scale": 0.0}))
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k
    assert not all(torch.equal(v, plain.model.state_dict()[k]) for k, v in first.model.state_dict().items())
    assert math.isfinite(first.history[-1].train_loss)
