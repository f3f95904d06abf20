"""Masking of whole tables: classify, transform, k-anonymize, gate, publish atomically.

Threat model: raw PII must not reach the published dataset, and a failed or hostile
input must not leave a half-written one or leak a value in an error. Input is read in
bounded chunks (CSV records with the csv module, Parquet row groups via
`iter_batches`), so memory does not grow with the file: pass 1 masks each chunk into a
temporary Parquet file beside the output and keeps only the quasi-identifier columns;
the gate's counts accumulate per chunk; only when the gate passes does pass 2 apply the
k-anonymity plan and publish through `storage.atomic_write`. Input problems (bad
encoding, ragged rows, oversized cells, spreadsheet formulas, missing columns) raise
`InputError` naming file, row and column, never the value; the input is only read.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from securepipe.errors import GateFailed, InputError
from securepipe.pii import gate as gate_mod
from securepipe.pii import kanon
from securepipe.pii.operators import Context, get_operator
from securepipe.pii.policy import FREE_TEXT, NONE, Policy
from securepipe.pii.structured import ColumnClass, classify_columns
from securepipe.pii.text import detect_texts, mask_text
from securepipe.storage import atomic_write

CHUNK_ROWS = 20_000
MAX_CELL_BYTES = 1 << 20
# A cell a spreadsheet would run as a formula: =, @, tab/CR, or +/- not followed by a number.
_FORMULA = re.compile(r"^(?:[=@\t\r]|[+\-](?![\d\s().\-]*(?:\s*(?:ext\.?|x)\s*\d+)?$))")


def _known_values(df: pd.DataFrame, classes: dict[str, ColumnClass]) -> list[list[tuple[str, str]]]:
    columns = [c for c, cls in classes.items() if cls.entity not in (NONE, FREE_TEXT) and c in df.columns]
    if not columns:
        return [[] for _ in range(len(df))]
    entities = [classes[c].entity for c in columns]
    values = zip(*(df[c].astype(object).where(df[c].notna(), "").astype(str).tolist() for c in columns))
    return [[(v, e) for v, e in zip(row, entities) if v] for row in values]


def _subjects(df: pd.DataFrame, policy: Policy) -> pd.Series | None:
    if policy.subject_column and policy.subject_column in df.columns:
        return df[policy.subject_column].astype(str)
    return None


def _mask_free_text(values: pd.Series, known, subjects, policy: Policy, secret: bytes, workers) -> tuple[pd.Series, dict]:
    texts = values.fillna("").astype(str).tolist()
    spans_per_text = detect_texts(texts, known, workers=workers, ner=policy.ner)
    rows, entities, pieces = [], [], []
    for row, (text, spans) in enumerate(zip(texts, spans_per_text)):
        for span in spans:
            rows.append(row)
            entities.append(span.entity_type)
            pieces.append(text[span.start:span.end])
    flat = pd.DataFrame({"row": rows, "entity": entities, "value": pieces}, dtype=object)
    replacement = pd.Series(index=flat.index, dtype=object)
    for entity, group in flat.groupby("entity", sort=False):
        spec = policy.operator_for(entity, free_text=True)
        group_subjects = None if subjects is None else subjects.iloc[group["row"].to_numpy()].set_axis(group.index)
        ctx = Context(entity, secret, group_subjects)
        replacement[group.index] = get_operator(spec.name).apply(group["value"], spec.params, ctx)
    masked, cursor = [], 0
    for text, spans in zip(texts, spans_per_text):
        masked.append(mask_text(text, spans, replacement.iloc[cursor:cursor + len(spans)].tolist()) if spans else text)
        cursor += len(spans)
    out = pd.Series(masked, index=values.index, dtype=object).where(values.notna(), None)
    counts = flat["entity"].value_counts().to_dict() if len(flat) else {}
    return out, {"cells_with_pii": int(sum(1 for s in spans_per_text if s)), "spans": {k: int(v) for k, v in counts.items()}}


def mask_frame(
    df: pd.DataFrame, policy: Policy, secret: bytes, *, classes: dict[str, ColumnClass] | None = None,
    workers: int | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Mask one frame (a shard or chunk). Report: per column entity, confidence, operator, counts."""
    if not isinstance(secret, bytes) or len(secret) < 16:
        raise ValueError("secret must be at least 16 bytes")
    classes = classes if classes is not None else classify_columns(df, policy)
    subjects = _subjects(df, policy)
    out = df.copy()
    report = {"rows": len(df), "columns": {}}
    for column, cls in classes.items():
        if column not in df.columns:
            continue
        entry = {"entity": cls.entity, "confidence": round(cls.confidence, 3), "reason": cls.reason}
        if cls.entity == NONE:
            entry["operator"] = "keep"
        elif cls.entity == FREE_TEXT:
            masked, counts = _mask_free_text(df[column], _known_values(df, classes), subjects, policy, secret, workers)
            out[column] = masked
            entry.update(operator="spans", **counts)
        else:
            rule = policy.columns.get(column)
            spec = rule.operator if rule is not None and rule.operator is not None else policy.operator_for(cls.entity)
            out[column] = get_operator(spec.name).apply(df[column], spec.params, Context(cls.entity, secret, subjects))
            entry.update(operator=spec.name, cells_masked=int(df[column].notna().sum()))
        report["columns"][column] = entry
    return out, report


