"""Masking of whole tables: plan, transform, re-scan, k-anonymize, gate, publish atomically.

Threat model: raw PII must not reach the published dataset, and a failed or hostile
input must not leave a half-written one or leak a value in an error. Input comes
through the one strict reader (`securepipe.ingest`) in bounded chunks, so memory does
not grow with the file: pass 1 masks each chunk into a temporary Parquet file beside
the output and keeps only the quasi-identifier columns; the gate's counts accumulate
per chunk; only when the gate passes does pass 2 apply the k-anonymity plan and
publish through `storage.atomic_write`. The table's plan (classes, subject column,
quasi-identifiers, sensitive column) is settled once, on the first chunk, so every
chunk and every shard is masked the same way.

Mask and re-scan agree: free text is masked, then re-scanned with the same detectors;
spans that lie inside our own replacements (pseudonym tokens, redaction markers,
years, partial masks) are masking output, not PII; whatever else the re-scan finds is
masked in a second pass and scanned once more, and only what survives that counts
against the gate. Structured cells are scanned by the gate's validators.

Idempotent: a masked table masked again comes out unchanged. Tokens, markers, partial
masks, generalized values and bands are recognized by their shape; shifted dates are
not (a date is a date), so the published Parquet carries a marker naming its masked
columns, authenticated with the pseudonym secret: under the same secret those columns
are recognized as masked already and kept. Published CSV (for people to open in a
spreadsheet) has formula-looking cells neutralized and carries no marker.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import io
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from securepipe.errors import GateFailed
from securepipe.ingest import ReadLimits, input_format, iter_frames, neutralize_formulas
from securepipe.pii import gate as gate_mod
from securepipe.pii import kanon
from securepipe.pii import recognizers as rec
from securepipe.pii.operators import Context, get_operator, parse_dates, surrogate_ranges, within
from securepipe.pii.policy import BIRTH_DATE, FREE_TEXT, NONE, Policy
from securepipe.pii.structured import ColumnClass, TablePlan, plan_table
from securepipe.pii.text import Span, detect_texts
from securepipe.storage import atomic_write

CHUNK_ROWS = 20_000
ALREADY_MASKED = "already masked"
MARKER_KEY = b"securepipe.masked"
# Structured values searched for inside the same row's free text (ages are too short and too common).
_NOT_KNOWN = (NONE, FREE_TEXT, rec.AGE)
_KNOWN_MIN_CHARS = 4
_DATE_FORMS = ("%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y", "%B %d, %Y", "%d %B %Y")


# --- values of a row, and its subject ------------------------------------------------------------
def _name_forms(value: str) -> list[str]:
    if "," in value:
        last, first = (part.strip() for part in value.split(",", 1))
        return [value, f"{first} {last}"]
    words = value.split()
    return [value, f"{words[-1]}, {' '.join(words[:-1])}"] if len(words) >= 2 else [value]


def _column_forms(values: pd.Series, entity: str) -> list[list[str]]:
    """Per cell, the forms a note may use when it repeats the value (a name reversed, an
    address's parts, a date in other national formats)."""
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    if entity == rec.PERSON:
        forms = [_name_forms(v) if v else [] for v in text]
    elif entity == rec.ADDRESS:
        forms = [[v] + [p.strip() for p in v.replace("\n", ",").split(",") if len(p.split()) >= 2] if v else []
                 for v in text]
    elif entity in (rec.DATE, BIRTH_DATE):
        parsed = parse_dates(text.where(text != "", None))
        written = zip(*(parsed.dt.strftime(fmt).tolist() for fmt in _DATE_FORMS))
        forms = [[v] + [w for w in others if isinstance(w, str)] if v else [] for v, others in zip(text, written)]
    else:
        forms = [[v] if v else [] for v in text]
    return [[f for f in dict.fromkeys(cell) if len(f) >= _KNOWN_MIN_CHARS] for cell in forms]


def _known_values(df: pd.DataFrame, plan: TablePlan) -> list[list[tuple[str, str]]]:
    """(value, entity) pairs per row: identifiers the row holds in structured columns, which its
    free text is searched for whatever shape the detectors expect."""
    known: list[list[tuple[str, str]]] = [[] for _ in range(len(df))]
    for column, cls in plan.classes.items():
        if cls.entity in _NOT_KNOWN or cls.reason == ALREADY_MASKED or column not in df.columns:
            continue
        entity = rec.DATE if cls.entity == BIRTH_DATE else cls.entity
        for row, forms in zip(known, _column_forms(df[column], cls.entity)):
            row += [(form, entity) for form in forms]
    return known


def subject_keys(df: pd.DataFrame, plan: TablePlan) -> pd.Series:
    """One key per row for date shifts: the subject column's value; without one, the row's first
    identifier value (so rows that share it share the shift); a row without any, its own content."""
    keys = pd.Series(None, index=df.index, dtype=object)
    for column in plan.key_columns:
        if column not in df.columns:
            continue
        values = df[column]
        present = keys.isna() & values.notna() & (values.astype(str).str.strip() != "")
        keys[present] = values[present].astype(str)
    missing = keys.isna()
    if missing.any():
        rows = pd.util.hash_pandas_object(df[missing].astype(str), index=False)
        keys[missing] = "row\x00" + rows.astype(str)
    return keys


# --- free text: mask, re-scan, second pass --------------------------------------------------------
def _absorb(spans: list[Span], ranges) -> list[Span]:
    """Spans not wholly inside a replacement, each widened over any replacement it touches, merged."""
    widened = []
    for span in spans:
        if within(span.start, span.end, ranges):
            continue
        start, end = span.start, span.end
        for low, high in ranges:
            if low < end and start < high:
                start, end = min(start, low), max(end, high)
        widened.append(Span(start, end, span.entity_type, span.score))
    merged: list[Span] = []
    for span in sorted(widened):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, span.end), last.entity_type, last.score)
        else:
            merged.append(span)
    return merged


