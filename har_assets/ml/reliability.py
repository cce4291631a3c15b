"""How far to trust the model on a person it never saw, learned from people it did not train on.

`Reliability` travels in the model bundle (`reliability.json` and the out-of-distribution model's arrays beside
it). It is fitted from *held-out people*: the training people's recordings decoded by models trained without them
(out of fold, `har_assets.ml.experiment.out_of_fold`), never from windows of people the scoring model saw.

* the temperature that calibrates the decoded probabilities (`har_assets.ml.calibration`);
* the error band of the label-free accuracy estimate: how far the estimate was from the truth on those people;
* the out-of-distribution model of the training people's windows (`har_assets.ml.ood`);
* the accuracy estimate below which a person is flagged.

A bundle without it (registered before it existed) gets `Reliability.uncalibrated()`: probabilities as the model
gives them, no band, no out-of-distribution score, and every answer says so. Pure numpy at serving.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from har_assets.ml.calibration import estimate, expected_calibration_error, fit_temperature, temperature_scale
from har_assets.ml.ood import OodModel, OodScores, has_features

RELIABILITY_FILE = "reliability.json"
BAND_QUANTILE = 0.9  # the accuracy band covers this share of held-out people's estimate errors


@dataclass(frozen=True)
class HeldOut:
    """One training person's recording decoded by a model trained without them."""

    participant: str
    proba: np.ndarray  # (n, classes) decoded, uncalibrated
    y: np.ndarray  # (n,) class index, -1 unlabelled


@dataclass(frozen=True)
class Assessment:
    """How right the model is likely to be on one person, and whether their data look like the training data."""

    estimate: dict | None  # Estimate.describe(); None when uncalibrated
    ood: OodScores | None
    flagged: bool
    reasons: list[str]

    def describe(self) -> dict:
        return {"calibrated": self.estimate is not None, **(self.estimate or {}),
                **(self.ood.describe() if self.ood is not None else {"ood_flag": None}),
                "flagged": self.flagged, "flag_reasons": self.reasons}


@dataclass(frozen=True)
class Reliability:
    temperature: float
    estimate_band: float | None  # None: uncalibrated
    ood: OodModel | None
    flag_accuracy_below: float
    fitted_on: dict = field(default_factory=dict)  # held-out people, windows, ECE before/after

    @classmethod
    def uncalibrated(cls) -> Reliability:
        return cls(1.0, None, None, 0.0)

    @property
    def calibrated(self) -> bool:
        return self.estimate_band is not None

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (the same argmax)."""
        return temperature_scale(proba, self.temperature) if self.temperature != 1.0 else np.asarray(proba, np.float32)

    def assess(self, calibrated: np.ndarray, X: np.ndarray, channels: Sequence[str]) -> Assessment:
        """One person's estimate and flags from their calibrated probabilities and unscaled, unaligned windows."""
        reasons = []
        est = None
        if self.calibrated and len(calibrated):
            e = estimate(calibrated, self.estimate_band)
            est = e.describe()
            if e.accuracy < self.flag_accuracy_below:
                reasons.append(f"estimated accuracy {e.accuracy:.2f} below {self.flag_accuracy_below:.2f}")
        ood = self.ood.score(X, channels) if self.ood is not None and has_features(channels) and len(X) else None
        if ood is not None:
            reasons += ood.reasons
        return Assessment(est, ood, bool(reasons), reasons)

    def write(self, folder: Path) -> None:
        if not self.calibrated and self.ood is None:
            return
        doc = {"temperature": self.temperature, "estimate_band": self.estimate_band,
               "flag_accuracy_below": self.flag_accuracy_below, "fitted_on": self.fitted_on,
               "ood": None if self.ood is None else self.ood.save(folder)}
        (folder / RELIABILITY_FILE).write_text(json.dumps(doc, indent=2))

    @classmethod
    def read(cls, folder: Path) -> Reliability:
        """The folder's reliability; `uncalibrated()` for a bundle written before it existed."""
        path = folder / RELIABILITY_FILE
        if not path.is_file():
            return cls.uncalibrated()
        d = json.loads(path.read_text())
        return cls(float(d["temperature"]), None if d["estimate_band"] is None else float(d["estimate_band"]),
                   None if d["ood"] is None else OodModel.load(folder, d["ood"]), float(d["flag_accuracy_below"]),
                   d.get("fitted_on", {}))


def person_estimate_errors(held_out: Sequence[HeldOut], temperature_of: dict[str, float]) -> dict[str, float]:
    """Estimated minus true accuracy of each held-out person, their probabilities calibrated with the temperature
    fitted without them."""
    errors = {}
    for h in held_out:
        keep = h.y >= 0
        if keep.any():
            p = temperature_scale(h.proba[keep], temperature_of[h.participant])
            errors[h.participant] = float(p.max(axis=1).mean() - (p.argmax(axis=1) == h.y[keep]).mean())
    return errors


def fit_reliability(held_out: Sequence[HeldOut], training_windows: Sequence[np.ndarray], channels: Sequence[str],
                    flag_accuracy_below: float, min_sway: float, min_windows: int, seed: int = 0) -> Reliability:
    """The temperature from every held-out labelled window, the estimate's band from each held-out person scored
    with a temperature fitted without them (so is the out-of-fold ECE), the OOD model from the training windows.
    Fewer than 2 held-out people with labels: uncalibrated (temperature 1, no estimate), the OOD model still."""
    labelled = [h for h in held_out if (h.y >= 0).any()]
    ood = OodModel.fit(training_windows, channels, min_sway, min_windows, seed=seed) if has_features(
        channels) else None
    if len(labelled) < 2:  # nothing to calibrate on: probabilities as the model gives them, no estimate
        return Reliability(1.0, None, ood, flag_accuracy_below, {"people": len(labelled)})

    def pooled(people: Sequence[HeldOut]) -> tuple[np.ndarray, np.ndarray]:
        return (np.concatenate([h.proba[h.y >= 0] for h in people]), np.concatenate([h.y[h.y >= 0] for h in people]))

    proba, y = pooled(labelled)
    temperature = fit_temperature(proba, y)
    without = {h.participant: fit_temperature(*pooled([o for o in labelled if o is not h])) for h in labelled}
    errors = person_estimate_errors(labelled, without)
    crossfit = np.concatenate([temperature_scale(h.proba[h.y >= 0], without[h.participant]) for h in labelled])
    band = float(np.quantile(np.abs(list(errors.values())), BAND_QUANTILE))
    fitted_on = {"people": len(labelled), "windows": len(y), "ece_uncalibrated": expected_calibration_error(
        proba, y), "ece_calibrated": expected_calibration_error(crossfit, y),
        "estimate_errors": {p: round(e, 4) for p, e in errors.items()}}
    return Reliability(temperature, band, ood, flag_accuracy_below, fitted_on)
