"""Metrics of a recording as a timeline, next to the window-level macro-F1 (the headline, `ml.metrics`).

- minutes labelled correctly: each whole minute of a recording (by window start) whose labelled windows' majority
  true class is the majority predicted class of those windows, as a share of the minutes with labelled windows;
- switches per hour (flicker): changes of class between consecutive labelled windows of one gap-free segment, true
  and predicted on the same windows, per hour of labelled windows; and predicted over every window of a recording
  when nobody labelled it.
"""

from __future__ import annotations

import numpy as np

from har_assets.ml.hmm import segments

MINUTE_MS = 60_000.0


def window_step_s(start_ms: np.ndarray, segment: np.ndarray) -> float:
    """The time between consecutive window starts inside a segment (median; s); 0 without two such windows."""
    start, seg = np.asarray(start_ms, dtype=np.float64), np.asarray(segment)
    steps = np.diff(start)[seg[1:] == seg[:-1]] if start.size > 1 else np.empty(0)
    return float(np.median(steps)) / 1000.0 if steps.size else 0.0


def switches(labels: np.ndarray, segment: np.ndarray) -> int:
    """Changes of label between consecutive windows of one segment."""
    y = np.asarray(labels)
    return int(sum(int((y[s][1:] != y[s][:-1]).sum()) for s in segments(segment)))


def switches_per_hour(labels: np.ndarray, segment: np.ndarray, step_s: float) -> float:
    """Predicted switches per hour of recording (every window standing for `step_s`); nan without windows."""
    hours = len(labels) * step_s / 3600.0
    return switches(labels, segment) / hours if hours > 0 else float("nan")


def minutes_correct(y_true: np.ndarray, y_pred: np.ndarray, start_ms: np.ndarray) -> tuple[int, int]:
    """(minutes whose labelled windows' majority true class was predicted as majority, minutes with labelled
    windows); y_true -1 marks unlabelled windows (left out). Ties go to the lower class index."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    keep = yt >= 0
    if not keep.any():
        return 0, 0
    minute = np.floor(np.asarray(start_ms, dtype=np.float64)[keep] / MINUTE_MS).astype(np.int64)
    yt, yp = yt[keep], yp[keep]
    k = int(max(yt.max(), yp.max())) + 1
    _, which = np.unique(minute, return_inverse=True)
    true_counts = np.zeros((which.max() + 1, k), dtype=np.int64)
    pred_counts = np.zeros_like(true_counts)
    np.add.at(true_counts, (which, yt), 1)
    np.add.at(pred_counts, (which, yp), 1)
    return int((true_counts.argmax(axis=1) == pred_counts.argmax(axis=1)).sum()), int(true_counts.shape[0])


def timeline_scores(y_true: np.ndarray, y_pred: np.ndarray, segment: np.ndarray, start_ms: np.ndarray) -> dict:
    """Counts for one recording: labelled minutes and those right, switches true and predicted on the labelled
    windows, and their hours (sum them over recordings, then `timeline_summary`)."""
    yt, yp, seg = np.asarray(y_true), np.asarray(y_pred), np.asarray(segment)
    keep = yt >= 0
    right, minutes = minutes_correct(yt, yp, start_ms)
    step = window_step_s(start_ms, segment)
    return {"minutes": minutes, "minutes_correct": right, "hours": float(keep.sum() * step / 3600.0),
            "switches_true": switches(yt[keep], seg[keep]), "switches_predicted": switches(yp[keep], seg[keep])}


def timeline_summary(parts: list[dict]) -> dict[str, float]:
    """Shares and rates of summed `timeline_scores`: minutes_correct_share, switches_per_hour_true/_predicted."""
    total = {k: sum(p[k] for p in parts) for k in ("minutes", "minutes_correct", "hours", "switches_true",
                                                    "switches_predicted")}
    hours = total["hours"]
    return {"minutes_correct_share": total["minutes_correct"] / total["minutes"] if total["minutes"] else float("nan"),
            "switches_per_hour_true": total["switches_true"] / hours if hours else float("nan"),
            "switches_per_hour_predicted": total["switches_predicted"] / hours if hours else float("nan"),
            "labelled_minutes": total["minutes"]}
