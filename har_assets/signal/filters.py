"""Zero-phase Butterworth filtering of gap-free runs of samples (never across a gap)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
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


FILTER_BLOCK = 1 << 17  # rows: a longer gap-free run is filtered in blocks of this many (see filtered_rows)


def settle_samples(sos: np.ndarray) -> int:
    """Samples after which the filter's impulse response stays below float64 resolution of its peak: how far
    a filtered value can depend on an input."""
    return _settle(np.ascontiguousarray(sos, dtype=np.float64).tobytes(), len(sos))


@lru_cache(maxsize=32)
def _settle(sos_bytes: bytes, sections: int) -> int:
    from scipy.signal import sosfilt

    sos = np.frombuffer(sos_bytes).reshape(sections, 6).copy()
    n = 1024
    while True:
        impulse = np.zeros(n)
        impulse[0] = 1.0
        h = np.abs(sosfilt(sos, impulse))
        last = int(np.flatnonzero(h > np.finfo(np.float64).eps * h.max())[-1])
        if last < n // 2:
            return last + 1
        n *= 2


def filtered_rows(sos: np.ndarray, read: Callable[[int, int], np.ndarray], n: int, lo: int, hi: int,
                  done: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Rows [lo, hi) of a gap-free run of n rows filtered forward and backward; `read(a, b)` gives the run's rows
    [a, b) (k columns). A run of up to FILTER_BLOCK rows is filtered whole. A longer one is filtered in blocks of
    FILTER_BLOCK rows from its start, each with `settle_samples` of its neighbours on either side (to rounding,
    what a pass over the whole run gives): so its values are the same whether the run is held in memory or read
    a block at a time. `done` (for one run) keeps the last two blocks filtered, for calls that walk the run."""
    if hi <= lo:
        return read(lo, lo)
    default_pad = 3 * (2 * len(sos) + 1)
    margin = settle_samples(sos) if n > FILTER_BLOCK else 0
    parts = []
    for block in range(lo // FILTER_BLOCK, (hi - 1) // FILTER_BLOCK + 1):
        first, end = block * FILTER_BLOCK, min((block + 1) * FILTER_BLOCK, n)
        if done is None or block not in done:
            a, b = max(first - margin, 0), min(end + margin, n)
            x = read(a, b)
            y = (_filtfilt(sos, x, min(default_pad, b - a - 1)) if b - a > 1 else x)[first - a: end - a]
            if done is not None:
                for old in [k for k in done if k < block - 1]:
                    del done[old]
                done[block] = y
        else:
            y = done[block]
        parts.append(y[max(lo, first) - first: min(hi, end) - first])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def zero_phase(sos: np.ndarray, x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Filter the rows of x (n, k) forward and backward, each run [bounds[i], bounds[i+1]) on its own
    (`filtered_rows`)."""
    out = np.empty_like(x)
    for lo, hi in itertools.pairwise(bounds):
        out[lo:hi] = filtered_rows(sos, lambda a, b, lo=lo: x[lo + a: lo + b], hi - lo, 0, hi - lo)
    return out


def segment_bounds(segment: np.ndarray) -> np.ndarray:
    """Row indices where segments start, plus the end: [0, ..., n]."""
    change = np.flatnonzero(np.diff(segment)) + 1
    return np.concatenate(([0], change, [segment.size]))


def gap_bounds(t_ms: np.ndarray, max_gap_ms: float) -> np.ndarray:
    """Row indices where gap-free runs of a sorted time array start, plus the end: [0, ..., n]."""
    breaks = np.flatnonzero(np.diff(t_ms) > max_gap_ms) + 1
    return np.concatenate(([0], breaks, [t_ms.size]))
