"""Parsing and writing the tabular CalAIM files with an MCP's layout, row by row, with reasons.

Parsing never raises on bad content: file-level problems (empty, missing columns, wrong delimiter, a header
that does not decode or split) and row-level problems (bytes not in the encoding, broken quoting, bad date, bad
CIN, missing value, wrong column count) come back as `Problem`s naming the row (physical line), the column and
the rule, never the offending value (it may be PHI). Each record is decoded and split on its own, so one bad
row never costs the file's other rows. Hot path: 100,000-row files are parsed in about a second, so converters
are built once per column.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sftp_gateway.domain.profile import Layout, Quoting, normalize_period
from sftp_gateway.domain.records import FieldType, Record
from shared.reference.identifiers import cin_problem, npi_problem
from shared.reference.services import populations_of_focus

_BOM = "\ufeff"
_OTHER_DELIMITERS = (",", "|", "\t", ";")
_FLAG_VALUES = {"y": True, "yes": True, "true": True, "1": True, "n": False, "no": False, "false": False,
                "0": False}
_ZIP = re.compile(r"^[0-9]{5}(?:-?[0-9]{4})?$")
_INTEGER = re.compile(r"^-?[0-9]+$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file (row None) or a row: where, which rule, in words without the value."""

    rule: str
    message: str
    row: int | None = None
    column: str | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"row": self.row, "column": self.column, "field": self.field, "rule": self.rule,
                "message": self.message}


@dataclass(frozen=True)
class Row:
    """A good row: canonical values by field, the columns the layout does not map, and its line number."""

    number: int
    values: dict[str, Any]
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class ParsedTable:
    """The outcome of parsing one file: good rows, row problems, file problems, and counts."""

    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    data_rows: int = 0  # rows that were not blank (good + bad)
    rejected_rows: set[int] = field(default_factory=set)

    @property
    def file_problems(self) -> list[Problem]:
        """Problems that make the whole file unusable."""
        return [p for p in self.problems if p.row is None]

    @property
    def row_problems(self) -> list[Problem]:
        """Problems of single rows."""
        return [p for p in self.problems if p.row is not None]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as ISO text) for `calhub files inspect`."""
        return {
            "rows": [{"row": r.number, **{k: _jsonable(v) for k, v in r.values.items()},
                      **({"extra": r.extra} if r.extra else {})} for r in self.rows],
            "errors": [p.as_dict() for p in self.problems],
            "data_rows": self.data_rows,
            "accepted_rows": len(self.rows),
            "rejected_rows": len(self.rejected_rows),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


class _Invalid(Exception):
    """A value broke its field's rule (the rule slug and a message without the value)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(rule)
        self.rule = rule
        self.message = message


Converter = Callable[[str], Any]


def _date_converter(formats: Sequence[str]) -> Converter:
    parsers = [_fast_date_parser(f) for f in formats]
    expected = " or ".join(formats)

    @lru_cache(maxsize=8192)
    def convert(text: str) -> date:
        for parse in parsers:
            try:
                return parse(text)
            except ValueError:
                continue
        raise _Invalid("date_format", f"not a date in the format {expected}")

    return convert


def _fast_date_parser(fmt: str) -> Callable[[str], date]:
    # strptime costs ~5 us; slicing the four common MCP formats is ~10x faster and just as strict.
    if fmt == "%Y%m%d":
        return lambda t: _checked(t, 8, t[0:4], t[4:6], t[6:8])
    if fmt == "%Y-%m-%d":
        return lambda t: _checked(t, 10, t[0:4], t[5:7], t[8:10], (t[4], t[7]), "-")
    if fmt in ("%m/%d/%Y", "%m-%d-%Y"):
        sep = fmt[2]
        return lambda t: _checked(t, 10, t[6:10], t[0:2], t[3:5], (t[2], t[5]), sep)
    return lambda t: datetime.strptime(t, fmt).date()


def _checked(text: str, length: int, year: str, month: str, day: str,
             separators: tuple[str, ...] = (), sep: str = "") -> date:
    if len(text) != length or any(s != sep for s in separators):
        raise ValueError("shape")
    if not (year.isdigit() and month.isdigit() and day.isdigit()) or not year.isascii():
        raise ValueError("digits")
    return date(int(year), int(month), int(day))


