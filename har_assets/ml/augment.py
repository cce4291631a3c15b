"""Training-time augmentation of scaled windows: random rotation of the sensor frame, amplitude scaling.

Both act on the physical signal, so a batch is unscaled with the training scaler, transformed
and scaled back. A rotation turns every xyz triplet of a window (accelerometer, gyroscope,
gravity) by the same matrix, as a watch worn at another angle would; scaling multiplies the
whole window by one factor. Random numbers come from the training loop's generator
(reproducible on CPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from har_assets.ml.orientation import triplet_indices
from har_assets.ml.scaler import ChannelScaler


def random_rotations(n: int, max_deg: float, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) rotations about uniformly random axes by angles uniform in [0, max_deg] (Rodrigues)."""
    axis = torch.randn(n, 3, generator=generator)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-12)
    angle = torch.rand(n, generator=generator) * math.radians(max_deg)
    k = torch.zeros(n, 3, 3)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(1, 2)
    s, c = angle.sin()[:, None, None], angle.cos()[:, None, None]
    return torch.eye(3).expand(n, 3, 3) + s * k + (1 - c) * (k @ k)


class WindowAugmenter:
    """Callable on a scaled batch ``(n, window, channels)``; returns a new augmented batch."""

    def __init__(self, scaler: ChannelScaler, rotation_deg: float, scale: float) -> None:
        channels: Sequence[str] = scaler.channels
        self.triplets = triplet_indices(channels)
        if rotation_deg > 0 and not self.triplets:
            raise ValueError(f"rotation augmentation needs xyz channels, got {list(channels)}")
        self.mean = torch.tensor(scaler.mean, dtype=torch.float32)
        self.std = torch.tensor(scaler.std, dtype=torch.float32)
        self.rotation_deg, self.scale = rotation_deg, scale

    @property
    def active(self) -> bool:
        return self.rotation_deg > 0 or self.scale > 0

    def __call__(self, xb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The augmented batch, on xb's device (random numbers drawn on the CPU generator)."""
        n, device = xb.shape[0], xb.device
        mean, std = self.mean.to(device), self.std.to(device)
        x = xb * std + mean
        if self.rotation_deg > 0:
            rot = random_rotations(n, self.rotation_deg, generator).to(device).transpose(1, 2)
            for idx in self.triplets:
                x[:, :, idx] = x[:, :, idx] @ rot
        if self.scale > 0:
            x = x * (1 + (2 * torch.rand(n, 1, 1, generator=generator) - 1) * self.scale).to(device)
        return (x - mean) / std
