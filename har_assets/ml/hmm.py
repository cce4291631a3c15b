"""A hidden Markov model over a recording's windows: activities last, so a window's class depends on its neighbours.

The hidden state of each window is its activity; the per-window classifier's probabilities are the emissions
(a class-balanced network's output is proportional to p(window | class) up to a factor per window, which is
all that decoding needs); the transitions between consecutive windows are counted in the training people's
label sequences. Decoding runs inside one gap-free segment at a time, never across a gap: the caller passes
each segment separately (`segments`).

Pure numpy, log space throughout. Offline decoding sees the whole segment (forward-backward posteriors, or the
Viterbi path); the causal variant (`forward_filter`) sees only the windows up to each one, as a streaming
client does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

_TINY = 1e-12


def segments(segment_ids: np.ndarray) -> Iterator[slice]:
    """Slices of consecutive windows with the same segment id, in order (a new slice wherever the id changes)."""
    ids = np.asarray(segment_ids)
    if ids.size == 0:
        return
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], ids.size]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        yield slice(a, b)


def transition_counts(label_sequences: Iterable[Sequence[int]], n_classes: int) -> np.ndarray:
    """(k, k) counts of class i followed by class j in each sequence (indices; -1 = unlabelled, skipped, so the
    pair spans it)."""
    counts = np.zeros((n_classes, n_classes), dtype=np.float64)
    for seq in label_sequences:
        y = np.asarray(seq, dtype=np.int64)
        y = y[y >= 0]
        if y.size > 1:
            np.add.at(counts, (y[:-1], y[1:]), 1.0)
    return counts


@dataclass(frozen=True)
class Hmm:
    """Initial and transition probabilities over `k` classes (rows of `transition` sum to 1)."""

    initial: np.ndarray  # (k,)
    transition: np.ndarray  # (k, k): transition[i, j] = P(next = j | now = i)

    def __post_init__(self) -> None:
        k = self.initial.shape[0]
        if self.initial.shape != (k,) or self.transition.shape != (k, k):
            raise ValueError(f"initial {self.initial.shape} and transition {self.transition.shape} do not match")
        if not (np.all(np.isfinite(self.transition)) and np.all(self.transition >= 0)
                and np.allclose(self.transition.sum(axis=1), 1.0, atol=1e-6)):
            raise ValueError("every row of the transition matrix must be probabilities summing to 1")
        if not (np.all(self.initial >= 0) and np.isclose(self.initial.sum(), 1.0, atol=1e-6)):
            raise ValueError("initial probabilities must sum to 1")

    @property
    def n_classes(self) -> int:
        return int(self.initial.shape[0])

    @classmethod
    def fit(cls, label_sequences: Iterable[Sequence[int]], n_classes: int, pseudocount: float = 1.0) -> Hmm:
        """Transitions counted in labelled sequences (each with `pseudocount` added, so no switch is impossible);
        the initial distribution is the classes' share of the labelled windows."""
        sequences = [np.asarray(s, dtype=np.int64) for s in label_sequences]
        counts = transition_counts(sequences, n_classes) + pseudocount
        labelled = np.concatenate([s[s >= 0] for s in sequences]) if sequences else np.empty(0, np.int64)
        share = np.bincount(labelled, minlength=n_classes).astype(np.float64) + pseudocount
        return cls(initial=share / share.sum(), transition=counts / counts.sum(axis=1, keepdims=True))

    def expected_duration(self) -> np.ndarray:
        """Mean number of consecutive windows a class lasts, 1 / (1 - P(stay))."""
        return 1.0 / np.maximum(1.0 - np.diag(self.transition), _TINY)

    def to_dict(self) -> dict:
        return {"initial": self.initial.tolist(), "transition": self.transition.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Hmm:
        return cls(initial=np.asarray(d["initial"], dtype=np.float64),
                   transition=np.asarray(d["transition"], dtype=np.float64))

    def _logs(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = np.asarray(proba, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != self.n_classes:
            raise ValueError(f"expected (windows, {self.n_classes}) probabilities, got shape {p.shape}")
        return (np.log(np.maximum(p, _TINY)), np.log(np.maximum(self.initial, _TINY)),
                np.log(np.maximum(self.transition, _TINY)))

    def posterior(self, proba: np.ndarray) -> np.ndarray:
        """P(class of window t | every window of the segment): forward-backward, (n, k), rows sum to 1."""
        log_e, log_pi, log_a = self._logs(proba)
        n = log_e.shape[0]
        if n == 0:
            return np.empty((0, self.n_classes))
        fwd = np.empty_like(log_e)
        bwd = np.zeros_like(log_e)
        fwd[0] = log_pi + log_e[0]
        for t in range(1, n):
            fwd[t] = log_e[t] + _logsumexp(fwd[t - 1][:, None] + log_a, axis=0)
        for t in range(n - 2, -1, -1):
            bwd[t] = _logsumexp(log_a + (log_e[t + 1] + bwd[t + 1])[None, :], axis=1)
        return _normalise(fwd + bwd)

    def forward_filter(self, proba: np.ndarray) -> np.ndarray:
        """P(class of window t | windows 0..t): causal, each row uses no later window; (n, k), rows sum to 1."""
        log_e, log_pi, log_a = self._logs(proba)
        n = log_e.shape[0]
        out = np.empty_like(log_e)
        if n == 0:
            return np.empty((0, self.n_classes))
        belief = log_pi + log_e[0]
        belief -= _logsumexp(belief, axis=0)
        out[0] = belief
        for t in range(1, n):
            belief = log_e[t] + _logsumexp(belief[:, None] + log_a, axis=0)
            belief -= _logsumexp(belief, axis=0)
            out[t] = belief
        return np.exp(out)

    def viterbi(self, proba: np.ndarray) -> np.ndarray:
        """The most probable class sequence (n,) given every window of the segment."""
        log_e, log_pi, log_a = self._logs(proba)
        n, k = log_e.shape
        if n == 0:
            return np.empty(0, dtype=np.int64)
        back = np.empty((n, k), dtype=np.int64)
        score = log_pi + log_e[0]
        for t in range(1, n):
            cand = score[:, None] + log_a
            back[t] = cand.argmax(axis=0)
            score = cand[back[t], np.arange(k)] + log_e[t]
        path = np.empty(n, dtype=np.int64)
        path[-1] = int(score.argmax())
        for t in range(n - 1, 0, -1):
            path[t - 1] = back[t, path[t]]
        return path


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _normalise(log_p: np.ndarray) -> np.ndarray:
    log_p = log_p - _logsumexp(log_p, axis=1)[:, None]
    return np.exp(log_p)
