"""What each column of a table is, and the table's plan: subject, quasi-identifiers, sensitive column.

Threat model: a PII column classified as harmless is published raw; a clinical column
classified as PII is destroyed (Presidio's `analyze_dict` rewrote ICD-10 codes as
driver's licences). A column is classified from its name (in English, German and
French, accents ignored) and from a sample of its values, checked by the library
validators in `recognizers`; person names, which no checksum confirms, are confirmed
by running the free-text detector (spaCy NER) on the sample. A column whose name says
it holds an identifier (an address, a phone, a postcode, a patient number...) is
masked as that identifier when its values are shaped like one, even when no validator
knows the country's format: a name that says "address" over values that look like
addresses is not a guess worth publishing raw. Every decision carries a confidence
(share of sampled values that support it) and a reason; the policy's `columns:`
entries override inference. A string column where some sampled values hold an
identifier, but too few to call the column, is treated as free text, so that every
cell is scanned rather than none. Numbers, codes and low-cardinality categories stay
unchanged unless their name says otherwise.

`plan_table` then infers, from the classes, what the policy does not name:
- the subject column: the column that identifies the data subject (a patient or
  member number, an MRN, an SSN or national number, an e-mail), preferring a column
  named as a subject identifier. Dates of one subject share one shift. Without one,
  each row is keyed by its first identifier value (`key_columns`, most specific
  first), so rows that share that identifier share the shift, and a row without any
  identifier is keyed by its own content;
- quasi-identifiers, with ladders that fit their type: postcodes (prefixes), birth
  dates (year bands), ages (bands), sex/gender (suppression only);
- the sensitive column (l-diversity): the label when the caller names one, else a
  diagnosis column (by name or ICD-10-shaped values), else an outcome column.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass

import pandas as pd

from securepipe.errors import InputError
from securepipe.pii import recognizers as rec
from securepipe.pii.operators import SURROGATE_RE
from securepipe.pii.policy import (BIRTH_DATE, FREE_TEXT, IDENTIFIER, LOCATION, NONE, KAnonymity, Policy,
                                   QuasiIdentifier)

_ID_WORDS = r"(?:id|key|number|no|nr|num|nummer|numero|code)"
NAME_HINTS = {
    rec.EMAIL: r"e_?mail|courriel|(^|_)mail($|_)",
    rec.PHONE: r"phone|(^|_)tel(ephone|efon|efono)?($|_)|mobile|(^|_)handy($|_)|portable|(^|_)fax($|_)|(^|_)cell($|_)",
    rec.SSN: r"ssn|social_?security",
    rec.CARD: r"card_?(number|no|num)|(^|_)cc_|credit|(^|_)pan($|_)",
    rec.IP: r"(^|_)ip($|_)|ip_?addr",
    rec.IBAN: r"iban|account_?(number|no)|konto",
    BIRTH_DATE: r"dob|birth|geburt|naissance|(^|_)born($|_)|(^|_)date_?de_?nais|(^|_)ne_le($|_)",
    rec.DATE: r"date|datum|(^|_)dt($|_)|timestamp|(^|_)time($|_)|(^|_)when($|_)",
    rec.ADDRESS: r"address|adresse|street|strasse|straße|(^|_)rue($|_)|(^|_)addr($|_)|anschrift|domicile",
    rec.ZIP: r"zip|postal|postcode|(^|_)plz($|_)|postleitzahl|code_?postal|(^|_)cp($|_)|(^|_)npa($|_)|eircode",
    LOCATION: r"(^|_)(city|town|ort|stadt|ville|commune|wohnort|municipality|gemeinde|locality|village)($|_)",
    rec.MRN: r"mrn|medical_?record|record_?(number|no|nr)|(^|_)chart|fallnummer|(^|_)fall_?nr|dossier",
    rec.PERSON: r"^(first|last|full|middle|given|family|sur|patient|pat|contact|maiden|doctor|physician|provider|"
                r"nurse|relative|guardian|kin|emergency_contact|caller|spouse|mother|father|pt)?_?name$|"
                r"^(vorname|nachname|familienname|patientenname|name_vorname|prenom|nom|nom_de_famille|nom_prenom|"
                r"nom_complet|surname|forename|patient|arzt|medecin)$",
    IDENTIFIER: rf"(^|_)(patient|patienten|pat|pt|person|member|subject|customer|client|user|employee|case|insured|"
                rf"versicherten|versicherung|insurance|policy|beneficiary|enrollee|nhs|kv|mitglied|adherent|assure)"
                rf"_?{_ID_WORDS}($|_)|^(id|pid|uid|kvnr|svnr|nir|insee|ni_?number|nhs|ahv|avs|bsn|ppsn|sin|"
                rf"versichertennummer|patientennummer|mitgliedsnummer)$|(^|_)id_?(patient|person|membre)($|_)|"
                rf"national_?(id|number|insurance)|securite_?sociale|sozialversicherung",
    rec.AGE: r"(^|_)(age|alter|age_years|age_yrs|ans)($|_)",
}
SEX_HINT = re.compile(r"(^|_)(sex|gender|geschlecht|sexe|genre|gesch)($|_)")
SEX_VALUES = frozenset(
    "m f w d x u male female man woman männlich maennlich weiblich divers diverse homme femme h other unknown "
    "non-binary nonbinary".split()
)
DIAGNOSIS_HINT = re.compile(r"diag|(^|_)dx($|_)|icd|condition|(^|_)cim($|_)|befund")
OUTCOME_HINT = re.compile(r"outcome|label|target|readmi|mortality|deceased|(^|_)y($|_)|ergebnis|issue")
ICD10 = re.compile(r"[A-TV-Z]\d{2}(?:\.\d{1,4})?[A-Z]?")
# Validators tried on values, most specific first (a card is never read as a phone).
VALUE_ORDER = (rec.EMAIL, rec.SSN, rec.CARD, rec.IBAN, rec.IP, rec.MRN, rec.DATE, rec.ZIP, rec.PHONE, rec.ADDRESS)
_ID_SHAPE = re.compile(r"(?=.*\d)[A-Za-z0-9][A-Za-z0-9_\-./ ]{3,39}")
_CODE_SHAPE = re.compile(r"(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9][A-Za-z0-9_\-./]{4,39}|\d{6,20}")
_WORD = r"[^\W\d_](?:[^\W\d_]|['\-.])*"  # letters of any script, with inner apostrophes, hyphens, dots
_NAME_SHAPE = re.compile(rf"{_WORD}(?:[ ,]{{1,2}}{_WORD}){{0,4}}")
_NUMBER = re.compile(r"\s*[-+]?(?:\d+[.,]?\d*|[.,]\d+)(?:[eE][-+]?\d+)?\s*")
_LEADING_ZERO = re.compile(r"\s*[-+]?0\d")
_PHONE_SHAPE = re.compile(r"\s*(?:\+|00)?[\d\s().\-/]{6,24}(?:\s*(?:ext\.?|x|extension|durchwahl)\s*\d{1,6})?\s*", re.I)
_POSTCODE_SHAPE = re.compile(
    r"\s*(?:[A-Z]{1,2}-)?(?:\d{4,5}|\d{3} ?\d{2}|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|[A-Z]\d[A-Z] ?\d[A-Z]\d|"
    r"\d{4} ?[A-Z]{2}|[A-Z]\d{2} ?[A-Z\d]{4})\s*", re.I)
_ADDRESS_SHAPE = re.compile(r"(?=.*\d)(?=.*[^\W\d_]{3}).{6,}")
_SURROGATE = re.compile(rf"\s*(?:{SURROGATE_RE.pattern}|\*+)\s*")
_EXTRA_DATE_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%y", "%d/%m/%y", "%Y.%m.%d", "%d %m %Y")
_MONTHS = {
    "januar": 1, "janvier": 1, "jänner": 1, "februar": 2, "février": 2, "fevrier": 2, "märz": 3, "maerz": 3,
    "mars": 3, "april": 4, "avril": 4, "mai": 5, "juni": 6, "juin": 6, "juli": 7, "juillet": 7, "august": 8,
    "août": 8, "aout": 8, "september": 9, "septembre": 9, "oktober": 10, "octobre": 10, "november": 11,
    "novembre": 11, "dezember": 12, "décembre": 12, "decembre": 12,
}
_WORD_DATE = re.compile(r"\s*(\d{1,2})\.?\s+([^\W\d_]+)\.?\s+(\d{4})\s*")
# Entities that identify a subject, most specific first: the subject column and row keys come from these.
SUBJECT_ENTITIES = (IDENTIFIER, rec.MRN, rec.SSN, rec.EMAIL)
KEY_ENTITIES = (*SUBJECT_ENTITIES, rec.PHONE, rec.CARD, rec.IBAN, rec.PERSON)
# Names that say "free text" even when the sampled cells are short.
_FREE_TEXT_HINT = re.compile(r"note|comment|remark|narrative|text|bemerkung|notiz|kommentar|freitext|commentaire|"
                             r"observation|summary|history|anamnese|verlauf|report|bericht|compte_rendu")


@dataclass(frozen=True)
class ColumnClass:
    entity: str  # an entity type, FREE_TEXT or NONE
    confidence: float
    reason: str  # "policy", "values", "name+values", "name+shape", "ner-sample", "free-text", "no-match", ...


def normalize_name(column: str) -> str:
    """Lower case, accents dropped, every run of other characters one underscore ("Pat.-Nr." -> "pat_nr")."""
    plain = "".join(ch for ch in unicodedata.normalize("NFKD", str(column)) if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9ß]+", "_", plain.lower()).strip("_")


def name_hint(column: str) -> str | None:
    normalized = normalize_name(column)
    for entity, pattern in NAME_HINTS.items():
        if re.search(pattern, normalized):
            return entity
    return None


def _sample(values: pd.Series, size: int) -> list[str]:
    present = values.dropna()
    if len(present) > size:  # evenly spaced: the head of a file may be unrepresentative
        present = present.iloc[:: max(1, len(present) // size)].iloc[:size]
    return [str(v) for v in present if str(v).strip()]


def _fraction(sample: list[str], predicate) -> float:
    return sum(1 for v in sample if predicate(v)) / len(sample) if sample else 0.0


def is_numeric(values: pd.Series, sample: list[str]) -> bool:
    """Numbers, as typed or as CSV text (a leading zero makes a code, not a number)."""
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return True
    return bool(sample) and all(_NUMBER.fullmatch(v) and not _LEADING_ZERO.match(v) for v in sample)


def parse_any_date(value: str) -> bool:
    """A calendar date in ISO, US, day-first or written-out (English, German, French) form."""
    import datetime as _dt

    if rec.valid_date(value):
        return True
    value = value.strip()
    for fmt in _EXTRA_DATE_FORMATS:
        try:
            if 1850 <= _dt.datetime.strptime(value, fmt).year <= 2200:
                return True
        except ValueError:
            continue
    match = _WORD_DATE.fullmatch(value)
    return bool(match) and match.group(2).lower() in _MONTHS and 1 <= int(match.group(1)) <= 31


def _phone_shaped(value: str) -> bool:
    return bool(_PHONE_SHAPE.fullmatch(value)) and sum(ch.isdigit() for ch in value) >= 7


def _ner_person_fraction(sample: list[str], policy: Policy) -> float:
    from securepipe.pii.text import detect_batch

    hits = 0
    for value, spans in zip(sample, detect_batch(sample, config=policy.recognizers)):
        covered = sum(s.end - s.start for s in spans if s.entity_type == rec.PERSON)
        hits += covered >= 0.7 * len(value.strip())
    return hits / len(sample) if sample else 0.0


def _contains_pii_fraction(sample: list[str], policy: Policy) -> float:
    from securepipe.pii.text import detect_batch

    return sum(1 for spans in detect_batch(sample, ner=False, config=policy.recognizers) if spans) / len(sample)


# What a column named as an entity must look like to be masked as it without a validator's yes.
_HINT_SHAPES = {
    rec.PHONE: _phone_shaped,
    rec.ZIP: lambda v: bool(_POSTCODE_SHAPE.fullmatch(v)),
    rec.ADDRESS: lambda v: bool(_ADDRESS_SHAPE.fullmatch(v)),
    LOCATION: lambda v: bool(_NAME_SHAPE.fullmatch(v.strip())),
    rec.PERSON: lambda v: bool(_NAME_SHAPE.fullmatch(v.strip())),
    rec.EMAIL: lambda v: "@" in v,
    IDENTIFIER: lambda v: bool(_ID_SHAPE.fullmatch(v.strip())),
    rec.MRN: lambda v: bool(_ID_SHAPE.fullmatch(v.strip())),
    rec.SSN: lambda v: bool(_ID_SHAPE.fullmatch(v.strip())),
    rec.IBAN: lambda v: bool(_ID_SHAPE.fullmatch(v.strip())),
    rec.CARD: lambda v: sum(ch.isdigit() for ch in v) >= 12,
    rec.DATE: parse_any_date,
    BIRTH_DATE: parse_any_date,
    rec.AGE: lambda v: bool(_NUMBER.fullmatch(v)) and 0 <= float(v.replace(",", ".")) <= 130,
}


def classify_column(name: str, values: pd.Series, policy: Policy) -> ColumnClass:
    rule = policy.columns.get(name)
    if rule is not None and rule.entity is not None:
        return ColumnClass(rule.entity, 1.0, "policy")
    hint = name_hint(name)
    sample = _sample(values, policy.sample_size)
    if not sample:
        return ColumnClass(NONE, 0.0, "empty")
    numeric = is_numeric(values, sample)
    if numeric and hint not in (rec.ZIP, rec.PHONE, rec.SSN, rec.CARD, rec.MRN, IDENTIFIER, rec.AGE):
        return ColumnClass(NONE, 1.0, "numeric")
    if _fraction(sample, _SURROGATE.fullmatch) == 1.0:
        return ColumnClass(NONE, 1.0, "masking output")  # our tokens, markers or stars: masked already
    if hint == rec.ADDRESS and not numeric:  # an address written as prose is still one address per cell
        score = _fraction(sample, _HINT_SHAPES[rec.ADDRESS])
        if score >= policy.min_confidence_name_hint:
            return ColumnClass(rec.ADDRESS, score, "name+shape")
    if not numeric and (_is_free_text(sample) or (_FREE_TEXT_HINT.search(normalize_name(name))
                                                   and _fraction(sample, lambda v: " " in v.strip()) >= 0.5)):
        return ColumnClass(FREE_TEXT, 1.0, "free-text")

    scores = {entity: _score(entity, sample) for entity in VALUE_ORDER}
    validated = rec.DATE if hint == BIRTH_DATE else hint
    if validated in scores and scores[validated] >= policy.min_confidence_name_hint:
        return ColumnClass(hint, scores[validated], "name+values")
    best = max(VALUE_ORDER, key=lambda e: (scores[e], -VALUE_ORDER.index(e)))
    if scores[best] >= policy.min_confidence and not numeric:
        return ColumnClass(best, scores[best], "values")
    if hint in _HINT_SHAPES:
        score = _fraction(sample, _HINT_SHAPES[hint])
        if score >= policy.min_confidence_name_hint:
            return ColumnClass(hint, score, "name+shape")
    if numeric:
        return ColumnClass(NONE, 1.0, "numeric")
    date_score = _fraction(sample, parse_any_date)
    if date_score >= policy.min_confidence:
        return ColumnClass(rec.DATE, date_score, "values")
    if _fraction(sample, _NAME_SHAPE.fullmatch) >= policy.min_confidence:
        score = _ner_person_fraction(sample[:50], policy)
        if score >= policy.min_confidence:
            return ColumnClass(rec.PERSON, score, "ner-sample")
    if _distinct(sample) >= 0.9 and _fraction(sample, _CODE_SHAPE.fullmatch) >= policy.min_confidence:
        return ColumnClass(IDENTIFIER, _distinct(sample), "unique-codes")
    # Some values are or contain identifiers, too few to call the column: scan every cell as text.
    share = _contains_pii_fraction(sample, policy)
    if share > 0:
        return ColumnClass(FREE_TEXT, share, "mixed-values")
    return ColumnClass(NONE, 1.0 - scores[best], "no-match")


# Cheap necessary conditions: a value that fails its screen cannot pass the (slower) validator.
_SCREENS = {
    rec.EMAIL: re.compile(r"@"),
    rec.DATE: re.compile(r"\d{1,4}[-/. ]\d{1,2}[-/. ]\d{2,4}|[A-Za-z]{3}\.? \d|\d [A-Za-z]{3}"),
    rec.IBAN: re.compile(r"^\s*[A-Z]{2}\d{2}"),
}
_DIGIT = re.compile(r"\d")


def _score(entity: str, sample: list[str]) -> float:
    screen = _SCREENS.get(entity, _DIGIT)
    validate = rec.VALUE_VALIDATORS[entity]
    return sum(1 for v in sample if screen.search(v) and validate(v)) / len(sample)


def _is_free_text(sample: list[str]) -> bool:
    return sum(len(v) for v in sample) / len(sample) >= 40 and sum(v.count(" ") for v in sample) / len(sample) >= 5


def _distinct(sample: list[str]) -> float:
    return len(set(sample)) / len(sample) if sample else 0.0


def classify_columns(df: pd.DataFrame, policy: Policy) -> dict[str, ColumnClass]:
    return {str(column): classify_column(str(column), df[column], policy) for column in df.columns}


# --- the table's plan ---------------------------------------------------------------------------
# Each ladder ends in a step that leaves the column one value ("prefix 0" stars it out), so a small
# or spread-out table gives up one quasi-identifier instead of suppressing most of its rows.
LADDERS = {
    rec.ZIP: (("prefix", 2), ("prefix", 1), ("prefix", 0)),
    BIRTH_DATE: (("year_band", 5), ("year_band", 10), ("year_band", 20), ("prefix", 0)),
    rec.AGE: (("band", 5), ("band", 10), ("band", 20), ("prefix", 0)),
    "SEX": (("prefix", 0),),
}


@dataclass(frozen=True)
class TablePlan:
    """How one table is masked: every column's class and the roles inferred or named by the policy."""

    classes: dict[str, ColumnClass]
    subject_column: str | None
    key_columns: tuple[str, ...]
    k_anonymity: KAnonymity | None
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        """Builtins only (it travels through XCom): names, entities, counts; never a value."""
        spec = self.k_anonymity
        return {
            "classes": {c: asdict(cls) for c, cls in self.classes.items()},
            "subject_column": self.subject_column, "key_columns": list(self.key_columns),
            "k_anonymity": None if spec is None else {
                "k": spec.k, "sensitive_column": spec.sensitive_column,
                "max_suppressed_fraction": spec.max_suppressed_fraction,
                "quasi_identifiers": [{"column": q.column, "levels": [list(step) for step in q.levels]}
                                      for q in spec.quasi_identifiers]},
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "TablePlan":
        spec = data["k_anonymity"]
        return cls(
            classes={c: ColumnClass(**v) for c, v in data["classes"].items()},
            subject_column=data["subject_column"], key_columns=tuple(data["key_columns"]),
            k_anonymity=None if spec is None else KAnonymity(
                k=spec["k"], sensitive_column=spec["sensitive_column"],
                max_suppressed_fraction=spec["max_suppressed_fraction"],
                quasi_identifiers=tuple(QuasiIdentifier(q["column"], tuple(tuple(s) for s in q["levels"]))
                                        for q in spec["quasi_identifiers"])),
            warnings=tuple(data["warnings"]),
        )

    def describe(self) -> dict:
        """The roles for a report: which column plays which part, and why the plan says so."""
        spec = self.k_anonymity
        return {"subject_column": self.subject_column, "key_columns": list(self.key_columns),
                "quasi_identifiers": [] if spec is None else [q.column for q in spec.quasi_identifiers],
                "sensitive_column": None if spec is None else spec.sensitive_column,
                "warnings": list(self.warnings)}


def plan_table(frame: pd.DataFrame, policy: Policy, *, keep=(), file: str = "<table>") -> TablePlan:
    """Classify `frame`'s columns and settle the roles; `keep` names columns that must stay
    unchanged (a training label), which are also the first choice for the sensitive column."""
    columns = [str(c) for c in frame.columns]
    missing_required = [c for c in policy.required_columns if c not in columns]
    if missing_required:
        raise InputError(file, "column the policy marks required is missing", column=missing_required[0])
    warnings = [f"column {c!r} named by the policy is not in the table" for c in _named_columns(policy)
                if c not in columns]
    classes = classify_columns(frame, policy)
    for column in keep:
        if column in classes:
            classes[column] = ColumnClass(NONE, 1.0, "kept (label)")
    subject = policy.subject_column if policy.subject_column in columns else _infer_subject(frame, classes)
    keys = (subject,) if subject else tuple(sorted(
        (c for c, cls in classes.items() if cls.entity in KEY_ENTITIES),
        key=lambda c: (KEY_ENTITIES.index(classes[c].entity), columns.index(c))))
    spec = _k_anonymity(frame, classes, policy, [c for c in keep if c in columns])
    return TablePlan(classes, subject, keys, spec, tuple(warnings))


def _named_columns(policy: Policy) -> list[str]:
    named = list(policy.columns)
    if policy.subject_column:
        named.append(policy.subject_column)
    spec = policy.k_anonymity
    if spec is not None:
        named += [q.column for q in spec.quasi_identifiers or ()]
        if spec.sensitive_column:
            named.append(spec.sensitive_column)
    return list(dict.fromkeys(named))


def _infer_subject(frame: pd.DataFrame, classes: dict[str, ColumnClass]) -> str | None:
    candidates = [c for c, cls in classes.items() if cls.entity in SUBJECT_ENTITIES]
    if not candidates:
        return None

    def rank(column: str):
        named_as_subject = name_hint(column) in (IDENTIFIER, rec.MRN)
        return (not named_as_subject, SUBJECT_ENTITIES.index(classes[column].entity),
                -frame[column].nunique(dropna=True), list(classes).index(column))

    return min(candidates, key=rank)


def _sex_column(name: str, values: pd.Series) -> bool:
    distinct = {str(v).strip().lower() for v in values.dropna().unique()[:20]}
    if SEX_HINT.search(normalize_name(name)):
        return 0 < len(distinct) <= 6
    return 2 <= len(distinct) <= 4 and distinct <= SEX_VALUES and bool(distinct & {"m", "f", "male", "female"})


def _k_anonymity(frame, classes, policy: Policy, keep: list[str]) -> KAnonymity | None:
    spec = policy.k_anonymity
    if spec is None:
        return None
    columns = list(classes)
    if spec.quasi_identifiers is not None:
        qis = tuple(q for q in spec.quasi_identifiers if q.column in columns)
    else:
        qis = []
        for column, cls in classes.items():
            if column in keep:
                continue
            role = cls.entity if cls.entity in LADDERS else ("SEX" if cls.entity == NONE
                                                             and _sex_column(column, frame[column]) else None)
            if role is not None:
                qis.append(QuasiIdentifier(column, LADDERS[role]))
        qis = tuple(qis)
    if not qis:
        return None
    named = [spec.sensitive_column] if spec.sensitive_column in columns else []
    sensitive = (named or keep or _infer_sensitive(frame, classes) or [None])[0]
    return KAnonymity(spec.k, qis, sensitive, spec.max_suppressed_fraction)


def _infer_sensitive(frame: pd.DataFrame, classes: dict[str, ColumnClass]) -> list[str]:
    plain = [c for c, cls in classes.items() if cls.entity == NONE]
    diagnosis = [c for c in plain if DIAGNOSIS_HINT.search(normalize_name(c))
                 or _fraction(_sample(frame[c], 100), ICD10.fullmatch) >= 0.8]
    outcome = [c for c in plain if OUTCOME_HINT.search(normalize_name(c))]
    return diagnosis + outcome