def _converter(field_type: FieldType, layout: Layout, value_map: Mapping[str, str], strict: bool) -> Converter:
    """The function that turns one cell into the canonical value (or raises _Invalid)."""
    mapped: Callable[[str], str]
    if value_map:
        lookup = {k.strip().lower(): v for k, v in value_map.items()}

        def mapped(text: str) -> str:
            hit = lookup.get(text.lower())
            if hit is not None:
                return hit
            if strict:
                raise _Invalid("value_map", "value is not one of the values the profile maps")
            return text
    else:
        def mapped(text: str) -> str:
            return text

    if field_type is FieldType.DATE:
        to_date = _date_converter(layout.date_formats)
        return lambda text: to_date(mapped(text))
    if field_type is FieldType.FLAG:
        def flag(text: str) -> bool:
            value = _FLAG_VALUES.get(mapped(text).lower())
            if value is None:
                raise _Invalid("flag", "must be Y or N")
            return value
        return flag
    if field_type is FieldType.CIN:
        def cin(text: str) -> str:
            value = mapped(text).upper()
            problem = cin_problem(value)
            if problem is not None:
                raise _Invalid("cin", f"CIN {problem}")
            return value
        return cin
    if field_type is FieldType.NPI:
        # Provider NPIs, POF lists and periods repeat across a file's rows: check each distinct value once.
        @lru_cache(maxsize=4096)
        def npi(text: str) -> str:
            value = mapped(text)
            problem = npi_problem(value)
            if problem is not None:
                raise _Invalid("npi", f"NPI {problem}")
            return value
        return npi
    if field_type in (FieldType.LIST, FieldType.POF):
        separator = layout.list_separator
        known = {p.code for p in populations_of_focus()} if field_type is FieldType.POF else None
        # MCP labels map onto codes item by item (value_maps.pof_codes: {"Homeless - Adult": "1a"}).
        item_map = {k.strip().lower(): v for k, v in value_map.items()}

        @lru_cache(maxsize=4096)
        def codes(text: str) -> tuple[str, ...]:
            items = [i.strip() for i in re.split(f"[{re.escape(separator)},]", text) if i.strip()]
            out = []
            for item in items:
                code = item_map.get(item.lower(), item)
                if known is not None:
                    code = code.lower()
                    if code not in known:
                        raise _Invalid("pof_code", "not a Population of Focus code (1a, 1b, 2 ... 9)")
                out.append(code)
            return tuple(out)
        return codes
    if field_type is FieldType.PERIOD:
        @lru_cache(maxsize=256)
        def period(text: str) -> str:
            value = normalize_period(mapped(text))
            if value is None:
                raise _Invalid("period", "not a reporting period (YYYYMM, YYYY-MM or MM/YYYY)")
            return value
        return period
    if field_type is FieldType.INTEGER:
        def integer(text: str) -> int:
            value = mapped(text)
            if not _INTEGER.match(value):
                raise _Invalid("integer", "must be a whole number")
            return int(value)
        return integer
    if field_type is FieldType.ZIP:
        def zip_code(text: str) -> str:
            value = mapped(text)
            if not _ZIP.match(value):
                raise _Invalid("zip", "must be a 5-digit ZIP code (or ZIP+4)")
            return value
        return zip_code
    return mapped


def _dialect(layout: Layout) -> dict[str, Any]:
    if layout.quoting is Quoting.NONE:
        return {"delimiter": layout.delimiter, "quoting": csv.QUOTE_NONE, "escapechar": None}
    return {"delimiter": layout.delimiter, "quotechar": layout.quotechar, "doublequote": True,
            "quoting": csv.QUOTE_MINIMAL, "strict": True}


@lru_cache(maxsize=32)
def _ascii_compatible(encoding: str) -> bool:
    """Whether line breaks, quotes and delimiters are the same single bytes in this encoding (UTF-8, Latin-1,
    cp1252 ...), so a file can be cut into lines before it is decoded (not UTF-16)."""
    sample = bytes(range(128))
    try:
        return sample.decode(encoding) == sample.decode("ascii")
    except UnicodeDecodeError:
        return False


