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


@lru_cache(maxsize=32)
def _initial_state(sos_bytes: bytes, sections: int) -> np.ndarray:
    """`sosfilt_zi` of a filter (its step-response steady state): the same for every call, so computed once."""
    from scipy.signal import sosfilt_zi

    return sosfilt_zi(np.frombuffer(sos_bytes).reshape(sections, 6))


def _filtfilt(sos: np.ndarray, x: np.ndarray, padlen: int) -> np.ndarray:
    """scipy's `sosfiltfilt(sos, x, axis=0, padtype="odd", padlen=padlen)`, with the initial state cached (it
    cost a quarter of a short request's preprocessing); the parity test holds them equal."""
    from scipy.signal import sosfilt

    zi = _initial_state(np.ascontiguousarray(sos, dtype=np.float64).tobytes(), len(sos))
    zi = zi.reshape(len(sos), 2, *([1] * (x.ndim - 1)))  # broadcast over the other axes
    if padlen:
        x = np.concatenate((2 * x[:1] - x[padlen:0:-1], x, 2 * x[-1:] - x[-2:-padlen - 2:-1]))
    y, _ = sosfilt(sos, x, axis=0, zi=zi * x[:1])
    y, _ = sosfilt(sos, y[::-1], axis=0, zi=zi * y[-1:])
    y = y[::-1]
    return y[padlen:len(y) - padlen] if padlen else y


def zero_phase(sos: np.ndarray, x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Filter the rows of x (n, k) forward and backward, each run [bounds[i], bounds[i+1]) on its own."""
    out = np.empty_like(x)
    default_pad = 3 * (2 * len(sos) + 1)
    for lo, hi in itertools.pairwise(bounds):
        n = hi - lo
        out[lo:hi] = _filtfilt(sos, x[lo:hi], min(default_pad, n - 1)) if n > 1 else x[lo:hi]
    return out


def segment_bounds(segment: np.ndarray) -> np.ndarray:
    """Row indices where segments start, plus the end: [0, ..., n]."""
    change = np.flatnonzero(np.diff(segment)) + 1
    return np.concatenate(([0], change, [segment.size]))


def gap_bounds(t_ms: np.ndarray, max_gap_ms: float) -> np.ndarray:
    """Row indices where gap-free runs of a sorted time array start, plus the end: [0, ..., n]."""
    breaks = np.flatnonzero(np.diff(t_ms) > max_gap_ms) + 1
    return np.concatenate(([0], breaks, [t_ms.size]))
