"""Strict, streaming readers for the pipeline's inputs (CSV and Parquet).

Threat model: a poisoned or malformed input must not crash with a value in the
message, lose data or half-publish anything. Every problem is an `InputError`
naming the file, the row (1-based, header excluded) and the column, never the
value; the input itself is only read. Memory stays flat in the file size: CSV is
parsed in chunks of `chunk_rows` rows, Parquet by record batches, and a Parquet
file whose metadata promises more than `max_uncompressed_bytes` (a decompression
bomb) is refused before any page is read.

CSV cells stay text (a ZIP code such as 01234 must not become 1234); consumers that
need numbers convert explicitly. A cell that starts like a spreadsheet formula
(=, +, @, or - not followed by a number) is refused: the masked data may end up in a
spreadsheet, and the pipeline will not carry a formula there.
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
DEFAULT_MAX_CELL_BYTES = 64 * 1024
DEFAULT_MAX_UNCOMPRESSED_BYTES = 8 << 30
# Always a formula in a spreadsheet: = @ tab CR. A leading + or - is common in data
# (phone numbers, signed values), so it counts only with a call, a DDE pipe, a sheet
# reference or an embedded "=" behind it.
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


def _name(path) -> str:
    return Path(str(path)).name


def is_formula(cell: str) -> bool:
    return bool(_FORMULA.search(cell))


def iter_frames(path, *, required_columns=(), limits: ReadLimits = ReadLimits()) -> Iterator[pd.DataFrame]:
    """Yield the input as DataFrames of at most `limits.chunk_rows` rows each, validating as it goes.

    The index of each frame continues the row numbering of the file (0-based), so a
    consumer can name the row of a problem it finds later.
    """
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


def _iter_csv(path, limits: ReadLimits) -> Iterator[pd.DataFrame]:
    name = _name(path)
    with open_read(path) as raw:
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
                reason = "cell is larger than the limit" if "field larger" in str(exc) else "malformed CSV"
                raise InputError(name, reason, row=row_number + 1) from None
            row_number += 1
            if not record:
                continue  # a blank line carries no data
            if len(record) != width:
                raise InputError(name, f"row has {len(record)} fields, header has {width}", row=row_number)
            for column, cell in zip(header, record):
                if len(cell) > limits.max_cell_bytes:
                    raise InputError(name, "cell is larger than the limit", row=row_number, column=column)
                if is_formula(cell):
                    raise InputError(name, "cell starts like a spreadsheet formula", row=row_number, column=column)
            rows.append(record)
            if len(rows) >= limits.chunk_rows:
                yield _frame(rows, header, start)
                start += len(rows)
                rows = []
        if rows:
            yield _frame(rows, header, start)


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
        if is_formula(column):
            raise InputError(name, "header cell starts like a spreadsheet formula", row=0)
        seen.add(column)


def _frame(rows: list[list[str]], header: list[str], start: int) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=header, index=pd.RangeIndex(start, start + len(rows)), dtype=object)


def _iter_parquet(path, limits: ReadLimits) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = _name(path)
    handle = open_read(path)
    try:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowInvalid, OSError):
            raise InputError(name, "not a readable Parquet file") from None
        meta = parquet.metadata
        uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if uncompressed > limits.max_uncompressed_bytes:
            raise InputError(name, "Parquet metadata promises more data than the limit (refused unread)")
        _check_header(parquet.schema_arrow.names, name)
        start = 0
        try:
            for batch in parquet.iter_batches(batch_size=limits.chunk_rows):
                frame = batch.to_pandas()
                frame.index = pd.RangeIndex(start, start + len(frame))
                start += len(frame)
                yield frame
        except (pa.ArrowInvalid, OSError):
            raise InputError(name, "corrupt Parquet data", row=start + 1) from None
    finally:
        handle.close()