def _splice(text: str, spans: list[Span], replacements: list[str], ranges) -> tuple[str, list[tuple[int, int]]]:
    """Replace spans (sorted, disjoint, each covering whole replacements) and return the new text with
    where every replacement, earlier ones included, now lies."""
    pieces, placed, cursor, delta = [], [], 0, 0
    shifts = []  # (end in the old text, total length change up to there)
    for span, replacement in zip(spans, replacements):
        pieces += [text[cursor:span.start], replacement]
        placed.append((span.start + delta, span.start + delta + len(replacement)))
        delta += len(replacement) - (span.end - span.start)
        shifts.append((span.end, delta))
        cursor = span.end
    pieces.append(text[cursor:])
    for low, high in ranges:
        if any(span.start <= low and high <= span.end for span in spans):
            continue  # replaced again, inside a wider span
        moved = next((d for end, d in reversed(shifts) if end <= low), 0)
        placed.append((low + moved, high + moved))
    return "".join(pieces), sorted(placed)


def _mask_spans(texts, spans_per_text, ranges_per_text, subjects, policy: Policy, secret: bytes):
    """Apply the policy's free-text operators to the given spans (grouped by entity: operators are
    vectorized). Returns the texts, the replacement ranges per text and span counts per entity."""
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
        group_subjects = subjects.iloc[group["row"].to_numpy()].set_axis(group.index)
        replacement[group.index] = get_operator(spec.name).apply(group["value"], spec.params,
                                                                 Context(entity, secret, group_subjects))
    out_texts, out_ranges, cursor = [], [], 0
    for text, spans, ranges in zip(texts, spans_per_text, ranges_per_text):
        if spans:
            text, ranges = _splice(text, spans, [str(r) for r in replacement.iloc[cursor:cursor + len(spans)]],
                                   ranges)
            cursor += len(spans)
        out_texts.append(text)
        out_ranges.append(ranges)
    return out_texts, out_ranges, Counter(entities)


def _rescan(texts, known, ranges_per_text, policy: Policy, workers) -> list[list[Span]]:
    """What the detectors find that is not masking output."""
    found = detect_texts(texts, known, workers=workers, ner=policy.ner, config=policy.recognizers)
    return [_absorb(spans, ranges) for spans, ranges in zip(found, ranges_per_text)]


def _mask_free_text(values: pd.Series, known, subjects: pd.Series, policy: Policy, secret: bytes, workers):
    texts = values.fillna("").astype(str).tolist()
    present = [surrogate_ranges(text) for text in texts]  # masking output already there is not PII
    first = [_absorb(spans, ranges) for spans, ranges in
             zip(detect_texts(texts, known, workers=workers, ner=policy.ner, config=policy.recognizers), present)]
    masked, ranges, counts = _mask_spans(texts, first, present, subjects, policy, secret)
    residual = _rescan(masked, known, ranges, policy, workers)
    again = [i for i, spans in enumerate(residual) if spans]
    second = Counter()
    if again:
        pick = subjects.iloc[again].reset_index(drop=True)
        fixed, fixed_ranges, second = _mask_spans([masked[i] for i in again], [residual[i] for i in again],
                                                  [ranges[i] for i in again], pick, policy, secret)
        still = _rescan(fixed, [known[i] for i in again], fixed_ranges, policy, workers)
        residual = [[] for _ in texts]
        for i, text, spans in zip(again, fixed, still):
            masked[i], residual[i] = text, spans
    out = pd.Series(masked, index=values.index, dtype=object).where(values.notna(), None)
    entry = {"cells_with_pii": int(sum(1 for s in first if s)), "spans": dict(counts + second),
             "second_pass_spans": int(sum(second.values()))}
    scan = {"kind": FREE_TEXT, "cells": int(values.notna().sum()), "cells_with_pii": sum(1 for s in residual if s),
            "entities": dict(Counter(span.entity_type for spans in residual for span in spans))}
    return out, entry, scan


