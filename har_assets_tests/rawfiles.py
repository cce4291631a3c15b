"""Small, fully controlled raw files for tests that need exact contents (bad-input cases)."""

from __future__ import annotations

import datetime as dt
import os
import struct
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import polars as pl

T0 = dt.datetime(2025, 3, 24, 7, 52, 19, 120000, tzinfo=dt.UTC)
COLUMNS = {
    "accelerometer": ("calibrated_accel_x", "calibrated_accel_y", "calibrated_accel_z"),
    "gyroscope": ("calibrated_gyro_x", "calibrated_gyro_y", "calibrated_gyro_z"),
}


def sensor_table(sensor: str, seconds: float, *, start: dt.datetime = T0, hz: float = 100.0, per_row: int = 25,
                 gap_after_s: float | None = None, gap_s: float = 0.0, scale: float = 1.0) -> pl.DataFrame:
    """A valid batch export: gravity on z (1000 milli-g) plus a 2 Hz wiggle; optional gap."""
    n = int(seconds * hz) // per_row * per_row
    t_ms = np.arange(n) * (1000.0 / hz)
    if gap_after_s is not None:
        t_ms[t_ms >= gap_after_s * 1000] += gap_s * 1000
    rows = []
    for r in range(n // per_row):
        t = t_ms[r * per_row:(r + 1) * per_row]
        batch_start = start + dt.timedelta(milliseconds=float(t[0]))
        offsets = np.round(t - t[0]).astype(int)
        wiggle = 100 * np.sin(2 * np.pi * 2 * t / 1000)
        values = (wiggle, 0.5 * wiggle, 1000 + 0 * wiggle) if sensor == "accelerometer" else (wiggle / 5,) * 3
        row = {
            "timestamp": batch_start.strftime("%m/%d/%Y, %I:%M:%S %p"),
            "timestamp_ms": batch_start.microsecond // 1000,
            "sample_time_offset": "[" + ", ".join(map(str, offsets)) + "]",
        }
        for col, v in zip(COLUMNS[sensor], values, strict=True):
            row[col] = "[" + ", ".join(f"{x * scale:.2f}" for x in v) + "]"
        rows.append(row)
    return pl.DataFrame(rows)


def labels_table(start: dt.datetime, bouts: list[tuple[float, float, str]]) -> pl.DataFrame:
    def iso(s: float) -> str:
        return (start + dt.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    return pl.DataFrame({"start": [iso(a) for a, _, _ in bouts], "end": [iso(b) for _, b, _ in bouts],
                         "activity": [c for _, _, c in bouts]})


def write_participant(folder: Path, seconds: float = 30.0, fmt: str = "csv", **kwargs) -> Path:
    """A valid participant: both sensors (gyro 7 ms out of phase), two labelled bouts."""
    folder.mkdir(parents=True, exist_ok=True)
    acc = sensor_table("accelerometer", seconds, **kwargs)
    gyro = sensor_table("gyroscope", seconds, start=T0 + dt.timedelta(milliseconds=7),
                        **{k: v for k, v in kwargs.items() if k != "scale"})
    write_table(acc, folder / f"accelerometer.{fmt}")
    write_table(gyro, folder / f"gyroscope.{fmt}")
    labels_table(T0, [(1.0, seconds / 2, "sitting"), (seconds / 2, seconds - 1.0, "hand_tapping")]).write_csv(
        folder / "labels.csv")
    return folder


def write_table(table: pl.DataFrame, path: Path) -> None:
    if path.suffix == ".xlsx":
        table.write_excel(path)
    else:
        table.write_csv(path)


def edit_cell(path: Path, column: str, row_index: int, value: str) -> None:
    """Replace one cell of a CSV sensor/label file (row_index 0 = first data row)."""
    table = pl.read_csv(path, infer_schema_length=0)
    table = table.with_columns(
        pl.when(pl.int_range(pl.len()) == row_index).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    )
    table.write_csv(path)


XLSX_PARTS = {
    "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
    "_rels/.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="xl/workbook.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>',
    "xl/workbook.xml": '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/></Relationships>',
}


SHEET_START = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'


def xlsx_row(values: Sequence[str], refs: Sequence[str] | None = None) -> bytes:
    """One `<row>` of text cells, at the given cell references (`AH2`) or, without, each after the one before."""
    cells = [(f'<c r="{ref}"' if ref else "<c") + f' t="inlineStr"><is><t>{escape(value)}</t></is></c>'
             for value, ref in zip(values, refs or [None] * len(values), strict=True)]
    return ("<row>" + "".join(cells) + "</row>").encode()


def write_xlsx(path: Path, rows: Iterable[bytes]) -> None:
    """A minimal workbook whose one sheet holds `rows` (`xlsx_row`), written straight into the zip as a stream:
    300 k rows take about a second, where a spreadsheet library takes minutes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        for name, xml in XLSX_PARTS.items():
            book.writestr(name, xml)
        with book.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(SHEET_START)
            buffer = bytearray()
            for row in rows:
                buffer += row
                if len(buffer) > 1 << 20:
                    sheet.write(buffer)
                    buffer.clear()
            sheet.write(bytes(buffer) + b"</sheetData></worksheet>")


def sensor_header(sensor: str) -> list[str]:
    return ["timestamp", "timestamp_ms", "sample_time_offset", *COLUMNS[sensor]]


def write_xlsx_bomb(path: Path, rows: int = 300_000) -> None:
    """A decompression bomb: one valid accelerometer batch repeated `rows` times (~1 MB, unpacking 200+ times)."""
    batch = "[" + ", ".join(str(40 * i) for i in range(25)) + "]"
    row = xlsx_row(["03/24/2025, 07:52:19 AM", "0", batch, batch, batch, batch])
    write_xlsx(path, [xlsx_row(sensor_header("accelerometer")), *[row] * rows])


def understate_sizes(path: Path) -> None:
    """Make every member of a zip declare its compressed size as its unpacked size, as a crafted bomb would."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as book:
        members, at = book.infolist(), book.start_dir
    for member in members:
        struct.pack_into("<I", data, member.header_offset + 22, member.compress_size)  # local header
        name, extra, comment = struct.unpack_from("<HHH", data, at + 28)  # central directory entry
        struct.pack_into("<I", data, at + 24, member.compress_size)
        at += 46 + name + extra + comment
    path.write_bytes(data)


def age(folder: Path, seconds: float = 120) -> None:
    """Make a folder's files look finished (written `seconds` ago)."""
    past = time.time() - seconds
    for f in folder.iterdir():
        os.utime(f, (past, past))
