"""Column classification: which entity, if any, each structured column holds.

Threat model: a PII column classified as harmless is published raw; a clinical column
classified as PII is destroyed (Presidio's `analyze_dict` rewrote ICD-10 codes as
driver's licences). A column is classified from its name and from a sample of its
values checked by the library validators in `recognizers`; person names, which no
checksum confirms, are confirmed by running the free-text detector (spaCy NER) on the
sample. Every decision carries a confidence (share of sampled values that validate)
and a reason; the policy's `columns:` entries override inference. A string column
where some sampled values hold an identifier, but too few to call the column, is
treated as free text, so that every cell is scanned rather than none.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from securepipe.pii import recognizers as rec
from securepipe.pii.policy import FREE_TEXT, IDENTIFIER, NONE, Policy

NAME_HINTS = {
    rec.PERSON: r"(^|_)(first|last|full|middle|given|family|sur|patient|contact|maiden)?_?name$",
    rec.EMAIL: r"e_?mail",
    rec.PHONE: r"phone|(^|_)tel(ephone)?($|_)|mobile|(^|_)fax($|_)|(^|_)cell($|_)",
    rec.SSN: r"ssn|social_?security",
    rec.CARD: r"card|(^|_)cc_|credit|(^|_)pan($|_)",
    rec.IP: r"(^|_)ip($|_)|ip_?addr",
    rec.IBAN: r"iban|account_?(number|no)",
    rec.DATE: r"date|(^|_)dob($|_)|birth|(^|_)dt($|_)|timestamp",
    rec.ZIP: r"zip|postal|postcode",
    rec.ADDRESS: r"address|street|(^|_)addr($|_)",
    rec.MRN: r"mrn|medical_?record|record_?(number|no)",
    IDENTIFIER: r"(patient|person|member|subject|customer|user|employee)_?(id|key|number|no)$",
}
# Validators tried on values, most specific first (a card is never read as a phone).
VALUE_ORDER = (rec.EMAIL, rec.SSN, rec.CARD, rec.IBAN, rec.IP, rec.MRN, rec.DATE, rec.ZIP, rec.PHONE, rec.ADDRESS)
_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{3,39}")
_NAME_SHAPE = re.compile(r"[A-Z][A-Za-z'\-.]+(?: [A-Z][A-Za-z'\-.]+){0,3}")


@dataclass(frozen=True)
class ColumnClass:
    entity: str  # an entity type, FREE_TEXT or NONE
    confidence: float
    reason: str  # "policy", "values", "name+values", "ner-sample", "free-text", "no-match"


def name_hint(column: str) -> str | None:
    normalized = re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_")
    for entity, pattern in NAME_HINTS.items():
        if re.search(pattern, normalized):
            return entity
    return None


def _sample(values: pd.Series, size: int) -> list[str]:
    present = values.dropna()
    if len(present) > size:  # evenly spaced: the head of a file may be unrepresentative
        present = present.iloc[:: max(1, len(present) // size)].iloc[:size]
    return [str(v) for v in present]


def _fraction(sample: list[str], predicate) -> float:
    return sum(1 for v in sample if predicate(v)) / len(sample) if sample else 0.0


def _ner_person_fraction(sample: list[str]) -> float:
    from securepipe.pii.text import detect_batch

    hits = 0
    for value, spans in zip(sample, detect_batch(sample)):
        covered = sum(s.end - s.start for s in spans if s.entity_type == rec.PERSON)
        hits += covered >= 0.7 * len(value.strip())
    return hits / len(sample) if sample else 0.0


def _contains_pii_fraction(sample: list[str]) -> float:
    from securepipe.pii.text import detect_batch

    return sum(1 for spans in detect_batch(sample, ner=False) if spans) / len(sample)


def classify_column(name: str, values: pd.Series, policy: Policy) -> ColumnClass:
    rule = policy.columns.get(name)
    if rule is not None:
        return ColumnClass(rule.entity, 1.0, "policy")
    hint = name_hint(name)
    numeric = pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)
    if numeric and hint not in (rec.ZIP, rec.PHONE, rec.SSN, rec.CARD, rec.MRN, IDENTIFIER):
        return ColumnClass(NONE, 1.0, "numeric")
    sample = _sample(values, policy.sample_size)
    if not sample:
        return ColumnClass(hint or NONE, 0.0, "empty")
    lengths = [len(v) for v in sample]
    if sum(lengths) / len(sample) >= 40 and sum(v.count(" ") for v in sample) / len(sample) >= 5:
        return ColumnClass(FREE_TEXT, 1.0, "free-text")

    scores = {entity: _fraction(sample, rec.VALUE_VALIDATORS[entity]) for entity in VALUE_ORDER}
    if hint in scores and scores[hint] >= policy.min_confidence_name_hint:
        return ColumnClass(hint, scores[hint], "name+values")
    best = max(VALUE_ORDER, key=lambda e: (scores[e], -VALUE_ORDER.index(e)))
    if scores[best] >= policy.min_confidence:
        return ColumnClass(best, scores[best], "values")
    if hint == IDENTIFIER:
        score = _fraction(sample, _ID_SHAPE.fullmatch)
        if score >= policy.min_confidence_name_hint:
            return ColumnClass(IDENTIFIER, score, "name+values")
    if hint == rec.PERSON:
        score = _fraction(sample, _NAME_SHAPE.fullmatch)
        if score >= policy.min_confidence_name_hint:
            return ColumnClass(rec.PERSON, score, "name+values")
    if not numeric and _fraction(sample, _NAME_SHAPE.fullmatch) >= policy.min_confidence:
        ner_sample = sample[:50]
        score = _ner_person_fraction(ner_sample)
        if score >= policy.min_confidence:
            return ColumnClass(rec.PERSON, score, "ner-sample")
    if not numeric:
        # Some values are or contain identifiers, too few to call the column: scan every cell as text.
        share = _contains_pii_fraction(sample)
        if share > 0:
            return ColumnClass(FREE_TEXT, share, "mixed-values")
    return ColumnClass(NONE, 1.0 - scores[best], "no-match")


def classify_columns(df: pd.DataFrame, policy: Policy) -> dict[str, ColumnClass]:
    return {str(column): classify_column(str(column), df[column], policy) for column in df.columns}
