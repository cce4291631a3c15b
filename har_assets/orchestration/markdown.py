"""Markdown tables for asset metadata (the Dagster UI renders `MetadataValue.md`)."""

from typing import Any

import dagster as dg
import polars as pl


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def md_table(headers: list[str], rows: list[list[Any]]) -> dg.MetadataValue:
    """A table with `headers` and one line per row; floats to 4 significant digits."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))


def frame_table(df: pl.DataFrame) -> dg.MetadataValue:
    """A polars frame as a table."""
    return md_table(df.columns, [list(row) for row in df.iter_rows()])