def _lines(content: bytes, encoding: str) -> tuple[list[bytes], str, Problem | None]:
    """The file's physical lines (ends kept) in bytes of an ASCII-compatible encoding, that encoding, and a
    file Problem when an encoding that cannot be cut before decoding (UTF-16) does not decode as a whole."""
    if not _ascii_compatible(encoding):
        try:
            content, encoding = content.decode(encoding).encode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            return [], encoding, Problem("encoding", f"bytes at offset {exc.start} are not valid {encoding}")
    return content.splitlines(keepends=True), encoding, None


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes kept by errors="surrogateescape"
_QUOTING, _ENCODING = "quoting", "encoding"


class _Records:
    """A file's lines read record by record: a quoted cell may span lines; a record whose bytes do not decode
    or whose quoting is broken comes back as that record's error (cells as far as they split) and the next
    record starts after it, so one bad row never costs the others. `width`, once known, tells a record that
    spans lines because of a stray quote (its first line alone is then the bad record)."""

    def __init__(self, lines: Sequence[bytes], encoding: str, layout: Layout) -> None:
        self._lines = lines
        self.encoding = encoding
        self._feed = _Feed()
        # One reader for the whole file, fed one record at a time (a reader per record costs twice as much).
        self._reader = csv.reader(self._feed, **_dialect(layout))
        self._quote = None if layout.quoting is Quoting.NONE else layout.quotechar.encode(encoding)
        self.width: int | None = None

    def __iter__(self) -> Iterator[tuple[int, list[str], str | None]]:
        """(physical line the record starts on, cells, None or the rule it broke: quoting, encoding)."""
        lines, quote, count = self._lines, self._quote, len(self._lines)
        start = 0
        while start < count:
            end = start + 1
            if quote is not None and lines[start].count(quote) % 2:
                # An odd number of quotes opens a cell that goes on to the line closing it (RFC 4180 2.6).
                while end < count:
                    end += 1
                    if lines[end - 1].count(quote) % 2:
                        break
            cells, error = self._read(start, end)
            if end - start > 1 and (error == _QUOTING or (self.width is not None and len(cells) != self.width)):
                # Most likely a stray quote that swallowed the lines after it: its line alone is the bad record.
                end = start + 1
                cells, error = self._read(start, end)
            yield start + 1, cells, error
            start = end

    def _read(self, start: int, end: int) -> tuple[list[str], str | None]:
        chunk = self._lines[start] if end - start == 1 else b"".join(self._lines[start:end])
        chunk = chunk.rstrip(b"\r\n")
        error: str | None = None
        try:
            text = chunk.decode(self.encoding)
        except UnicodeDecodeError:
            # Split anyway (bad bytes as surrogates) to name the column they are in.
            text, error = chunk.decode(self.encoding, errors="surrogateescape"), _ENCODING
        if start == 0:
            text = text.removeprefix(_BOM)
        if not text:
            return [], error
        self._feed.text = text
        try:
            return next(self._reader, []), error
        except csv.Error:
            self._feed.text = None
            return [], error or _QUOTING


class _Feed:
    """The csv reader's input: the current record only, so a quote left open at its end is an error rather
    than a reason to read on into the next record; unlike a generator it gives lines again after stopping."""

    def __init__(self) -> None:
        self.text: str | None = None

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        text, self.text = self.text, None
        if text is None:
            raise StopIteration
        return text


def parse_table(content: bytes, layout: Layout, record: Record) -> ParsedTable:
    """Parse a file's bytes with an MCP layout into canonical rows and problems (never raises on content)."""
    result = ParsedTable()
    lines, encoding, problem = _lines(content, layout.encoding)
    if problem is not None:
        result.problems.append(problem)
        return result
    if not any(line.strip() for line in lines):
        result.problems.append(Problem("empty_file", "the file has no rows"))
        return result
    required = record.required | set(layout.required)
    _parse_rows(_Records(lines, encoding, layout), layout, record, required, result)
    return result


def _unreadable(error: str, number: int, cells: Sequence[str], encoding: str,
                positions: Mapping[int, tuple[str, str | None]]) -> Problem:
    """The problem of a record that could not be read: its row, the column of the first bad bytes, the rule."""
    if error == _QUOTING:
        return Problem(_QUOTING, "unbalanced quotes or a malformed quoted value", row=number)
    for position, cell in enumerate(cells):
        if _UNDECODABLE.search(cell):
            column, canonical = positions.get(position, (None, None))
            return Problem(_ENCODING, f"the value has bytes that are not valid {encoding}", row=number,
                           column=column, field=canonical)
    return Problem(_ENCODING, f"the row has bytes that are not valid {encoding}", row=number)


