"""From the windows of many participants to a trained, evaluated model.

Evaluation of a trained model, and `run_experiment`, which composes the steps of
`har_assets.ml.datasets` with training on a participant split for the benchmarks and the
hyper-parameter search. Pure: no Dagster, no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import confusion_matrix
from torch import nn

from har_assets.ml.bundle import ModelBundle
from har_assets.ml.calibration import expected_calibration_error, negative_log_likelihood
from har_assets.ml.datasets import (
    WindowSets,
    common_channels,
    derive_classes,
    fit_scaler,
    labelled_data,
    pick,
)
from har_assets.ml.decoding import Decoder, class_indices, label_sequences, sequence_inputs
from har_assets.ml.hmm import segments
from har_assets.ml.hyperparams import DecodingConfig, EpochStats, ModelConfig, TrainConfig
from har_assets.ml.inference import predict_with_embedding
from har_assets.ml.metrics import (
    channel_permutation_importance,
    dummy_baselines,
    evaluate_predictions,
    macro_f1,
    per_group_scores,
)
from har_assets.ml.reliability import HeldOut, Reliability, fit_reliability
from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.sequence_model import train_sequence_model
from har_assets.ml.split import DatasetSplit, participant_rank
from har_assets.ml.timeline_metrics import timeline_scores, timeline_summary
from har_assets.ml.training import TrainResult, train_model
from har_assets.signal.windowing import WindowSet


def decoding_labels(ws: WindowSet, classes: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    """Class index per window (-1: unlabelled or a class the model lacks) and the labelled windows left out, per
    class the model lacks."""
    labels = ws.labels.astype(str)
    y = class_indices(labels, classes)
    lacking = ws.labeled & (y < 0)
    names, counts = np.unique(labels[lacking], return_counts=True)
    return y, {str(n): int(c) for n, c in zip(names, counts, strict=True)}


def evaluate(model: nn.Module, classes: Sequence[str], scaler: ChannelScaler, decoder: Decoder,
             test: WindowSets, y_train: np.ndarray, importance_repeats: int = 3, seed: int = 0,
             reliability: Reliability | None = None) -> dict:
    """Scores on the test people's *unscaled* windows, each person's recording decoded whole (`Decoder`):
    `evaluate_predictions`' report of the decoded labels (the headline), the macro-F1 after each step (the
    window classifier alone, after aligning the frame, decoded offline, decoded causally), timeline metrics,
    dummy baselines, per-participant scores (with the label-free estimate and flags of `reliability`), the
    calibration (ECE before/after), channel permutation importance, the excluded windows and each step's time."""
    channels = scaler.channels
    reliability = reliability or Reliability.uncalibrated()
    decoded_proba: list[np.ndarray] = []
    assessed: dict[str, dict] = {}

    def classify(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return predict_with_embedding(model, scaler.transform(X))

    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("y", "decoded", "aligned", "window", "causal", "group")}
    parts: dict[str, list[dict]] = {"decoded": [], "window": []}
    aligned_X: list[np.ndarray] = []
    excluded: dict[str, int] = {}
    alignment: dict[str, dict] = {}
    seconds = {"align": 0.0, "classify": 0.0, "smooth": 0.0}
    n_windows = 0
    for pid in sorted(test):
        ws = test[pid]
        y, lacking = decoding_labels(ws, classes)
        for c, n in lacking.items():
            excluded[c] = excluded.get(c, 0) + n
        if len(ws) == 0:
            continue
        out = decoder.decode(ws.X, ws.segment, channels, classify)
        for step, s in out.seconds.items():
            seconds[step] += s
        n_windows += len(ws)
        alignment[pid] = out.alignment.describe()
        assessed[pid] = reliability.assess(reliability.calibrate(out.proba), ws.X, channels).describe()
        window = classify(ws.X)[0].argmax(axis=1) if out.alignment.applied else out.window_proba.argmax(axis=1)
        causal = decoder.smooth(out.window_proba, ws.segment, causal=True, embedding=out.embedding).argmax(axis=1)
        parts["decoded"].append(timeline_scores(y, out.labels, ws.segment, ws.start_ms))
        parts["window"].append(timeline_scores(y, window, ws.segment, ws.start_ms))
        keep = y >= 0
        for key, values in (("y", y), ("decoded", out.labels), ("aligned", out.window_proba.argmax(axis=1)),
                            ("window", window), ("causal", causal), ("group", np.full(len(ws), pid))):
            rows[key].append(values[keep])
        decoded_proba.append(out.proba[keep])
        if importance_repeats > 0:
            aligned_X.append(decoder.align(ws.X, channels)[0][keep])
    if not rows["y"] or sum(len(y) for y in rows["y"]) == 0:
        raise ValueError("no labelled test windows of a known class to evaluate on")
    yt, pred, groups = np.concatenate(rows["y"]), np.concatenate(rows["decoded"]), np.concatenate(rows["group"])
    report = evaluate_predictions(yt, pred, classes)
    report["classes"] = list(classes)
    window = np.concatenate(rows["window"])
    report["window_confusion_matrix"] = confusion_matrix(yt, window, labels=list(range(len(classes)))).tolist()
    report["steps"] = {step: macro_f1(yt, np.concatenate(rows[step])) for step in ("window", "aligned", "decoded",
                                                                                   "causal")}
    report["timeline"] = timeline_summary(parts["decoded"]) | {
        "switches_per_hour_window": timeline_summary(parts["window"])["switches_per_hour_predicted"],
        "minutes_correct_share_window": timeline_summary(parts["window"])["minutes_correct_share"]}
    report["decoding"] = decoder.describe()
    report["alignment"] = alignment
    report["seconds_per_1000_windows"] = {k: round(1000 * v / max(n_windows, 1), 4) for k, v in seconds.items()}
    report["baselines"] = dummy_baselines(y_train, yt, classes, seed=seed)
    report["per_participant"] = {p: s | {"window_macro_f1": macro_f1(yt[groups == p], window[groups == p])}
                                 | assessed[p] for p, s in per_group_scores(yt, pred, groups).items()}
    report["calibration"] = calibration_report(np.concatenate(decoded_proba), yt, reliability,
                                               report["per_participant"])
    report["excluded_windows"] = excluded
    X = np.concatenate(aligned_X) if aligned_X else np.empty((0, 0, len(channels)), np.float32)
    report["permutation_importance"] = (
        channel_permutation_importance(model, scaler.transform(X), yt, channels, n_repeats=importance_repeats,
                                       seed=seed) if importance_repeats > 0 and len(X) >= 2 else {}
    )
    return report


