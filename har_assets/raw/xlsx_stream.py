"""Bounded-memory reading of an .xlsx workbook's first worksheet, a block of rows at a time.

`iter_xlsx_chunks` gives the cell text that `pl.read_excel(path, engine="calamine", infer_schema_length=0)` gives
(fastexcel 0.21 over calamine 0.36): a number as Rust's `{x:.9}` less trailing zeros ("536", "1.5", "0.000000123",
"NaN", "inf"), a boolean "true"/"false", an error cell null, a number in a date or time format (built-in 14-22 and
45-47, or a custom code with y/m/d/h/s outside quotes and brackets) "2025-03-18 07:06:57", ".123" added for
milliseconds (the 1900 date system with its leap-year quirk, or 1904), text with entities, `_x00HH_` escapes and
`<t>` whitespace resolved as calamine resolves them. The sheet XML is inflated and scanned with regular expressions
one chunk at a time and its cells become polars columns, so memory follows `chunk_bytes` (a working set of 10-20
times it), never the sheet.

Known limits, where read_excel differs: rows without a value between data rows come out as all-null rows (read_excel
drops every all-null row); the columns are those the header row spans (read_excel spans every row's cells and drops
all-null unnamed columns); rows must come in ascending order; the shared-strings table is held in memory whole, so a
workbook of many unique shared strings holds all of them.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from har_assets.errors import RawDataError

CELL = re.compile(  # attributes, then content: <v>number or <is><t>text as most writers write them, or any other
    r"<(?:\w+:)?c\b([^>]*?)(?:/>|>(?:(<v>[^<]*)</v>|(<is><t>[^<]*|<is><t xml:space=\"preserve\">[^<]*)</t></is>"
    r"|([^<]*(?:<(?!/(?:\w+:)?c>)[^<]*)*))</(?:\w+:)?c>)")
TOKEN = re.compile(rf"{CELL.pattern}|(<(?:\w+:)?row\b[^>]*>)|(</(?:\w+:)?row>)")  # cells, row starts, row ends
ITEM = re.compile(r"<(?:\w+:)?si\b[^>]*?(?:/>|>(?:(<t>[^<]*|<t xml:space=\"preserve\">[^<]*)</t>"
                  r"|([^<]*(?:<(?!/(?:\w+:)?si>)[^<]*)*))</(?:\w+:)?si>)")
RUN = re.compile(r"<(?:\w+:)?t\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?t>)", re.S)
PHONETIC = re.compile(r"<(?:\w+:)?rPh\b.*?</(?:\w+:)?rPh>", re.S)
V = r"<(?:\w+:)?v(?:\s[^>]*)?>([^<]*)</(?:\w+:)?v>"
IS = r"(?s)<(?:\w+:)?is\b[^>]*>(.*)</(?:\w+:)?is>"
KEPT = '<t xml:space="preserve">'
REF = r'(?:^|\s)r=["\']([A-Za-z]+)(\d+)["\']'  # a cell's reference: column letters, row number
CELL_PARTS = ("attrs", "vhead", "thead", "other")  # CELL's groups
REFERENCE = re.compile(r"&(?:#(x[0-9A-Fa-f]+|[0-9]+)|lt|gt|quot|apos|amp);")
ENTITIES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&"}  # &amp; last
X_ESCAPE = re.compile(r"_x00([0-9A-Fa-f]{2})_")  # Excel's escape of a character
WS = " \t\r\n"
DATE_FORMATS = {str(i) for i in (*range(14, 23), 45, 46, 47)}
MS_PER_DAY = 86_400_000
EXCEL_EPOCH_UNIX_MS = -25_569 * MS_PER_DAY  # 1899-12-30
MIN_MS, MAX_MS = -96_440_090 * MS_PER_DAY, 95_052_171 * MS_PER_DAY - 1  # chrono's range, from 1899-12-30


class _Bad(ValueError):
    """A workbook this reader cannot make sense of."""


def iter_xlsx_chunks(pid: str, path: Path, chunk_bytes: int = 1 << 22) -> Iterator[tuple[int, pl.DataFrame]]:
    """Yield (first_row, table): consecutive blocks of the first worksheet's data rows, every column pl.String
    (null for an empty/missing cell), named by the header row's text stripped of whitespace; `first_row` is the
    spreadsheet row number of the block's first row (header row is the first row holding any cell, usually 1).
    Rows absent from the XML between data rows come out as all-null rows, so block rows are contiguous."""
    try:
        with zipfile.ZipFile(path) as book:
            sheet = _Sheet(book, chunk_bytes)
            for text in _pieces(book, sheet.member, "sheetData", "row", chunk_bytes):
                if block := sheet.block(text):
                    yield block
    except RawDataError:
        raise
    except Exception as exc:  # zipfile, zlib, polars and our own checks raise many types
        detail = str(exc) if isinstance(exc, _Bad) else f"{type(exc).__name__}: {exc}"
        raise RawDataError(pid, path.name, f"cannot read file ({detail})") from exc


def _attr(attrs: str, name: str) -> str | None:
    found = re.search(rf"(?:^|\s){name}\s*=\s*([\"'])(.*?)\1", attrs, re.S)
    return _unescape(found[2]) if found else None


def _unescape(text: str) -> str:
    """Character data as an XML parser gives it: line ends as \\n, references replaced."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return REFERENCE.sub(_reference, text) if "&" in text else text