def _header_positions(header: list[str], layout: Layout, record: Record, required: AbstractSet[str],
                      result: ParsedTable) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]] | None:
    """(position, column, field) for mapped columns and (position, column) for extra ones; None on problems."""
    wanted = {column.strip().lower(): (column, canonical) for column, canonical in layout.columns.items()}
    mapped: list[tuple[int, str, str]] = []
    extra: list[tuple[int, str]] = []
    for position, raw in enumerate(header):
        name = raw.strip()
        hit = wanted.get(name.lower())
        if hit is not None:
            mapped.append((position, hit[0], hit[1]))
        elif name:
            extra.append((position, name))
    present = {f for _, _, f in mapped}
    missing = [layout.column_for(f) or f for f in sorted(required) if f not in present]
    if missing:
        if len(header) == 1 and any(d in header[0] for d in _OTHER_DELIMITERS if d != layout.delimiter):
            result.problems.append(Problem(
                "wrong_delimiter", f"the header is one column: the file is not delimited by "
                                   f"{_delimiter_name(layout.delimiter)}"))
        else:
            result.problems.append(Problem("missing_columns", "required columns missing: " + ", ".join(missing)))
        return None
    return mapped, extra


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", "|": "pipe", ",": "comma", ";": "semicolon"}.get(delimiter, repr(delimiter))


def _parse_rows(records: _Records, layout: Layout, record: Record, required: AbstractSet[str],
                result: ParsedTable) -> None:
    strict = set(layout.strict_values)
    converters: dict[str, Converter | None] = {}
    for canonical in layout.columns.values():
        value_map = layout.value_maps.get(canonical, {})
        field_type = record.fields[canonical]
        # Plain text without a value map is the stripped cell itself: no call per cell.
        converters[canonical] = None if field_type is FieldType.TEXT and not value_map else _converter(
            field_type, layout, value_map, canonical in strict)
    header_seen = not layout.header
    mapped: list[tuple[int, str, str]] = []
    # (position, column, field, converter or None for plain text, required): built once, read per cell.
    plan: list[tuple[int, str, str, Converter | None, bool]] = []
    extra: list[tuple[int, str]] = []
    width = 0
    if not layout.header:
        mapped = [(i, column, canonical) for i, (column, canonical) in enumerate(layout.columns.items())]
        width = len(mapped)
        missing = [f for f in sorted(required) if f not in {m[2] for m in mapped}]
        if missing:
            result.problems.append(Problem("missing_columns", "required fields not in the layout: "
                                           + ", ".join(missing)))
            return
    plan = _plan(mapped, converters, required)
    records.width = width if not layout.header else None
    append_row = result.rows.append
    append_problem = result.problems.append
    for start, cells, error in records:
        if error is None and (not cells or not "".join(cells).strip()):
            continue  # blank lines (trailing or not) are not rows
        if not header_seen:
            if error is not None:
                # Without its header no row can be mapped: the file is quarantined, naming the line.
                problem = _unreadable(error, start, (), records.encoding, {})
                append_problem(Problem(problem.rule, f"the header (line {start}): {problem.message}"))
                return
            header_seen = True
            positions = _header_positions(cells, layout, record, required, result)
            if positions is None:
                return
            mapped, extra = positions
            width = len(cells)
            records.width = width
            plan = _plan(mapped, converters, required)
            continue
        result.data_rows += 1
        if error is not None:
            # Bad bytes or broken quoting are this row's problem: the rows around it are still read.
            names: dict[int, tuple[str, str | None]] = {p: (column, canonical) for p, column, canonical in mapped}
            names.update((p, (name, None)) for p, name in extra)
            append_problem(_unreadable(error, start, cells, records.encoding, names))
            result.rejected_rows.add(start)
            continue
        if len(cells) != width:
            append_problem(Problem("column_count", f"expected {width} columns, found {len(cells)}", row=start))
            result.rejected_rows.add(start)
            continue
        values: dict[str, Any] = {}
        bad = False
        for position, column, canonical, convert, needed in plan:
            text = cells[position].strip()
            if not text:
                if needed:
                    append_problem(Problem("required", "a value is required", row=start, column=column,
                                           field=canonical))
                    bad = True
                continue
            if convert is None:
                values[canonical] = text
                continue
            try:
                values[canonical] = convert(text)
            except _Invalid as invalid:
                append_problem(Problem(invalid.rule, invalid.message, row=start, column=column, field=canonical))
                bad = True
        if bad:
            result.rejected_rows.add(start)
            continue
        append_row(Row(number=start, values=values,
                       extra={name: cells[p] for p, name in extra if cells[p].strip()} if extra else {}))
    if not header_seen or (result.data_rows == 0 and not result.problems):
        result.problems.append(Problem("empty_file", "the file has a header but no rows" if header_seen
                                       else "the file has no rows"))


