"""Residual-PII gate: re-scan masked output and fail closed when PII remains.

Threat model: a detector or policy gap (a new column, a format no one anticipated, a
name NER missed the first time) would otherwise publish raw identifiers. The gate
re-scans what is about to be published with the same validators and detector, counts
what it finds per column and entity type, and raises `GateFailed` above the policy's
thresholds, so no masked output is published. Reports and the error carry column
names, entity types and counts only, never a value.

Structured cells are screened with vectorized (pyarrow RE2) patterns first and only
the candidates go through the library validators, so the scan costs a few regex passes
per column. Free-text columns are re-run through the text detector; our own pseudonym
tokens are ignored. When masking runs, `mask.mask_frame` does the free-text re-scan
itself (it knows where its replacements lie, and masks what the re-scan finds in a
second pass); this module then only decides on the counts (`decide`).
"""
from __future__ import annotations

import secrets
from collections import Counter

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from securepipe.errors import GateFailed
from securepipe.pii import recognizers as rec
from securepipe.pii.operators import Context, get_operator, surrogate_ranges, within
from securepipe.pii.policy import FREE_TEXT, Policy

# RE2 screens: a cell that fails its screen cannot pass the validator.
SCREENS = {
    rec.EMAIL: r"^\s*[^@\s]+@[^@\s]+\.[A-Za-z]{2,}\s*$",
    rec.SSN: r"^\s*\d{3}[- ]?\d{2}[- ]?\d{4}\s*$",
    rec.CARD: r"^\s*\d[\d -]{10,22}\d\s*$",
    rec.IBAN: r"^\s*[A-Z]{2}\d{2}[A-Z0-9 ]{10,32}\s*$",
    rec.IP: r"^\s*[0-9A-Fa-f:.]{3,45}\s*$",
    rec.MRN: r"^\s*(?i:MRN|MR|MED|PT)[-#: ]?\d{5,10}\s*$",
    rec.PHONE: r"^\s*[+(\d][\d\s().+-]{5,}(\s*(?i:ext\.?|x|extension)\s*\d{1,6})?\s*$",
}


def _string_array(values: pd.Series) -> pa.Array:
    return pa.array(values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v)),
                    type=pa.large_string())


def scan_structured(values: pd.Series) -> Counter:
    """Cells of one column that still validate as an entity, per entity type."""
    counts: Counter = Counter()
    array = _string_array(values)
    for entity, screen in SCREENS.items():
        mask = pc.fill_null(pc.match_substring_regex(array, screen), False)
        if not pc.any(mask).as_py():
            continue
        candidates = pc.filter(array, mask).to_pylist()
        found = sum(1 for value in candidates if rec.VALUE_VALIDATORS[entity](value))
        if found:
            counts[entity] += found
    return counts


def is_free_text(values: pd.Series) -> bool:
    sample = values.dropna().astype(str).head(200)
    return len(sample) > 0 and sample.str.len().mean() >= 40 and sample.str.count(" ").mean() >= 5


def scan_free_text(values: pd.Series, policy: Policy, workers: int | None = None) -> tuple[Counter, int]:
    """Spans the detector still finds per entity type, and how many cells hold any."""
    from securepipe.pii.text import detect_texts

    texts = values.fillna("").astype(str).tolist()
    found = [[s for s in spans if not within(s.start, s.end, surrogate_ranges(text))]
             for text, spans in zip(texts, detect_texts(texts, workers=workers, ner=policy.ner, config=policy.recognizers))]
    counts: Counter = Counter()
    cells = 0
    for spans in without_fixed_points(texts, found, policy):
        cells += bool(spans)
        counts.update(span.entity_type for span in spans)
    return counts, cells


def without_fixed_points(texts, spans_per_text, policy: Policy):
    """Drop spans the policy's own operator leaves as they are: they are what masking publishes
    (an age under 90 kept exact, a year, a partial mask), so re-scanning masked text finds them
    without finding PII. An operator that changes every value (pseudonym, redact, date shift)
    has no such spans."""
    rows = [(i, n, s.entity_type, texts[i][s.start:s.end])
            for i, spans in enumerate(spans_per_text) for n, s in enumerate(spans)]
    if not rows:
        return spans_per_text
    flat = pd.DataFrame(rows, columns=["text", "span", "entity", "value"])
    kept = set()
    probe = secrets.token_bytes(32)  # any key: a pseudonym never equals its input either way
    for entity, group in flat.groupby("entity", sort=False):
        spec = policy.operator_for(entity, free_text=True)
        out = get_operator(spec.name).apply(group["value"], spec.params,
                                            Context(entity, probe, group["text"].astype(str)))
        same = out.astype(str).to_numpy() == group["value"].astype(str).to_numpy()
        kept.update(zip(group["text"][same], group["span"][same]))
    return [[s for n, s in enumerate(spans) if (i, n) not in kept] for i, spans in enumerate(spans_per_text)]


def scan_frame(df: pd.DataFrame, policy: Policy, free_text_columns=None, workers: int | None = None) -> dict:
    """Residual counts of one frame (a chunk or a whole table), before thresholds."""
    columns = {}
    for column in df.columns:
        values = df[column]
        if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
            continue
        name = str(column)
        text = name in free_text_columns if free_text_columns is not None else is_free_text(values)
        if text:
            counts, cells = scan_free_text(values, policy, workers)
            columns[name] = {"kind": FREE_TEXT, "cells": int(values.notna().sum()), "cells_with_pii": cells,
                             "entities": dict(counts)}
        else:
            counts = scan_structured(values)
            columns[name] = {"kind": "structured", "cells": int(values.notna().sum()),
                             "cells_with_pii": sum(counts.values()), "entities": dict(counts)}
    return {"rows": len(df), "columns": columns}


def merge_scans(total: dict | None, part: dict) -> dict:
    if total is None:
        return part
    total["rows"] += part["rows"]
    for name, column in part["columns"].items():
        into = total["columns"].setdefault(name, {**column, "cells": 0, "cells_with_pii": 0, "entities": {}})
        into["cells"] += column["cells"]
        into["cells_with_pii"] += column["cells_with_pii"]
        for entity, count in column["entities"].items():
            into["entities"][entity] = into["entities"].get(entity, 0) + count
    return total


def decide(scan: dict, policy: Policy) -> dict:
    """Apply the policy's thresholds; raise GateFailed naming column, entity and count."""
    failures = []
    for name, column in scan["columns"].items():
        if column["kind"] == FREE_TEXT:
            fraction = column["cells_with_pii"] / column["cells"] if column["cells"] else 0.0
            failed = fraction > policy.max_residual_text_fraction
        else:
            failed = column["cells_with_pii"] > policy.max_residual_cells
        if failed:
            failures += [{"column": name, "entity_type": e, "count": c} for e, c in sorted(column["entities"].items())]
    report = {"passed": not failures, "rows_scanned": scan["rows"], "residual": failures, "columns": scan["columns"]}
    if failures:
        where = "; ".join(f"column {f['column']!r} {f['entity_type']} x{f['count']}" for f in failures)
        error = GateFailed(f"residual PII in masked output, nothing published (final for this input and "
                           f"policy): {where}")
        error.report = report
        raise error
    return report


def residual_gate(df: pd.DataFrame, policy: Policy, *, free_text_columns=None, workers: int | None = None) -> dict:
    """Re-scan a masked frame; return the gate report or raise GateFailed (counts only)."""
    return decide(scan_frame(df, policy, free_text_columns, workers), policy)
