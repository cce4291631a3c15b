"""Fusion, gravity handling, windowing and the data-quality checks on exact, hand-made signals."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from har_assets.config import AccelUnit, GravityMode, PreprocessConfig
from har_assets.raw.reader import read_participant
from har_assets.raw.recording import LABEL_SCHEMA, ParticipantMeta, RawRecording, SensorRates, SensorUnits
from har_assets.signal import checks
from har_assets.signal.filters import butter_sos, zero_phase
from har_assets.signal.fusion import continuous_spans, fuse, intersect_spans
from har_assets.signal.gravity import apply_gravity_handling
from har_assets.signal.pipeline import preprocess
from har_assets.signal.windowing import WindowSet, make_windows, window_labels
from har_assets_tests.rawfiles import write_participant

T0 = 1_742_802_739_120.0


def sensor(t_ms: np.ndarray, fn) -> pl.DataFrame:
    x = fn(t_ms)
    return pl.DataFrame({"t_ms": t_ms, "x": x, "y": 2 * x, "z": np.full_like(x, 9.80665)})


def labels(*bouts: tuple[float, float, str]) -> pl.DataFrame:
    return pl.DataFrame({"start_ms": [a for a, _, _ in bouts], "end_ms": [b for _, b, _ in bouts],
                         "activity": [c for _, _, c in bouts]}, schema=LABEL_SCHEMA)


def line(t: np.ndarray) -> np.ndarray:
    return (t - T0) / 1000.0


def test_interpolation_lands_on_an_absolute_grid_and_is_exact_for_a_line() -> None:
    rng = np.random.default_rng(1)
    t_acc = T0 + np.arange(0, 20_000, 10.0) + rng.uniform(-1.5, 1.5, 2000)
    t_gyr = T0 + 7 + np.arange(0, 20_000, 9.95) + rng.uniform(-1.5, 1.5, 2011)
    cfg = PreprocessConfig(target_hz=50, antialias_cutoff_ratio=None)  # the interpolation alone
    fused, stats = fuse(sensor(t_acc, line), sensor(t_gyr, line), labels(), cfg)
    t = fused["t_ms"].to_numpy()
    assert np.all(np.mod(t, 20.0) == 0) and np.all(np.diff(t) == 20.0)
    assert t[0] >= max(t_acc[0], t_gyr[0]) and t[-1] <= min(t_acc[-1], t_gyr[-1])
    np.testing.assert_allclose(fused["acc_x"].to_numpy(), line(t), atol=1e-9)
    np.testing.assert_allclose(fused["gyro_y"].to_numpy(), 2 * line(t), atol=1e-9)
    assert stats.segments == 1 and stats.accel.gaps == 0
    assert stats.accel.native_hz == pytest.approx(100, rel=0.01)
    assert stats.gyro.native_hz == pytest.approx(100.5, rel=0.01)


def test_gaps_split_segments_and_are_never_interpolated_across() -> None:
    t_acc = T0 + np.concatenate([np.arange(0, 10_000, 10.0), np.arange(16_000, 30_000, 10.0)])
    t_gyr = T0 + 3 + np.concatenate([np.arange(0, 10_300, 10.0), np.arange(15_500, 30_000, 10.0)])
    cfg = PreprocessConfig(window_size=100, window_step=50)
    fused, stats = fuse(sensor(t_acc, line), sensor(t_gyr, line), labels(), cfg)
    t = fused["t_ms"].to_numpy() - T0
    assert stats.segments == 2
    assert not np.any((t > 10_000) & (t < 16_000)), "samples invented inside the gap"
    assert stats.accel.gaps == 1 and stats.accel.gap_seconds == pytest.approx(6.01, abs=0.02)
    assert stats.gyro.samples_lost > 0  # gyro samples in the gap only it covered
    ws = make_windows(apply_gravity_handling(fused, cfg), cfg)
    for seg, start, end in zip(ws.segment, ws.start_ms, ws.end_ms, strict=True):
        inside = fused.filter(pl.col("segment") == seg)["t_ms"]
        assert inside.min() <= start and end <= inside.max()


def test_span_helpers() -> None:
    spans = continuous_spans(np.array([0, 10, 20, 100, 110.0]), max_gap_ms=50)
    assert spans.tolist() == [[0, 20], [100, 110]]
    assert intersect_spans(spans, np.array([[5.0, 105.0]])).tolist() == [[5, 20], [100, 105]]


def test_window_labels_majority_and_coverage() -> None:
    sample = np.array(["a"] * 6 + ["b"] * 3 + [None], dtype=object)
    assert window_labels(sample, np.array([0]), 10, 0.6).tolist() == ["a"]
    assert window_labels(sample, np.array([0]), 10, 0.7).tolist() == [""]
    assert window_labels(sample, np.array([4]), 6, 0.5).tolist() == ["b"]


@pytest.mark.parametrize("mode", list(GravityMode))
def test_gravity_modes(tmp_path: Path, mode: GravityMode) -> None:
    cfg = PreprocessConfig(gravity=mode)
    rec = read_participant(write_participant(tmp_path / "p01", seconds=40), cfg)
    fused, _ = fuse(rec.accel, rec.gyro, rec.labels, cfg)
    out = apply_gravity_handling(fused, cfg)
    z = out["acc_z"].to_numpy()
    if mode is GravityMode.KEEP:
        assert z.mean() == pytest.approx(9.80665, abs=1e-6)
        assert list(cfg.channels) == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    else:
        assert abs(z.mean()) < 0.05
    if mode is GravityMode.SEPARATE:
        assert out["grav_z"].mean() == pytest.approx(9.80665, abs=0.05)
        np.testing.assert_allclose((out["acc_x"] + out["grav_x"]).to_numpy(), fused["acc_x"].to_numpy(), atol=1e-9)
    ws, _ = preprocess(rec, cfg)
    assert ws.X.shape[2] == len(cfg.channels) and np.isfinite(ws.X).all()


@pytest.mark.parametrize("mode", list(GravityMode))
def test_preprocess_on_columns_equals_the_assets_stages(tmp_path: Path, mode: GravityMode) -> None:
    """Serving's route (NumPy columns, no tables) and the assets' (fused, filtered, windows tables) give the same
    windows, with labels, without them, and across a gap."""
    from har_assets.raw.recording import empty_labels
    from har_assets.signal.pipeline import fuse_recording, window_recording

    cfg = PreprocessConfig(gravity=mode)
    rec = read_participant(write_participant(tmp_path / "p01", seconds=60, gap_after_s=25, gap_s=3), cfg)
    unlabelled = RawRecording(participant="p01", accel=rec.accel, gyro=rec.gyro, labels=empty_labels(),
                              meta=rec.meta)
    off_the_clock = RawRecording(participant="p01", accel=rec.accel, gyro=rec.gyro, meta=rec.meta,
                                 labels=labels((T0 - 9e6, T0 - 8e6, "sitting")))  # covers no sample
    for raw in (rec, unlabelled, off_the_clock):
        fused, stats = fuse_recording(raw, cfg)
        staged = window_recording(raw.participant, apply_gravity_handling(fused, cfg), cfg)
        direct, direct_stats = preprocess(raw, cfg)
        assert direct_stats == stats and stats.segments == 2
        np.testing.assert_array_equal(direct.X, staged.X)
        for field in ("labels", "start_ms", "end_ms", "segment"):
            np.testing.assert_array_equal(getattr(direct, field), getattr(staged, field))
        assert direct.channels == staged.channels
    assert set(preprocess(rec, cfg)[0].labels) == {"", "sitting", "hand_tapping"}
    assert set(preprocess(off_the_clock, cfg)[0].labels) == {""}


def test_filter_does_not_leak_across_a_gap() -> None:
    cfg = PreprocessConfig(gravity=GravityMode.REMOVE)
    t = np.arange(0, 40_000, 20.0)
    frame = pl.DataFrame({"t_ms": t, "segment": (t >= 20_000).astype(np.int32),
                          "acc_x": np.where(t >= 20_000, 100.0, 0.0), "acc_y": 0.0 * t, "acc_z": 0.0 * t})
    out = apply_gravity_handling(frame, cfg)["acc_x"].to_numpy()
    assert np.abs(out).max() < 1e-6, "a step between segments leaked through the filter"


@pytest.mark.parametrize(("order", "cutoff", "kind"), [(4, 0.3, "highpass"), (4, 20.0, "lowpass"), (2, 5.0, "lowpass"),
                                                       (6, 1.0, "highpass")])
def test_zero_phase_equals_scipys_sosfiltfilt(order: int, cutoff: float, kind: str) -> None:
    """The filter with its cached initial state is scipy's sosfiltfilt, on every run of a gap-split signal."""
    from scipy.signal import sosfiltfilt

    sos = butter_sos(order, cutoff, 50.0, kind)
    rng = np.random.default_rng(order)
    x = rng.normal(0, 1, (400, 3)) + np.linspace(0, 5, 400)[:, None]
    bounds = np.array([0, 1, 3, 10, 150, 400])  # runs of 1, 2, 7 (shorter than the pad), 140 and 250 samples
    pad = 3 * (2 * len(sos) + 1)
    expected = np.concatenate([x[lo:hi] if hi - lo == 1 else sosfiltfilt(sos, x[lo:hi], axis=0,
                                                                         padlen=min(pad, hi - lo - 1))
                               for lo, hi in itertools.pairwise(bounds)])
    np.testing.assert_allclose(zero_phase(sos, x, bounds), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(zero_phase(sos, x[:, 0], bounds), expected[:, 0], rtol=0, atol=1e-12)  # 1-D too


def test_windows_round_trip(tmp_path: Path) -> None:
    cfg = PreprocessConfig()
    ws, _ = preprocess(read_participant(write_participant(tmp_path / "p01", seconds=30), cfg), cfg)
    (tmp_path / "w.npz").write_bytes(ws.to_bytes())
    back = WindowSet.load(tmp_path / "w.npz")
    assert WindowSet.from_bytes(ws.to_bytes()).X.tobytes() == ws.X.tobytes()
    assert back.channels == ws.channels and np.array_equal(back.X, ws.X)
    assert back.labels.tolist() == ws.labels.tolist() and back.class_counts() == ws.class_counts()


def _recording(tmp_path: Path, **kwargs) -> tuple[RawRecording, PreprocessConfig]:
    cfg = PreprocessConfig()
    return read_participant(write_participant(tmp_path / "p01", seconds=20, **kwargs), cfg), cfg


def _by_name(outcomes: list[checks.CheckOutcome]) -> dict[str, checks.CheckOutcome]:
    return {o.name: o for o in outcomes}


def test_raw_checks_pass_on_good_data(tmp_path: Path) -> None:
    rec, cfg = _recording(tmp_path)
    assert all(o.passed for o in checks.raw_checks(rec, cfg))


def test_unit_mixup_is_caught(tmp_path: Path) -> None:
    rec, cfg = _recording(tmp_path, scale=0.001)  # values written in g, read as the default milli-g
    outcome = _by_name(checks.raw_checks(rec, cfg))["accel_magnitude_plausible"]
    assert not outcome.passed and outcome.blocking and "is the unit really milli-g" in outcome.detail
    rec.meta = ParticipantMeta(units=SensorUnits(accelerometer=AccelUnit.G))
    rec.accel = rec.accel.with_columns(pl.col(c) * 1000 for c in "xyz")  # as read with unit g
    assert _by_name(checks.raw_checks(rec, cfg))["accel_magnitude_plausible"].passed


def test_rate_is_measured_and_only_compared_where_declared(tmp_path: Path) -> None:
    rec, cfg = _recording(tmp_path, hz=50.0)  # a real phone at 50 Hz, no rate declared anywhere
    outcome = _by_name(checks.raw_checks(rec, cfg))["native_rate_plausible"]
    assert outcome.passed and outcome.values["accelerometer_hz"] == pytest.approx(50.0)
    assert "accelerometer 50.0 Hz" in outcome.detail
    rec.meta = ParticipantMeta(declared_hz=SensorRates(accelerometer=100.0))  # participant.json says 100 Hz
    outcome = _by_name(checks.raw_checks(rec, cfg))["native_rate_plausible"]
    assert not outcome.passed and "accelerometer 50.0 Hz vs declared 100 Hz" in outcome.detail
    rec.meta = ParticipantMeta()
    study_wide = cfg.model_copy(update={"declared_gyro_hz": 100.0})
    assert "gyroscope 50.0 Hz vs declared 100 Hz" in _by_name(checks.raw_checks(rec, study_wide))[
        "native_rate_plausible"].detail
    slow, _ = _recording(tmp_path / "slow", hz=20.0)  # slower than the 50 Hz grid: most samples would be invented
    outcome = _by_name(checks.raw_checks(slow, cfg))["native_rate_plausible"]
    assert not outcome.passed and "below the 50 Hz grid" in outcome.detail


def test_label_check_fails_when_labels_reach_outside(tmp_path: Path) -> None:
    rec, cfg = _recording(tmp_path)
    assert _by_name(checks.raw_checks(rec, cfg))["labels_inside_recording"].passed
    rec.labels = labels((rec.accel["t_ms"][0] - 60_000, rec.accel["t_ms"][0] + 1000, "sitting"))
    assert not _by_name(checks.raw_checks(rec, cfg))["labels_inside_recording"].passed


def _tone_recording(hz: float, tone_hz: float, jitter_ms: float = 0.0, seconds: float = 30.0
                    ) -> tuple[pl.DataFrame, ...]:
    """Both sensors at `hz` (integer-ms clocks, gyroscope 7 ms behind, optional sampling jitter) carrying a
    `tone_hz` sine on x."""
    rng = np.random.default_rng(0)
    n = int(seconds * hz)
    t_acc = np.round(T0 + np.arange(n) * 1000 / hz + rng.uniform(-jitter_ms, jitter_ms, n))
    t_gyr = np.round(T0 + 7 + np.arange(n) * 1000 / hz + rng.uniform(-jitter_ms, jitter_ms, n))

    def tone(t: np.ndarray) -> np.ndarray:
        return np.sin(2 * np.pi * tone_hz * (t - T0) / 1000.0)

    return sensor(t_acc, tone), sensor(t_gyr, tone)


def _amplitude(x: np.ndarray) -> float:
    return float(np.sqrt(2) * x[50:-50].std())


@pytest.mark.parametrize("jitter_ms", [0.0, 1.0])
@pytest.mark.parametrize(("tone_hz", "passes"), [(5.0, True), (35.0, False), (40.0, False)])
def test_antialiasing_keeps_the_band_and_stops_folding(tone_hz: float, passes: bool, jitter_ms: float) -> None:
    acc, gyro = _tone_recording(100.0, tone_hz, jitter_ms)
    fused, stats = fuse(acc, gyro, labels(), PreprocessConfig())
    plain, _ = fuse(acc, gyro, labels(), PreprocessConfig(antialias_cutoff_ratio=None))
    assert stats.accel.antialias_hz == stats.gyro.antialias_hz == pytest.approx(20.0)
    for channel in ("acc_x", "gyro_x"):
        amplitude, folded = _amplitude(fused[channel].to_numpy()), _amplitude(plain[channel].to_numpy())
        if passes:  # in band: untouched by the low-pass
            assert amplitude == pytest.approx(1.0, abs=0.02)
        else:  # 35-40 Hz folds to 10-15 Hz at half (clock between grid points) to all of its amplitude
            assert folded > (0.8 if channel == "acc_x" else 0.4)
            # what is left is the jitter's broadband error, not the tone
            assert amplitude < (0.02 if jitter_ms == 0 else min(0.15, folded / 5))


def test_no_antialiasing_when_the_sensor_is_not_faster_than_the_grid() -> None:
    acc, gyro = _tone_recording(50.0, 12.0)
    fused, stats = fuse(acc, gyro, labels(), PreprocessConfig())
    plain, _ = fuse(acc, gyro, labels(), PreprocessConfig(antialias_cutoff_ratio=None))
    assert stats.accel.antialias_hz is None and stats.gyro.antialias_hz is None
    assert fused.equals(plain)


def test_antialiasing_never_crosses_a_gap() -> None:
    t = T0 + np.concatenate([np.arange(0, 10_000, 10.0), np.arange(12_000, 22_000, 10.0)])
    step = lambda x: np.where(x - T0 < 11_000, 0.0, 5.0)  # noqa: E731 - a jump across the gap
    fused, stats = fuse(sensor(t, step), sensor(t + 3, step), labels(), PreprocessConfig())
    assert stats.segments == 2 and stats.accel.antialias_hz == pytest.approx(20.0)
    second = fused.filter(pl.col("segment") == 1)["acc_x"].to_numpy()
    first = fused.filter(pl.col("segment") == 0)["acc_x"].to_numpy()
    np.testing.assert_allclose(first, 0.0, atol=1e-9)  # no ringing carried over from the other side
    np.testing.assert_allclose(second, 5.0, atol=1e-9)


def test_a_stored_config_without_antialiasing_means_none() -> None:
    legacy = PreprocessConfig().model_dump(mode="json")
    del legacy["antialias_cutoff_ratio"]  # saved by a version that did not have the field
    assert PreprocessConfig.from_stored(json.dumps(legacy)).antialias_cutoff_ratio is None
    assert PreprocessConfig.from_stored(PreprocessConfig().model_dump_json()) == PreprocessConfig()


def test_fused_checks_fail_on_broken_frames(tmp_path: Path) -> None:
    rec, cfg = _recording(tmp_path)
    fused, stats = fuse(rec.accel, rec.gyro, rec.labels, cfg)
    assert all(o.passed for o in checks.fused_checks(fused, stats, cfg))
    shuffled = pl.concat([fused.slice(10), fused.head(10)])
    assert not _by_name(checks.fused_checks(shuffled, stats, cfg))["timestamps_monotonic"].passed
    nan = fused.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(float("nan")).otherwise(pl.col("gyro_x"))
                             .alias("gyro_x"))
    assert not _by_name(checks.fused_checks(nan, stats, cfg))["values_finite"].passed
    strict = cfg.model_copy(update={"max_gap_loss_share": 0.0})
    lossy = stats.__class__(**{**stats.__dict__, "accel": stats.accel.__class__(
        **{**stats.accel.__dict__, "samples_lost": 100})})
    assert not _by_name(checks.fused_checks(fused, lossy, strict))["gap_loss_within_limit"].passed
