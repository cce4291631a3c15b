"""A participant's predicted activity over time, with the true labels under it where the recording has them."""

from __future__ import annotations

import polars as pl

from har_assets.inference.timeline import classes_of
from har_assets.plots.png import figure_png, new_figure
from har_assets.plots.recording import class_colors


def timeline_png(frame: pl.DataFrame, title: str, truth: list[tuple[float, float, str]] | None = None) -> bytes:
    """Predicted class per window (one row per class), the true label intervals (if any) in a ribbon below, and the
    confidence; minutes since the first window."""
    classes = classes_of(frame)
    t0 = float(frame["start_ms"].min()) if frame.height else 0.0
    start = (frame["start_ms"].to_numpy() - t0) / 60000.0
    end = (frame["end_ms"].to_numpy() - t0) / 60000.0
    truth = truth or []
    ratios = [3, 0.7, 1] if truth else [3, 1]
    fig = new_figure(10, 1.9 + 0.28 * len(classes) + (0.5 if truth else 0))
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios, "hspace": 0.1})
    top, bottom = axes[0], axes[-1]
    colors = class_colors(sorted(set(classes) | {label for _, _, label in truth}))
    labels = frame["label"].to_numpy()
    for i, cls in enumerate(classes):
        mine = labels == cls
        if mine.any():
            top.broken_barh(list(zip(start[mine], end[mine] - start[mine], strict=True)), (i - 0.4, 0.8),
                            facecolors=colors[cls])
    top.set_yticks(range(len(classes)), classes, fontsize=8)
    top.set_ylim(-0.6, len(classes) - 0.4)
    top.set_ylabel("predicted", fontsize=8)
    top.set_title(title, fontsize=10)
    if truth:
        ribbon = axes[1]
        for label in sorted({lab for _, _, lab in truth}):
            bars = [((a - t0) / 60000.0, (b - a) / 60000.0) for a, b, lab in truth if lab == label]
            ribbon.broken_barh(bars, (0, 1), facecolors=colors[label], label=label)
        ribbon.set_yticks([])
        ribbon.set_ylabel("true", fontsize=8)
        fig.legend(*ribbon.get_legend_handles_labels(), loc="lower center", ncol=min(6, len(truth)), fontsize=7,
                   frameon=False)
    bottom.plot((start + end) / 2, frame["confidence"].to_numpy(), lw=0.8, color="k")
    bottom.set_ylim(0, 1.02)
    bottom.set_ylabel("confidence", fontsize=8)
    bottom.set_xlabel("minutes since the first window", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.subplots_adjust(left=0.16, right=0.98, top=0.92, bottom=0.2 if truth else 0.12)
    return figure_png(fig)


def truth_intervals(labels: pl.DataFrame) -> list[tuple[float, float, str]]:
    """(start_ms, end_ms, activity) of a recording's label intervals."""
    return [(float(a), float(b), str(c)) for a, b, c in labels.select("start_ms", "end_ms", "activity").iter_rows()]