def calibration_report(proba: np.ndarray, y: np.ndarray, reliability: Reliability, people: dict[str, dict]) -> dict:
    """ECE and NLL of the decoded probabilities on the test people, before and after calibration, and how far each
    person's label-free accuracy estimate fell from their accuracy."""
    calibrated = reliability.calibrate(proba)
    errors = {p: s["estimated_accuracy"] - s["accuracy"] for p, s in people.items() if s.get("estimated_accuracy")
              is not None}
    return {"calibrated": reliability.calibrated, "temperature": reliability.temperature,
            "ece_uncalibrated": expected_calibration_error(proba, y), "ece_calibrated": expected_calibration_error(
                calibrated, y), "nll_uncalibrated": negative_log_likelihood(proba, y),
            "nll_calibrated": negative_log_likelihood(calibrated, y),
            "estimate_errors": {p: round(e, 4) for p, e in errors.items()},
            "estimates_within_0_05": sum(abs(e) <= 0.05 for e in errors.values()),
            "flagged": sorted(p for p, s in people.items() if s.get("flagged")),
            "fitted_on": reliability.fitted_on}


def score_bundle(bundle: ModelBundle, windowsets: WindowSets, participants: Iterable[str]) -> dict:
    """Accuracy and macro-F1 of a bundle on the participants' *unscaled* windows, each recording decoded with the
    bundle's own decoder (a model registered before decoders existed: window by window), scored on the labelled
    windows of the classes it knows.

    The same decoded labels and the same macro-F1 as `evaluate` (so a candidate scores exactly its
    model_evaluation figure); the champion gate scores the candidate and the current champion with
    it, each on windows made with its own preprocessing and decoded as it is served.
    """
    ys, preds, excluded = [], [], {}
    for pid in sorted(participants):
        ws = pick(windowsets, [pid])[0]
        y, lacking = decoding_labels(ws, bundle.classes)
        for c, n in lacking.items():
            excluded[c] = excluded.get(c, 0) + n
        if not (y >= 0).any():
            continue
        labels = bundle.decoder.decode(ws.X, ws.segment, bundle.scaler.channels, bundle.predict_with_embedding).labels
        ys.append(y[y >= 0])
        preds.append(labels[y >= 0])
    if not ys:
        raise ValueError("the participants have no labelled windows of the model's classes")
    yt, pred = np.concatenate(ys), np.concatenate(preds)
    return {"n": len(yt), "accuracy": float((pred == yt).mean()), "macro_f1": macro_f1(yt, pred),
            "excluded_windows": excluded}


@dataclass
class ExperimentResult:
    classes: list[str]
    scaler: ChannelScaler
    decoder: Decoder
    reliability: Reliability
    train: TrainResult
    test: dict | None

    @property
    def val_macro_f1(self) -> float | None:
        return self.train.best_val_macro_f1


