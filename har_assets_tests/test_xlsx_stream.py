"""Streaming an .xlsx sheet in blocks (har_assets.raw.xlsx_stream) gives the cell text of the whole-sheet read,
`pl.read_excel(path, engine="calamine", infer_schema_length=0)`, block by block, in bounded memory."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import openpyxl
import polars as pl
import pytest
import xlsxwriter
from openpyxl.utils.datetime import CALENDAR_MAC_1904
from polars.testing import assert_frame_equal

from har_assets.errors import RawDataError
from har_assets.raw.xlsx_stream import iter_xlsx_chunks

HEADER = ["timestamp", "timestamp_ms", "sample_time_offset", "calibrated_accel_x", "calibrated_accel_y",
          "calibrated_accel_z", "unix_s"]
REPO = Path(__file__).resolve().parents[1]


def _stream(path: Path, chunk_bytes: int = 4096) -> tuple[list[int], pl.DataFrame]:
    """First rows of the blocks (checked contiguous) and the blocks joined."""
    blocks = list(iter_xlsx_chunks("p01", path, chunk_bytes))
    assert blocks, "no block"
    firsts = [first for first, _ in blocks]
    for (first, table), following in zip(blocks, firsts[1:], strict=False):
        assert following == first + table.height  # each block starts where the previous one ended
    tables = [table for _, table in blocks]
    assert all(t.columns == tables[0].columns and set(t.dtypes) == {pl.String} for t in tables)
    return firsts, pl.concat(tables)


def _whole(path: Path) -> pl.DataFrame:
    """The current reader's table (reader.load_table): calamine's, column names stripped."""
    table = pl.read_excel(path, engine="calamine", infer_schema_length=0)
    return table.rename({c: c.strip() for c in table.columns})


def _sensor_rows(n: int) -> list[list[object]]:
    rows = []
    for i in range(n):
        offsets = [round(i * 0.7 + k * 10.3) % 1000 for k in range(25)]
        values = [round((i * 37 + k * 11) % 2000 - 999.5, 1) for k in range(25)]
        quoted = i % 3 == 0  # the list form with quoted items, `["0","11"]`
        rows.append([
            (dt.datetime(2025, 3, 24, 7, 52, 19) + dt.timedelta(seconds=i)).strftime("%m/%d/%Y, %I:%M:%S %p"),
            (i * 40) % 1000,
            "[" + ",".join(f'"{o}"' for o in offsets) + "]" if quoted else str(offsets),
            str(values), str([-v for v in values]), str(values[::-1]),
            1742802739.123 + i,
        ])
    return rows


@pytest.mark.parametrize("options", [{"constant_memory": True}, {}], ids=["inline-strings", "shared-strings"])
def test_xlsxwriter_sheet_streams_as_calamine_reads_it(tmp_path: Path, options: dict[str, bool]) -> None:
    path = tmp_path / "accelerometer.xlsx"
    book = xlsxwriter.Workbook(str(path), options)
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, HEADER)
    for r, row in enumerate(_sensor_rows(120), start=1):
        sheet.write_row(r, 0, row)
    book.close()

    firsts, streamed = _stream(path)
    assert len(firsts) > 5 and firsts[0] == 2  # rows split over many reads of 4 KiB
    assert_frame_equal(streamed, _whole(path))
    assert streamed["timestamp_ms"][1] == "40" and streamed["sample_time_offset"][0].startswith('["0","10"')


def test_openpyxl_types_and_a_missing_row(tmp_path: Path) -> None:
    path = tmp_path / "mixed.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([" when ", "amount", "count ", "flag", "note", "day", "at"])
    sheet.append([dt.datetime(2025, 3, 18, 7, 6, 57), 1.5, 536, True, 'a & b <c> "q" \'s\'',
                  dt.date(2025, 3, 18), dt.time(7, 6, 57)])
    sheet.append([dt.datetime(2025, 3, 18, 7, 6, 57, 123000), 0.1 + 0.2, -7, False, "  padded  ", None, None])
    sheet.append([])  # row 4 holds no cell
    sheet.append([dt.datetime(1900, 1, 1), 1e20, 12345678901234567, None, "x\ny", dt.date(1900, 3, 1), None])
    book.save(path)

    firsts, streamed = _stream(path, chunk_bytes=64)
    assert firsts[0] == 2
    whole = _whole(path)
    assert streamed.columns == ["when", "amount", "count", "flag", "note", "day", "at"]
    assert streamed.height == 4 and streamed.row(2) == (None,) * 7  # spreadsheet row 4, which read_excel drops
    assert_frame_equal(streamed.filter(~pl.all_horizontal(pl.all().is_null())), whole)
    assert streamed.row(0) == ("2025-03-18 07:06:57", "1.5", "536", "true", 'a & b <c> "q" \'s\'',
                               "2025-03-18 00:00:00", "1899-12-31 07:06:57")
    assert streamed.row(1)[:3] == ("2025-03-18 07:06:57.123", "0.3", "-7")


def test_date1904_workbook(tmp_path: Path) -> None:
    path = tmp_path / "mac.xlsx"
    book = openpyxl.Workbook()
    book.epoch = CALENDAR_MAC_1904
    sheet = book.active
    sheet.append(["timestamp", "n"])
    for i in range(30):
        sheet.append([dt.datetime(2025, 3, 18, 7, 6, 57) + dt.timedelta(minutes=7 * i, milliseconds=250 * i), i])
    book.save(path)
    assert b'date1904="1"' in zipfile.ZipFile(path).read("xl/workbook.xml")

    _, streamed = _stream(path, chunk_bytes=256)
    assert_frame_equal(streamed, _whole(path))
    assert streamed["timestamp"][:2].to_list() == ["2025-03-18 07:06:57", "2025-03-18 07:13:57.250"]


def _handmade(path: Path, sheet_data: str | None, strings: tuple[str, ...] = (), styles: str = "") -> None:
    """A workbook from hand-written parts: the sheet's rows (None: the caller adds the sheet), shared-string items,
    cell formats."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("_rels/.rels", f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
                      f'relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" '
                      'Target="xl/workbook.xml"/></Relationships>')
        book.writestr("xl/workbook.xml", f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
                      '<sheet name="Data" sheetId="1" r:id="rId7"/></sheets></workbook>')
        book.writestr("xl/_rels/workbook.xml.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/package/'
                      f'2006/relationships"><Relationship Id="rId7" Type="{rel}/worksheet" '
                      'Target="/xl/worksheets/data.xml"/><Relationship Id="rId8" Type="{rel}/sharedStrings" '
                      'Target="sharedStrings.xml"/></Relationships>')
        book.writestr("xl/sharedStrings.xml", f'<sst xmlns="{main}">{"".join(strings)}</sst>')
        book.writestr("xl/styles.xml", f'<styleSheet xmlns="{main}">{styles}</styleSheet>')
        if sheet_data is not None:
            book.writestr("xl/worksheets/data.xml", f'<worksheet xmlns="{main}"><sheetData>{sheet_data}</sheetData>'
                          "</worksheet>")


