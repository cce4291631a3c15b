"""How far to trust the model on a person it never saw: calibrated probabilities and the label-free accuracy
estimate, the out-of-distribution flag on generated people and on the same people with the device worn or read
differently, the reliability that travels in a bundle, the spans worth labelling and what their labels change."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from threadpoolctl import threadpool_limits

from har_assets.config import PreprocessConfig
from har_assets.demo import write_demo_dataset
from har_assets.ml.calibration import (
    estimate,
    expected_calibration_error,
    expected_macro_f1,
    fit_temperature,
    temperature_scale,
)
from har_assets.ml.label_requests import random_spans, request_spans
from har_assets.ml.metrics import macro_f1
from har_assets.ml.ood import (
    DENSITY_FILE,
    PERSON_FILE,
    ROBUST_MIN_PEOPLE,
    ROBUST_SDS,
    OodModel,
    PersonReference,
    has_features,
    window_features,
)
from har_assets.ml.person_adaptation import UNSURE_BELOW, adapt_to_labels
from har_assets.ml.reliability import RELIABILITY_FILE, HeldOut, Reliability, fit_reliability
from har_assets.raw.device_changes import milli_g_read_as_g, mirrored, rotation, turned
from har_assets.raw.layout import locate_files
from har_assets.raw.reader import read_files
from har_assets.raw.recording import RawRecording, empty_labels
from har_assets.signal.pipeline import preprocess
from har_assets.signal.windowing import WindowSet

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
G = 9.80665
TRAINING_PEOPLE = 16
NEW_PEOPLE = 4
MIN_SWAY, MIN_WINDOWS = 1.0, 5  # the decoding defaults (orientation_min_sway, orientation_min_windows)
People = tuple[list[RawRecording], list[WindowSet]]  # generated people as recorded, and their windows


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _calibrated(rng: np.random.Generator, n: int, classes: int, scale: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels drawn from them: calibrated by construction."""
    proba = _softmax(rng.normal(0, scale, (n, classes)))
    y = (proba.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    return proba, np.minimum(y, classes - 1)


# --------------------------------------------------------------------------------------------- calibration


def test_temperature_scaling_keeps_the_label_and_softens_above_one() -> None:
    proba, _ = _calibrated(np.random.default_rng(0), 500, 5)
    soft, sharp = temperature_scale(proba, 2.0), temperature_scale(proba, 0.5)
    for p in (soft, sharp):
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
        assert np.array_equal(p.argmax(axis=1), proba.argmax(axis=1))
    assert np.all(soft.max(axis=1) <= proba.max(axis=1) + 1e-6) and soft.max(axis=1).mean() < proba.max(axis=1).mean()
    assert np.all(sharp.max(axis=1) >= proba.max(axis=1) - 1e-6) and sharp.max(axis=1).mean() > proba.max(axis=1).mean()
    np.testing.assert_allclose(temperature_scale(proba, 1.0), proba, atol=1e-6)
    np.testing.assert_allclose(temperature_scale(sharp, 2.0), proba, atol=1e-5)  # undoes T = 0.5


def test_fitted_temperature_undoes_overconfidence() -> None:
    """Probabilities sharpened with T = 0.5 from calibrated ones: the fitted temperature is about 2 and the
    expected calibration error falls to that of the calibrated probabilities."""
    proba, y = _calibrated(np.random.default_rng(1), 6000, 5)
    sharp = temperature_scale(proba, 0.5)
    t = fit_temperature(sharp, y)
    assert 1.8 < t < 2.2
    before, after = expected_calibration_error(sharp, y), expected_calibration_error(temperature_scale(sharp, t), y)
    assert before > 0.1 and after < 0.03 and after < before / 4
    assert 0.85 < fit_temperature(proba, y) < 1.15  # already calibrated: left about as it is
    with pytest.raises(ValueError, match="no labelled windows"):
        fit_temperature(sharp[:0], y[:0])


def test_expected_calibration_error_is_zero_when_calibrated_and_large_when_confidently_wrong() -> None:
    # 100 windows at confidence 0.6 (60 right) and 100 at 0.9 (90 right): calibrated in every bin
    confidence = np.repeat([0.6, 0.9], 100)
    proba = np.column_stack([confidence, 1 - confidence])
    right = np.r_[np.arange(100) < 60, np.arange(100) < 90]
    y = np.where(right, 0, 1)
    assert expected_calibration_error(proba, y) == pytest.approx(0.0, abs=1e-9)
    # the same windows, 20 more of each bin wrong: off by 0.2 everywhere
    y_worse = np.where(np.r_[np.arange(100) < 40, np.arange(100) < 70], 0, 1)
    assert expected_calibration_error(proba, y_worse) == pytest.approx(0.2)
    # under-confident at 0.6 (90 right), over-confident at 0.9 (60 right): per bin, they do not cancel out
    y_crossed = np.where(np.r_[np.arange(100) < 90, np.arange(100) < 60], 0, 1)
    assert expected_calibration_error(proba, y_crossed) == pytest.approx(0.3)
    sure_and_wrong = np.tile([0.99, 0.005, 0.005], (50, 1))
    assert expected_calibration_error(sure_and_wrong, np.full(50, 1)) == pytest.approx(0.99)
    assert np.isnan(expected_calibration_error(proba[:0], y[:0]))


def test_expected_macro_f1_from_the_expected_confusion() -> None:
    proba = np.array([[0.8, 0.2], [0.8, 0.2], [0.3, 0.7], [0.3, 0.7]])
    # class 0: predicted 2, expected support 2.2, expected true positives 1.6; class 1: 2, 1.8, 1.4
    expected = np.mean([2 * 1.6 / (2 + 2.2), 2 * 1.4 / (2 + 1.8)])
    assert expected_macro_f1(proba, min_class_windows=1.0) == pytest.approx(expected)
    assert expected_macro_f1(proba, min_class_windows=2.0) is None  # class 1 expected on 1.8 windows only
    assert expected_macro_f1(np.eye(3)[[0, 1, 2, 0, 1, 2]], min_class_windows=1.0) == pytest.approx(1.0)
    # on labels drawn from calibrated probabilities, it is what the labels then give
    proba, y = _calibrated(np.random.default_rng(2), 8000, 4, scale=1.5)
    assert expected_macro_f1(proba, 5.0) == pytest.approx(macro_f1(y, proba.argmax(axis=1)), abs=0.02)


def test_estimate_band_is_never_narrower_than_the_held_out_band_and_stays_in_0_1() -> None:
    rng = np.random.default_rng(3)
    proba, _ = _calibrated(rng, 2000, 4)
    e = estimate(proba, band=0.05)
    assert e.accuracy == pytest.approx(proba.max(axis=1).mean()) and e.windows == 2000
    assert e.accuracy_high - e.accuracy == pytest.approx(0.05) and e.accuracy - e.accuracy_low == pytest.approx(0.05)
    few = estimate(proba[:10], band=0.05)  # ten windows: their own sampling error is the wider band
    assert few.accuracy_high - few.accuracy > 0.1 and few.accuracy - few.accuracy_low > 0.1
    sure = estimate(np.tile([0.98, 0.01, 0.01], (40, 1)), band=0.1)
    assert sure.accuracy_high == 1.0 and sure.accuracy_low == pytest.approx(0.88)
    unsure = estimate(np.tile([0.04, 0.03, 0.03, *[0.9 / 30] * 30], (40, 1)), band=0.1)
    assert unsure.accuracy_low == 0.0 and unsure.accuracy_high == pytest.approx(0.14)
    assert set(e.describe()) == {"estimated_accuracy", "estimated_accuracy_low", "estimated_accuracy_high",
                                 "estimated_macro_f1", "windows"}
    with pytest.raises(ValueError, match="no windows"):
        estimate(proba[:0], band=0.05)


# --------------------------------------------------------------------------------------------- out of distribution


def _window(acc: np.ndarray, gyro: np.ndarray) -> np.ndarray:
    return np.column_stack([acc, gyro])[None]


def test_window_features_read_gravity_movement_and_how_the_axes_move_together() -> None:
    rng = np.random.default_rng(4)
    t = np.arange(200) / 50.0
    still = _window(np.array([0.0, 0.0, G]) + rng.normal(0, 0.01, (200, 3)), rng.normal(0, 0.002, (200, 3)))
    wave = np.sin(2 * np.pi * t)
    moving = _window(np.column_stack([G + 2 * wave, 0.3 * rng.normal(size=200), 0.3 * rng.normal(size=200)]),
                     np.column_stack([0.01 * rng.normal(size=200), 1.5 * wave, 0.01 * rng.normal(size=200)]))
    f = window_features(np.concatenate([still, moving]), CHANNELS)
    assert f.shape == (2, 25)
    np.testing.assert_allclose(f[0, :3], [0, 0, 1], atol=1e-3)  # gravity along z
    assert f[0, 3] == pytest.approx(0.0, abs=1e-3)  # log magnitude in g
    np.testing.assert_allclose(f[1, :3], [1, 0, 0], atol=1e-2)
    assert np.all(np.abs(f[0, 10:]) < 0.05)  # a still window's correlations are noise, damped to 0
    pair = {p: 10 + k for k, p in enumerate(combinations(range(6), 2))}
    assert f[1, pair[(0, 4)]] > 0.95  # acc_x and gyro_y move together
    assert abs(f[1, pair[(1, 2)]]) < 0.2
    assert f[1, 4] > f[0, 4] + 3  # log sd of acc_x
    # the same features whatever the channel order
    order = [5, 2, 0, 4, 1, 3]
    shuffled = np.concatenate([still, moving])[:, :, order]
    np.testing.assert_allclose(window_features(shuffled, [CHANNELS[i] for i in order]), f)
    assert has_features(CHANNELS) and not has_features(CHANNELS[:3])
    with pytest.raises(ValueError, match="window features need"):
        window_features(still[:, :, :3], CHANNELS[:3])


def test_person_reference_flags_a_person_far_beyond_the_training_peoples_distances() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(0, 1, (12, 4)) * [1, 2, 0.5, 3] + [0, 5, -1, 2]
    ref = PersonReference.fit(vectors)
    n = len(vectors)
    for i in (0, 7):  # leave-one-out: each person's distance to a reference of the others
        alone = PersonReference.fit(np.delete(vectors, i, axis=0))
        assert ref.loo_distances[i] == pytest.approx(alone.distance(vectors[i]))
    median = np.median(ref.loo_distances)
    robust_sd = 1.4826 * np.median(np.abs(ref.loo_distances - median))
    assert ref.threshold == pytest.approx(median + ROBUST_SDS * robust_sd)  # one odd training person cannot loosen it
    few = PersonReference.fit(vectors[:ROBUST_MIN_PEOPLE - 1])  # too few for a robust spread: the farthest one
    assert few.threshold == pytest.approx(few.loo_distances.max())
    top = float(ref.loo_distances.max())
    assert ref.p_value(0.0) == 1.0
    assert ref.p_value(top) == pytest.approx(2 / (n + 1))
    assert ref.p_value(top + 1e-6) == pytest.approx(1 / (n + 1))
    middle = float(np.sort(ref.loo_distances)[5])  # 7 of the 12 at least this far
    assert ref.p_value(middle) == pytest.approx(8 / (n + 1))
    assert ref.distance(vectors.mean(axis=0)) == pytest.approx(0.0, abs=1e-9)
    far = vectors.mean(axis=0) + 6 * vectors.std(axis=0)
    assert ref.distance(far) > ref.threshold
    with pytest.raises(ValueError, match="at least 3 people"):
        PersonReference.fit(vectors[:2])


@pytest.fixture(scope="module")
def demo_people(tmp_path_factory: pytest.TempPathFactory) -> People:
    """20 generated people, 6 minutes each, as recorded and as windows (default preprocessing, gravity kept)."""
    root = tmp_path_factory.mktemp("demo")
    cfg = PreprocessConfig()
    ids = write_demo_dataset(root, TRAINING_PEOPLE + NEW_PEOPLE, seed=2, minutes=6.0, fmt="csv")
    raws = [read_files(locate_files(root / pid), cfg) for pid in ids]
    windows = [preprocess(raw, cfg)[0] for raw in raws]
    assert all(ws.channels == CHANNELS for ws in windows)
    return raws, windows


@pytest.fixture(scope="module")
def ood_model(demo_people: People) -> OodModel:
    _, windows = demo_people
    with threadpool_limits(1):  # BLAS threads fighting other processes make the mixture 10x slower
        return OodModel.fit([ws.X for ws in windows[:TRAINING_PEOPLE]], CHANNELS, MIN_SWAY, MIN_WINDOWS)


def _scores(model: OodModel, raw: RawRecording):
    return model.score(preprocess(raw, PreprocessConfig())[0].X, CHANNELS)


def test_ood_does_not_flag_new_people_and_flags_acceleration_read_in_the_wrong_unit(
        demo_people: People, ood_model: OodModel) -> None:
    raws, windows = demo_people
    reference = ood_model.person
    assert reference is not None and len(reference.loo_distances) == TRAINING_PEOPLE
    for raw, ws in zip(raws[TRAINING_PEOPLE:], windows[TRAINING_PEOPLE:], strict=True):
        ordinary = ood_model.score(ws.X, CHANNELS)
        assert not ordinary.flagged and ordinary.reasons == [], (raw.participant, ordinary.describe())
        assert ordinary.unlike_share < 0.05 and ordinary.window.shape == (len(ws),)
        assert ordinary.person_distance is not None and ordinary.person_distance <= reference.threshold
        assert ordinary.person_p_value is not None and ordinary.person_p_value > 1 / (TRAINING_PEOPLE + 1)
        wrong_unit = _scores(ood_model, milli_g_read_as_g(raw))
        assert wrong_unit.flagged and wrong_unit.unlike_share == 1.0, raw.participant
        assert any("100% of windows unlike any training window" in r for r in wrong_unit.reasons)
        assert wrong_unit.person_p_value == pytest.approx(1 / (TRAINING_PEOPLE + 1))


@pytest.mark.parametrize("change", ["mirrored x", "mirrored y", "mirrored z", "turned 60 about x",
                                    "turned 60 about y"])
def test_ood_moves_a_person_away_from_the_training_people_when_their_device_is_mirrored_or_turned(
        demo_people: People, ood_model: OodModel, change: str) -> None:
    """The other wrist (a mirror image through any axis) and a turn about a horizontal axis (x along the forearm, y
    across it) take the new people much farther from the training people. Whether that crosses the flag's threshold
    (beyond the training people's spread of distances) depends on the draw of training people, so only the flag's
    consistency with the distance is asserted here."""
    raws, windows = demo_people
    kind, *rest = change.split()
    reference = ood_model.person
    assert reference is not None
    as_recorded, changed = [], []
    for raw, ws in zip(raws[TRAINING_PEOPLE:], windows[TRAINING_PEOPLE:], strict=True):
        as_recorded.append(ood_model.score(ws.X, CHANNELS).person_distance)
        scores = _scores(ood_model, mirrored(raw, rest[0]) if kind == "mirrored" else turned(raw, rest[-1], 60))
        assert scores.person_distance is not None
        assert scores.person_p_value == pytest.approx(reference.p_value(scores.person_distance))
        farthest = any(r.startswith("moves unlike the training people") for r in scores.reasons)
        assert farthest == (scores.person_distance > reference.threshold)
        assert scores.flagged == (farthest or scores.unlike_share >= 0.5)
        changed.append(scores.person_distance)
    assert np.mean(changed) > 1.5 * np.mean(as_recorded), (change, changed, as_recorded)


def test_ood_model_saved_and_loaded_scores_alike(tmp_path: Path, demo_people: People, ood_model: OodModel) -> None:
    raws, windows = demo_people
    doc = ood_model.save(tmp_path)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON beside the arrays
    assert (tmp_path / DENSITY_FILE).is_file() and (tmp_path / PERSON_FILE).is_file()
    loaded = OodModel.load(tmp_path, doc)
    assert loaded.window_threshold == ood_model.window_threshold
    assert (loaded.min_sway, loaded.min_windows) == (MIN_SWAY, MIN_WINDOWS)
    for X in (windows[-1].X, preprocess(mirrored(raws[-1], "z"), PreprocessConfig())[0].X):
        a, b = ood_model.score(X, CHANNELS), loaded.score(X, CHANNELS)
        np.testing.assert_allclose(b.window, a.window, rtol=1e-12)
        assert (b.person_distance, b.person_p_value, b.flagged, b.reasons) == (
            a.person_distance, a.person_p_value, a.flagged, a.reasons)


# --------------------------------------------------------------------------------------------- reliability


def _held_out(rng: np.random.Generator, people: int, windows: int = 400) -> list[HeldOut]:
    """People whose decoded probabilities are calibrated ones sharpened with T = 0.5 (overconfident), some windows
    unlabelled; each person is easier or harder."""
    out = []
    for i in range(people):
        proba, y = _calibrated(rng, windows, 4, scale=rng.uniform(1.0, 3.0))
        y[rng.random(windows) < 0.1] = -1
        out.append(HeldOut(f"p{i:03d}", temperature_scale(proba, 0.5), y))
    return out


def test_fit_reliability_calibrates_on_held_out_people_and_bands_their_estimate_errors() -> None:
    rng = np.random.default_rng(6)
    held = _held_out(rng, 6)
    nobody = HeldOut("unlabelled", held[0].proba, np.full(len(held[0].y), -1))
    rel = fit_reliability([*held, nobody], [], CHANNELS[:3], flag_accuracy_below=0.7, min_sway=1.0, min_windows=5)
    assert rel.calibrated and rel.ood is None  # no gyroscope: no out-of-distribution model
    assert 1.7 < rel.temperature < 2.3
    labelled = sum(int((h.y >= 0).sum()) for h in held)
    assert rel.fitted_on["people"] == 6 and rel.fitted_on["windows"] == labelled
    assert rel.fitted_on["ece_uncalibrated"] > 0.1 and rel.fitted_on["ece_calibrated"] < 0.05
    errors = rel.fitted_on["estimate_errors"]
    assert set(errors) == {h.participant for h in held}
    # each person calibrated with the temperature fitted on the others: the estimate is their accuracy, roughly
    first, others = held[0], held[1:]
    t = fit_temperature(np.concatenate([h.proba[h.y >= 0] for h in others]),
                        np.concatenate([h.y[h.y >= 0] for h in others]))
    p = temperature_scale(first.proba[first.y >= 0], t)
    truth = (p.argmax(axis=1) == first.y[first.y >= 0]).mean()
    assert errors[first.participant] == pytest.approx(p.max(axis=1).mean() - truth, abs=1e-4)
    assert rel.estimate_band == pytest.approx(np.quantile(np.abs(list(errors.values())), 0.9), abs=1e-3)
    assert 0 < rel.estimate_band < 0.08
    sharp = held[1].proba
    assert np.array_equal(rel.calibrate(sharp).argmax(axis=1), sharp.argmax(axis=1))
    assert rel.calibrate(sharp).max(axis=1).mean() < sharp.max(axis=1).mean() - 0.05


def test_fit_reliability_with_too_few_labelled_people_is_uncalibrated_but_keeps_the_ood_model() -> None:
    rng = np.random.default_rng(7)
    held = _held_out(rng, 1)
    training = [np.array([0, 0, G, 0, 0, 0]) + rng.normal(0, 0.5, (150, 50, 6)) for _ in range(3)]  # 3 people
    rel = fit_reliability(held, training, CHANNELS, flag_accuracy_below=0.7, min_sway=0.1, min_windows=5)
    assert not rel.calibrated and rel.temperature == 1.0 and rel.fitted_on == {"people": 1}
    assert rel.ood is not None and rel.ood.person is not None
    assessment = rel.assess(rel.calibrate(held[0].proba), training[0], CHANNELS)
    assert assessment.estimate is None and assessment.describe()["calibrated"] is False
    assert assessment.ood is not None and not assessment.flagged


def test_reliability_written_into_a_bundle_folder_reads_back(tmp_path: Path, demo_people: People,
                                                             ood_model: OodModel) -> None:
    _, windows = demo_people
    rel = Reliability(1.7, 0.04, ood_model, 0.75, {"people": 16, "windows": 3000})
    folder = tmp_path / "bundle"
    folder.mkdir()
    rel.write(folder)
    assert {p.name for p in folder.iterdir()} == {RELIABILITY_FILE, DENSITY_FILE, PERSON_FILE}
    back = Reliability.read(folder)
    assert (back.temperature, back.estimate_band, back.flag_accuracy_below, back.fitted_on) == (
        1.7, 0.04, 0.75, {"people": 16, "windows": 3000})
    assert back.ood is not None
    X = windows[-1].X
    np.testing.assert_allclose(back.ood.score(X, CHANNELS).window, ood_model.score(X, CHANNELS).window)
    # too few labelled held-out people: no temperature or band, the out-of-distribution model still
    ood_only = tmp_path / "ood-only"
    ood_only.mkdir()
    Reliability(1.0, None, ood_model, 0.8).write(ood_only)
    read = Reliability.read(ood_only)
    assert not read.calibrated and read.temperature == 1.0 and read.ood is not None
    assert read.ood.window_threshold == ood_model.window_threshold
    # a bundle registered before reliability existed
    old = tmp_path / "old-bundle"
    old.mkdir()
    Reliability.uncalibrated().write(old)  # nothing to write
    assert list(old.iterdir()) == []
    assert Reliability.read(old) == Reliability.uncalibrated()
    assert not Reliability.read(old).calibrated and Reliability.read(old).ood is None
    proba = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_array_equal(Reliability.read(old).calibrate(proba), proba.astype(np.float32))


def test_assess_flags_a_low_estimated_accuracy_and_unusual_data(demo_people: People, ood_model: OodModel) -> None:
    raws, windows = demo_people
    rel = Reliability(1.0, 0.05, ood_model, 0.8)
    unsure = np.tile([0.55, 0.25, 0.2], (len(windows[-1]), 1))
    sure = np.tile([0.95, 0.03, 0.02], (len(windows[-1]), 1))
    low = rel.assess(unsure, windows[-1].X, CHANNELS)
    assert low.flagged and low.reasons == ["estimated accuracy 0.55 below 0.80"]
    assert low.describe()["estimated_accuracy"] == pytest.approx(0.55) and low.describe()["ood_flag"] is False
    fine = rel.assess(sure, windows[-1].X, CHANNELS)
    assert not fine.flagged and fine.reasons == [] and fine.describe()["flagged"] is False
    wrong_unit = preprocess(milli_g_read_as_g(raws[-1]), PreprocessConfig())[0]
    odd = rel.assess(sure, wrong_unit.X, CHANNELS)
    assert odd.flagged and odd.describe()["ood_flag"] is True
    assert any("unlike any training window" in r for r in odd.reasons)
    assert not any(r.startswith("estimated accuracy") for r in odd.reasons)
    without_gyro = rel.assess(unsure, windows[-1].X[:, :, :3], CHANNELS[:3])
    assert without_gyro.ood is None and without_gyro.describe()["ood_flag"] is None and without_gyro.flagged


# --------------------------------------------------------------------------------------------- label requests


def _proba(top: np.ndarray, classes: int = 3) -> np.ndarray:
    """Class 0 with probability `top` per window, the rest shared by the other classes."""
    rest = (1 - top[:, None]) / (classes - 1)
    return np.column_stack([top, np.repeat(rest, classes - 1, axis=1)])


def _check_spans(spans: list[tuple[int, int]], segment: np.ndarray, labelled: np.ndarray | None) -> None:
    covered = np.zeros(len(segment), int)
    for first, last in spans:
        assert 0 <= first <= last < len(segment)
        assert len(set(segment[first:last + 1].tolist())) == 1  # inside one segment
        covered[first:last + 1] += 1
    assert covered.max(initial=0) <= 1  # never overlapping
    if labelled is not None:
        assert not (covered.astype(bool) & labelled).any()


def test_requested_spans_prefer_uncertain_windows_and_never_repeat_labelled_ones() -> None:
    n = 300
    segment = np.repeat([0, 1, 2], [120, 100, 80])
    top = np.full(n, 0.95)
    top[200:212] = 0.4  # one uncertain stretch
    top[30:40] = 0.6  # a milder one
    proba = _proba(top)
    first = request_spans(proba, proba, None, segment, span_windows=10, spans=1)
    assert len(first) == 1 and first[0].first >= 200 and first[0].last < 212
    assert first[0].guess == 0 and first[0].confidence == pytest.approx(0.4)
    spans = request_spans(proba, proba, None, segment, span_windows=10, spans=4)
    assert len(spans) == 4 and [s.first for s in spans] == sorted(s.first for s in spans)
    _check_spans([(s.first, s.last) for s in spans], segment, None)
    assert any(s.first >= 30 and s.last < 40 for s in spans)
    # the uncertain stretch already labelled: never asked for again, the milder one comes first
    labelled = np.zeros(n, bool)
    labelled[195:215] = True
    again = request_spans(proba, proba, None, segment, span_windows=10, spans=4, labelled=labelled)
    _check_spans([(s.first, s.last) for s in again], segment, labelled)
    assert max(again, key=lambda s: s.score).first == 30
    # a window whose own answer disagrees with the decoded one is worth asking about too
    window_proba = proba.copy()
    window_proba[100:110] = _proba(np.full(10, 0.2))
    disagree = request_spans(proba, window_proba, None, segment, span_windows=10, spans=1, labelled=labelled)
    assert (disagree[0].first, disagree[0].last) == (100, 109)
    # a segment shorter than a span: the whole segment
    short = request_spans(proba[:16], proba[:16], None, np.repeat([0, 1], [4, 12]), span_windows=10, spans=2)
    assert len(short) == 2 and (short[0].first, short[0].last) == (0, 3)
    assert short[1].first >= 4 and short[1].last <= 15 and short[1].last - short[1].first == 9


def test_requested_spans_cover_each_kind_of_movement_before_a_second_of_the_same() -> None:
    """Two kinds of movement (clusters of the embedding): the most uncertain stretch of the first, then the other
    kind even though the first has a second stretch more uncertain than anything of the other."""
    rng = np.random.default_rng(8)
    n = 140  # two clusters (one per 50 windows, at most)
    kind = np.r_[np.zeros(100, int), np.ones(40, int)]
    embedding = np.where(kind[:, None] == 0, [5.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, 0.0]) + rng.normal(0, 0.3, (n, 4))
    top = np.where(kind == 0, 0.95, 0.7)
    top[20:25] = 0.35
    top[60:65] = 0.4
    proba = _proba(top)
    segment = np.zeros(n, int)
    diverse = request_spans(proba, proba, embedding, segment, span_windows=5, spans=2)
    assert len({s.cluster for s in diverse}) == 2
    assert (diverse[0].first, diverse[0].last) == (20, 24) and diverse[1].first >= 100
    alike = request_spans(proba, proba, None, segment, span_windows=5, spans=2)  # no embedding: one cluster
    assert [(s.first, s.last) for s in alike] == [(20, 24), (60, 64)]
    three = request_spans(proba, proba, embedding, segment, span_windows=5, spans=3)
    assert [(s.first, s.last) for s in three][:2] == [(20, 24), (60, 64)] and three[2].first >= 100


def test_random_spans_are_seeded_and_never_overlap() -> None:
    segment = np.repeat([0, 1, 2, 3], [50, 7, 60, 40])
    labelled = np.zeros(len(segment), bool)
    labelled[70:90] = True
    draws = [random_spans(segment, 10, 6, labelled, seed=s) for s in range(5)]
    for spans in draws:
        assert len(spans) == 6 and spans == sorted(spans)
        _check_spans(spans, segment, labelled)
        assert all(last - first + 1 == (7 if first == 50 else 10) for first, last in spans)
    assert draws[0] == random_spans(segment, 10, 6, labelled, seed=0)
    assert len({tuple(d) for d in draws}) > 1


# --------------------------------------------------------------------------------------------- a person's own labels


def test_adapting_to_a_persons_labels() -> None:
    rng = np.random.default_rng(9)
    axes = np.eye(4)

    def near(k: int, count: int) -> np.ndarray:
        return axes[k] + rng.normal(0, 0.05, (count, 4))

    # windows 0-5 labelled class 1 (embedding near axis 0), 6-11 labelled class 2 (near axis 1); unlabelled: 12-15
    # near axis 0 like the labelled ones, 16-19 near axis 3 (nothing labelled looks like them), then windows ever
    # farther from axis 0 towards axis 3
    toward_3 = [0.0, 0.05, 0.1, 0.2]
    embedding = np.vstack([near(0, 6), near(1, 6), near(0, 4), near(3, 4), *[axes[0] + a * axes[3] for a in toward_3]])
    y = np.r_[np.full(6, 1), np.full(6, 2), np.full(8 + len(toward_3), -1)]
    proba = np.tile([0.7, 0.2, 0.1], (len(y), 1))
    np.testing.assert_array_equal(adapt_to_labels(proba, embedding, np.full(len(y), -1)), proba.astype(np.float32))
    adapted = adapt_to_labels(proba, embedding, y)
    np.testing.assert_array_equal(adapted[:12], np.eye(3)[y[:12]])  # labelled windows: their label
    np.testing.assert_allclose(adapted.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(adapted[12:16, 1] > proba[12:16, 1] + 0.15)  # pulled toward the label of the windows like them
    np.testing.assert_allclose(adapted[16:20], proba[16:20], atol=1e-3)  # unlike everything labelled: the model's
    farther = adapted[20:, 1]
    assert adapted[20].argmax() == 1 and np.all(np.diff(farther) < 0) and farther[-1] > proba[0, 1]  # the nearer
    # where the model is sure (confidence >= UNSURE_BELOW), its answer stands even among labelled neighbours
    sure = np.tile([UNSURE_BELOW, 0.05, 0.95 - UNSURE_BELOW], (len(y), 1))  # sure of class 0, neighbours say 1
    np.testing.assert_allclose(adapt_to_labels(sure, embedding, y)[12:16], sure[12:16], atol=1e-6)


# --------------------------------------------------------------------------------------------- device changes


def _recording(rng: np.random.Generator, n: int = 500) -> RawRecording:
    t = np.arange(n) * 10.0

    def frame(values: np.ndarray) -> pl.DataFrame:
        return pl.DataFrame({"t_ms": t, "x": values[:, 0], "y": values[:, 1], "z": values[:, 2]})

    accel = frame(rng.normal(0, 3, (n, 3)) + np.array([1.0, 2.0, G]))
    return RawRecording("p001", accel, frame(rng.normal(0, 1, (n, 3))), empty_labels())


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_rotation_is_proper_and_turns_about_its_axis(axis: str) -> None:
    k = "xyz".index(axis)
    for degrees in (30.0, 60.0, 135.0, -90.0):
        r = rotation(axis, degrees)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        np.testing.assert_allclose(r[:, k], np.eye(3)[k], atol=1e-12)  # the axis stays
        assert np.trace(r) == pytest.approx(1 + 2 * np.cos(np.radians(degrees)))  # by that angle
    np.testing.assert_allclose(rotation(axis, 60) @ rotation(axis, -60), np.eye(3), atol=1e-12)


def test_device_changes_keep_what_they_must() -> None:
    raw = _recording(np.random.default_rng(10))
    acc, gyro = (raw.accel.select(list("xyz")).to_numpy(), raw.gyro.select(list("xyz")).to_numpy())
    before = (raw.accel.clone(), raw.gyro.clone())
    for axis in "xyz":
        t = turned(raw, axis, 60)
        t_acc, t_gyro = t.accel.select(list("xyz")).to_numpy(), t.gyro.select(list("xyz")).to_numpy()
        np.testing.assert_allclose(np.linalg.norm(t_acc, axis=1), np.linalg.norm(acc, axis=1), rtol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(t_gyro, axis=1), np.linalg.norm(gyro, axis=1), rtol=1e-12)
        np.testing.assert_allclose(t_acc, acc @ rotation(axis, 60).T, atol=1e-12)
        np.testing.assert_allclose(t_gyro, gyro @ rotation(axis, 60).T, atol=1e-12)  # both sensors alike
        assert not np.allclose(t_acc, acc)
        assert t.accel["t_ms"].equals(raw.accel["t_ms"]) and t.participant == raw.participant

        m = mirrored(raw, axis)
        m_acc, m_gyro = m.accel.select(list("xyz")).to_numpy(), m.gyro.select(list("xyz")).to_numpy()
        k = "xyz".index(axis)
        flip = np.where(np.arange(3) == k, -1.0, 1.0)
        np.testing.assert_array_equal(m_acc, acc * flip)  # the named accelerometer axis flips
        np.testing.assert_array_equal(m_gyro, gyro * -flip)  # the gyroscope's two other axes flip
    wrong = milli_g_read_as_g(raw)
    np.testing.assert_allclose(wrong.accel.select(list("xyz")).to_numpy(), 1000 * acc, rtol=1e-12)
    np.testing.assert_array_equal(wrong.gyro.select(list("xyz")).to_numpy(), gyro)
    assert raw.accel.equals(before[0]) and raw.gyro.equals(before[1])  # the recording itself is untouched