def _reference(ref: re.Match[str]) -> str:
    code = ref[1]
    return ENTITIES[ref[0]] if code is None else chr(int(code[1:], 16) if code[0] == "x" else int(code))


def _one_run(raw: str, trim: bool) -> str:
    """Text of one `<t>` run's character data: trimmed of ASCII whitespace unless xml:space="preserve" (`trim`
    False), then `_x00HH_` escapes decoded."""
    text = _unescape(raw)
    return X_ESCAPE.sub(lambda m: chr(int(m[1], 16)), text.strip(WS) if trim else text)


def _run_text(inner: str) -> str:
    """Text of any `<is>`/`<si>` element's content: its `<t>` runs joined, phonetic runs left out."""
    runs = RUN.findall(PHONETIC.sub("", inner))
    return "".join(_one_run(raw, _attr(attrs, "xml:space") != "preserve") for attrs, raw in runs)


def _mapped(values: pl.Series, where: pl.Series, fn: Callable[[str], str | None]) -> pl.Series:
    """`values` with every value where `where` holds replaced by `fn(value)`."""
    if not where.any():
        return values
    old = values.filter(where).unique().to_list()
    return values.replace_strict(old, [fn(x) for x in old], default=values, return_dtype=pl.String)


def _simple_runs(head: pl.Series, prefix: str) -> pl.Series:
    """`_one_run` of captured `{prefix}<t>data` or `{prefix}<t xml:space="preserve">data` values, vectorized but
    for the rare character references and `_x00HH_` escapes."""
    trim = ~head.str.starts_with(prefix + KEPT)
    raw = head.str.slice(len(prefix) + 3)
    if not trim.all():
        raw = pl.select(pl.when(trim).then(raw).otherwise(head.str.slice(len(prefix + KEPT)))).to_series()
    text = raw
    if text.str.contains("\r", literal=True).any():
        text = text.str.replace_all("\r\n", "\n", literal=True).str.replace_all("\r", "\n", literal=True)
    if text.str.contains("&", literal=True).any():
        for name, char in ENTITIES.items():
            text = text.str.replace_all(name, char, literal=True)
    if trim.all():
        text = text.str.strip_chars(WS)
    elif trim.any():
        text = pl.select(pl.when(trim).then(text.str.strip_chars(WS)).otherwise(text)).to_series()
    slow = (raw.str.contains("&#", literal=True) | text.str.contains("_x00", literal=True)).fill_null(False)
    if slow.any():
        fixed = [_one_run(r, t) for r, t in zip(raw.filter(slow), trim.filter(slow), strict=True)]
        text = text.scatter(np.flatnonzero(slow.to_numpy()), fixed)
    return text


def _number(text: str) -> str | None:
    """A `<v>` number as fastexcel renders it (None if it is no number): `{x:.9}`, trailing zeros dropped."""
    if not re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?i:inf|infinity|nan)", text):
        return None
    x = float(text)
    out = "NaN" if x != x else f"{x:.9f}"
    return out.rstrip("0").rstrip(".") if "." in out else out