# --- a frame --------------------------------------------------------------------------------------
def mask_frame(
    df: pd.DataFrame, policy: Policy, secret: bytes, *, plan: TablePlan | None = None, workers: int | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Mask one frame (a shard or chunk) and re-scan it. The report: per column entity, confidence,
    operator and counts; `residual_scan` (what the gate decides on, see `gate.decide`)."""
    if not isinstance(secret, bytes) or len(secret) < 16:
        raise ValueError("secret must be at least 16 bytes")
    plan = plan if plan is not None else plan_table(df, policy)
    subjects = subject_keys(df, plan)
    known = _known_values(df, plan) if any(c.entity == FREE_TEXT for c in plan.classes.values()) else None
    out = df.copy()
    report = {"rows": len(df), "columns": {}}
    scan = {"rows": len(df), "columns": {}}
    for column, cls in plan.classes.items():
        if column not in df.columns:
            continue
        entry = {"entity": cls.entity, "confidence": round(cls.confidence, 3), "reason": cls.reason}
        if cls.entity == NONE or cls.reason == ALREADY_MASKED:
            entry["operator"] = "keep"
        elif cls.entity == FREE_TEXT:
            out[column], counts, scan["columns"][column] = _mask_free_text(
                df[column], known, subjects, policy, secret, workers)
            entry.update(operator="spans", **counts)
        else:
            rule = policy.columns.get(column)
            spec = rule.operator if rule is not None and rule.operator is not None else policy.operator_for(cls.entity)
            out[column] = get_operator(spec.name).apply(df[column], spec.params, Context(cls.entity, secret, subjects))
            entry.update(operator=spec.name, cells_masked=int(df[column].notna().sum()))
        report["columns"][column] = entry
    rest = out[[c for c in out.columns if str(c) not in scan["columns"]]]
    scan["columns"].update(gate_mod.scan_frame(rest, policy, free_text_columns=())["columns"])
    report["residual_scan"] = scan
    return out, report


# --- a file ---------------------------------------------------------------------------------------
def mask_file(
    in_path, out_path, *, policy: Policy, secret: bytes, report_path=None, chunk_rows: int = CHUNK_ROWS,
    workers: int | None = None, keep=(), progress=None,
) -> dict:
    """Mask a CSV/Parquet file into Parquet (or CSV for people), streaming; publish only if the gate
    passes. `keep`: columns that must come out unchanged (a label); `progress`: a
    securepipe.progress.Progress advanced by the rows of each chunk masked."""
    in_path, out_path = Path(in_path), Path(out_path)
    input_format(out_path)  # refuse an unsupported output before reading anything
    report: dict = {"input": in_path.name, "rows_in": 0, "columns": {}}
    plan = None
    schema = None
    scan = None
    qi_parts = []
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".staging", dir=out_path.parent)
    os.close(fd)
    try:
        writer = None
        try:
            for chunk in iter_frames(in_path, limits=ReadLimits(chunk_rows=chunk_rows)):
                if plan is None:
                    plan = _recognize_masked(plan_table(chunk, policy, keep=keep, file=in_path.name), in_path, secret)
                    report["plan"] = plan.describe()
                masked, part = mask_frame(chunk, policy, secret, plan=plan, workers=workers)
                scan = gate_mod.merge_scans(scan, part.pop("residual_scan"))
                _merge_mask_report(report, part)
                report["rows_in"] = report.pop("rows")
                if plan.k_anonymity is not None:
                    qi_parts.append(masked[_kanon_columns(plan)].reset_index(drop=True))
                table = _to_table(masked, schema)
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(staging, schema)
                writer.write_table(table)
                if progress is not None:
                    progress.advance(len(chunk))
        finally:
            if writer is not None:
                writer.close()
        try:
            report["gate"] = gate_mod.decide(scan, policy)
        except GateFailed as failure:
            report["gate"] = failure.report
            _write_report(report_path, report)
            raise
        kplan = None
        report["k_anonymity"] = dict(kanon.NO_QUASI_IDENTIFIERS)
        if plan.k_anonymity is not None:
            kplan = kanon.plan_k_anonymity(pd.concat(qi_parts, ignore_index=True), plan.k_anonymity,
                                           file=in_path.name)
            report["k_anonymity"] = kplan.report
            qi_parts.clear()
        report["rows_out"] = _publish(staging, out_path, plan, kplan, schema, secret, chunk_rows)
        _write_report(report_path, report)
        return report
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)


def _kanon_columns(plan: TablePlan) -> list[str]:
    spec = plan.k_anonymity
    return [qi.column for qi in spec.quasi_identifiers] + ([spec.sensitive_column] if spec.sensitive_column else [])


def _publish(staging, out_path: Path, plan: TablePlan, kplan, schema, secret: bytes, chunk_rows: int) -> int:
    """Pass 2: k-anonymity applied chunk by chunk, written in one atomic step."""
    rows_out = 0
    with atomic_write(out_path) as handle:
        write = _csv_writer(handle) if input_format(out_path) == "csv" else _parquet_writer(handle, plan, secret)
        offset = 0
        for batch in pq.ParquetFile(staging).iter_batches(batch_size=chunk_rows):
            frame = batch.to_pandas()
            if kplan is not None:
                frame = kanon.apply_plan(frame, kplan, plan.k_anonymity, offset)
            offset += batch.num_rows
            rows_out += len(frame)
            write(frame, schema if kplan is None else None)
        if rows_out == 0:  # every row dropped (a table smaller than k): publish the columns, no rows
            write(schema.empty_table().to_pandas(), None)
        write(None, None)
    return rows_out


def _csv_writer(handle):
    """CSV for people to open: formula-looking cells neutralized; the header once. None closes."""
    first = True

    def write(frame, _schema):
        nonlocal first
        if frame is not None:
            text = io.StringIO()
            neutralize_formulas(frame).to_csv(text, index=False, header=first, quoting=csv.QUOTE_MINIMAL)
            handle.write(text.getvalue().encode("utf-8"))
            first = False

    return write


def _parquet_writer(handle, plan: TablePlan, secret: bytes):
    """Parquet with the masked-columns marker in its schema metadata. None closes."""
    state = {"writer": None, "schema": None}

    def write(frame, schema):
        if frame is None:
            if state["writer"] is not None:
                state["writer"].close()
            return
        if state["writer"] is None:
            table = _to_table(frame, schema)
            marker = {MARKER_KEY: json.dumps(_marker(plan, secret), sort_keys=True).encode()}
            state["schema"] = table.schema.with_metadata({**(table.schema.metadata or {}), **marker})
            state["writer"] = pq.ParquetWriter(handle, state["schema"])
        state["writer"].write_table(_to_table(frame, state["schema"]))

    return write


def _marker_mac(columns: dict, secret: bytes) -> str:
    message = json.dumps(columns, sort_keys=True).encode()
    return hmac.new(secret, b"securepipe.masked\x00" + message, hashlib.sha256).hexdigest()


def _marker(plan: TablePlan, secret: bytes) -> dict:
    columns = {c: cls.entity for c, cls in plan.classes.items() if cls.entity not in (NONE, FREE_TEXT)}
    return {"columns": columns, "mac": _marker_mac(columns, secret)}


def _recognize_masked(plan: TablePlan, in_path: Path, secret: bytes) -> TablePlan:
    """Columns this masker published under the same secret are masked already: kept as they are."""
    if input_format(in_path) != "parquet":
        return plan
    metadata = pq.read_schema(in_path).metadata or {}
    try:
        marker = json.loads(metadata[MARKER_KEY])
        columns = marker["columns"]
        if not isinstance(columns, dict) or not hmac.compare_digest(_marker_mac(columns, secret), marker["mac"]):
            return plan
    except (KeyError, ValueError, TypeError):
        return plan
    classes = {c: ColumnClass(columns[c], 1.0, ALREADY_MASKED) if c in columns else cls
               for c, cls in plan.classes.items()}
    return TablePlan(classes, plan.subject_column, plan.key_columns, plan.k_anonymity, plan.warnings)


def _to_table(frame: pd.DataFrame, schema) -> pa.Table:
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].astype("string")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.cast(schema) if schema is not None and table.schema != schema else table


def _merge_mask_report(total: dict, part: dict) -> None:
    total["rows"] = total.get("rows", total.get("rows_in", 0)) + part.get("rows", 0)
    counted = ("cells_masked", "cells_with_pii", "second_pass_spans")
    for column, entry in part["columns"].items():
        into = total["columns"].setdefault(column, {k: v for k, v in entry.items() if k not in (*counted, "spans")})
        for key in counted:
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
