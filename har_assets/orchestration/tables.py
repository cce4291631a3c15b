"""Tables in asset metadata, in Dagster's own format: `MetadataValue.table` (the UI renders and sorts them) and
the `dagster/row_count` / `dagster/column_schema` entries of every tabular asset."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dagster as dg
import numpy as np
import polars as pl


def _type_of(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_temporal():
        return "datetime"
    return "string"


def table_schema(df: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, _type_of(dtype)) for name, dtype in df.schema.items()])


def tabular_metadata(df: pl.DataFrame) -> dict[str, Any]:
    """Dagster's row count and column schema of a stored table (shown on the asset's page, charted over time)."""
    return {"dagster/row_count": df.height, "dagster/column_schema": table_schema(df)}


def _plain(value: Any) -> str | int | float | bool | None:
    """A value a TableRecord holds: numbers stay numbers (floats to 6 significant digits), the rest text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.6g}")
    return str(value)


def rows_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> dg.MetadataValue:
    """A table with `headers` and one record per row; column types from the first value that is not None."""
    records = [dg.TableRecord(dict(zip(headers, map(_plain, row), strict=True))) for row in rows]
    types = []
    for i, _ in enumerate(headers):
        found = next((_plain(r[i]) for r in rows if _plain(r[i]) is not None), None)
        types.append({bool: "bool", int: "int", float: "float"}.get(type(found), "string"))
    return dg.MetadataValue.table(records, schema=dg.TableSchema(
        columns=[dg.TableColumn(h, t) for h, t in zip(headers, types, strict=True)]))


def frame_table(df: pl.DataFrame) -> dg.MetadataValue:
    """A polars frame as a table."""
    return rows_table(df.columns, [list(row) for row in df.iter_rows()])
