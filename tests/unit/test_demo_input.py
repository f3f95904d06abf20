"""`securepipe demo --input FILE --label COLUMN`: the user's table is checked and staged, never echoed."""
from __future__ import annotations

from argparse import Namespace

import pandas as pd
import pytest

from securepipe.demo.runner import _dataset_name, _stage_input
from securepipe.demo.summary import render_summary
from securepipe.errors import InputError

SECRET = "Quirinus Zephyrbottom"


def _args(path, label="outcome", policy=None):
    return Namespace(input=str(path), label=label, policy=policy)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_is_staged_in_the_landing_zone_with_its_settings(tmp_path, suffix):
    frame = pd.DataFrame({"Patient": [SECRET, "B"], "dx": ["I10", "E11.9"], "outcome": ["0", "1"]})
    source = tmp_path / f"Klinik Export 2024{suffix}"
    (frame.to_csv if suffix == ".csv" else frame.to_parquet)(source, index=False)
    landing, conf = _stage_input(_args(source, policy="strict"), tmp_path / "landing")
    assert landing == tmp_path / "landing" / f"input{suffix}" and landing.read_bytes() == source.read_bytes()
    assert conf == {"dataset": "klinik-export-2024", "label_column": "outcome", "masking_policy": "strict"}
    assert _stage_input(_args(source), tmp_path / "l2")[1]["masking_policy"] == "default"


@pytest.mark.parametrize(("label", "name", "reason"), [
    ("missing", "t.csv", "required column is missing"),
    (None, "t.csv", "--label"),
    ("outcome", "t.xlsx", "unsupported file type"),
])
def test_a_bad_input_is_refused_before_anything_starts(tmp_path, label, name, reason):
    source = tmp_path / name
    source.write_text(f"Patient,outcome\n{SECRET},1\n")
    with pytest.raises(InputError) as error:
        _stage_input(_args(source, label=label), tmp_path / "landing")
    assert reason in str(error.value) and SECRET not in str(error.value)
    assert not (tmp_path / "landing").exists()


def test_dataset_names_fit_the_dag_parameter():
    from pathlib import Path

    assert _dataset_name(Path("2024 Übersicht.csv")) == "d-2024-bersicht"
    assert _dataset_name(Path("patients.parquet")) == "patients"


def test_summary_says_what_was_masked_and_which_columns_the_model_used(tmp_path):
    published = {
        "run_id": "r1", "rows_in": 10, "rows_out": 9, "pii_report": {"Tel": {"PHONE_NUMBER": 10}},
        "masking_plan": {"subject_column": "Pat.-Nr.", "quasi_identifiers": ["PLZ", "Geburtsdatum"],
                         "sensitive_column": "dx", "warnings": ["column 'zip' named by the policy is not in the table"]},
        "training_columns": {"dx": "categorical (3 categories one-hot, rare ones as (other))",
                             "visit_note": "left out: free text", "outcome": "label"},
        "privacy": {"dataset": "patients", "epsilon": 1.0, "delta": 1e-5, "budget_epsilon": 10.0, "spent_epsilon": 1.0,
                    "budget_left": 9.0, "runs": 1, "composition": "basic"},
    }
    text = render_summary(published, tasks={"a": "success"}, home=tmp_path, seconds=1.0)
    assert "subject column      Pat.-Nr." in text and "PLZ, Geburtsdatum" in text and "sensitive column dx" in text
    assert "visit_note         left out: free text" in text and "not in the table" in text
    assert "epsilon spent 1 of 10 (9 left, basic composition over 1 runs)" in text