def _plan(mapped: Sequence[tuple[int, str, str]], converters: Mapping[str, Converter | None],
          required: AbstractSet[str]) -> list[tuple[int, str, str, Converter | None, bool]]:
    return [(position, column, canonical, converters[canonical], canonical in required)
            for position, column, canonical in mapped]


# ------------------------------------------------------------------------------------------------ writing

def unmapped_codes(rows: Sequence[Mapping[str, Any]], layout: Layout) -> list[Problem]:
    """A problem for each generated row (numbered from 1) whose coded field has no code in the layout's value
    map: written as-is it would put CalHub's own word (`suspended`) in a column of the MCP's codes."""
    problems = []
    for number, row in enumerate(rows, start=1):
        for canonical, mapping in layout.value_maps.items():
            value = row.get(canonical)
            values = value if isinstance(value, list | tuple) else () if value is None else (value,)
            allowed = set(mapping.values())
            for missing in dict.fromkeys(str(v) for v in values if str(v) not in allowed):
                problems.append(Problem(
                    "unmapped-code", f"{canonical} {missing!r} has no code in the MCP's profile; row not written",
                    row=number, column=layout.column_for(canonical), field=canonical))
    return problems


def render_table(rows: Sequence[Mapping[str, Any]], layout: Layout, record: Record) -> bytes:
    """Write canonical rows in an MCP's layout (header, delimiter, quoting, date format, value maps)."""
    buffer = io.StringIO(newline="")
    dialect = _dialect(layout)
    dialect.pop("strict", None)
    if layout.quoting is Quoting.ALL:
        dialect["quoting"] = csv.QUOTE_ALL
    unquoted = layout.quoting is Quoting.NONE
    if unquoted:
        # No escapes and no quote character: the MCP's reader splits on every delimiter and line break.
        dialect["quotechar"] = None
    writer = csv.writer(buffer, lineterminator="\r\n" if layout.line_ending == "crlf" else "\n", **dialect)
    columns = list(layout.columns.items())
    if layout.header:
        writer.writerow([column for column, _ in columns])
    reverse = {canonical: {v: k for k, v in mapping.items()} for canonical, mapping in layout.value_maps.items()}
    date_format = layout.date_formats[0]
    unsafe = (layout.delimiter, "\r", "\n")
    for row in rows:
        cells = [_render_value(row.get(canonical), record.fields[canonical], date_format,
                               reverse.get(canonical, {}), layout.list_separator) for _, canonical in columns]
        writer.writerow([_unquoted_cell(c, unsafe) for c in cells] if unquoted else cells)
    return buffer.getvalue().encode(layout.encoding)


def _unquoted_cell(text: str, unsafe: Sequence[str]) -> str:
    """A value for a layout without quoting: a delimiter or line break inside it becomes a space (the way the
    270 builder cleans X12 elements), since nothing could escape it."""
    if not any(c in text for c in unsafe):
        return text
    for c in unsafe:
        text = text.replace(c, " ")
    return " ".join(text.split())


def _render_value(value: Any, field_type: FieldType, date_format: str, reverse: Mapping[str, str],
                  separator: str) -> str:
    if value is None:
        return ""
    if field_type is FieldType.DATE and isinstance(value, date):
        text = value.strftime(date_format)
    elif field_type is FieldType.FLAG and isinstance(value, bool):
        text = "Y" if value else "N"
    elif isinstance(value, list | tuple):
        return separator.join(reverse.get(str(v), str(v)) for v in value)
    elif field_type is FieldType.PERIOD and isinstance(value, str):
        text = value.replace("-", "")
    else:
        text = str(value)
    return reverse.get(text, text)
