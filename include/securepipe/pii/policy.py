"""The masking policy: a YAML file, validated on load, that overrides inference.

Threat model: the policy decides what is masked, so a wrong or hostile policy file is
an attack on the whole stage. It is parsed with `yaml.safe_load` (no object tags),
aliases are refused (a "billion laughs" file cannot expand), the size is capped, and
every key, entity, operator and parameter is checked against the schema below before
anything runs. Errors name the key, never echo the file's contents.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from securepipe.errors import PolicyError
from securepipe.pii import recognizers as rec
from securepipe.pii.operators import get_operator

MAX_POLICY_BYTES = 256 * 1024
NONE = "NONE"
FREE_TEXT = "FREE_TEXT"
IDENTIFIER = "IDENTIFIER"
ENTITIES = frozenset(rec.TEXT_ENTITIES) | {rec.AGE, IDENTIFIER}
COLUMN_ENTITIES = ENTITIES | {NONE, FREE_TEXT}
GENERALIZATIONS = ("prefix", "year_band")


@dataclass(frozen=True)
class OperatorSpec:
    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ColumnRule:
    entity: str
    operator: OperatorSpec | None = None


@dataclass(frozen=True)
class QuasiIdentifier:
    column: str
    levels: tuple[tuple[str, int], ...]  # successive generalizations: ("prefix", 2), ("year_band", 10)


@dataclass(frozen=True)
class KAnonymity:
    k: int
    quasi_identifiers: tuple[QuasiIdentifier, ...]
    sensitive_column: str | None = None
    max_suppressed_fraction: float = 0.02


@dataclass(frozen=True)
class Policy:
    operators: dict[str, OperatorSpec]
    free_text_operators: dict[str, OperatorSpec]
    columns: dict[str, ColumnRule]
    subject_column: str | None
    sample_size: int = 200
    min_confidence: float = 0.8
    min_confidence_name_hint: float = 0.5
    ner: bool = True
    max_residual_cells: int = 0
    max_residual_text_fraction: float = 0.0
    k_anonymity: KAnonymity | None = None

    def operator_for(self, entity: str, *, free_text: bool = False) -> OperatorSpec:
        if free_text and entity in self.free_text_operators:
            return self.free_text_operators[entity]
        if entity in self.operators:
            return self.operators[entity]
        return OperatorSpec("redact")  # an entity with no rule is never published as is


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
        _check_keys(rule, {"entity", "operator"}, f"columns.{column}")
        entity = rule.get("entity")
        if entity not in COLUMN_ENTITIES:
            raise PolicyError(f"policy: columns.{column}.entity must be one of {', '.join(sorted(COLUMN_ENTITIES))}")
        operator = _operator(rule["operator"], f"columns.{column}.operator") if "operator" in rule else None
        out[column] = ColumnRule(entity, operator)
    return out


def _k_anonymity(value) -> KAnonymity | None:
    if value is None:
        return None
    value = _mapping(value, "k_anonymity")
    _check_keys(value, {"k", "quasi_identifiers", "sensitive_column", "max_suppressed_fraction"}, "k_anonymity")
    qis = value.get("quasi_identifiers")
    if not isinstance(qis, list) or not qis:
        raise PolicyError("policy: k_anonymity.quasi_identifiers must be a non-empty list")
    parsed = []
    for index, qi in enumerate(qis):
        where = f"k_anonymity.quasi_identifiers[{index}]"
        qi = _mapping(qi, where)
        _check_keys(qi, {"column", "levels"}, where)
        if not isinstance(qi.get("column"), str):
            raise PolicyError(f"policy: {where}.column (a column name) is required")
        levels = qi.get("levels") or []
        if not isinstance(levels, list):
            raise PolicyError(f"policy: {where}.levels must be a list")
        steps = []
        for level in levels:
            level = _mapping(level, f"{where}.levels")
            if len(level) != 1 or next(iter(level)) not in GENERALIZATIONS:
                raise PolicyError(f"policy: {where}.levels: each level is one of {', '.join(GENERALIZATIONS)}")
            kind, amount = next(iter(level.items()))
            steps.append((kind, _number(amount, int, f"{where}.levels.{kind}", 0, 100)))
        parsed.append(QuasiIdentifier(qi["column"], tuple(steps)))
    sensitive = value.get("sensitive_column")
    if sensitive is not None and not isinstance(sensitive, str):
        raise PolicyError("policy: k_anonymity.sensitive_column must be a column name")
    return KAnonymity(
        k=_number(value.get("k", 5), int, "k_anonymity.k", 2, 1000),
        quasi_identifiers=tuple(parsed),
        sensitive_column=sensitive,
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


def parse_policy(text: str) -> Policy:
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy: larger than {MAX_POLICY_BYTES} bytes")
    _refuse_aliases(text)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raise PolicyError("policy: not valid YAML, or uses tags that are not allowed") from None
    raw = _mapping(raw, "the top level")
    _check_keys(
        raw,
        {"version", "detection", "operators", "free_text_operators", "subject_column", "columns", "gate",
         "k_anonymity"},
        "the top level",
    )
    if raw.get("version") != 1:
        raise PolicyError("policy: version must be 1")
    detection = _mapping(raw.get("detection"), "detection")
    _check_keys(detection, {"sample_size", "min_confidence", "min_confidence_name_hint", "ner"}, "detection")
    gate = _mapping(raw.get("gate"), "gate")
    _check_keys(gate, {"max_residual_cells", "max_residual_text_fraction"}, "gate")
    subject = raw.get("subject_column")
    if subject is not None and not isinstance(subject, str):
        raise PolicyError("policy: subject_column must be a column name")
    ner = detection.get("ner", True)
    if not isinstance(ner, bool):
        raise PolicyError("policy: detection.ner must be true or false")
    return Policy(
        operators=_entity_operators(raw.get("operators"), "operators"),
        free_text_operators=_entity_operators(raw.get("free_text_operators"), "free_text_operators"),
        columns=_columns(raw.get("columns")),
        subject_column=subject,
        sample_size=_number(detection.get("sample_size", 200), int, "detection.sample_size", 10, 100_000),
        min_confidence=float(_number(detection.get("min_confidence", 0.8), (int, float), "detection.min_confidence", 0, 1)),
        min_confidence_name_hint=float(
            _number(detection.get("min_confidence_name_hint", 0.5), (int, float), "detection.min_confidence_name_hint", 0, 1)
        ),
        ner=ner,
        max_residual_cells=_number(gate.get("max_residual_cells", 0), int, "gate.max_residual_cells", 0, 10**12),
        max_residual_text_fraction=float(
            _number(gate.get("max_residual_text_fraction", 0.0), (int, float), "gate.max_residual_text_fraction", 0, 1)
        ),
        k_anonymity=_k_anonymity(raw.get("k_anonymity")),
    )


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy at `path`, or the default policy shipped in this package."""
    if path is None:
        text = resources.files("securepipe.pii").joinpath("default_policy.yaml").read_text(encoding="utf-8")
        return parse_policy(text)
    path = Path(path)
    try:
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise PolicyError(f"policy {path.name}: larger than {MAX_POLICY_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"policy {path}: file not found") from None
    except UnicodeDecodeError:
        raise PolicyError(f"policy {path}: not UTF-8 text") from None
    try:
        return parse_policy(text)
    except PolicyError as exc:
        raise PolicyError(f"{path.name}: {exc}") from None
