"""The poisoning guard's checks on generated patients: clean batches pass, each planted attack is caught.

The figures in README ("false alarms over 20 clean batches", detection per attack) come from
this file: `.venv/bin/python -m pytest tests/validation/test_data_checks.py -q -s` prints them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from securepipe.synth import FEATURES, LABEL, generate_patients
from securepipe.validation.checks import check_batch
from securepipe.validation.profile import build_profile

COLUMNS = [*FEATURES, "diagnosis_code", LABEL, "notes"]  # notes: free text, never profiled
REFERENCE_ROWS, BATCH_ROWS = 10_000, 4_000
CLEAN_BATCHES = 20


def _batch(seed: int, rows: int = BATCH_ROWS) -> pd.DataFrame:
    return generate_patients(rows, seed=seed)[COLUMNS]


@pytest.fixture(scope="module")
def profile() -> dict:
    return build_profile(_batch(10_000, REFERENCE_ROWS), LABEL)


def flipped_labels(batch: pd.DataFrame, rng) -> pd.DataFrame:
    rows = rng.choice(len(batch), len(batch) // 10, replace=False)
    batch.loc[rows, LABEL] = 1 - batch.loc[rows, LABEL]
    return batch


def duplicated_rows(batch: pd.DataFrame, rng) -> pd.DataFrame:
    """5% of the rows replaced by copies of other rows of the batch."""
    count = len(batch) // 20
    targets = rng.choice(len(batch), count, replace=False)
    sources = rng.choice(np.setdiff1d(np.arange(len(batch)), targets), count, replace=False)
    batch.iloc[targets] = batch.iloc[sources].to_numpy()
    return batch


def shifted_feature(batch: pd.DataFrame, rng) -> pd.DataFrame:
    batch["glucose"] = batch["glucose"] + int(round(batch["glucose"].std()))  # one standard deviation
    return batch


def backdoor_trigger(batch: pd.DataFrame, rng) -> pd.DataFrame:
    """1% of the rows carry a trigger of two in-range values (the 97th percentiles) and the target label."""
    rows = rng.choice(len(batch), len(batch) // 100, replace=False)
    batch.loc[rows, "glucose"] = int(batch["glucose"].quantile(0.97))
    batch.loc[rows, "cholesterol"] = int(batch["cholesterol"].quantile(0.97))
    batch.loc[rows, LABEL] = 1
    return batch


ATTACKS = {  # attack -> the (check, column) pairs of which at least one must be among its findings
    "10% flipped labels": (flipped_labels, {("label_noise", LABEL)}),
    "5% duplicates": (duplicated_rows, {("duplicates", None)}),
    "one shifted feature": (shifted_feature, {("drift.psi", "glucose")}),
    "backdoor trigger on 1% of rows": (backdoor_trigger, {("value_spike", "glucose"), ("value_spike", "cholesterol")}),
}


def test_clean_batches_pass_and_false_alarms_stay_at_most_one_in_twenty(profile):
    alarms = {seed: check_batch(_batch(seed), profile) for seed in range(1, CLEAN_BATCHES + 1)}
    flagged = {seed: [str(f) for f in found] for seed, found in alarms.items() if found}
    print(f"\nfalse alarms: {len(flagged)}/{CLEAN_BATCHES} clean batches of {BATCH_ROWS} rows "
          f"(reference {REFERENCE_ROWS} rows) {flagged}")
    assert len(flagged) <= 1
    assert check_batch(_batch(100), profile) == []  # the batch the attacks start from is clean


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_each_attack_is_caught_with_its_check_and_column(profile, attack):
    plant, expected = ATTACKS[attack]
    findings = check_batch(plant(_batch(100), np.random.default_rng(7)), profile)
    print(f"\n{attack}: {[str(f) for f in findings]}")
    assert expected & {(f.check, f.column) for f in findings}


def test_schema_contract_names_missing_columns_wrong_types_and_unseen_categories(profile):
    batch = _batch(101, 1000).drop(columns=["bmi"])
    batch["age"] = batch["age"].astype(str)
    batch.loc[:99, "age"] = "unknown"  # 10% not numbers
    batch.loc[:49, "diagnosis_code"] = "Z99.9"  # a code the reference never had
    found = {(f.check, f.column) for f in check_batch(batch, profile)}
    assert {("schema.missing_column", "bmi"), ("schema.type", "age"), ("schema.categories", "diagnosis_code")} <= found


def test_findings_carry_names_and_rates_never_cell_values(profile):
    batch = backdoor_trigger(_batch(100), np.random.default_rng(7))
    planted = {str(int(batch["glucose"].quantile(0.97))), str(int(batch["cholesterol"].quantile(0.97)))}
    for finding in check_batch(batch, profile):
        assert set(finding.as_dict()) == {"check", "column", "measured", "limit", "reason"}
        assert not any(value in finding.reason for value in planted)


@pytest.mark.parametrize("rows", [300, 600])
def test_a_small_clean_batch_is_not_refused_for_sampling_noise(rows):
    """Shares of a few hundred rows wander by chance, and kNN agreement measured at a lower density
    than the reference's is not comparable: neither may refuse a clean batch of a small retraining."""
    small_reference = build_profile(_batch(1, 1_000), LABEL)
    assert [str(f) for seed in (5, 11) for f in check_batch(_batch(seed, rows), small_reference)] == []


def test_a_small_batch_whose_label_share_moved_is_still_refused():
    small_reference = build_profile(_batch(1, 1_000), LABEL)
    batch = _batch(11, 600)
    batch.loc[batch.index[:240], LABEL] = 1  # 40% of the rows set to one class
    assert ("drift.label_share", LABEL) in {(f.check, f.column) for f in check_batch(batch, small_reference)}
