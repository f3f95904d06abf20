"""k-anonymity over the table's quasi-identifiers, with generalization and suppression.

Threat model: a record with no direct identifier can still be singled out by a rare
combination of quasi-identifiers (ZIP prefix, birth year, ...) and linked to an
outside register. Each quasi-identifier (named by the policy or inferred by
`structured.plan_table`) climbs its generalization ladder (Datafly: the one with most distinct values first) until at most
`max_suppressed_fraction` of rows sit in classes smaller than k; those rows have their
quasi-identifiers suppressed to "*" (and are dropped only if the suppressed rows
together are still fewer than k). The resulting k and the l-diversity of the
sensitive column are measured with pycanon, independently of the counting used to
choose the levels. Only quasi-identifier columns are ever changed.

Streaming: `plan_k_anonymity` needs only the quasi-identifier (and sensitive) columns
of the whole table, a few bytes per row; `apply_plan` is then applied chunk by chunk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pycanon import anonymity

from securepipe.errors import InputError
from securepipe.pii.policy import KAnonymity

SUPPRESSED = "*"
# The report when a table has no quasi-identifier (or the policy asks for no k-anonymity).
NO_QUASI_IDENTIFIERS = {"k_required": None, "quasi_identifiers": [], "rows_suppressed": 0, "rows_dropped": 0}


def generalize(values: pd.Series, kind: str, amount: int) -> pd.Series:
    text = values.astype("string")
    if kind == "prefix":
        out = text.str.slice(0, amount) + text.str.slice(amount).str.replace(r".", "*", regex=True)
    elif kind == "year_band":
        years = pd.to_numeric(text.str.extract(r"(\d{4})", expand=False), errors="coerce")
        low = (years // amount * amount).astype("Int64")
        out = low.astype("string") if amount == 1 else low.astype("string") + "-" + (low + amount - 1).astype("string")
    else:  # band: numbers (ages, or age bands already) to bands of `amount`; a top band ("90+") stays
        numbers = pd.to_numeric(text.str.extract(r"^\s*(\d+)", expand=False), errors="coerce")
        low = (numbers // amount * amount).astype("Int64")
        out = (low.astype("string") + "-" + (low + amount - 1).astype("string")).where(~text.str.endswith("+"), text)
    return out.fillna(SUPPRESSED).astype(object)


def _apply_levels(frame: pd.DataFrame, spec: KAnonymity, levels: list[int]) -> pd.DataFrame:
    out = {}
    for qi, level in zip(spec.quasi_identifiers, levels):
        values = frame[qi.column].astype(object).where(frame[qi.column].notna(), SUPPRESSED)
        out[qi.column] = values if level == 0 else generalize(frame[qi.column], *qi.levels[level - 1])
    return pd.DataFrame(out, index=frame.index)


@dataclass
class Plan:
    levels: list[int]
    suppressed: np.ndarray  # bool per row: quasi-identifiers replaced by "*"
    dropped: np.ndarray  # bool per row: removed (too few suppressed rows to hide among)
    report: dict


def _check_columns(columns, spec: KAnonymity, file: str) -> None:
    needed = [qi.column for qi in spec.quasi_identifiers] + ([spec.sensitive_column] if spec.sensitive_column else [])
    for column in needed:
        if column not in columns:
            raise InputError(file, "column named by the policy's k_anonymity section is missing", column=column)


def plan_k_anonymity(frame: pd.DataFrame, spec: KAnonymity | None, *, file: str = "<frame>") -> Plan | None:
    if spec is None:
        return None
    _check_columns(frame.columns, spec, file)
    names = [qi.column for qi in spec.quasi_identifiers]
    levels = [0] * len(names)
    while True:
        general = _apply_levels(frame, spec, levels)
        sizes = general.groupby(names, sort=False, dropna=False)[names[0]].transform("size").to_numpy()
        small = sizes < spec.k
        raisable = [i for i, qi in enumerate(spec.quasi_identifiers) if levels[i] < len(qi.levels)]
        if small.mean() <= spec.max_suppressed_fraction or not raisable:
            break
        levels[max(raisable, key=lambda i: general[names[i]].nunique())] += 1
    dropped = small.copy() if 0 < small.sum() < spec.k else np.zeros(len(frame), dtype=bool)
    suppressed = small & ~dropped
    report = {
        "k_required": spec.k,
        "quasi_identifiers": names,
        "levels": {qi.column: ("as masked" if lv == 0 else f"{qi.levels[lv - 1][0]}:{qi.levels[lv - 1][1]}")
                   for qi, lv in zip(spec.quasi_identifiers, levels)},
        "rows": len(frame),
        "rows_suppressed": int(suppressed.sum()),
        "rows_dropped": int(dropped.sum()),
    }
    final = apply_plan(frame[names + ([spec.sensitive_column] if spec.sensitive_column else [])],
                       Plan(levels, suppressed, dropped, {}), spec)
    report.update(measure(final, spec))
    return Plan(levels, suppressed, dropped, report)


def measure(frame: pd.DataFrame, spec: KAnonymity) -> dict:
    """k (and l of the sensitive column) as pycanon computes them."""
    names = [qi.column for qi in spec.quasi_identifiers]
    if frame.empty:
        return {"k": None, "l_diversity": None}
    data = frame.astype(str).reset_index(drop=True)  # pycanon reads index labels as positions
    result = {"k": int(anonymity.k_anonymity(data, names))}
    result["l_diversity"] = (
        int(anonymity.l_diversity(data, names, [spec.sensitive_column])) if spec.sensitive_column else None
    )
    return result


def apply_plan(chunk: pd.DataFrame, plan: Plan, spec: KAnonymity, row_offset: int = 0) -> pd.DataFrame:
    """Generalize and suppress the quasi-identifiers of rows [row_offset, row_offset+len)."""
    rows = slice(row_offset, row_offset + len(chunk))
    out = chunk.copy()
    general = _apply_levels(chunk, spec, plan.levels)
    suppressed = plan.suppressed[rows]
    for qi in spec.quasi_identifiers:
        out[qi.column] = general[qi.column].where(~suppressed, SUPPRESSED)
    return out[~plan.dropped[rows]]


def enforce_k_anonymity(df: pd.DataFrame, spec: KAnonymity | None) -> tuple[pd.DataFrame, dict]:
    """Generalize/suppress quasi-identifiers of a whole masked table; return it and the report."""
    plan = plan_k_anonymity(df, spec)
    if plan is None:
        return df, dict(NO_QUASI_IDENTIFIERS)
    return apply_plan(df.reset_index(drop=True), plan, spec), plan.report
