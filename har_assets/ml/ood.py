"""Do a person's windows look like the training people's? A score per window, a distance per person, a flag.

Each window (unscaled, in the device frame as recorded: before any alignment) is summarised by what a device worn
differently changes: where gravity points (the mean acceleration's direction and log magnitude in g), how much
each axis moves (log standard deviation of each accelerometer and gyroscope axis about its mean) and how the axes
move together (the six dynamic axes' pairwise correlations, damped towards 0 in a still window so that sensor noise
does not count). A Gaussian mixture fitted on the training people's windows scores each window (negative
log-likelihood, higher is stranger); a window above the training windows' `window_quantile` is "unlike training".

One window says little: people differ more than a turned device changes a window. A *person* says more. While they
move, their windows' features are averaged, with each axis' skewness and the sign of the lagged correlations
between axes (which axis leads which: a mirror image flips it, no rotation can); the person's distance to the
training people is a Mahalanobis distance under a shrunk (Ledoit-Wolf) covariance of the training people's
vectors. Each training person's distance to the others (leave one out) is the reference: a person farther than
their median by three robust standard deviations is flagged (an outlier rule that one odd training person does
not loosen, as the farthest training person would), and the conformal p-value (the share of training people at
least as far) is reported beside it. A person with most windows unlike training is flagged too (units read
wrongly, a device that never moved like training).

Scoring is numpy only; fitting uses scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from har_assets.ml.orientation import ACC, moving_windows
from har_assets.raw.recording import STANDARD_GRAVITY

GYRO = ("gyro_x", "gyro_y", "gyro_z")
# dynamic amplitudes below these count as this much: a still window's correlations are noise, damped to 0
NOISE = {"acc": 0.05, "gyro": 0.02}  # m/s², rad/s
LOG_FLOOR = 1e-3
UNLIKE_SHARE_FLAG = 0.5  # a person with at least this share of windows unlike training is flagged
HELD_OUT_FOLDS = 3  # folds of training people that set the window threshold
ROBUST_SDS = 3.0  # a person this many robust sds beyond the training people's median distance is flagged
ROBUST_MIN_PEOPLE = 6  # fewer training people: flagged beyond the farthest of them
DENSITY_FILE = "ood_density.npz"
PERSON_FILE = "ood_person.npz"


def has_features(channels: Sequence[str]) -> bool:
    return set(ACC) <= set(channels) and set(GYRO) <= set(channels)


def window_features(X: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """(n, 25) features of unscaled windows (n, samples, channels) holding the accelerometer (m/s², gravity kept)
    and gyroscope (rad/s) triplets."""
    if not has_features(channels):
        raise ValueError(f"window features need the channels {ACC + GYRO}, got {list(channels)}")
    X = np.asarray(X, dtype=np.float64)
    acc = X[:, :, [list(channels).index(c) for c in ACC]]
    gyro = X[:, :, [list(channels).index(c) for c in GYRO]]
    g = acc.mean(axis=1)
    magnitude = np.linalg.norm(g, axis=1, keepdims=True)
    direction = g / np.maximum(magnitude, 1e-9)
    dynamic = np.concatenate([acc - g[:, None, :], gyro - gyro.mean(axis=1, keepdims=True)], axis=2)
    sd = dynamic.std(axis=1)
    floor = np.array([NOISE["acc"]] * 3 + [NOISE["gyro"]] * 3)
    scale = np.sqrt(sd ** 2 + floor ** 2)
    pairs = [(dynamic[:, :, i] * dynamic[:, :, j]).mean(axis=1) / (scale[:, i] * scale[:, j])
             for i, j in combinations(range(6), 2)]
    return np.column_stack([direction, np.log(np.maximum(magnitude, LOG_FLOOR) / STANDARD_GRAVITY),
                            np.log(sd + LOG_FLOOR), *pairs]).astype(np.float64)


@dataclass(frozen=True)
class WindowDensity:
    """A Gaussian mixture over standardized window features; `score` is each window's negative log-likelihood."""

    center: np.ndarray  # (features,)
    spread: np.ndarray  # (features,)
    weights: np.ndarray  # (components,)
    means: np.ndarray  # (components, features)
    precision_cholesky: np.ndarray  # (components, features, features)

    @classmethod
    def fit(cls, features: np.ndarray, components: int, seed: int = 0, max_windows: int = 20000) -> WindowDensity:
        from sklearn.mixture import GaussianMixture

        features = np.asarray(features, dtype=np.float64)
        if len(features) > max_windows:
            features = features[np.random.default_rng(seed).choice(len(features), max_windows, replace=False)]
        center, spread = features.mean(axis=0), np.maximum(features.std(axis=0), 1e-6)
        z = (features - center) / spread
        gmm = GaussianMixture(min(components, max(1, len(z) // 50)), covariance_type="full", reg_covar=1e-3,
                              random_state=seed).fit(z)
        return cls(center, spread, gmm.weights_, gmm.means_, gmm.precisions_cholesky_)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Negative log-likelihood of each window's features (higher: less like the training windows)."""
        z = (np.asarray(features, dtype=np.float64) - self.center) / self.spread
        d = z.shape[1]
        log_prob = np.empty((len(z), len(self.weights)))
        for k, (mean, chol) in enumerate(zip(self.means, self.precision_cholesky, strict=True)):
            y = (z - mean) @ chol
            log_det = np.sum(np.log(np.diag(chol)))
            log_prob[:, k] = -0.5 * (d * np.log(2 * np.pi) + np.sum(y * y, axis=1)) + log_det + np.log(self.weights[k])
        top = log_prob.max(axis=1, keepdims=True)
        return -(top[:, 0] + np.log(np.exp(log_prob - top).sum(axis=1)))

    def save(self, path: Path) -> None:
        np.savez(path, center=self.center, spread=self.spread, weights=self.weights, means=self.means,
                 precision_cholesky=self.precision_cholesky)

    @classmethod
    def load(cls, path: Path) -> WindowDensity:
        with np.load(path, allow_pickle=False) as f:
            return cls(f["center"], f["spread"], f["weights"], f["means"], f["precision_cholesky"])


def person_features(X: np.ndarray, channels: Sequence[str], min_sway: float, min_windows: int,
                    features: np.ndarray | None = None) -> np.ndarray | None:
    """One vector for a person's moving windows (None: fewer than `min_windows` moved): the mean window features
    (`features`: X's `window_features`, when already computed), each dynamic axis' mean skewness, and the mean
    lagged-correlation asymmetry of each pair of axes (lag: a twentieth of a window)."""
    X = np.asarray(X, dtype=np.float64)
    mask = moving_windows(X, channels, min_sway)
    moving = X[mask]
    if len(moving) < max(min_windows, 1):
        return None
    idx = [list(channels).index(c) for c in ACC + GYRO]
    dynamic = moving[:, :, idx] - moving[:, :, idx].mean(axis=1, keepdims=True)
    sd = np.sqrt((dynamic ** 2).mean(axis=1) + np.array([NOISE["acc"]] * 3 + [NOISE["gyro"]] * 3) ** 2)
    skewness = ((dynamic / sd[:, None, :]) ** 3).mean(axis=1)
    lag = max(1, X.shape[1] // 20)
    lead = [((dynamic[:, :-lag, i] * dynamic[:, lag:, j]).mean(axis=1)
             - (dynamic[:, :-lag, j] * dynamic[:, lag:, i]).mean(axis=1)) / (sd[:, i] * sd[:, j])
            for i, j in combinations(range(6), 2)]
    mean_features = (window_features(moving, channels) if features is None else features[mask]).mean(axis=0)
    return np.concatenate([mean_features, skewness.mean(axis=0),
                           np.mean(lead, axis=1)])


@dataclass(frozen=True)
class PersonReference:
    """The training people's person vectors: centre, spread, shrunk precision, and each one's leave-one-out
    distance to the others."""

    center: np.ndarray
    spread: np.ndarray
    precision: np.ndarray
    loo_distances: np.ndarray

    @staticmethod
    def _parts(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from sklearn.covariance import LedoitWolf

        center, spread = vectors.mean(axis=0), vectors.std(axis=0, ddof=1) + 1e-9
        return center, spread, LedoitWolf().fit((vectors - center) / spread).precision_

    @classmethod
    def fit(cls, vectors: np.ndarray) -> PersonReference:
        """From at least 3 people's vectors (n, features)."""
        vectors = np.asarray(vectors, dtype=np.float64)
        if len(vectors) < 3:
            raise ValueError(f"a person reference needs at least 3 people, got {len(vectors)}")
        loo = []
        for i in range(len(vectors)):
            c, s, p = cls._parts(np.delete(vectors, i, axis=0))
            loo.append(_mahalanobis((vectors[i] - c) / s, p))
        return cls(*cls._parts(vectors), np.asarray(loo))

    def distance(self, vector: np.ndarray) -> float:
        return _mahalanobis((np.asarray(vector, np.float64) - self.center) / self.spread, self.precision)

    def p_value(self, distance: float) -> float:
        """Conformal p-value: the share of training people (and this one) at least as far from the others."""
        return float((1 + np.sum(self.loo_distances >= distance)) / (len(self.loo_distances) + 1))

    @property
    def threshold(self) -> float:
        """Farther than this is flagged: the training people's leave-one-out distances' median plus
        `ROBUST_SDS` robust standard deviations (1.4826 x their median absolute deviation), so one odd training
        person does not hide everyone nearer than them; with fewer than `ROBUST_MIN_PEOPLE` the farthest one."""
        d = self.loo_distances
        if len(d) < ROBUST_MIN_PEOPLE:
            return float(d.max())
        median = float(np.median(d))
        return median + ROBUST_SDS * 1.4826 * float(np.median(np.abs(d - median)))


def _mahalanobis(z: np.ndarray, precision: np.ndarray) -> float:
    return float(np.sqrt(max(z @ precision @ z, 0.0)))


@dataclass(frozen=True)
class OodScores:
    """One person's (or one request's) out-of-distribution scores."""

    window: np.ndarray  # (n,) negative log-likelihood per window
    unlike: np.ndarray  # (n,) bool: above the training windows' threshold
    person_distance: float | None  # None: too few moving windows (or no person reference)
    person_p_value: float | None
    flagged: bool
    reasons: list[str]

    @property
    def unlike_share(self) -> float:
        return float(self.unlike.mean()) if len(self.unlike) else 0.0

    def describe(self) -> dict:
        return {"ood_flag": self.flagged, "ood_reasons": self.reasons,
                "unlike_training_share": round(self.unlike_share, 4),
                "person_distance": None if self.person_distance is None else round(self.person_distance, 3),
                "person_p_value": None if self.person_p_value is None else round(self.person_p_value, 4)}


@dataclass(frozen=True)
class OodModel:
    """What the training people's windows looked like, and how to flag a person who does not look like them."""

    density: WindowDensity
    window_threshold: float
    person: PersonReference | None  # None: fewer than 3 training people moved enough
    min_sway: float
    min_windows: int

    @classmethod
    def fit(cls, training_windows: Sequence[np.ndarray], channels: Sequence[str], min_sway: float, min_windows: int,
            components: int = 16, window_quantile: float = 0.99, seed: int = 0) -> OodModel:
        """From the training people's unscaled windows, one array per person."""
        people = [X for X in training_windows if len(X)]
        features = [window_features(X, channels) for X in people]
        if not features:
            raise ValueError("no training windows to learn what ordinary data look like")
        density = WindowDensity.fit(np.concatenate(features), components, seed)
        folds = min(HELD_OUT_FOLDS, len(features))
        if folds >= 2:  # the threshold from people the mixture did not see: a mixture flatters its own windows
            held_out = [WindowDensity.fit(np.concatenate([f for j, f in enumerate(features) if j % folds != i]),
                                          components, seed).score(np.concatenate(features[i::folds]))
                        for i in range(folds)]
        else:
            held_out = [density.score(features[0])]
        threshold = float(np.quantile(np.concatenate(held_out), window_quantile))
        vectors = [v for X, f in zip(people, features, strict=True)
                   if (v := person_features(X, channels, min_sway, min_windows, f)) is not None]
        person = PersonReference.fit(np.array(vectors)) if len(vectors) >= 3 else None
        return cls(density, threshold, person, min_sway, min_windows)

    def score(self, X: np.ndarray, channels: Sequence[str]) -> OodScores:
        features = window_features(X, channels) if len(X) else None
        window = self.density.score(features) if features is not None else np.empty(0)
        unlike = window > self.window_threshold
        vector = person_features(X, channels, self.min_sway, self.min_windows, features) if self.person else None
        distance = p_value = None
        reasons = []
        if vector is not None and self.person is not None:
            distance = self.person.distance(vector)
            p_value = self.person.p_value(distance)
            if distance > self.person.threshold:
                reasons.append(f"moves unlike the training people (distance {distance:.1f} > "
                               f"{self.person.threshold:.1f}, p = {p_value:.2f})")
        share = float(unlike.mean()) if len(unlike) else 0.0
        if share >= UNLIKE_SHARE_FLAG:
            reasons.append(f"{share:.0%} of windows unlike any training window")
        return OodScores(window, unlike, distance, p_value, bool(reasons), reasons)

    def save(self, folder: Path) -> dict:
        """The arrays into `folder` (ood_density.npz, ood_person.npz); returns the scalars for a JSON document."""
        self.density.save(folder / DENSITY_FILE)
        if self.person is not None:
            np.savez(folder / PERSON_FILE, center=self.person.center, spread=self.person.spread,
                     precision=self.person.precision, loo_distances=self.person.loo_distances)
        return {"window_threshold": self.window_threshold, "min_sway": self.min_sway,
                "min_windows": self.min_windows, "person_reference": self.person is not None}

    @classmethod
    def load(cls, folder: Path, d: dict) -> OodModel:
        person = None
        if d["person_reference"]:
            with np.load(folder / PERSON_FILE, allow_pickle=False) as f:
                person = PersonReference(f["center"], f["spread"], f["precision"], f["loo_distances"])
        return cls(WindowDensity.load(folder / DENSITY_FILE), float(d["window_threshold"]), person,
                   float(d["min_sway"]), int(d["min_windows"]))
