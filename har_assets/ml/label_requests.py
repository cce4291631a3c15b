"""The few short spans of an unlabelled person's recording whose labels would help the model most.

Each window gets a score from what the model said about it: how unsure the decoded answer is (1 - its calibrated
top probability), whether the window alone disagreed with the decoded answer, and how unsure the model is on
average over the windows like it (k-means clusters of the window embeddings: a kind of movement the model gets
wrong on this person). Spans of `span_s` seconds inside one gap-free segment are scored by their windows' mean and
chosen greedily, best first, never overlapping, one per cluster of movement before a second from any cluster, so
that a few minutes cover the different things the model is unsure about. Windows already labelled are never asked
for again. Pure numpy (k-means from scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from har_assets.ml.hmm import segments

SPAN_S = 30.0  # seconds per requested span
DEFAULT_MINUTES = 3.0  # minutes a request covers unless asked otherwise
MAX_CLUSTERS = 8
WINDOWS_PER_CLUSTER = 50  # at most one cluster per this many windows


@dataclass(frozen=True)
class Span:
    """Windows [first, last] of one segment, to be labelled."""

    first: int
    last: int
    score: float
    guess: int  # the decoded class most of its windows got
    confidence: float  # their mean calibrated top probability
    cluster: int


def window_scores(proba: np.ndarray, window_proba: np.ndarray, embedding: np.ndarray | None,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(score, cluster) per window: uncertainty + disagreement / 2 + the mean uncertainty of its cluster."""
    uncertainty = 1.0 - np.asarray(proba, np.float64).max(axis=1)
    disagreement = (np.asarray(window_proba).argmax(axis=1) != np.asarray(proba).argmax(axis=1)).astype(float)
    cluster = np.zeros(len(proba), dtype=np.int64)
    k = min(MAX_CLUSTERS, len(proba) // WINDOWS_PER_CLUSTER)
    if embedding is not None and k >= 2:
        from sklearn.cluster import KMeans

        e = np.asarray(embedding, np.float64)
        e = (e - e.mean(axis=0)) / (e.std(axis=0) + 1e-9)
        cluster = KMeans(k, n_init=3, random_state=seed).fit_predict(e)
    typical = np.array([uncertainty[cluster == c].mean() for c in range(cluster.max() + 1)])[cluster]
    return uncertainty + 0.5 * disagreement + typical, cluster


def request_spans(proba: np.ndarray, window_proba: np.ndarray, embedding: np.ndarray | None, segment: np.ndarray,
                  span_windows: int, spans: int, labelled: np.ndarray | None = None, seed: int = 0) -> list[Span]:
    """Up to `spans` non-overlapping spans of `span_windows` consecutive windows of one segment (shorter segments:
    the whole segment), none touching a window in `labelled`; in time order."""
    n = len(proba)
    score, cluster = window_scores(proba, window_proba, embedding, seed)
    blocked = np.zeros(n, bool) if labelled is None else np.asarray(labelled, bool).copy()
    candidates = []
    for part in segments(segment):
        idx = np.arange(n)[part]
        width = min(span_windows, len(idx))
        for start in range(0, len(idx) - width + 1):
            w = idx[start:start + width]
            candidates.append((float(score[w].mean()), int(w[0]), int(w[-1])))
    candidates.sort(reverse=True)
    labels, conf = np.asarray(proba).argmax(axis=1), np.asarray(proba).max(axis=1)
    chosen: list[Span] = []
    used_clusters: set[int] = set()
    for diverse in (True, False):
        for s, first, last in candidates:
            if len(chosen) >= spans:
                break
            w = slice(first, last + 1)
            if blocked[w].any():
                continue
            c = int(np.bincount(cluster[w]).argmax())
            if diverse and c in used_clusters:
                continue
            chosen.append(Span(first, last, s, int(np.bincount(labels[w]).argmax()), float(conf[w].mean()), c))
            used_clusters.add(c)
            blocked[w] = True
    return sorted(chosen, key=lambda sp: sp.first)


def random_spans(segment: np.ndarray, span_windows: int, spans: int, labelled: np.ndarray | None = None,
                 seed: int = 0) -> list[tuple[int, int]]:
    """The same number of spans at random (non-overlapping, inside segments): what requested spans must beat."""
    rng = np.random.default_rng(seed)
    n = len(segment)
    blocked = np.zeros(n, bool) if labelled is None else np.asarray(labelled, bool).copy()
    starts = [(int(np.arange(n)[part][i]), min(span_windows, part.stop - part.start))
              for part in segments(segment) for i in range(max(1, part.stop - part.start - span_windows + 1))]
    out = []
    for j in rng.permutation(len(starts)):
        first, width = starts[j]
        if len(out) >= spans:
            break
        if not blocked[first:first + width].any():
            out.append((first, first + width - 1))
            blocked[first:first + width] = True
    return sorted(out)