def _display(x: float) -> str:
    """Rust's `Display` of a float (how a numeric header cell becomes a column name)."""
    if x != x:
        return "NaN"
    out = repr(x)
    if "e" in out and abs(x) != float("inf"):
        out = f"{Decimal(out):f}"  # Rust writes every digit, never an exponent
    return out.removesuffix(".0")


def _dates(serial: pl.Series, is_1904: bool) -> pl.Series:
    """Text of date-formatted numbers as calamine's `as_datetime` and chrono's `Display` give it."""
    if not serial.is_not_null().any():
        return pl.repeat(None, serial.len(), dtype=pl.String, eager=True)
    days = serial.to_numpy().astype(np.float64) + (1462.0 if is_1904 else 0.0)
    days = np.where(days >= 60, days, days + 1)  # the serial numbers before Excel's 1900-02-29
    ms = np.nan_to_num(days * MS_PER_DAY, nan=0.0)  # NaN casts to 0 in Rust
    ms = np.trunc(ms) + np.sign(ms) * (np.abs(ms - np.trunc(ms)) >= 0.5)  # Rust rounds halves away from zero
    ok = (ms >= MIN_MS) & (ms <= MAX_MS)
    stamp = pl.Series(np.where(ok, ms, 0).astype(np.int64) + EXCEL_EPOCH_UNIX_MS).cast(pl.Datetime("ms"))
    text = stamp.dt.to_string("%Y-%m-%d %H:%M:%S")
    text = pl.select(pl.when(stamp.dt.millisecond() != 0).then(text + stamp.dt.to_string("%.3f")).otherwise(text))
    return text.to_series().set(pl.Series(~ok | serial.is_null().to_numpy()), None)


def _is_date_format(code: str) -> bool:
    """calamine's `detect_custom_number_format`: a date, time or duration code."""
    escaped = quoted = ampm = hms = False
    brackets, prev = 0, " "
    for ch in code:
        if escaped:
            escaped = False
        elif ch in "_\\*":
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == ";":
            return False
        elif ch == "[":
            brackets += 1
        elif ch == "]":
            if brackets == 1 and hms:
                return True
            brackets = max(brackets - 1, 0)
        elif ch in "aA" and not ampm and not brackets:
            ampm = True
        elif not brackets and ch in ("pmPM/" if ampm else "dmhysDMHYS"):
            return True
        elif not (hms and ch.lower() == prev.lower()):
            hms = prev == "[" and ch in "mhsMHS"
        prev = ch
    return False


def _pieces(book: zipfile.ZipFile, member: str, container: str, item: str, chunk_bytes: int) -> Iterator[str]:
    """Text inside `member`'s `<container>` element, in pieces of about `chunk_bytes` that end after a whole
    `<item>` element."""
    start = re.compile(rf"<(\w+:)?{container}\b[^>]*?(/?)>".encode())
    close = end = None
    buf = bytearray()
    with book.open(member) as stream:
        while True:
            size = len(buf) + chunk_bytes
            while len(buf) < size and (data := stream.read(min(size - len(buf), 1 << 20))):
                buf += data  # small reads into one growing buffer: no copy of the whole chunk per read
            done = len(buf) < size
            if close is None:
                if not (found := start.search(buf)):
                    if done:
                        raise _Bad(f"{member} has no <{container}>")
                    del buf[:-1024]  # keep enough for the start tag, should it straddle two reads
                    continue
                if found[2]:
                    return
                prefix = bytes(found[1] or b"")
                del buf[:found.end()]
                close, end = b"</%s%s>" % (prefix, item.encode()), b"</%s%s>" % (prefix, container.encode())
            if (stop := buf.find(end)) >= 0:
                yield str(memoryview(buf)[:stop], "utf-8")
                return
            if done:
                raise _Bad(f"{member} ends inside <{container}>")
            if (cut := buf.rfind(close)) >= 0:
                cut += len(close)
                piece = str(memoryview(buf)[:cut], "utf-8")
                del buf[:cut]
                yield piece