def fit_decoder(config: DecodingConfig, windowsets: WindowSets, participants: Iterable[str], classes: Sequence[str],
                model: nn.Module, scaler: ChannelScaler, seed: int = 0) -> Decoder:
    """The decoder learned from the (training) participants' unscaled windows and label sequences: their upright
    direction, then (smoothing 'gru') the sequence models over the trained `model`'s embeddings of their aligned
    windows, or (smoothing 'hmm') the transitions of their labels."""
    chosen = pick(windowsets, participants)
    channels = common_channels(dict(zip(sorted(participants), chosen, strict=True)))
    sequences = [seq for ws in chosen for seq in label_sequences(ws.labels, ws.segment, classes)]
    gru = config.smoothing == "gru"
    decoder = Decoder.fit(config.model_copy(update={"smoothing": "none"}) if gru else config, sequences,
                          len(classes), [ws.X for ws in chosen], channels)
    if not gru:
        return decoder
    config = decoder.config.model_copy(update={"smoothing": "gru"})
    features = []
    for ws in chosen:
        proba, embedding = predict_with_embedding(model, scaler.transform(decoder.align(ws.X, channels)[0]))
        inputs = sequence_inputs(config, proba, embedding)
        features += [inputs[part] for part in segments(ws.segment)]
    return Decoder(config, None, decoder.upright_reference,
                   *(train_sequence_model(features, sequences, len(classes), causal, config, seed)
                     for causal in (False, True)))


def out_of_fold(windowsets: WindowSets, people: Sequence[str], classes: Sequence[str], model_cfg: ModelConfig,
                train_cfg: TrainConfig, decoding: DecodingConfig,
                on_fold: Callable[[int, int, list[str]], None] | None = None) -> list[HeldOut]:
    """Every person's recording (unscaled windows) decoded by a model trained without them: the people dealt into
    `decoding.calibration_folds` folds (seeded), each fold's people decoded by a model, scaler and decoder learned
    from the others, as the scoring model is learned from all of them."""
    people = sorted(people)
    k = min(decoding.calibration_folds, len(people))
    order = sorted(people, key=lambda p: participant_rank(p, train_cfg.seed))
    held: list[HeldOut] = []
    for i in range(k):
        test = sorted(order[i::k])
        train_people = sorted(set(people) - set(test))
        if on_fold is not None:
            on_fold(i, k, test)
        scaler = fit_scaler(windowsets, train_people)
        data = labelled_data(windowsets, train_people, classes, scaler)
        model = train_model(data.X, data.y, None, None, classes, model_cfg, train_cfg, scaler=scaler).model
        decoder = fit_decoder(decoding, windowsets, train_people, classes, model, scaler, train_cfg.seed)

        def classify(X: np.ndarray, model: nn.Module = model, scaler: ChannelScaler = scaler) -> tuple:
            return predict_with_embedding(model, scaler.transform(X))

        for pid in test:
            ws = windowsets[pid]
            proba = decoder.decode(ws.X, ws.segment, scaler.channels, classify).proba
            held.append(HeldOut(pid, proba, class_indices(ws.labels.astype(str), classes)))
    return held


def learn_reliability(windowsets: WindowSets, people: Sequence[str], classes: Sequence[str], model_cfg: ModelConfig,
                      train_cfg: TrainConfig, decoding: DecodingConfig,
                      on_fold: Callable[[int, int, list[str]], None] | None = None) -> Reliability:
    """The scoring model's `Reliability`, learned from its training people (unscaled windows): calibration and the
    estimate's band out of fold (when `decoding.calibration_folds` >= 2 and at least 2 people), the out-of-
    distribution model from their windows."""
    chosen = pick(windowsets, people)
    channels = common_channels(dict(zip(sorted(people), chosen, strict=True)))
    held = (out_of_fold(windowsets, people, classes, model_cfg, train_cfg, decoding, on_fold)
            if decoding.calibration_folds >= 2 and len(people) >= 2 else [])
    return fit_reliability(held, [ws.X for ws in chosen], channels, decoding.flag_accuracy_below,
                           decoding.orientation_min_sway, decoding.orientation_min_windows, train_cfg.seed)


def run_experiment(windowsets: WindowSets, split: DatasetSplit, model_cfg: ModelConfig, train_cfg: TrainConfig,
                   decoding: DecodingConfig, on_epoch: Callable[[EpochStats], None] | None = None,
                   evaluate_test: bool = True, importance_repeats: int = 0) -> ExperimentResult:
    """Scaler, classes, decoder and reliability from the training participants (unscaled windows), train with early
    stopping on validation, and (optionally) evaluate on the test participants: what the training assets do, in one
    call."""
    common_channels({p: windowsets[p] for p in split.labelled})  # every labelled person preprocessed alike
    classes = derive_classes(windowsets, split.train)
    scaler = fit_scaler(windowsets, split.train)
    train = labelled_data(windowsets, split.train, classes, scaler)
    val = labelled_data(windowsets, split.validation, classes, scaler)
    result = train_model(train.X, train.y, val.X if len(val) else None, val.y if len(val) else None, classes,
                         model_cfg, train_cfg, on_epoch=on_epoch, scaler=scaler)
    decoder = fit_decoder(decoding, windowsets, split.train, classes, result.model, scaler, train_cfg.seed)
    reliability = learn_reliability(windowsets, split.train, classes, model_cfg, train_cfg, decoding)
    test_report = None
    if evaluate_test:
        test_report = evaluate(result.model, classes, scaler, decoder, {p: windowsets[p] for p in split.test},
                               train.y, importance_repeats, seed=train_cfg.seed, reliability=reliability)
    return ExperimentResult(classes=classes, scaler=scaler, decoder=decoder, reliability=reliability, train=result,
                            test=test_report)
