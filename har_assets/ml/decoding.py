"""From a person's windows to activities over time: align their device frame, classify each window, smooth.

`Decoder` holds what training learned for it (`DecodingConfig`, the training people's upright direction, and
the sequence model over window embeddings or the transition probabilities of their label sequences) and
travels in the model bundle (`decoding.json`, the GRUs' weights in `decoding_sequence.npz`). A
bundle without one (registered before decoding existed) gets `Decoder.per_window()`: no alignment, each window's
own argmax, exactly as that model was trained and served. Pure numpy: serving runs it without torch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from har_assets.ml.gru import SequenceWeights, load_weights, save_weights
from har_assets.ml.hmm import Hmm, segments
from har_assets.ml.hyperparams import DecodingConfig
from har_assets.ml.orientation import ACC, Alignment, align, upright_direction

DECODING_FILE = "decoding.json"
SEQUENCE_FILE = "decoding_sequence.npz"  # the GRUs' weights, smoothing 'gru'
OFFLINE, CAUSAL = "offline", "causal"
LOG_FLOOR = 1e-6  # probabilities below this read as it, for log-probability inputs
PER_WINDOW = DecodingConfig(orientation="none", smoothing="none")


@dataclass(frozen=True)
class Decoded:
    """One recording decoded: per-window probabilities (after alignment, before smoothing), the decoded ones, how
    the frame was aligned, and the seconds each step took."""

    window_proba: np.ndarray  # (n, classes): the classifier on each window alone
    proba: np.ndarray  # (n, classes): after smoothing (== window_proba without it)
    alignment: Alignment
    seconds: dict[str, float] = field(default_factory=dict)  # align, classify, smooth
    embedding: np.ndarray | None = None  # (n, features): the windows' embeddings, where the classifier gave them

    @property
    def labels(self) -> np.ndarray:
        return self.proba.argmax(axis=1)


# what the window classifier gives a decoder: probabilities (n, classes), or with the windows' embeddings
Classify = Callable[[np.ndarray], "np.ndarray | tuple[np.ndarray, np.ndarray | None]"]


@dataclass(frozen=True)
class Decoder:
    config: DecodingConfig
    hmm: Hmm | None = None  # smoothing 'hmm'
    upright_reference: np.ndarray | None = None  # unit vector; None: no alignment
    sequence: SequenceWeights | None = None  # smoothing 'gru': both directions (offline)
    sequence_causal: SequenceWeights | None = None  # smoothing 'gru': forward-only

    def __post_init__(self) -> None:
        if self.config.smoothing == "hmm" and self.hmm is None:
            raise ValueError("smoothing 'hmm' needs the transition probabilities")
        if self.config.smoothing == "gru" and (self.sequence is None or self.sequence_causal is None):
            raise ValueError("smoothing 'gru' needs the trained sequence models (offline and causal)")
        if self.config.orientation == "upright" and self.upright_reference is None:
            raise ValueError("orientation 'upright' needs the training people's upright reference")

    @classmethod
    def per_window(cls) -> Decoder:
        """Each window alone, the device frame as it is: how models registered before decoding are served."""
        return cls(PER_WINDOW)

    @classmethod
    def fit(cls, config: DecodingConfig, label_sequences: Iterable[Sequence[int]], n_classes: int,
            training_windows: Iterable[np.ndarray], channels: Sequence[str]) -> Decoder:
        """Learn from the training people: the transitions of their label sequences (class indices per window of
        each gap-free segment, -1 unlabelled) and the mean of their upright directions (their unscaled windows,
        one array per person). Orientation falls back to 'none' without accelerometer channels or when no
        training person moves enough."""
        if config.smoothing == "gru":
            raise ValueError("a 'gru' decoder is trained with the window classifier: har_assets.ml.experiment."
                             "fit_decoder")
        hmm = Hmm.fit(label_sequences, n_classes, config.transition_pseudocount) if config.smoothing == "hmm" else None
        reference = None
        if config.orientation == "upright" and not set(ACC) <= set(channels):
            config = config.model_copy(update={"orientation": "none"})  # no accelerometer: no upright to find
        if config.orientation == "upright":
            found = [d for X in training_windows
                     if (d := upright_direction(X, channels, config.orientation_min_sway,
                                                config.orientation_min_windows)[0]) is not None]
            if found:
                mean = np.mean(found, axis=0)
                reference = mean / np.linalg.norm(mean)
            else:
                config = config.model_copy(update={"orientation": "none"})
        return cls(config, hmm, reference)

    def align(self, X: np.ndarray, channels: Sequence[str]) -> tuple[np.ndarray, Alignment]:
        """The windows turned into the training people's frame (unchanged without orientation)."""
        if self.upright_reference is None:
            return np.asarray(X, dtype=np.float32), Alignment(np.eye(3), 0, False)
        return align(X, channels, self.upright_reference, self.config.orientation_min_sway,
                     self.config.orientation_min_windows)

    def smooth(self, proba: np.ndarray, segment: np.ndarray, causal: bool = False,
               embedding: np.ndarray | None = None) -> np.ndarray:
        """Per-window probabilities smoothed inside each gap-free segment (`segment`: id per window, in time
        order). gru: the sequence model on the windows' `embedding`s (both directions offline, forward-only when
        causal); hmm: forward-backward posteriors offline, the forward filter when causal. Causal: no window's
        answer uses a later window."""
        proba = np.asarray(proba, dtype=np.float64)
        if self.config.smoothing == "none" or len(proba) == 0:
            return proba.astype(np.float32)
        if len(segment) != len(proba):
            raise ValueError(f"{len(proba)} windows but {len(segment)} segment ids")
        inputs = sequence_inputs(self.config, proba, embedding) if self.config.smoothing == "gru" else None
        out = np.empty_like(proba)
        for part in segments(segment):
            if inputs is not None:
                model = self.sequence_causal if causal else self.sequence
                out[part] = model.predict_proba(inputs[part])
            else:
                out[part] = self.hmm.forward_filter(proba[part]) if causal else self.hmm.posterior(proba[part])
        return out.astype(np.float32)

    def decode(self, X: np.ndarray, segment: np.ndarray, channels: Sequence[str], classify: Classify,
               causal: bool = False) -> Decoded:
        """One recording's unscaled windows (n, samples, channels) in time order -> `Decoded`; `classify` maps
        unscaled windows to per-window class probabilities, or to (probabilities, embeddings), which a 'gru'
        decoder needs (the bundle's scaler and network)."""
        t0 = time.perf_counter()
        aligned, alignment = self.align(X, channels)
        t1 = time.perf_counter()
        out = classify(aligned)
        window_proba, embedding = out if isinstance(out, tuple) else (out, None)
        window_proba = np.asarray(window_proba, dtype=np.float32)
        t2 = time.perf_counter()
        proba = self.smooth(window_proba, segment, causal, embedding)
        t3 = time.perf_counter()
        return Decoded(window_proba, proba, alignment, {"align": t1 - t0, "classify": t2 - t1, "smooth": t3 - t2},
                       embedding)

    def describe(self) -> dict:
        """What this decoder does, for model info and run params."""
        return {**self.config.model_dump(mode="json"),
                "upright_reference": None if self.upright_reference is None else
                [round(float(v), 4) for v in self.upright_reference],
                "mean_duration_windows": None if self.hmm is None else
                [round(float(v), 2) for v in self.hmm.expected_duration()],
                "sequence_features": None if self.sequence is None else int(self.sequence.mean.shape[0])}

    def to_dict(self) -> dict:
        """Everything but the sequence models' weights (`write` keeps them beside, as arrays)."""
        return {"config": self.config.model_dump(mode="json"),
                "hmm": None if self.hmm is None else self.hmm.to_dict(),
                "upright_reference": None if self.upright_reference is None else self.upright_reference.tolist()}

    @classmethod
    def from_dict(cls, d: dict, sequences: dict[str, SequenceWeights] | None = None) -> Decoder:
        sequences = sequences or {}
        return cls(DecodingConfig.model_validate(d["config"]),
                   None if d.get("hmm") is None else Hmm.from_dict(d["hmm"]),
                   None if d.get("upright_reference") is None else np.asarray(d["upright_reference"], np.float64),
                   sequences.get(OFFLINE), sequences.get(CAUSAL))

    def write(self, folder: Path) -> None:
        (folder / DECODING_FILE).write_text(json.dumps(self.to_dict(), indent=2))
        if self.sequence is not None and self.sequence_causal is not None:
            save_weights(folder / SEQUENCE_FILE, {OFFLINE: self.sequence, CAUSAL: self.sequence_causal})

    @classmethod
    def read(cls, folder: Path) -> Decoder:
        """The folder's decoder; `per_window()` for a bundle written before decoders existed."""
        path = folder / DECODING_FILE
        if not path.is_file():
            return cls.per_window()
        d = json.loads(path.read_text())
        sequences = load_weights(folder / SEQUENCE_FILE, [OFFLINE, CAUSAL]) if d["config"].get(
            "smoothing") == "gru" else None
        return cls.from_dict(d, sequences)


def class_indices(labels: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Class index per window (-1: unlabelled or a class not in `classes`)."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(str(label), -1) for label in np.asarray(labels).tolist()], dtype=np.int64)


def label_sequences(labels: np.ndarray, segment: np.ndarray, classes: Sequence[str]) -> list[np.ndarray]:
    """A person's labels as class indices (`class_indices`) per gap-free segment."""
    y = class_indices(labels, classes)
    return [y[part] for part in segments(segment)]


def sequence_inputs(config: DecodingConfig, proba: np.ndarray, embedding: np.ndarray | None) -> np.ndarray:
    """What the sequence models read per window (`config.sequence_inputs`): the embeddings, or the
    log-probabilities."""
    if config.sequence_inputs == "log_proba":
        return np.log(np.maximum(np.asarray(proba, dtype=np.float64), LOG_FLOOR))
    if embedding is None or len(embedding) != len(proba):
        raise ValueError("smoothing 'gru' on embeddings needs every window's embedding")
    return embedding
