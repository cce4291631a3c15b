"""How much the reader accepts from one raw file: `$HAR_HOME/reading.json`, the `raw_store` resource's fields.

Not part of PreprocessConfig: the limits change no result, only which files are read at all, so raising them
must neither make participants stale nor travel with models.

The defaults are sized from a 7-day recording at 100 Hz in 25-sample batches: 100 × 86,400 × 7 / 25 =
2.42 M rows per sensor file. Measured on the demo exporter's files (`har_assets.demo`; two-decimal values,
one batch per row), such a file is about 2.4 GB as CSV (~1 KB a row) and 0.63 GB as XLSX, whose worksheet
XML unpacks to about 2.5 GB (~1 KB a row, 4× the file). So:

- `max_file_mb` 4096: a 7-day CSV with 1.8× to spare (3-decimal or quoted lists are longer).
- `max_rows` 3,000,000: 8.7 days at 100 Hz.
- `max_xlsx_mb` 4096: a 7-day workbook's XML with 1.7× to spare. (One worksheet holds at most 1,048,576
  rows, about 72.8 h of such batches: a longer recording comes as CSV.)
- `max_xlsx_ratio` 100: real workbooks unpack to ~4× their size, even one whose every list is the same
  constant to ~40×; a decompression bomb (one row repeated) to 150-1000×: 300 k rows in a 1.2 MB file
  take 400 MB of memory to decode.
- `max_columns` 32: the reader needs 6. The XLSX decoder allocates every cell of the rectangle up to the
  furthest cell a sheet references, so one cell at XFD200000 in a 1 KB file asks for 100 GB.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

READING_FILE = "reading.json"
MIB = 1 << 20


class ReadLimits(BaseModel):
    """Limits on one raw file, checked before it is decoded where the format allows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_file_mb: float = Field(4096.0, gt=0, description="Largest raw file read, in MiB on disk (any file of a "
                                                         "participant folder).")
    max_rows: int = Field(3_000_000, gt=0, description="Most data rows (batches) in one sensor file or labels.csv; "
                                                       "3 M is 8.7 days at 100 Hz in 25-sample batches.")
    max_columns: int = Field(32, gt=0, description="XLSX: furthest column a cell may be in (the reader needs 6).")
    max_xlsx_mb: float = Field(4096.0, gt=0, description="XLSX: most MiB the workbook's contents may unpack to.")
    max_xlsx_ratio: float = Field(100.0, gt=0, description="XLSX: most times its size on disk the workbook may "
                                                           "unpack to (real ones: ~4; decompression bombs: 150+).")


DEFAULT_LIMITS = ReadLimits()