# --- reading -----------------------------------------------------------------------------------
def _check_cells(frame: pd.DataFrame, file: str, first_row: int) -> None:
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
            continue
        text = values.astype("string")
        huge = text.str.len() > MAX_CELL_BYTES
        if huge.any():
            raise InputError(file, "cell larger than 1 MiB", row=first_row + int(huge.to_numpy().argmax()),
                             column=str(column))
        flagged = text.str.contains(_FORMULA, na=False)
        if flagged.any():
            row = first_row + int(flagged.to_numpy().argmax())
            raise InputError(file, "cell starts like a spreadsheet formula", row=row, column=str(column))


def _csv_lines(handle, file: str) -> Iterator[str]:
    for line_number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(file, f"not UTF-8 text (line {line_number})") from None


def _read_csv_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    file = path.name
    csv.field_size_limit(MAX_CELL_BYTES)
    with open(path, "rb") as handle:
        reader = csv.reader(_csv_lines(handle, file))
        try:
            header = next(reader, None)
        except csv.Error:
            raise InputError(file, "malformed CSV header") from None
        if not header or header == [""]:
            raise InputError(file, "empty file: no header row")
        if len(set(header)) != len(header) or any(not name.strip() for name in header):
            raise InputError(file, "header has empty or duplicate column names")
        rows: list[list[str]] = []
        row_number = 0
        first_row = 1
        while True:
            try:
                record = next(reader, None)
            except csv.Error as exc:
                reason = "cell larger than 1 MiB" if "field larger" in str(exc) else "malformed CSV record"
                raise InputError(file, reason, row=row_number + 1) from None
            if record is not None:
                row_number += 1
                if len(record) != len(header):
                    if record == []:
                        row_number -= 1
                        continue  # a blank line is not a record
                    raise InputError(file, f"has {len(record)} fields, header has {len(header)}", row=row_number)
                rows.append(record)
            if rows and (record is None or len(rows) >= chunk_rows):
                frame = pd.DataFrame(rows, columns=header, dtype=object).replace("", None)
                _check_cells(frame, file, first_row)
                yield frame
                first_row += len(rows)
                rows = []
            if record is None:
                if row_number == 0:
                    raise InputError(file, "no data rows")
                return


def _read_parquet_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    file = path.name
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError):
        raise InputError(file, "not a readable Parquet file") from None
    if parquet.metadata.num_rows == 0:
        raise InputError(file, "no data rows")
    first_row = 1
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        frame = batch.to_pandas()
        _check_cells(frame, file, first_row)
        first_row += len(frame)
        yield frame


def read_chunks(path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path.name, "file not found")
    if path.suffix.lower() == ".csv":
        return _read_csv_chunks(path, chunk_rows)
    if path.suffix.lower() == ".parquet":
        return _read_parquet_chunks(path, chunk_rows)
    raise InputError(path.name, "unsupported format (use .csv or .parquet)")


