"""The cohort at a glance: classes per participant, channel levels per participant (who differs), correlations."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from har_assets.plots.png import figure_png, new_figure
from har_assets.signal.channel_stats import CohortChannels

MAX_ROW_LABELS = 60  # participant names on an axis; beyond that the rows stay unlabelled


def _participant_axis(ax, participants: list[str]) -> None:
    if len(participants) <= MAX_ROW_LABELS:
        ax.set_yticks(range(len(participants)), participants, fontsize=6 if len(participants) > 30 else 7)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{len(participants)} participants", fontsize=8)


def class_distribution_png(counts: Mapping[str, Mapping[str, int]]) -> bytes:
    """Windows per class over the cohort (bars) and each participant's share of each class (heatmap)."""
    participants = sorted(counts)
    classes = sorted({c for per in counts.values() for c in per})
    matrix = np.array([[counts[p].get(c, 0) for c in classes] for p in participants], dtype=float)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = new_figure(9, 2.2 + min(0.16 * len(participants), 7.5))
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, max(2.0, min(len(participants) / 6, 8))]})
    top.bar(range(len(classes)), matrix.sum(axis=0), color="tab:blue")
    top.set_xticks(range(len(classes)), [])
    top.set_ylabel("labelled windows", fontsize=8)
    top.tick_params(labelsize=7)
    top.set_title("classes in the cohort, and each participant's share of them", fontsize=10)
    image = bottom.imshow(shares, aspect="auto", cmap="viridis", vmin=0, vmax=max(shares.max(), 1e-9),
                          interpolation="nearest")
    bottom.set_xticks(range(len(classes)), classes, rotation=40, ha="right", fontsize=7)
    _participant_axis(bottom, participants)
    fig.colorbar(image, ax=bottom, fraction=0.03, pad=0.01, label="share of the participant's windows")
    fig.tight_layout()
    return figure_png(fig)


def channel_levels_png(stats: CohortChannels) -> bytes:
    """Each participant's channel medians in robust deviations from the cohort: units or orientation that differ
    show as a strong colour (|z| > 3.5 is marked)."""
    n = len(stats.participants)
    fig = new_figure(7.5, 1.6 + min(0.16 * n, 8.0))
    ax = fig.add_subplot()
    limit = max(4.0, float(np.nanmax(np.abs(stats.deviation))) if stats.deviation.size else 4.0)
    image = ax.imshow(np.clip(stats.deviation, -limit, limit), aspect="auto", cmap="RdBu_r", vmin=-limit,
                      vmax=limit, interpolation="nearest")
    rows, cols = np.nonzero(np.abs(stats.deviation) > 3.5)
    ax.scatter(cols, rows, marker="x", color="black", s=14, linewidths=0.8)
    ax.set_xticks(range(len(stats.channels)), stats.channels, fontsize=7)
    _participant_axis(ax, stats.participants)
    ax.set_title("channel medians per participant, in robust deviations from the cohort (x: beyond 3.5)",
                 fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    return figure_png(fig)


def correlation_png(stats: CohortChannels) -> bytes:
    """The channels' correlation matrix, pooled over every participant's windows."""
    k = len(stats.channels)
    fig = new_figure(1.2 + 0.65 * k, 0.8 + 0.6 * k)
    ax = fig.add_subplot()
    image = ax.imshow(stats.correlation, cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{stats.correlation[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(k), stats.channels, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(k), stats.channels, fontsize=7)
    ax.set_title("channel correlations (pooled)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return figure_png(fig)