class _Sheet:
    """The first worksheet of a workbook, turned into blocks of rows as its XML comes."""

    def __init__(self, book: zipfile.ZipFile, chunk_bytes: int) -> None:
        members = {n.replace("\\", "/").lower(): n for n in book.namelist()}

        def member(name: str) -> str | None:
            return members.get(name.lower())

        def read(name: str) -> str:
            if (found := member(name)) is None:
                raise _Bad(f"no {name} in the workbook")
            return book.read(found).decode()

        def targets(rels: str) -> list[tuple[str, str, str]]:
            tags = (m[1] for m in re.finditer(r"<(?:\w+:)?Relationship\b([^>]*)>", rels))
            return [(_attr(a, "Id") or "", _attr(a, "Type") or "", _attr(a, "Target") or "") for a in tags]

        office = [t for _, kind, t in targets(read("_rels/.rels")) if kind.endswith("/officeDocument")]
        if not office:
            raise _Bad("no officeDocument relationship")
        head, slash, _ = office[0].rpartition("/")
        xl = (head + slash).lstrip("/")  # calamine reads the parts named below from the office document's folder
        workbook = read(f"{xl}workbook.xml")
        if not (first := re.search(r"<(?:\w+:)?sheet\b([^>]*)>", workbook)):
            raise _Bad("the workbook has no sheet")
        rel_id = re.search(r"""(?:^|\s)(?:\w+:)?id\s*=\s*["']([^"']*)""", first[1])
        target = next((t for i, _, t in targets(read(f"{xl}_rels/workbook.xml.rels"))
                       if rel_id and i == rel_id[1]), None)
        if target is None:
            raise _Bad("the first sheet's relationship is missing")
        sheet = target[1:] if target.startswith("/") else xl + target
        if (found := member(sheet)) is None:
            raise _Bad(f"no {sheet} in the workbook")
        self.member = found
        prop = re.search(r"<(?:\w+:)?workbookPr\b([^>]*)>", workbook)
        self.is_1904 = (_attr(prop[1], "date1904") if prop else None) in ("1", "true")
        self.date_styles = self._date_styles(read(f"{xl}styles.xml") if member(f"{xl}styles.xml") else "")
        strings = member(f"{xl}sharedStrings.xml")
        parts = [pl.DataFrame(ITEM.findall(text), schema={"head": pl.String, "other": pl.String}, orient="row")
                 for text in (_pieces(book, strings, "sst", "si", chunk_bytes) if strings else ())]
        items = pl.concat(parts) if parts else pl.DataFrame(schema={"head": pl.String, "other": pl.String})
        simple = items["head"] != ""
        self.strings = pl.select(pl.when(simple).then(_simple_runs(items["head"], "")).otherwise(
            _mapped(items["other"], ~simple, _run_text))).to_series()
        self.row = self.last_row = 1  # calamine's running row, for cells without a reference
        self.refless = False
        self.names: list[str] | None = None
        self.first_col = self.next_row = 0

    @staticmethod
    def _date_styles(styles: str) -> list[int]:
        """Indices of the cell styles (`<cellXfs>`) whose number format is a date, time or duration."""
        codes = {_attr(m[1], "numFmtId"): _attr(m[1], "formatCode") or ""
                 for m in re.finditer(r"<(?:\w+:)?numFmt\b([^>]*)>", styles)}
        xfs = re.search(r"<(?:\w+:)?cellXfs\b.*?</(?:\w+:)?cellXfs>", styles, re.S)
        ids = [_attr(m[1], "numFmtId") for m in re.finditer(r"<(?:\w+:)?xf\b([^>]*)>", xfs[0] if xfs else "")]
        return [i for i, f in enumerate(ids)
                if f is not None and (_is_date_format(codes[f]) if f in codes else f in DATE_FORMATS)]

    def _positions(self, text: str) -> pl.DataFrame:
        """The cells of `text` as `_cells` gives them, placed as calamine places a cell without a reference: after
        the one before in its row, in the row after the one before unless `<row r="N">` says."""
        tokens = pl.DataFrame(TOKEN.findall(text), schema=dict.fromkeys((*CELL_PARTS, "start", "end"), pl.String),
                              orient="row")
        ends = ((pl.col("end") != "") | pl.col("start").str.ends_with("/>")).cast(pl.Int64)
        number = pl.col("start").str.extract(r"(?:^|\s)r=[\"']([0-9]+)").cast(pl.Int64)
        tokens = tokens.with_columns(closed=ends.cum_sum() - ends).with_columns(  # rows closed before the token
            base=(number - pl.col("closed")).forward_fill().fill_null(self.row))  # its row, less `closed`
        if tokens.height:
            self.row = int(tokens["base"][-1]) + int(tokens.select(ends.sum()).item())
        cells = tokens.filter((pl.col("start") == "") & (pl.col("end") == "")).with_columns(
            letters=pl.col("attrs").str.extract(REF, 1).str.to_uppercase(),
            row=pl.coalesce(pl.col("attrs").str.extract(REF, 2).cast(pl.Int64), pl.col("base") + pl.col("closed")))
        uniq = cells["letters"].drop_nulls().unique().to_list()
        ref = cells["letters"].replace_strict(uniq, [_column(x) for x in uniq], default=None, return_dtype=pl.Int64)
        at = pl.int_range(pl.len())
        first = (pl.col("closed") != pl.col("closed").shift(1)).fill_null(True)  # a row's first cell
        nth = at - pl.when(first).then(at).forward_fill()  # the cell's place in its row
        shift = pl.when(pl.col("ref").is_not_null()).then(pl.col("ref") - nth).when(first).then(0).forward_fill()
        return cells.with_columns(ref=ref).select(*CELL_PARTS, "row", col=nth + shift)

    def _cells(self, text: str) -> pl.DataFrame:
        """The cells of whole rows: row, col, attrs, then the content as `CELL` captures it."""
        if self.refless:
            return self._positions(text)
        found = pl.DataFrame(CELL.findall(text), schema=dict.fromkeys(CELL_PARTS, pl.String), orient="row")
        ref = found["attrs"].str.extract_groups(REF).struct.unnest()
        if not found.height or ref[:, 0].null_count():
            self.refless = bool(found.height)  # a sheet without references, as a rule: place its cells from now on
            return self._positions(text)
        letters = ref[:, 0].str.to_uppercase()
        uniq = letters.unique().to_list()
        self.row = int(ref[-1, 1]) + 1
        return found.with_columns(
            row=ref[:, 1].cast(pl.Int64),
            col=letters.replace_strict(uniq, [_column(x) for x in uniq], return_dtype=pl.Int64))

    def _values(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Cells with v, text (null when empty or an error), kind (how a header names a column: "string", "number"
        or "other") and present (a cell calamine keeps: any value, errors included)."""
        other = frame["other"]
        t = frame["attrs"].str.extract(r'(?:^|\s)t=["\']([^"\']*)')
        s = frame["attrs"].str.extract(r'(?:^|\s)s=["\']([^"\']*)')
        v = pl.select(pl.when(frame["vhead"] != "").then(frame["vhead"].str.slice(3)).otherwise(
            other.str.extract(V))).to_series()
        if unknown := set(t.drop_nulls().unique()) - {"n", "s", "b", "d", "e", "str", "inlineStr", "is"}:
            raise _Bad(f"unknown cell type {sorted(unknown)[0]!r}")

        def where(mask: pl.Series, values: pl.Series | pl.Expr) -> pl.Series:
            return pl.select(pl.when(mask).then(values)).to_series()

        content = other.str.extract(IS)  # an <is> element in any other shape; calamine reads one whatever `t` says
        simple = frame["thead"] != ""
        inline = simple | content.is_not_null() | other.str.contains(r"<(?:\w+:)?is\b")
        has_v = (v != "").fill_null(False) & ~inline
        number = (t.is_null() | (t == "n")).fill_null(False) & has_v
        style = s.cast(pl.Int64, strict=False).fill_null(0)  # calamine reads a bad style as 0
        date = number & s.is_not_null() & style.is_in(self.date_styles)
        plain = where(number & ~date, v)
        numbers = _mapped(plain, plain.is_not_null() & ~plain.str.contains(r"^-?(?:0|[1-9][0-9]{0,14})$"), _number)
        serial = where(date, v).cast(pl.Float64, strict=False)
        unparsed = number & where(number, pl.when(date).then(serial.is_null()).otherwise(numbers.is_null()))
        if (unparsed & (t == "n")).any():
            raise _Bad("a number cell holds no number")
        shared = (t == "s").fill_null(False) & has_v
        index = where(shared, v.cast(pl.UInt64, strict=False).fill_null(0))  # calamine reads a bad index as 0
        if (index >= self.strings.len()).any():
            raise _Bad("a cell refers to a shared string that does not exist")
        as_text = t.is_in(["str", "d"]).fill_null(False) & v.is_not_null() & ~inline
        text = pl.select(pl.coalesce(
            where(simple, _simple_runs(frame["thead"], "<is>")),
            _mapped(content, content.is_not_null(), _run_text),
            where(inline, pl.lit("")),  # an empty <is/>
            numbers,
            _dates(serial, self.is_1904),
            where(unparsed, v),  # no number (nor a type, else raised above): calamine keeps the text
            self.strings.gather(index),
            _mapped(where(as_text, v), as_text, _unescape),
            where((t == "b") & has_v, pl.when(v == "0").then(pl.lit("false")).otherwise(pl.lit("true"))),
        )).to_series()
        kind = (pl.when(inline | unparsed | shared | (t == "str")).then(pl.lit("string"))
                .when(number & ~date).then(pl.lit("number")).otherwise(pl.lit("other")))
        present = text.is_not_null() | ((t == "e") & has_v).fill_null(False)
        return frame.select("row", "col", v=v, text=text, kind=kind, present=present)

    def block(self, text: str) -> tuple[int, pl.DataFrame] | None:
        """The next block of data rows from `text` (whole rows), None when it holds no data row."""
        cells = self._values(self._cells(text))
        rows = cells["row"].to_numpy()
        if rows.size and (rows[0] < self.last_row or (np.diff(rows) < 0).any()):
            raise _Bad("the sheet's rows are not in ascending order")
        self.last_row = int(rows[-1]) if rows.size else self.last_row
        cells = cells.filter("present")
        if self.names is None:
            if not cells.height:
                return None
            self._header(cells.filter(pl.col("row") == cells["row"][0]))
        width = len(self.names)
        cells = cells.filter(pl.col("text").is_not_null() & (pl.col("row") >= self.next_row) & pl.col("col").is_between(
            self.first_col, self.first_col + width - 1))
        if not cells.height:
            return None
        first, last = self.next_row, int(cells["row"].max())
        slot = np.full((last - first + 1) * width, -1, dtype=np.int64)
        slot[(cells["row"].to_numpy() - first) * width + cells["col"].to_numpy() - self.first_col] = np.arange(
            cells.height)
        values = cells["text"].gather(pl.Series(slot).replace(-1, None))
        self.next_row = last + 1
        return first, pl.DataFrame({n: values.gather_every(width, j) for j, n in enumerate(self.names)})

    def _header(self, cells: pl.DataFrame) -> None:
        """Column names from the header row as fastexcel makes them, then stripped of whitespace."""
        self.first_col, self.next_row = int(cells["col"].min()), int(cells["row"][0]) + 1
        found: dict[int, str] = {}
        for col, v, text, kind in cells.select("col", "v", "text", "kind").iter_rows():
            if kind != "other":
                found[col - self.first_col] = (text if kind == "string" else _display(float(v))).replace("\0", "")
        names: list[str] = []
        for i in range(int(cells["col"].max()) - self.first_col + 1):
            name, depth = found.get(i, f"__UNNAMED__{i}"), 0
            while (alias := f"{name}_{depth}" if depth else name) in names:
                depth += 1
            names.append(alias)
        self.names = [n.strip() for n in names]
        if len(set(self.names)) < len(names):
            duplicated = next(n for n in self.names if self.names.count(n) > 1)
            raise _Bad(f"duplicate column name {duplicated!r} in the header row")


def _column(letters: str) -> int:
    """0-based index of a column's letters (A: 0, AA: 26)."""
    index = 0
    for char in letters.upper():
        index = index * 26 + ord(char) - 64
    return index - 1
