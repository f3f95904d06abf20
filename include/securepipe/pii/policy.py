"""The masking policy: a YAML file, validated on load, that overrides inference.

The packaged default names no column: which column holds the data subject's
identifier, which columns are quasi-identifiers and which is sensitive are inferred
from the table (`structured.plan_table`). A policy states only what it wants
differently; a named policy says `extends: default` (or another policy beside it) and
lists its changes, merged section by section into what it extends: an entry it names
(an operator, a column rule, `k`) replaces the inherited one; `null` removes it. A
policy without `extends` stands alone. A column a policy names that a table lacks is
a warning, unless the policy marks it `required: true`.

Threat model: the policy decides what is masked, so a wrong or hostile policy file is
an attack on the whole stage. It is parsed with `yaml.safe_load` (no object tags),
aliases are refused (a "billion laughs" file cannot expand), the size is capped, the
`extends` chain is bounded and stays in the policy's own directory, and every key,
entity, operator and parameter is checked against the schema below before anything
runs. Errors name the key, never echo the file's contents.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from securepipe.errors import PolicyError
from securepipe.pii import recognizers as rec
from securepipe.pii.operators import get_operator
from securepipe.pii.recognizers import RecognizerConfig

MAX_POLICY_BYTES = 256 * 1024
MAX_EXTENDS_DEPTH = 4
DEFAULT = "default"
NONE = "NONE"
FREE_TEXT = "FREE_TEXT"
IDENTIFIER = "IDENTIFIER"
LOCATION = "LOCATION"  # a city or town column: a geographic unit smaller than a state
BIRTH_DATE = "BIRTH_DATE"  # a date column that holds birth dates (masked to the year by default)
ENTITIES = frozenset(rec.TEXT_ENTITIES) | {rec.AGE, IDENTIFIER, LOCATION, BIRTH_DATE}
COLUMN_ENTITIES = ENTITIES | {NONE, FREE_TEXT}
# Generalization steps of a quasi-identifier's ladder: keep a prefix of N characters, years
# to bands of N years, numbers (ages) to bands of width N.
GENERALIZATIONS = ("prefix", "year_band", "band")
_POLICY_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class OperatorSpec:
    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ColumnRule:
    entity: str | None  # None: inferred, the rule only marks the column required
    operator: OperatorSpec | None = None
    required: bool = False


@dataclass(frozen=True)
class QuasiIdentifier:
    column: str
    levels: tuple[tuple[str, int], ...]  # successive generalizations: ("prefix", 2), ("year_band", 10)
    required: bool = False


@dataclass(frozen=True)
class KAnonymity:
    k: int
    quasi_identifiers: tuple[QuasiIdentifier, ...] | None  # None: inferred from the table
    sensitive_column: str | None = None  # None: inferred from the table
    max_suppressed_fraction: float = 0.02


@dataclass(frozen=True)
class Policy:
    operators: dict[str, OperatorSpec]
    free_text_operators: dict[str, OperatorSpec]
    columns: dict[str, ColumnRule]
    subject_column: str | None  # None: inferred from the table
    sample_size: int = 200
    min_confidence: float = 0.8
    min_confidence_name_hint: float = 0.5
    ner: bool = True
    recognizers: RecognizerConfig = RecognizerConfig()  # which free-text recognizers run (by name)
    max_residual_cells: int = 0
    max_residual_text_fraction: float = 0.0
    k_anonymity: KAnonymity | None = None
    sha256: str = ""  # of the resolved policy (after `extends`), for lineage and the model card

    def operator_for(self, entity: str, *, free_text: bool = False) -> OperatorSpec:
        if free_text and entity in self.free_text_operators:
            return self.free_text_operators[entity]
        if entity in self.operators:
            return self.operators[entity]
        return OperatorSpec("redact")  # an entity with no rule is never published as is

    @property
    def required_columns(self) -> tuple[str, ...]:
        required = [name for name, rule in self.columns.items() if rule.required]
        if self.k_anonymity is not None and self.k_anonymity.quasi_identifiers:
            required += [qi.column for qi in self.k_anonymity.quasi_identifiers if qi.required]
        return tuple(dict.fromkeys(required))


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise PolicyError(f"policy: {where} must be a mapping with string keys")
    return value


def _check_keys(value: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise PolicyError(f"policy: {where}: unknown key(s) {', '.join(map(repr, unknown))}")


def _number(value, kind, where: str, low, high):
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        raise PolicyError(f"policy: {where} must be a {getattr(kind, '__name__', 'number')} in [{low}, {high}]")
    return value


def _flag(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"policy: {where} must be true or false")
    return value


def _column_name(value, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise PolicyError(f"policy: {where} must be a column name")
    return value


def _operator(value, where: str) -> OperatorSpec:
    value = _mapping(value, where)
    name = value.get("operator")
    if not isinstance(name, str):
        raise PolicyError(f"policy: {where}: 'operator' (a name) is required")
    params = {k: v for k, v in value.items() if k != "operator"}
    get_operator(name).validate(params)
    return OperatorSpec(name, params)


def _entity_operators(value, where: str) -> dict[str, OperatorSpec]:
    out = {}
    for entity, spec in _mapping(value, where).items():
        if entity not in ENTITIES:
            raise PolicyError(f"policy: {where}: unknown entity {entity!r}")
        out[entity] = _operator(spec, f"{where}.{entity}")
    return out


def _columns(value) -> dict[str, ColumnRule]:
    out = {}
    for column, rule in _mapping(value, "columns").items():
        rule = _mapping(rule, f"columns.{column}")
        _check_keys(rule, {"entity", "operator", "required"}, f"columns.{column}")
        entity = rule.get("entity")
        if entity is None and "required" not in rule:
            raise PolicyError(f"policy: columns.{column} needs an entity or required: true")
        if entity is not None and entity not in COLUMN_ENTITIES:
            raise PolicyError(f"policy: columns.{column}.entity must be one of {', '.join(sorted(COLUMN_ENTITIES))}")
        operator = _operator(rule["operator"], f"columns.{column}.operator") if "operator" in rule else None
        if operator is not None and entity is None:
            raise PolicyError(f"policy: columns.{column}: an operator needs the column's entity")
        out[column] = ColumnRule(entity, operator, _flag(rule.get("required", False), f"columns.{column}.required"))
    return out


def parse_levels(levels, where: str) -> tuple[tuple[str, int], ...]:
    if not isinstance(levels, list):
        raise PolicyError(f"policy: {where} must be a list")
    steps = []
    for level in levels:
        level = _mapping(level, where)
        if len(level) != 1 or next(iter(level)) not in GENERALIZATIONS:
            raise PolicyError(f"policy: {where}: each level is one of {', '.join(GENERALIZATIONS)}")
        kind, amount = next(iter(level.items()))
        steps.append((kind, _number(amount, int, f"{where}.{kind}", 0 if kind == "prefix" else 1, 100)))
    return tuple(steps)


def _k_anonymity(value) -> KAnonymity | None:
    if value is None:
        return None
    value = _mapping(value, "k_anonymity")
    _check_keys(value, {"k", "quasi_identifiers", "sensitive_column", "max_suppressed_fraction"}, "k_anonymity")
    qis = value.get("quasi_identifiers")
    parsed = None
    if qis is not None:
        if not isinstance(qis, list) or not qis:
            raise PolicyError("policy: k_anonymity.quasi_identifiers must be a non-empty list (omit it to infer)")
        parsed = []
        for index, qi in enumerate(qis):
            where = f"k_anonymity.quasi_identifiers[{index}]"
            qi = _mapping(qi, where)
            _check_keys(qi, {"column", "levels", "required"}, where)
            if not isinstance(qi.get("column"), str):
                raise PolicyError(f"policy: {where}.column (a column name) is required")
            parsed.append(QuasiIdentifier(qi["column"], parse_levels(qi.get("levels") or [], f"{where}.levels"),
                                          _flag(qi.get("required", False), f"{where}.required")))
        parsed = tuple(parsed)
    return KAnonymity(
        k=_number(value.get("k", 5), int, "k_anonymity.k", 2, 1000),
        quasi_identifiers=parsed,
        sensitive_column=_column_name(value.get("sensitive_column"), "k_anonymity.sensitive_column"),
        max_suppressed_fraction=float(
            _number(value.get("max_suppressed_fraction", 0.02), (int, float), "k_anonymity.max_suppressed_fraction", 0, 1)
        ),
    )


def _refuse_aliases(text: str) -> None:
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise PolicyError("policy: YAML aliases are not allowed")
    except yaml.YAMLError:
        raise PolicyError("policy: not valid YAML") from None


def _load_raw(text: str) -> dict:
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy: larger than {MAX_POLICY_BYTES} bytes")
    _refuse_aliases(text)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raise PolicyError("policy: not valid YAML, or uses tags that are not allowed") from None
    return _mapping(raw, "the top level")


def _merge(base: dict, changes: dict) -> dict:
    """`changes` over `base`: each section (operators, columns, k_anonymity, ...) key by key, and
    each entry in it (an operator, a column rule, k) replaced whole; a null removes what it names."""
    merged = dict(base)
    for section, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(section), dict):
            entries = dict(merged[section])
            for key, entry in value.items():
                if entry is None:
                    entries.pop(key, None)
                else:
                    entries[key] = entry
            merged[section] = entries
        elif value is None:
            merged.pop(section, None)
        else:
            merged[section] = value
    return merged


def _resolve_extends(raw: dict, directory: Path | None, depth: int = 0) -> dict:
    parent = raw.get("extends")
    if parent is None:
        return raw
    if not isinstance(parent, str) or not _POLICY_NAME.fullmatch(parent):
        raise PolicyError("policy: extends must name a policy (default, or a file beside this one)")
    if depth >= MAX_EXTENDS_DEPTH:
        raise PolicyError(f"policy: extends chain longer than {MAX_EXTENDS_DEPTH}")
    if parent == DEFAULT:
        base, base_dir = _load_raw(_default_text()), None
    else:
        if directory is None:
            raise PolicyError(f"policy: extends {parent!r}: only 'default' can be extended here")
        base, base_dir = _load_raw(_read(directory / f"{parent}.yaml")), directory
    base = _resolve_extends(base, base_dir, depth + 1)
    return _merge(base, {k: v for k, v in raw.items() if k != "extends"})


def parse_policy(text: str, *, directory: Path | None = None) -> Policy:
    """The policy in `text`; `extends` names resolve to the default or to files in `directory`."""
    raw = _resolve_extends(_load_raw(text), directory)
    _check_keys(
        raw,
        {"version", "detection", "operators", "free_text_operators", "subject_column", "columns", "gate",
         "k_anonymity"},
        "the top level",
    )
    if raw.get("version") != 1:
        raise PolicyError("policy: version must be 1")
    detection = _mapping(raw.get("detection"), "detection")
    _check_keys(detection, {"sample_size", "min_confidence", "min_confidence_name_hint", "ner", "recognizers"},
                "detection")
    gate = _mapping(raw.get("gate"), "gate")
    _check_keys(gate, {"max_residual_cells", "max_residual_text_fraction"}, "gate")
    return Policy(
        operators=_entity_operators(raw.get("operators"), "operators"),
        free_text_operators=_entity_operators(raw.get("free_text_operators"), "free_text_operators"),
        columns=_columns(raw.get("columns")),
        subject_column=_column_name(raw.get("subject_column"), "subject_column"),
        sample_size=_number(detection.get("sample_size", 200), int, "detection.sample_size", 10, 100_000),
        min_confidence=float(_number(detection.get("min_confidence", 0.8), (int, float), "detection.min_confidence", 0, 1)),
        min_confidence_name_hint=float(
            _number(detection.get("min_confidence_name_hint", 0.5), (int, float), "detection.min_confidence_name_hint", 0, 1)
        ),
        ner=_flag(detection.get("ner", True), "detection.ner"),
        recognizers=RecognizerConfig.parse(detection.get("recognizers"), "detection.recognizers"),
        max_residual_cells=_number(gate.get("max_residual_cells", 0), int, "gate.max_residual_cells", 0, 10**12),
        max_residual_text_fraction=float(
            _number(gate.get("max_residual_text_fraction", 0.0), (int, float), "gate.max_residual_text_fraction", 0, 1)
        ),
        k_anonymity=_k_anonymity(raw.get("k_anonymity")),
        sha256=hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest(),
    )


def _default_text() -> str:
    return resources.files("securepipe.pii").joinpath("default_policy.yaml").read_text(encoding="utf-8")


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise PolicyError(f"policy {path.name}: larger than {MAX_POLICY_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"policy {path.name}: file not found") from None
    except UnicodeDecodeError:
        raise PolicyError(f"policy {path.name}: not UTF-8 text") from None


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy at `path`, or the default policy shipped in this package."""
    if path is None:
        return parse_policy(_default_text())
    path = Path(path)
    text = _read(path)
    try:
        return parse_policy(text, directory=path.parent)
    except PolicyError as exc:
        raise PolicyError(f"{path.name}: {exc}") from None