def test_rich_text_escapes_and_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "rich.xlsx"
    strings = ("<si><t>plain</t></si>",
               '<si><r><t>ri</t></r><r><rPr><b/></rPr><t xml:space="preserve">ch </t></r>'
               '<rPh sb="0" eb="1"><t>PHONETIC</t></rPh></si>',
               "<si><t>  trimmed\t</t></si>", "<si/>", "<si><t>a_x000D_b &#38;lt; &#x41;</t></si>")
    styles = ('<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd hh:mm:ss.000"/></numFmts>'
              '<cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="2"/></cellXfs>')
    rows = ['<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" s="2" t="inlineStr"><is><t>b</t></is></c>'
            '<c r="C1" t="inlineStr"><is><r><t>c</t></r><r><t xml:space="preserve"> </t></r></is></c>'
            '<c r="D1" t="inlineStr"><is><t>d</t></is></c></row>']
    for r in range(2, 40):
        rows.append(
            f'<row r="{r}" spans="1:4"><c r="A{r}" t="s"><v>{r % 5}</v></c><c r="B{r}" s="2"/>'
            f'<c t="inlineStr" r="C{r}" s="0"><is><r><t>x{r}</t></r><r><rPr/><t xml:space="preserve"> &amp; y</t></r>'
            f'</is></c><c r="D{r}" s="1"><v>{45734 + r / 7}</v></c></row>' if r != 7 else '<row r="7"/>')
    rows.append('<row r="41"><c r="A41" t="str"><f>A2</f><v>f &lt; g</v></c><c r="B41" t="b"><v>1</v></c>'
                '<c r="C41" t="e"><v>#N/A</v></c><c r="D41"><v>0.30000000000000004</v></c></row>')
    _handmade(path, "".join(rows), strings, styles)

    firsts, streamed = _stream(path, chunk_bytes=300)
    assert streamed.columns == ["plain", "b", "c", "d"]
    assert_frame_equal(streamed.filter(~pl.all_horizontal(pl.all().is_null())), _whole(path))
    assert streamed.height == 40 and firsts[0] == 2  # rows 2-41, row 7 (no cells) and row 40 (absent) all null
    assert streamed["plain"][:4].to_list() == ["trimmed", "", "a\rb &lt; A", "plain"]
    assert streamed["b"].null_count() == 39  # cells of style 2 with no value
    assert streamed["c"][0] == "x2 & y"
    assert streamed.row(39) == ("f < g", "true", None, "0.3")


