"""PII detection, masking, k-anonymity and the residual-PII gate.

Threat model: raw identifiers must not leave the worker that masks them. This package
finds them (structured columns by name and validated value samples, free text with
validated pattern recognizers plus spaCy NER through Presidio), replaces them with
policy-chosen operators (redaction, partial masks, keyed HMAC pseudonyms, date
shifts, generalization), measures k-anonymity over quasi-identifiers, and re-scans
the result so that a run with residual PII fails closed. Reports carry counts per
column and entity type, never values. With the default policy no column is named:
each table's plan (subject column, quasi-identifiers, sensitive column) is inferred.

This module imports only the standard library (the `securepipe` CLI imports the
package in both virtual environments); the API below is loaded on first use:

    load_policy(path) -> Policy
    plan_table(df, policy, keep=()) -> TablePlan   # classes and roles of one table
    mask_frame(df, policy, secret, plan=None) -> (masked_df, report)  # report["residual_scan"]
    enforce_k_anonymity(df, plan.k_anonymity) -> (df, report)
    residual_gate(df, policy) -> report            # raises GateFailed
    merge_reports([report, ...]) -> report             # shard reports added up
    mask_file(in_path, out_path, *, policy, secret, report_path=None, keep=()) -> report
    classify_columns(df, policy) -> {column: ColumnClass}
    detect_texts(texts) -> list[list[Span]]
"""
from __future__ import annotations

import importlib

_API = {
    "load_policy": "securepipe.pii.policy",
    "Policy": "securepipe.pii.policy",
    "mask_frame": "securepipe.pii.mask",
    "mask_file": "securepipe.pii.mask",
    "merge_reports": "securepipe.pii.mask",
    "classify_columns": "securepipe.pii.structured",
    "plan_table": "securepipe.pii.structured",
    "TablePlan": "securepipe.pii.structured",
    "enforce_k_anonymity": "securepipe.pii.kanon",
    "residual_gate": "securepipe.pii.gate",
    "detect_texts": "securepipe.pii.text",
    "Span": "securepipe.pii.text",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(name)
    return getattr(importlib.import_module(_API[name]), name)
