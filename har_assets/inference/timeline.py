"""A participant's activity timeline: one row per window, a class-share summary, and a plot (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from har_assets.inference.predictor import LoadedModel, WindowPredictions

PROBA_PREFIX = "p_"


def timeline_frame(pred: WindowPredictions, model: LoadedModel, personal: WindowPredictions | None = None
                   ) -> pl.DataFrame:
    """window, start/end (epoch ms and UTC datetime), segment, label and confidence (the recording decoded whole,
    calibrated), window_label (the window classified alone), personal_label (the label once the person's own
    labelled minutes are used, `personal`; null without them), ood_score (the window's out-of-distribution score,
    null when the model has none; higher is stranger), p_<class>... (decoded, calibrated), model."""
    n = len(pred.proba)
    ood = pred.ood_score
    frame = pl.DataFrame({
        "window": np.arange(n, dtype=np.int64),
        "start_ms": pred.start_ms.astype(np.float64),
        "end_ms": pred.end_ms.astype(np.float64),
        "segment": pred.windows.segment.astype(np.int64),
        "label": pred.labels.astype(str),
        "confidence": pred.confidence.astype(np.float64),
        "window_label": np.asarray(pred.classes, dtype=str)[pred.window_proba.argmax(axis=1)],
        "personal_label": pl.Series("personal_label", [None] * n if personal is None else personal.labels.astype(str),
                                    dtype=pl.String),
        "ood_score": pl.Series("ood_score", [None] * n if ood is None else ood.astype(np.float64), dtype=pl.Float64),
        **{f"{PROBA_PREFIX}{c}": pred.proba[:, i].astype(np.float64) for i, c in enumerate(pred.classes)},
    })
    utc = pl.Datetime("ms", "UTC")
    return frame.with_columns(
        start=pl.col("start_ms").round().cast(pl.Int64).cast(pl.Datetime("ms")).cast(utc),
        end=pl.col("end_ms").round().cast(pl.Int64).cast(pl.Datetime("ms")).cast(utc),
        model_name=pl.lit(model.name),
        model_version=pl.lit(model.version),
    )


def class_shares(frame: pl.DataFrame, classes: list[str]) -> dict[str, float]:
    """Share of windows predicted as each class (every class listed)."""
    counts = dict(frame["label"].value_counts().iter_rows())
    n = max(frame.height, 1)
    return {c: counts.get(c, 0) / n for c in classes}


def classes_of(frame: pl.DataFrame) -> list[str]:
    return [c.removeprefix(PROBA_PREFIX) for c in frame.columns if c.startswith(PROBA_PREFIX)]


def share_rows(shares: dict[str, float], frame: pl.DataFrame) -> list[list]:
    """[class, windows, share, mean confidence] per class, most frequent first."""
    rows = []
    for cls, share in sorted(shares.items(), key=lambda kv: -kv[1]):
        mine = frame.filter(pl.col("label") == cls)
        rows.append([cls, mine.height, round(share, 4), round(float(mine["confidence"].mean()), 4) if mine.height
                     else None])
    return rows
