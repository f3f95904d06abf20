"""Data loading and evaluation: tables of good and bad inputs; metrics on cases with known answers."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from securepipe.errors import InputError
from securepipe.synth import generate_patients
from securepipe.training import data, evaluate

SECRET = "Zebediah-Quux-42"  # a value that must never appear in an error
SCALING_NOISE = 1.0  # the DP scaling's noise multiplier; these tests are about columns and splits


@pytest.fixture(scope="module")
def patients():
    return generate_patients(200, seed=3)


def test_parquet_and_csv_give_the_same_split(tmp_path, patients):
    patients.to_csv(tmp_path / "p.csv", index=False)
    patients.to_parquet(tmp_path / "p.parquet", index=False)
    loaded = {name: data.load_table(tmp_path / name) for name in ("p.csv", "p.parquet")}
    splits = [data.prepare(frame, "readmitted", file=name, scaling_noise_multiplier=SCALING_NOISE) for name, (frame, _) in loaded.items()]
    assert splits[0].features == splits[1].features
    raw = [split.x_train * split.std + split.mean for split in splits]  # the scaling's noise differs per call
    np.testing.assert_allclose(raw[0], raw[1], rtol=1e-4, atol=1e-3)


def test_csv_codes_written_with_leading_zeros_stay_text(tmp_path, patients):
    frame = patients.assign(zip=["0" + str(1000 + i) for i in range(len(patients))])
    frame.to_csv(tmp_path / "z.csv", index=False)
    loaded, digest = data.load_table(tmp_path / "z.csv")
    assert digest == hashlib.sha256((tmp_path / "z.csv").read_bytes()).hexdigest()
    assert "zip" not in data.numeric_features(loaded, "readmitted")
    assert loaded["zip"].iloc[0] == "01000"  # the code itself is kept intact, as text


def test_numbers_and_low_cardinality_text_are_features_and_the_rest_is_said(patients):
    split = data.prepare(patients, "readmitted", file="p", scaling_noise_multiplier=SCALING_NOISE)
    numeric = ("age", "bmi", "systolic_bp", "glucose", "cholesterol", "heart_rate", "smoker", "prior_visits")
    assert split.features[:8] == numeric
    assert {"sex=F", "sex=M", "sex=(other)", "diagnosis_code=I10", "diagnosis_code=(other)"} <= set(split.features[8:])
    assert split.classes == ("0", "1") and split.n_classes == 2
    roles = split.columns
    assert roles["readmitted"] == "label" and roles["age"].startswith("numeric (")
    assert roles["sex"].startswith("categorical (2 categories")
    assert roles["name"] == "left out: identifier-like (unique per row)"
    assert roles["notes"] == "left out: free text"
    assert len(split.y_train) == 160 and len(split.y_test) == 40
    # numbers are scaled by DP bounds on the public grid (never by exact statistics); indicators stay 0/1
    from securepipe.training.scaling import GRID

    scaled = [i for i in range(8) if split.columns[numeric[i]] == "numeric (scaled by DP bounds)"]
    assert scaled and all(np.isclose(GRID, split.mean[i] - split.std[i]).any() for i in scaled)
    assert np.all(split.mean[8:] == 0) and np.all(split.std[8:] == 1)


def test_masked_columns_are_left_out_and_categories_come_from_training_rows_only():
    rng = np.random.default_rng(4)
    n = 200
    frame = pd.DataFrame({
        "Pat.-Nr.": [f"[IDENTIFIER:{''.join(rng.choice(list('abcdefghij'), 18))}]" for _ in range(n)],
        "Tel": [f"+** (*) **** ****{i % 7}{i % 3}" for i in range(n)],
        "PLZ": rng.choice(["10***", "75***", "SW1* ***"], n),
        "Geburtsdatum": rng.choice(["1940-1959", "1960-1979", "1980-1999", "*"], n),
        "Alter": rng.choice(["45", "67", "90+"], n),
        "dx": rng.choice(["E11.9", "I10", "N18.3"], n),
        "hba1c_pct": rng.normal(7, 1, n).round(1).astype(str),
        "rare": ["only-once"] + ["common"] * (n - 1),
        "outcome": rng.choice(["home", "readmitted", "deceased"], n, p=[0.6, 0.3, 0.1]),
    })
    split = data.prepare(data.numbers_from_text(frame), "outcome", file="m", scaling_noise_multiplier=SCALING_NOISE)
    roles = split.columns
    assert roles["Pat.-Nr."].startswith("left out: masked") and roles["Tel"].startswith("left out: masked")
    assert roles["Alter"].startswith("numeric")  # "90+" is top-coded at 90
    assert roles["hba1c_pct"].startswith("numeric") and roles["dx"].startswith("categorical")
    assert roles["PLZ"].startswith("categorical") and roles["Geburtsdatum"].startswith("categorical")  # generalized
    assert "rare=only-once" not in split.features and "rare=(other)" in split.features
    assert split.classes == ("deceased", "home", "readmitted") and set(split.y_train) == {0, 1, 2}


def test_missing_numbers_take_the_scaling_midpoint_and_their_count_is_not_released(patients):
    frame = patients.copy()
    frame.loc[[3, 11, 40], "glucose"] = np.nan
    split = data.prepare(frame, "readmitted", file="p", scaling_noise_multiplier=SCALING_NOISE)
    assert np.isfinite(split.x_train).all() and np.isfinite(split.x_test).all()
    glucose = split.features.index("glucose")
    scaled = np.concatenate([split.x_train[:, glucose], split.x_test[:, glucose]])
    assert (scaled == 0).sum() >= 3  # the midpoint scales to 0
    assert not any(ch.isdigit() for ch in split.columns["glucose"])  # no count of missing values on the card


def _with(frame, column, row, value):
    frame = frame.copy()
    if isinstance(value, str):
        frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize("mutate, row, column, reason", [
    (lambda f: f.drop(columns=["readmitted"]), None, "readmitted", "label column is missing"),
    (lambda f: _with(f, "readmitted", 6, 2), 7, "readmitted", "a label class has a single row"),
    (lambda f: _with(f, "readmitted", 0, SECRET), 1, "readmitted", "a label class has a single row"),
    (lambda f: _with(f, "readmitted", 9, None), 10, "readmitted", "label is missing"),
    (lambda f: f.assign(readmitted=[str(i % 25) for i in range(len(f))]), None, "readmitted", "more than 20 classes"),
    (lambda f: _with(f, "bmi", 4, np.inf), 5, "bmi", "missing or non-finite"),
    (lambda f: f.assign(readmitted=0), None, "readmitted", "single class"),
    (lambda f: f.head(10), None, None, "at least 20 rows"),
    (lambda f: f[["name", "readmitted"]], None, None, "no numeric or categorical feature"),
])
def test_bad_tables_name_file_row_and_column_never_the_value(patients, mutate, row, column, reason):
    with pytest.raises(InputError) as caught:
        data.prepare(mutate(patients), "readmitted", file="in.csv", scaling_noise_multiplier=SCALING_NOISE)
    error = caught.value
    assert (error.file, error.row, error.column) == ("in.csv", row, column)
    assert reason in str(error) and SECRET not in str(error)
    for value in patients["name"].head(20):
        assert value not in str(error)


@pytest.mark.parametrize("content, reason", [(b"\x00\x01garbage\xff" * 10, "not a readable"), (None, "cannot read")])
def test_unreadable_files(tmp_path, content, reason):
    path = tmp_path / "in.parquet"
    if content is not None:
        path.write_bytes(b"PAR1" + content)
    with pytest.raises(InputError, match=reason):
        data.load_table(path)


def test_utility_metrics_on_known_cases():
    labels = np.array([0, 0, 1, 1])
    perfect = evaluate.utility(np.array([0.1, 0.2, 0.8, 0.9]), labels)
    assert perfect["accuracy"] == 1.0 and perfect["auc"] == 1.0
    assert perfect["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    inverted = evaluate.utility(np.array([0.9, 0.8, 0.2, 0.1]), labels)
    assert inverted["accuracy"] == 0.0 and inverted["auc"] == 0.0
    three = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    multi = evaluate.utility(three, np.array([0, 1, 2, 1]))
    assert multi["accuracy"] == 0.75 and 0.5 < multi["auc"] <= 1.0
    assert multi["brier"] == pytest.approx((3 * (0.04 + 0.01 + 0.01) + (0.36 + 0.49 + 0.01)) / 4)
    assert evaluate.per_example_loss(three, np.array([0, 1, 2, 1]))[3] == pytest.approx(-np.log(0.3))


def test_expected_calibration_error():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    calibrated = (rng.uniform(size=p.size) < p).astype(float)
    assert evaluate.expected_calibration_error(p, calibrated) < 0.01
    overconfident = np.where(p > 0.5, 1.0, 0.0)  # says 0 or 1 while the truth is p
    assert evaluate.expected_calibration_error(overconfident, calibrated) == pytest.approx(0.25, abs=0.01)


def test_loss_threshold_attack_separates_only_when_losses_differ():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=2000)
    confident = np.where(labels == 1, 0.99, 0.01)
    unsure = np.where(labels == 1, 0.6, 0.4)
    leaky = evaluate.loss_threshold_attack(confident, labels, unsure, labels)
    assert leaky["mia_auc"] == pytest.approx(1.0) and leaky["mia_advantage"] == pytest.approx(1.0)
    same = rng.uniform(0.3, 0.7, size=4000)
    blind = evaluate.loss_threshold_attack(same[:2000], labels, same[2000:], labels)
    assert abs(blind["mia_auc"] - 0.5) < 0.05
