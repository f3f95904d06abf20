"""k-anonymity (checked against independent counting), the gate on free text, KMS-backed pseudonyms."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from securepipe.errors import GateFailed
from securepipe.pii.kanon import enforce_k_anonymity, generalize
from securepipe.pii.mask import merge_reports
from securepipe.pii.policy import load_policy, parse_policy
from securepipe.pii.gate import residual_gate

KANON = """
version: 1
k_anonymity:
  k: 3
  sensitive_column: label
  max_suppressed_fraction: 0.2
  quasi_identifiers:
    - column: zip
      levels: [{prefix: 2}, {prefix: 1}]
    - column: birth
      levels: [{year_band: 10}]
"""


def _frame():
    zips = ["627**"] * 4 + ["628**"] * 3 + ["301**"] * 3 + ["999**"]
    births = ["1950", "1951", "1952", "1953", "1950", "1958", "1959", "1981", "1982", "1983", "1940"]
    return pd.DataFrame({"zip": zips, "birth": births, "label": [0, 1] * 5 + [1], "x": range(11)})


def test_generalization_ladders():
    assert generalize(pd.Series(["62704"]), "prefix", 2).tolist() == ["62***"]
    assert generalize(pd.Series(["1957", "1957-03-01", None]), "year_band", 10).tolist() == [
        "1950-1959", "1950-1959", "*"]
    assert generalize(pd.Series(["47", "45-49", "90+", None, "n/a"]), "band", 10).tolist() == [
        "40-49", "40-49", "90+", "*", "*"]


def test_k_anonymity_generalizes_then_suppresses_and_reports_k_and_l():
    policy = parse_policy(KANON)
    frame = _frame()
    result, report = enforce_k_anonymity(frame, policy.k_anonymity)
    sizes = result.groupby(["zip", "birth"]).size()
    assert sizes.min() >= 3 and report["k"] == sizes.min()  # pycanon's k agrees with counting
    assert report["levels"] == {"zip": "as masked", "birth": "year_band:10"}  # most distinct first
    assert report["rows_dropped"] == 1  # the lone 999** row cannot hide among fewer than k suppressed rows
    assert result["x"].tolist() == list(range(10))  # non-quasi-identifier columns untouched
    assert report["l_diversity"] >= 1


def test_k_anonymity_names_a_missing_column():
    from securepipe.errors import InputError

    with pytest.raises(InputError) as error:
        enforce_k_anonymity(_frame().drop(columns=["birth"]), parse_policy(KANON).k_anonymity)
    assert error.value.column == "birth"


@pytest.mark.parametrize(
    ("note", "entity"),
    [("Seen by Dr. Okonkwo Vasquez today.", "PERSON"), ("Reach at (617) 215-7752.", "PHONE_NUMBER"),
     ("Card 2221 0000 0000 0009.", "CREDIT_CARD")],
)
def test_gate_fails_on_residual_pii_in_free_text(note, entity):
    policy = load_policy(None)
    clean = "Routine visit, no complaints, continue current regimen and recheck labs in three months."
    frame = pd.DataFrame({"notes": [clean, note + " " + clean]})
    with pytest.raises(GateFailed) as failure:
        residual_gate(frame, policy)
    assert entity in str(failure.value) and "'notes'" in str(failure.value)
    assert note.split()[-1] not in str(failure.value)
    assert residual_gate(frame.head(1), policy)["passed"]


def test_gate_ignores_our_own_tokens_and_masks():
    policy = load_policy(None)
    frame = pd.DataFrame({
        "name": ["[PERSON:abcdefghijklmnopqr]"], "card": ["**** **** **** 1111"], "ssn": ["<US_SSN>"],
        "notes": ["Patient [PERSON:abcdefghijklmnopqr] reachable at (***) ***-**52, DOB 1956, visit ok today."],
    })
    assert residual_gate(frame, policy)["passed"]


def test_merge_reports_adds_counts():
    a = {"rows": 2, "columns": {"n": {"entity": "FREE_TEXT", "cells_with_pii": 1, "spans": {"PERSON": 2}},
                                "e": {"entity": "EMAIL_ADDRESS", "cells_masked": 2}}}
    b = {"rows": 3, "columns": {"n": {"entity": "FREE_TEXT", "cells_with_pii": 2, "spans": {"PERSON": 1, "AGE": 1}},
                                "e": {"entity": "EMAIL_ADDRESS", "cells_masked": 3}}}
    merged = merge_reports([a, b])
    assert merged["rows"] == 5 and merged["columns"]["e"]["cells_masked"] == 5
    assert merged["columns"]["n"]["spans"] == {"PERSON": 3, "AGE": 1}
    assert merged["columns"]["n"]["cells_with_pii"] == 3 and merged["columns"]["n"]["entity"] == "FREE_TEXT"


def test_cli_pseudonyms_are_stable_across_runs_with_kms(tmp_path, kms_env):
    from securepipe import synth

    source = tmp_path / "in.parquet"
    synth.generate_patients(40, seed=9).to_parquet(source, index=False)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SECUREPIPE_STATE_DIR": str(tmp_path / "state"),
           **kms_env.env}
    tokens = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.parquet"
        done = subprocess.run([sys.executable, "-m", "securepipe.cli", "pii", "mask", "--in", str(source),
                               "--out", str(out)], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        assert "not be stable" not in done.stderr
        tokens.append(pd.read_parquet(out).set_index("card_number", drop=False)["patient_id"].sort_values().tolist())
    assert tokens[0] == tokens[1]


def test_gate_does_not_count_what_the_policy_publishes_as_is():
    """An age under 90 is kept exact by the default policy: found again, it is not residual PII; 93 is."""
    policy = load_policy(None)
    tail = " seen today, stable vitals, continue the current regimen and recheck labs soon."
    assert residual_gate(pd.DataFrame({"notes": ["Pt is a 78-year-old" + tail]}), policy)["passed"]
    with pytest.raises(GateFailed, match="AGE"):
        residual_gate(pd.DataFrame({"notes": ["Pt is a 93-year-old" + tail]}), policy)
