"""The one strict, streaming reader for tables (CSV and Parquet): the DAG and `securepipe pii mask` use it.

Threat model: a poisoned or malformed input must not crash with a value in the
message, lose data or half-publish anything. Every problem is an `InputError`
naming the file, the row (1-based, header excluded; the header is row 0) and the
column, never the value; the input itself is only read. Memory stays flat in the
file size: CSV is parsed in chunks of `chunk_rows` rows, Parquet by record batches,
and a Parquet file whose metadata promises more than `max_uncompressed_bytes` (a
decompression bomb) is refused before any page is read.

Refuse what is malformed, not what is unusual: bad UTF-8, NUL bytes, ragged rows,
empty or duplicate column names, cells over the size limit and unreadable Parquet are
refused; odd column names, accents and cells that start like a spreadsheet formula
("- stable", "+49 30 1234567", "=x", "@home") are data. A formula only runs when a
spreadsheet opens a CSV, so `neutralize_formulas` is applied where a CSV is written
for people to open, never on the way in.

CSV cells stay text (a ZIP code such as 01234 must not become 1234); consumers that
need numbers convert explicitly. Each frame's index continues the 0-based position
in the file, so row `index + 1` is the row an error names.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from securepipe.errors import InputError
from securepipe.storage import open_read

DEFAULT_CHUNK_ROWS = 5000
DEFAULT_MAX_CELL_BYTES = 1 << 20  # 1 MiB: a long discharge summary fits, a runaway quote does not
DEFAULT_MAX_UNCOMPRESSED_BYTES = 8 << 30
# What a spreadsheet runs as a formula: = @ tab CR first, or + - followed by a call, a DDE
# pipe, a sheet reference or an embedded "=" (a bare "+1 608..." or "-12.5" is a value).
_FORMULA = re.compile(r"^[=@\t\r]|^[+-].*(?:[A-Za-z_]\s*\(|[|!=])")


@dataclass(frozen=True)
class ReadLimits:
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    max_cell_bytes: int = DEFAULT_MAX_CELL_BYTES
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES


def input_format(path) -> str:
    name = str(path).lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    raise InputError(_name(path), "unsupported file type (expected .csv or .parquet)")


def estimate_rows(path) -> int | None:
    """Rows in the file, for a progress bar's ETA: exact for Parquet (its metadata), the line count
    for CSV (an upper bound when quoted cells hold line breaks); None when it cannot tell."""
    try:
        if input_format(path) == "parquet":
            import pyarrow.parquet as pq

            with _open(path) as handle:
                return pq.ParquetFile(handle).metadata.num_rows
        lines = 0
        with _open(path) as raw:
            while block := raw.read(1 << 20):
                lines += block.count(b"\n")
        return max(lines - 1, 0)  # the header
    except (InputError, OSError, ValueError):
        return None  # the reader itself says what is wrong with the file


def _name(path) -> str:
    return Path(str(path)).name


def is_formula(cell: str) -> bool:
    return bool(_FORMULA.search(cell))


def neutralize_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy where every text cell a spreadsheet would run starts with a quote (OWASP's advice
    for CSV injection). Only for CSV meant to be opened by people: it changes the data."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            text = values.astype("string")
            out[column] = values.where(~text.str.contains(_FORMULA, na=False), "'" + text).astype(object)
    return out


def iter_frames(path, *, required_columns=(), limits: ReadLimits = ReadLimits()) -> Iterator[pd.DataFrame]:
    """Yield the input as DataFrames of at most `limits.chunk_rows` rows each, validating as it goes."""
    fmt = input_format(path)
    reader = _iter_csv if fmt == "csv" else _iter_parquet
    produced = False
    for frame in reader(path, limits):
        if not produced:
            missing = [c for c in required_columns if c not in frame.columns]
            if missing:
                raise InputError(_name(path), "required column is missing", column=missing[0])
        produced = True
        yield frame
    if not produced:
        raise InputError(_name(path), "file has a header but no rows" if fmt == "csv" else "file has no rows")


def read_all(path, *, required_columns=(), limits: ReadLimits = ReadLimits()) -> pd.DataFrame:
    return pd.concat(list(iter_frames(path, required_columns=required_columns, limits=limits)))


def _open(path):
    try:
        return open_read(path)
    except FileNotFoundError:
        raise InputError(_name(path), "file not found") from None


def _iter_csv(path, limits: ReadLimits) -> Iterator[pd.DataFrame]:
    name = _name(path)
    with _open(path) as raw:
        lines = _checked_lines(raw, name)
        csv.field_size_limit(limits.max_cell_bytes)
        reader = csv.reader(lines, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(name, "file is empty") from None
        except csv.Error:
            raise InputError(name, "header is not valid CSV", row=0) from None
        _check_header(header, name)
        width = len(header)
        rows: list[list[str]] = []
        start = 0
        row_number = 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                reason = _too_large(limits) if "field larger" in str(exc) else "malformed CSV"
                raise InputError(name, reason, row=row_number + 1) from None
            row_number += 1
            if not record:
                row_number -= 1
                continue  # a blank line carries no data and is not a row
            if len(record) != width:
                raise InputError(name, f"row has {len(record)} fields, header has {width}", row=row_number)
            for column, cell in zip(header, record):
                if len(cell) > limits.max_cell_bytes:
                    raise InputError(name, _too_large(limits), row=row_number, column=column)
            rows.append(record)
            if len(rows) >= limits.chunk_rows:
                yield _frame(rows, header, start)
                start += len(rows)
                rows = []
        if rows:
            yield _frame(rows, header, start)


def _too_large(limits: ReadLimits) -> str:
    return f"cell is larger than the limit ({limits.max_cell_bytes} bytes)"


def _checked_lines(raw, name: str) -> Iterator[str]:
    """Decode line by line, so bad bytes or NUL characters are reported with their line (0 = header)."""
    for line_number, line in enumerate(raw):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(name, "not valid UTF-8", row=line_number) from None
        if line_number == 0:
            text = text.removeprefix("\ufeff")  # a byte-order mark
        if "\x00" in text:
            raise InputError(name, "contains a NUL byte", row=line_number)
        yield text


def _check_header(header: list[str], name: str) -> None:
    if not header or all(not h.strip() for h in header):
        raise InputError(name, "header row is empty", row=0)
    seen = set()
    for index, column in enumerate(header):
        if not column.strip():
            raise InputError(name, f"header cell {index + 1} is empty", row=0)
        if column in seen:
            raise InputError(name, "duplicate column name", row=0, column=column)
        seen.add(column)


def _frame(rows: list[list[str]], header: list[str], start: int) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=header, index=pd.RangeIndex(start, start + len(rows)), dtype=object)
    return frame.where(frame != "", None)  # an empty CSV cell is a missing value, as in Parquet


def _iter_parquet(path, limits: ReadLimits) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    name = _name(path)
    handle = _open(path)
    try:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowInvalid, OSError):
            raise InputError(name, "not a readable Parquet file") from None
        meta = parquet.metadata
        uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if uncompressed > limits.max_uncompressed_bytes:
            raise InputError(name, "Parquet metadata promises more data than the limit (refused unread)")
        schema = parquet.schema_arrow
        _check_header(schema.names, name)
        for arrow_field in schema:
            if pa.types.is_nested(arrow_field.type):
                raise InputError(name, "nested column types are not supported", column=arrow_field.name)
        text_columns = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        start = 0
        try:
            for batch in parquet.iter_batches(batch_size=limits.chunk_rows):
                for column in text_columns:
                    lengths = pc.binary_length(batch.column(column))
                    if (pc.max(lengths).as_py() or 0) > limits.max_cell_bytes:
                        row = pc.index(pc.greater(lengths, limits.max_cell_bytes), True).as_py()
                        raise InputError(name, _too_large(limits), row=start + row + 1, column=column)
                frame = batch.to_pandas()
                frame.index = pd.RangeIndex(start, start + len(frame))
                start += len(frame)
                yield frame
        except (pa.ArrowInvalid, OSError):
            raise InputError(name, "corrupt Parquet data", row=start + 1) from None
    finally:
        handle.close()