def _infer_csv_types(frame: pd.DataFrame) -> dict[str, str]:
    """Numeric type per CSV column, from the first chunk (CSV has no schema of its own)."""
    types = {}
    for column in frame.columns:
        values = frame[column].dropna().astype(str)
        if not len(values) or values.str.match(r"-?0\d").any():
            continue  # leading zeros: an identifier or code (ZIP, ID), not a number
        if values.str.fullmatch(r"-?\d{1,18}").all():
            types[column] = "Int64"
        elif values.str.fullmatch(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?").all():
            types[column] = "Float64"
    return types


def _apply_types(frame: pd.DataFrame, types: dict[str, str], file: str, first_row: int) -> pd.DataFrame:
    for column, dtype in types.items():
        converted = pd.to_numeric(frame[column], errors="coerce")
        bad = converted.isna() & frame[column].notna()
        if bad.any():
            raise InputError(file, "value does not match the column's type in the first rows",
                             row=first_row + int(bad.to_numpy().argmax()), column=column)
        frame[column] = converted.astype(dtype)
    return frame


def mask_file(
    in_path, out_path, *, policy: Policy, secret: bytes, report_path=None, chunk_rows: int = CHUNK_ROWS,
    workers: int | None = None,
) -> dict:
    """Mask a CSV/Parquet file into Parquet, streaming; publish only if the gate passes."""
    in_path, out_path = Path(in_path), Path(out_path)
    spec = policy.k_anonymity
    report: dict = {"input": in_path.name, "rows_in": 0, "columns": {}}
    classes = None
    csv_types: dict[str, str] = {}
    schema = None
    scan = None
    qi_parts = []
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".staging", dir=out_path.parent)
    os.close(fd)
    try:
        writer = None
        try:
            for chunk in read_chunks(in_path, chunk_rows):
                first_row = report["rows_in"] + 1
                if classes is None:
                    _check_policy_columns(chunk.columns, policy, in_path.name)
                    if in_path.suffix.lower() == ".csv":
                        csv_types = _infer_csv_types(chunk)
                    classes = classify_columns(_apply_types(chunk.copy(), csv_types, in_path.name, 1), policy)
                    # Identifier columns stay text (a ZIP or ID keeps its leading zeros).
                    csv_types = {c: t for c, t in csv_types.items() if classes[c].entity == NONE}
                elif list(chunk.columns) != list(classes):
                    raise InputError(in_path.name, "columns differ between row groups", row=first_row)
                chunk = _apply_types(chunk, csv_types, in_path.name, first_row)
                masked, part = mask_frame(chunk, policy, secret, classes=classes, workers=workers)
                _merge_mask_report(report, part)
                report["rows_in"] = report.pop("rows")
                free_text = {c for c, cls in classes.items() if cls.entity == FREE_TEXT}
                scan = gate_mod.merge_scans(scan, gate_mod.scan_frame(masked, policy, free_text, workers))
                if spec is not None:
                    keep = [qi.column for qi in spec.quasi_identifiers] + (
                        [spec.sensitive_column] if spec.sensitive_column else [])
                    qi_parts.append(masked[keep].reset_index(drop=True))
                table = _to_table(masked, schema)
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(staging, schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
        try:
            report["gate"] = gate_mod.decide(scan, policy)
        except GateFailed as failure:
            report["gate"] = failure.report
            _write_report(report_path, report)
            raise
        plan = None
        if spec is not None:
            plan = kanon.plan_k_anonymity(pd.concat(qi_parts, ignore_index=True), policy, file=in_path.name)
            report["k_anonymity"] = plan.report
            qi_parts.clear()
        rows_out = 0
        with atomic_write(out_path) as handle:
            writer = None
            offset = 0
            for batch in pq.ParquetFile(staging).iter_batches(batch_size=chunk_rows):
                frame = batch.to_pandas()
                if plan is not None:
                    frame = kanon.apply_plan(frame, plan, policy, offset)
                offset += batch.num_rows
                table = _to_table(frame, schema if plan is None else None)
                if writer is None:
                    writer = pq.ParquetWriter(handle, table.schema)
                writer.write_table(table)
                rows_out += len(frame)
            writer.close()
        report["rows_out"] = rows_out
        _write_report(report_path, report)
        return report
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)


def _check_policy_columns(columns, policy: Policy, file: str) -> None:
    if policy.subject_column and policy.subject_column not in columns and any(
        spec.name == "date_shift" for spec in policy.operators.values()
    ):
        raise InputError(file, "subject column named by the policy is missing", column=policy.subject_column)
    if policy.k_anonymity is not None:
        kanon._check_columns(columns, policy.k_anonymity, file)


def _to_table(frame: pd.DataFrame, schema) -> pa.Table:
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].astype("string")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.cast(schema) if schema is not None and table.schema != schema else table


def _merge_mask_report(total: dict, part: dict) -> None:
    total["rows"] = total.get("rows", total.get("rows_in", 0)) + part.get("rows", 0)
    for column, entry in part["columns"].items():
        into = total["columns"].setdefault(column, {k: v for k, v in entry.items()
                                                    if k not in ("cells_masked", "cells_with_pii", "spans")})
        for key in ("cells_masked", "cells_with_pii"):
            if key in entry:
                into[key] = into.get(key, 0) + entry[key]
        if "spans" in entry:
            spans = into.setdefault("spans", {})
            for entity, count in entry["spans"].items():
                spans[entity] = spans.get(entity, 0) + count


def merge_reports(reports: list[dict]) -> dict:
    """One report from the `mask_frame` reports of several shards (counts added up)."""
    total: dict = {"rows": 0, "columns": {}}
    for report in reports:
        _merge_mask_report(total, report)
    return total


def _write_report(report_path, report: dict) -> None:
    if report_path is None:
        return
    with atomic_write(Path(report_path), "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
        handle.write("\n")

