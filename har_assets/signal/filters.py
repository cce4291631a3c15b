"""Zero-phase Butterworth filtering of gap-free runs of samples (never across a gap)."""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

# scipy.signal (~0.6 s to import) is imported where a filter runs: the code location, loaded by every
# webserver, daemon, code server and sensor process, does not need it.


@lru_cache(maxsize=32)
def butter_sos(order: int, cutoff_hz: float, fs: float, kind: str) -> np.ndarray:
    """Second-order sections of a Butterworth `kind` ('lowpass' / 'highpass') filter."""
    from scipy.signal import butter

    return butter(order, cutoff_hz, btype=kind, fs=fs, output="sos")


def zero_phase(sos: np.ndarray, x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Filter the rows of x (n, k) forward and backward, each run [bounds[i], bounds[i+1]) on its own."""
    from scipy.signal import sosfiltfilt

    out = np.empty_like(x)
    default_pad = 3 * (2 * len(sos) + 1)
    for lo, hi in itertools.pairwise(bounds):
        n = hi - lo
        out[lo:hi] = sosfiltfilt(sos, x[lo:hi], axis=0, padlen=min(default_pad, n - 1)) if n > 1 else x[lo:hi]
    return out


def segment_bounds(segment: np.ndarray) -> np.ndarray:
    """Row indices where segments start, plus the end: [0, ..., n]."""
    change = np.flatnonzero(np.diff(segment)) + 1
    return np.concatenate(([0], change, [segment.size]))


def gap_bounds(t_ms: np.ndarray, max_gap_ms: float) -> np.ndarray:
    """Row indices where gap-free runs of a sorted time array start, plus the end: [0, ..., n]."""
    breaks = np.flatnonzero(np.diff(t_ms) > max_gap_ms) + 1
    return np.concatenate(([0], breaks, [t_ms.size]))
