"""Per-participant channel statistics for comparing people: where each channel sits (median, spread) and how far
that is from the rest of the cohort, in robust units, so a person whose units or watch orientation differ stands
out; and the channels' correlation, pooled over the cohort."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

MAX_SAMPLES_PER_PARTICIPANT = 20_000  # rows sampled (evenly) from each participant's windows
DEVIATION_FLOOR = 0.25  # the smallest robust scale, as a share of the cohort's typical within-person IQR


@dataclass(frozen=True)
class CohortChannels:
    participants: list[str]
    channels: tuple[str, ...]
    deviation: np.ndarray  # (participants, channels): robust z of each participant's median against the cohort's
    correlation: np.ndarray  # (channels, channels), pooled

    def outliers(self, threshold: float = 3.5) -> dict[str, list[str]]:
        """Participant -> channels whose median lies beyond `threshold` robust deviations from the cohort's."""
        found: dict[str, list[str]] = {}
        for i, pid in enumerate(self.participants):
            far = [c for j, c in enumerate(self.channels) if abs(self.deviation[i, j]) > threshold]
            if far:
                found[pid] = far
        return found


def samples_of(X: np.ndarray) -> np.ndarray:
    """(rows, channels) from windows (n, size, channels), at most MAX_SAMPLES_PER_PARTICIPANT evenly spaced."""
    rows = X.reshape(-1, X.shape[-1])
    step = max(1, rows.shape[0] // MAX_SAMPLES_PER_PARTICIPANT)
    return rows[::step]


def robust_z(values: np.ndarray, floor: np.ndarray | float = 0.0) -> np.ndarray:
    """(value - median) / max(1.4826 * MAD, floor) per column; 0 where the column has no spread at all."""
    center = np.median(values, axis=0)
    scale = np.maximum(1.4826 * np.median(np.abs(values - center), axis=0), floor)
    return np.divide(values - center, scale, out=np.zeros_like(values, dtype=float), where=scale > 1e-12)


def cohort_channels(windows: Mapping[str, np.ndarray], channels: tuple[str, ...]) -> CohortChannels:
    """Statistics of each participant's windows (n, size, channels), all with the same channels."""
    pids = sorted(p for p, X in windows.items() if len(X))
    if not pids:
        raise ValueError("no participant has windows to compare")
    samples = {p: samples_of(windows[p]) for p in pids}
    q25, median, q75 = np.moveaxis(np.array([np.percentile(samples[p], [25, 50, 75], axis=0) for p in pids]), 1, 0)
    pooled = np.concatenate(list(samples.values()))
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.nan_to_num(np.corrcoef(pooled, rowvar=False))
    iqr = q75 - q25
    # a cohort of alike people has medians closer together than chance would flag: a shift below a quarter of
    # the typical within-person spread (IQR) is never called a deviation
    return CohortChannels(participants=pids, channels=channels,
                          deviation=robust_z(median, floor=DEVIATION_FLOOR * np.median(iqr, axis=0)),
                          correlation=np.atleast_2d(correlation))