def test_cells_without_references_are_numbered_in_order(tmp_path: Path) -> None:
    path = tmp_path / "norefs.xlsx"
    rows = "".join([
        '<row><c t="inlineStr"><is><t>a</t></is></c><c t="inlineStr"><is><t>b</t></is></c></row>',
        "<row><c><v>1</v></c><c><v>2</v></c></row>",
        '<row r="5"><c><v>5</v></c><c r="B5"><v>6</v></c></row>',
        "<row><c/><c><v>8</v></c></row>",  # row 6
    ])
    _handmade(path, rows)
    firsts, streamed = _stream(path, chunk_bytes=16)
    assert firsts[0] == 2
    assert streamed.rows() == [("1", "2"), (None, None), (None, None), ("5", "6"), (None, "8")]
    assert_frame_equal(streamed.filter(~pl.all_horizontal(pl.all().is_null())), _whole(path))


def test_header_without_data_rows_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.xlsx"
    _handmade(path, '<row r="1"><c r="A1" t="inlineStr"><is><t>timestamp</t></is></c></row>')
    assert list(iter_xlsx_chunks("p01", path)) == []
    assert _whole(path).height == 0


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(RawDataError, match=r"'p01': broken\.xlsx: cannot read file \(BadZipFile"):
        list(iter_xlsx_chunks("p01", path))
    good = tmp_path / "truncated.xlsx"
    _handmade(good, "".join(f'<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>' for r in range(1, 3000)))
    good.write_bytes(good.read_bytes()[:-4000])  # the central directory is lost
    with pytest.raises(RawDataError, match=r"truncated\.xlsx: cannot read file"):
        list(iter_xlsx_chunks("p01", good))
    _handmade(tmp_path / "nosheet.xlsx", None)
    with pytest.raises(RawDataError, match=r"cannot read file \(no xl/worksheets/data\.xml in the workbook\)"):
        list(iter_xlsx_chunks("p01", tmp_path / "nosheet.xlsx"))
    _handmade(tmp_path / "cut.xlsx", None)
    with zipfile.ZipFile(tmp_path / "cut.xlsx", "a") as book:  # the sheet's XML stops inside <sheetData>
        book.writestr("xl/worksheets/data.xml", '<worksheet><sheetData><row r="1"><c r="A1"><v>1</v></c></row>')
    with pytest.raises(RawDataError, match=r"cannot read file \(xl/worksheets/data\.xml ends inside <sheetData>\)"):
        list(iter_xlsx_chunks("p01", tmp_path / "cut.xlsx"))


def _big_sheet(path: Path, rows: int) -> int:
    """A sensor sheet of `rows` data rows written straight as XML (inline strings); the sheet XML's size."""
    values = "[" + ", ".join(f"{(k * 37.7) % 1000 - 500:.1f}" for k in range(25)) + "]"
    offsets = str(list(range(0, 250, 10)))
    _handmade(path, None)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as book, \
            book.open("xl/worksheets/data.xml", "w", force_zip64=True) as sheet:
        sheet.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
        sheet.write(("<row>" + "".join(f'<c t="inlineStr"><is><t>{n}</t></is></c>' for n in HEADER[:6])
                     + "</row>").encode())
        for r in range(2, rows + 2):
            sheet.write((f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>03/18/2025, 07:06:57 AM</t></is></c>'
                         f'<c r="B{r}"><v>{r % 1000}</v></c><c r="C{r}" t="inlineStr"><is><t>{offsets}</t></is></c>'
                         + "".join(f'<c r="{c}{r}" t="inlineStr"><is><t>{values}</t></is></c>' for c in "DEF")
                         + "</row>").encode())
        sheet.write(b"</sheetData></worksheet>")
    with zipfile.ZipFile(path) as book:
        return max(i.file_size for i in book.infolist() if i.filename == "xl/worksheets/data.xml")


def test_memory_follows_the_chunk_not_the_sheet(tmp_path: Path) -> None:
    small, big = tmp_path / "small.xlsx", tmp_path / "big.xlsx"
    _big_sheet(small, 5_000)
    size = _big_sheet(big, 50_000)
    assert size > 40 * 2**20
    # Peak RSS (KiB) after streaming the small sheet, then after the big one, with 1 MiB reads; fresh process.
    script = textwrap.dedent("""
        import resource, sys
        from pathlib import Path
        from har_assets.raw.xlsx_stream import iter_xlsx_chunks
        def rows(path):
            return sum(t.height for _, t in iter_xlsx_chunks("p01", Path(path), 1 << 20))
        n_small = rows(sys.argv[1])
        after_small = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        n_big = rows(sys.argv[2])
        print(n_small, n_big, after_small, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", script, str(small), str(big)], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout.split()
    n_small, n_big, after_small, after_big = map(int, out)
    assert (n_small, n_big) == (5_000, 50_000)
    assert (after_big - after_small) * 1024 < size / 4, (after_small, after_big, size)  # measured: ~5 MB of 48
