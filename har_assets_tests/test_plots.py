"""The pictures: envelopes keep every extreme, gaps stay empty, labels become bands, every PNG is small."""

from __future__ import annotations

import io
import time

import numpy as np
import polars as pl
import pytest
from PIL import Image

from har_assets.plots.cohort import channel_levels_png, class_distribution_png, correlation_png
from har_assets.plots.png import MAX_PNG_BYTES
from har_assets.plots.recording import envelope, recording_png, runs
from har_assets.signal.channel_stats import cohort_channels
from har_assets.signal.fusion import FUSED_CHANNELS


def fused(minutes: float, gap_after_min: float | None = None, labels: bool = True, seed: int = 0) -> pl.DataFrame:
    """A fused-like frame at 50 Hz: wrist motion, an optional gap (a new segment), two labelled bouts."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * 50)
    t = 1.7e12 + np.arange(n) * 20.0
    segment = np.zeros(n, dtype=np.int32)
    if gap_after_min is not None:
        cut = int(gap_after_min * 60 * 50)
        t[cut:] += 90_000.0
        segment[cut:] = 1
    data = {"t_ms": t, "segment": segment,
            **{c: rng.normal(0, 1, n) + (9.8 if c == "acc_z" else 0.0) for c in FUSED_CHANNELS}}
    label = np.full(n, None, dtype=object)
    if labels:
        label[: n // 3] = "sitting"
        label[n // 2:] = "hand_tapping"
    return pl.DataFrame({**data, "label": label.tolist()}, schema_overrides={"label": pl.String})


def decoded(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG") and len(png) <= MAX_PNG_BYTES
    return Image.open(io.BytesIO(png))


def test_envelope_keeps_extremes_and_leaves_gaps_empty() -> None:
    x = np.array([0.0, 0.1, 0.2, 0.9, 3.1, 3.5])
    v = np.array([1.0, -5.0, 2.0, 7.0, 3.0, 4.0])
    lo, hi = envelope(x, v, np.array([0.0, 1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(lo[[0, 3]], [-5.0, 3.0])
    np.testing.assert_array_equal(hi[[0, 3]], [7.0, 4.0])
    assert np.isnan(lo[1]) and np.isnan(hi[2])  # no sample there: drawn as a gap


def test_label_runs() -> None:
    t = np.arange(7.0)
    assert runs(t, np.array(["a", "a", None, "b", "b", "a", None], dtype=object)) == [
        (0.0, 1.0, "a"), (3.0, 4.0, "b"), (5.0, 5.0, "a")]


@pytest.mark.parametrize(("minutes", "gap"), [(2, 1.0), (8 * 60, 100.0)])
def test_a_recording_picture_is_small_whatever_its_length(minutes: float, gap: float) -> None:
    frame = fused(minutes, gap_after_min=gap)
    start = time.perf_counter()
    image = decoded(recording_png(frame, f"{minutes} min"))
    assert image.width >= 600 and image.height >= 300, image.size
    assert time.perf_counter() - start < 60  # an 8-hour recording is reduced for display, not drawn point by point


def test_an_empty_recording_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        recording_png(fused(1).head(0), "empty")


def test_cohort_pictures_flag_the_participant_whose_units_differ() -> None:
    gravity = np.array([0, 0, 9.8, 0, 0, 0])
    windows = {f"p{i:02d}": np.random.default_rng(i).normal(0, 1, (30, 200, 6)) + gravity
               for i in range(12)}
    windows["p05"] = windows["p05"] * 1000  # milli-g read as m/s²
    stats = cohort_channels(windows, FUSED_CHANNELS)
    assert list(stats.outliers()) == ["p05"] and "acc_z" in stats.outliers()["p05"]
    assert stats.correlation.shape == (6, 6) and np.allclose(np.diag(stats.correlation), 1)
    for png in (channel_levels_png(stats), correlation_png(stats),
                class_distribution_png({p: {"sitting": 3, "standing": i} for i, p in enumerate(windows)})):
        decoded(png)
