"""A picture of one recording on its fused clock: every channel over time, the label intervals as coloured bands,
gaps shaded and segment starts marked. Long recordings are reduced for display only: each pixel column shows the
minimum-to-maximum envelope of the samples that fall in it, so spikes stay visible."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl

from har_assets.plots.png import figure_png, new_figure
from har_assets.signal.filters import segment_bounds

CHANNEL_GROUPS = {  # panel title -> channels, in the order drawn (those present in the frame)
    "acceleration (m/s²)": ("acc_x", "acc_y", "acc_z"),
    "gravity (m/s²)": ("grav_x", "grav_y", "grav_z"),
    "angular rate (rad/s)": ("gyro_x", "gyro_y", "gyro_z"),
}
AXIS_COLORS = ("tab:red", "tab:green", "tab:blue")
COLUMNS = 900  # envelope bins across the plot (about one per pixel column)
MAX_SEGMENT_LINES = 40


def class_colors(classes: list[str]) -> dict[str, tuple]:
    """A colour per class (tab20, in sorted order of the classes shown)."""
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors
    return {c: palette[i % len(palette)] for i, c in enumerate(sorted(classes))}


def runs(t_ms: np.ndarray, values: np.ndarray) -> list[tuple[float, float, str]]:
    """(start_ms, end_ms, value) of each run of equal, non-null values along sorted times."""
    if t_ms.size == 0:
        return []
    keys = np.asarray([v if v is not None else "" for v in values], dtype=str)
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts, ends = np.r_[0, change], np.r_[change, keys.size]
    return [(float(t_ms[a]), float(t_ms[b - 1]), str(keys[a])) for a, b in zip(starts, ends, strict=True) if keys[a]]


def envelope(x: np.ndarray, v: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bin of sorted `x`, the min and max of `v` (NaN where a bin holds no sample: a gap in the plot)."""
    bins = edges.size - 1
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    lo, hi = np.full(bins, np.nan), np.full(bins, np.nan)
    lo[idx[starts]] = np.minimum.reduceat(v, starts)
    hi[idx[starts]] = np.maximum.reduceat(v, starts)
    return lo, hi


def segment_spans(t_ms: np.ndarray, segment: np.ndarray) -> list[tuple[float, float]]:
    """(first, last) sample time of each segment."""
    bounds = segment_bounds(segment)
    return [(float(t_ms[a]), float(t_ms[b - 1])) for a, b in itertools.pairwise(bounds) if b > a]


def recording_png(frame: pl.DataFrame, title: str) -> bytes:
    """PNG (≤ 60 KB) of a fused or filtered recording: t_ms, segment, channels, and its `label` intervals."""
    t = frame["t_ms"].to_numpy()
    if t.size == 0:
        raise ValueError(f"{title}: nothing to plot, the recording has no samples")
    t0 = t[0]
    minutes = (t - t0) / 60_000.0
    groups = {name: [c for c in chans if c in frame.columns] for name, chans in CHANNEL_GROUPS.items()}
    groups = {name: chans for name, chans in groups.items() if chans}
    intervals = runs(t, frame["label"].to_numpy()) if "label" in frame.columns else []
    fig = new_figure(10, 1.2 + 1.7 * len(groups) + 0.6)
    axes = fig.subplots(len(groups) + 1, 1, sharex=True,
                        gridspec_kw={"height_ratios": [3] * len(groups) + [0.7], "hspace": 0.08})
    edges = np.linspace(minutes[0], minutes[-1] + 1e-9, COLUMNS + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    spans = segment_spans(t, frame["segment"].to_numpy())
    gaps = [((a_end - t0) / 60_000.0, (b_start - t0) / 60_000.0)
            for (_, a_end), (b_start, _) in itertools.pairwise(spans)]
    for ax, (name, channels) in zip(axes, groups.items(), strict=False):
        for channel, color in zip(channels, AXIS_COLORS, strict=False):
            lo, hi = envelope(minutes, frame[channel].to_numpy(), edges)
            ax.fill_between(centers, lo, hi, color=color, alpha=0.55, linewidth=0.6, label=channel.split("_")[-1])
        for a, b in gaps:
            ax.axvspan(a, b, color="0.75", alpha=0.6, linewidth=0)
        if len(spans) <= MAX_SEGMENT_LINES:
            for start, _ in spans[1:]:
                ax.axvline((start - t0) / 60_000.0, color="0.3", linestyle="--", linewidth=0.6)
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(loc="upper right", fontsize=7, ncol=3, frameon=False)
    ribbon = axes[-1]
    colors = class_colors(sorted({label for _, _, label in intervals}))
    for label, color in colors.items():
        bars = [((a - t0) / 60_000.0, (b - a) / 60_000.0) for a, b, lab in intervals if lab == label]
        ribbon.broken_barh(bars, (0, 1), facecolors=color, label=label)
    for a, b in gaps:
        ribbon.axvspan(a, b, color="0.75", alpha=0.6, linewidth=0)
    ribbon.set_yticks([])
    ribbon.set_ylabel("labels", fontsize=8)
    ribbon.set_xlim(minutes[0], minutes[-1])
    start = np.datetime64(int(t0), "ms").astype("datetime64[s]")
    ribbon.set_xlabel(f"minutes since {start} UTC; grey: gaps ({len(gaps)}); dashed: segment starts", fontsize=8)
    ribbon.tick_params(labelsize=7)
    if colors:
        fig.legend(*ribbon.get_legend_handles_labels(), loc="lower center", ncol=min(6, len(colors)), fontsize=7,
                   frameon=False)
    axes[0].set_title(title, fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=0.12 + 0.03 * ((len(colors) - 1) // 6))
    return figure_png(fig)
