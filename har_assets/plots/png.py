"""Figures to small PNGs for asset metadata: rendered off-screen, reduced to a palette, embedded as markdown."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_PNG_BYTES = 60_000  # one image in the event log; larger figures are re-rendered smaller
PALETTE_COLORS = 96


def new_figure(width_in: float, height_in: float, dpi: int = 80) -> Figure:
    """A figure with the off-screen Agg canvas (no display, thread-safe, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, max_bytes: int = MAX_PNG_BYTES) -> bytes:
    """The figure as a palette PNG of at most `max_bytes` (re-rendered at a lower resolution until it fits)."""
    from PIL import Image

    while True:
        fig.canvas.draw()
        rgba = fig.canvas.buffer_rgba()
        image = Image.frombuffer("RGBA", (rgba.shape[1], rgba.shape[0]), rgba, "raw", "RGBA", 0, 1).convert("RGB")
        out = io.BytesIO()
        image.quantize(colors=PALETTE_COLORS, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
        if out.tell() <= max_bytes or fig.dpi < 30:
            return out.getvalue()
        fig.set_dpi(fig.dpi * 0.8)


def png_markdown(png: bytes, alt: str) -> str:
    """Markdown that shows the PNG inline (the Dagster UI renders `MetadataValue.md`)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
