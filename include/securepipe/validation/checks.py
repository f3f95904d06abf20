"""The checks a new batch must pass before training: schema contract, drift, duplicates, outliers, label noise.

Each check compares the batch with the profile of the last accepted batch (profile.py) and
yields `Finding`s that name the check and the column with the measured rate and its limit:
aggregates only, never a cell value (findings go to the audit log, the task log and the
operator). Limits are set so that clean batches of the same distribution do not trip them
(README: false alarms over 20 clean batches) while the attacks the tests plant do:

- schema (pandera): a feature column missing, numbers that are not numbers, values outside the
  reference range widened by `RANGE_MARGIN` of its span, categories the reference never had,
  null rates above the reference's;
- drift: population stability index per feature against the reference's deciles or category
  shares, and the label's class shares;
- duplicates (exact rows over features and label) and near-duplicates (nearest neighbour
  closer than `profile.NEAR_DUPLICATE_DISTANCE`), above the reference's own rates;
- outliers (robust z-score beyond `profile.OUTLIER_Z`) above the reference's rate;
- value spikes: one exact value of a feature far more frequent than in the reference (a
  backdoor trigger plants the same values in many rows);
- label noise: per class, how many of a row's nearest neighbours carry another label (kNN
  agreement above chance), below the reference's.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from securepipe.validation import profile as profiles

RANGE_MARGIN = 0.10
MAX_OUT_OF_CONTRACT_SHARE = 0.005
MAX_NULL_RATE_INCREASE = 0.05
MAX_PSI = 0.2
MAX_LABEL_SHARE_CHANGE = 0.05
LABEL_SHARE_SIGMAS = 4.0
MAX_RATE_INCREASE = 0.01  # duplicates, near-duplicates, outliers: absolute increase over the reference
MAX_SPIKE_INCREASE = 0.005
MIN_SPIKE_Z = 6.0
MIN_SPIKE_ROWS = 10  # a few repeats of a rare value in a small batch are chance, not a planted trigger
TOP_SPIKES = 10  # the most frequent values of a batch that are compared with the reference
MAX_LABEL_AGREEMENT_DROP = 0.035
_PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class Finding:
    check: str
    column: str | None
    measured: float
    limit: float
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = f" column {self.column!r}" if self.column is not None else ""
        return f"{self.check}{where}: {self.reason} ({self.measured:.4g} > {self.limit:.4g})"


def psi(expected, actual) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), _PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def contract_schema(profile: dict):
    """The schema contract as a pandera schema: types, ranges and allowed categories per feature."""
    import pandera.pandas as pa

    columns = {}
    for column, entry in profile["numeric"].items():
        margin = RANGE_MARGIN * (entry["max"] - entry["min"] or abs(entry["max"]) or 1.0)
        columns[column] = pa.Column(float, pa.Check.in_range(entry["min"] - margin, entry["max"] + margin),
                                    nullable=True, coerce=True)
    for column, entry in profile["categorical"].items():
        allowed = [k for k in entry["shares"] if k != profiles.MISSING]
        columns[column] = pa.Column(str, pa.Check.isin(allowed), nullable=True, coerce=True)
    columns[profile["label"]] = pa.Column(nullable=False)
    return pa.DataFrameSchema(columns, strict=False)


def schema_findings(frame: pd.DataFrame, profile: dict) -> list[Finding]:
    import pandera.errors

    findings = []
    try:
        contract_schema(profile).validate(frame, lazy=True)
        failures = None
    except pandera.errors.SchemaErrors as errors:
        failures = errors.failure_cases  # holds values: only counted here, never passed on
    if failures is not None:
        n = max(len(frame), 1)
        for (column, check), group in failures.groupby(["column", "check"], dropna=False, sort=True):
            column = None if pd.isna(column) else str(column)
            check = str(check)
            if "column_in_dataframe" in check:  # here the failure case is the missing column's name
                findings += [Finding("schema.missing_column", str(name), 1.0, 0.0, "feature column missing")
                             for name in group["failure_case"]]
            elif "coerce" in check or "dtype" in check:
                findings.append(Finding("schema.type", column, len(group) / n, 0.0, "values of the wrong type"))
            elif "not_nullable" in check:
                findings.append(Finding("schema.nulls", column, len(group) / n, 0.0, "missing values not allowed"))
            elif len(group) / n > MAX_OUT_OF_CONTRACT_SHARE:
                kind = "schema.range" if "in_range" in check else "schema.categories"
                reason = "share of values outside the contract's range" if kind == "schema.range" \
                    else "share of categories the contract does not allow"
                findings.append(Finding(kind, column, len(group) / n, MAX_OUT_OF_CONTRACT_SHARE, reason))
    for column, entry in {**profile["numeric"], **profile["categorical"]}.items():
        if column in frame and frame[column].isna().mean() > entry["null_rate"] + MAX_NULL_RATE_INCREASE:
            findings.append(Finding("schema.null_rate", column, float(frame[column].isna().mean()),
                                    entry["null_rate"] + MAX_NULL_RATE_INCREASE, "null rate above the contract's"))
    return findings


def drift_findings(frame: pd.DataFrame, profile: dict) -> list[Finding]:
    findings = []
    for column, entry in profile["numeric"].items():
        if column not in frame:
            continue
        values = pd.to_numeric(frame[column], errors="coerce").dropna().to_numpy(dtype=np.float64)
        measured = psi(entry["shares"], profiles.bin_shares(values, entry["edges"]))
        if measured > MAX_PSI:
            findings.append(Finding("drift.psi", column, measured, MAX_PSI, "distribution shifted from the reference"))
    for column, entry in profile["categorical"].items():
        if column not in frame:
            continue
        shares = profiles.label_keys(frame[column]).value_counts(normalize=True)
        keys = sorted(set(entry["shares"]) | set(shares.index))
        measured = psi([entry["shares"].get(k, 0.0) for k in keys], [float(shares.get(k, 0.0)) for k in keys])
        if measured > MAX_PSI:
            findings.append(Finding("drift.psi", column, measured, MAX_PSI, "category shares shifted from the reference"))
    label = profile["label"]
    shares = profiles.label_keys(frame[label]).value_counts(normalize=True)
    keys = set(profile["label_shares"]) | set(shares.index)
    changes = []  # (change, limit) per class
    for key in keys:
        expected = profile["label_shares"].get(key, 0.0)
        # A small batch's shares wander by sampling alone: the limit is never tighter than
        # LABEL_SHARE_SIGMAS standard errors of the difference between the two samples.
        error = math.sqrt(expected * (1 - expected) * (1 / max(len(frame), 1) + 1 / profile["rows"]))
        changes.append((abs(expected - float(shares.get(key, 0.0))),
                        max(MAX_LABEL_SHARE_CHANGE, LABEL_SHARE_SIGMAS * error)))
    change, limit = max(changes, key=lambda pair: pair[0] - pair[1])
    if change > limit:
        findings.append(Finding("drift.label_share", label, change, limit, "class shares of the label changed"))
    return findings


def spike_findings(frame: pd.DataFrame, profile: dict) -> list[Finding]:
    """One exact value far more frequent than the reference allows (binomial z and an absolute margin)."""
    findings = []
    n = len(frame)
    for column, entry in profile["numeric"].items():
        if column not in frame or n == 0:
            continue
        counts = pd.to_numeric(frame[column], errors="coerce").dropna().astype("float64").value_counts()
        worst_increase, worst_z = 0.0, 0.0
        for value, count in counts.head(TOP_SPIKES).items():
            expected = profiles.expected_share(entry, value)
            increase = count / n - expected
            # (the reference's share is itself a sample: its error counts too)
            z = increase / math.sqrt(max(expected * (1 - expected), 1e-12) * (1 / n + 1 / profile["rows"]))
            if count >= MIN_SPIKE_ROWS and increase > MAX_SPIKE_INCREASE and z > MIN_SPIKE_Z \
                    and increase > worst_increase:
                worst_increase, worst_z = increase, z
        if worst_increase:
            findings.append(Finding("value_spike", column, worst_increase, MAX_SPIKE_INCREASE,
                                    f"one value far more frequent than in the reference (z {worst_z:.1f})"))
    return findings



def rate_findings(frame: pd.DataFrame, profile: dict) -> list[Finding]:
    reference = profile["rates"]
    measured = profiles.batch_rates(frame, profile)
    findings = []
    for name, reason in (("duplicates", "share of duplicate rows"),
                         ("near_duplicates", "share of near-duplicate rows"),
                         ("outliers", "share of rows with an outlying value")):
        limit = reference[name] + MAX_RATE_INCREASE
        if measured[name] > limit:
            findings.append(Finding(name, None, measured[name], limit, f"{reason} above the reference's"))
    # Neighbour agreement depends on how densely rows are sampled: a batch smaller than the
    # reference's samples is not comparable, and its label noise is left unmeasured.
    small = min(len(frame), profiles.SAMPLE_ROWS) < min(profile["rows"], profiles.SAMPLE_ROWS)
    for label_class, lift in sorted(() if small else measured["label_agreement_lift"].items()):
        drop = reference["label_agreement_lift"].get(label_class, 0.0) - lift
        if drop > MAX_LABEL_AGREEMENT_DROP:
            findings.append(Finding("label_noise", profile["label"], drop, MAX_LABEL_AGREEMENT_DROP,
                                    f"kNN label agreement of class #{_class_index(profile, label_class)} "
                                    "fell below the reference's"))
    return findings


def _class_index(profile: dict, label_class: str) -> int:
    """Classes are named by their index in the reference: a label value may itself be sensitive."""
    ordered = sorted(profile["label_shares"])
    return ordered.index(label_class) if label_class in ordered else len(ordered)


def check_batch(frame: pd.DataFrame, profile: dict) -> list[Finding]:
    """Every finding of every check, schema first; an empty list means the batch is clean."""
    frame = profiles.prepare_frame(frame)
    label = profile["label"]
    if label not in frame.columns:
        return [Finding("schema.missing_column", label, 1.0, 0.0, "label column missing")]
    return [*schema_findings(frame, profile), *drift_findings(frame, profile), *spike_findings(frame, profile),
            *rate_findings(frame, profile)]
