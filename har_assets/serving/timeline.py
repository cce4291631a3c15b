"""A participant's activity timeline: one row per window, a class-share summary, and a plot (pure)."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from har_assets.serving.predictor import LoadedModel, WindowPredictions

PROBA_PREFIX = "p_"


def timeline_frame(pred: WindowPredictions, model: LoadedModel) -> pl.DataFrame:
    """window, start/end (epoch ms and UTC datetime), segment, label, confidence, p_<class>..., model."""
    n = len(pred.proba)
    frame = pl.DataFrame({
        "window": np.arange(n, dtype=np.int64),
        "start_ms": pred.start_ms.astype(np.float64),
        "end_ms": pred.end_ms.astype(np.float64),
        "segment": pred.windows.segment.astype(np.int64),
        "label": pred.labels.astype(str),
        "confidence": pred.confidence.astype(np.float64),
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


def share_table_markdown(shares: dict[str, float], frame: pl.DataFrame) -> str:
    """Markdown: class, windows, share, mean confidence; most frequent first."""
    rows = ["| class | windows | share | mean confidence |", "|---|---:|---:|---:|"]
    for cls, share in sorted(shares.items(), key=lambda kv: -kv[1]):
        mine = frame.filter(pl.col("label") == cls)
        conf = f"{mine['confidence'].mean():.2f}" if mine.height else "-"
        rows.append(f"| {cls} | {mine.height} | {share:.1%} | {conf} |")
    return "\n".join(rows)


def timeline_png(frame: pl.DataFrame, title: str) -> bytes:
    """Predicted class over time (bars per window) above the confidence; minutes since the first window."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    classes = classes_of(frame)
    t0 = float(frame["start_ms"].min()) if frame.height else 0.0
    start = (frame["start_ms"].to_numpy() - t0) / 60000.0
    end = (frame["end_ms"].to_numpy() - t0) / 60000.0
    fig = Figure(figsize=(10, 1.6 + 0.28 * len(classes)), dpi=80)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    colors = [f"C{i % 10}" for i in range(len(classes))]
    labels = frame["label"].to_numpy()
    for i, cls in enumerate(classes):
        mine = labels == cls
        if mine.any():
            top.broken_barh(list(zip(start[mine], end[mine] - start[mine], strict=True)), (i - 0.4, 0.8),
                            facecolors=colors[i])
    top.set_yticks(range(len(classes)), classes, fontsize=8)
    top.set_ylim(-0.6, len(classes) - 0.4)
    top.set_title(title, fontsize=10)
    bottom.plot((start + end) / 2, frame["confidence"].to_numpy(), lw=0.8, color="k")
    bottom.set_ylim(0, 1.02)
    bottom.set_ylabel("confidence", fontsize=8)
    bottom.set_xlabel("minutes since the first window", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
