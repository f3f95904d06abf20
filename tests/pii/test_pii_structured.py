"""Column classification by name and validated value samples (misleading names, names and formats
of other countries), and the table plan inferred from it."""
from __future__ import annotations

import pandas as pd
import pytest

from securepipe.errors import InputError
from securepipe.pii.policy import load_policy, parse_policy
from securepipe.pii.structured import TablePlan, classify_column, plan_table

N = 40
CASES = [
    ("diagnosis", ["E11.9", "I10", "J45.909", "N18.3"] * 10, "NONE"),
    ("code", ["I50.9", "C34.90", "E78.5", "F32.9"] * 10, "NONE"),
    ("sex", ["F", "M"] * 20, "NONE"),
    ("glucose", list(range(80, 120)), "NONE"),
    ("contact", [f"user{i}@example.org" for i in range(N)], "EMAIL_ADDRESS"),  # name says nothing
    ("ref", [f"{100 + i:03d}-45-{1000 + i}" for i in range(N)], "US_SSN"),
    ("x1", ["Rosalind Vasquez", "Farid Lindqvist", "Keiko Brennan", "Anders Mbeki"] * 10, "PERSON"),
    ("zip", [f"{10000 + 97 * i:05d}" for i in range(N)], "US_ZIP_CODE"),
    ("zip", list(range(10001, 10001 + N)), "US_ZIP_CODE"),  # numeric ZIP, found by name + values
    ("visit", [f"2024-01-{1 + i % 28:02d}" for i in range(N)], "DATE_TIME"),
    ("where", [f"{10 + i} Harbor Street, Omaha, NE 68102" for i in range(N)], "STREET_ADDRESS"),
    ("member_id", [f"A{i:06d}" for i in range(N)], "IDENTIFIER"),
    ("phone", ["n/a"] * N, "NONE"),  # the name alone does not make it PII
    ("comment", ["ok"] * (N - 1) + ["write to a.b@example.org"], "FREE_TEXT"),  # some PII: scan every cell
    ("note", ["Patient seen today, stable vitals, continue the current regimen and recheck."] * N, "FREE_TEXT"),
]


@pytest.mark.parametrize(("name", "values", "expected"), CASES)
def test_classify_column(name, values, expected):
    result = classify_column(name, pd.Series(values), load_policy(None))
    assert result.entity == expected, result
    assert 0.0 <= result.confidence <= 1.0


def test_policy_overrides_inference():
    policy = parse_policy("version: 1\ncolumns:\n  contact: {entity: NONE}\n  code: {entity: US_SSN}\n")
    assert classify_column("contact", pd.Series(["a@example.org"] * 5), policy).entity == "NONE"
    assert classify_column("code", pd.Series(["E11.9"] * 5), policy).reason == "policy"


HINTED = [
    # (column name, values, entity): names in other languages and shorthand, values of other countries
    ("Pat.-Nr.", [f"P-{100000 + 7 * i}" for i in range(N)], "IDENTIFIER"),
    ("Pat.-Nr.", list(range(500000, 500000 + N)), "IDENTIFIER"),  # numbers, named as an identifier
    ("Tel", ["030 1234567", "01632 960123", "+33 1 23 45 67 89", "(0113)4960681"] * 10, "PHONE_NUMBER"),
    ("PLZ", ["10115", "SW1A 1AA", "75001", "K1A 0B1"] * 10, "US_ZIP_CODE"),
    ("adresse_postale", ["12 rue de la Paix, 75002 Paris", "Hauptstraße 5, 10115 Berlin",
                         "Flat 3, 12 Baker Street, London NW1 6XE, United Kingdom, Europe"] * 13 + ["x"],
     "STREET_ADDRESS"),
    ("Geburtsdatum", ["02.03.1984", "13.04.1975", "30.12.1950", "01.01.2001"] * 10, "BIRTH_DATE"),
    ("date_naissance", ["13/04/1984", "02/03/1975", "30/12/1950", "01/01/2001"] * 10, "BIRTH_DATE"),
    ("Aufnahme", ["3. März 2024", "12 janvier 2024", "13/04/2024", "2024-05-06"] * 10, "DATE_TIME"),
    ("Wohnort", ["Berlin", "Köln", "Saint-Étienne", "Bad Homburg"] * 10, "LOCATION"),
    ("Name, Vorname", ["Müller, Hans", "Dupont-Aignan, Zoë", "O'Brien, Seán", "van der Berg, Jan"] * 10, "PERSON"),
    ("Alter", list(range(20, 60)), "AGE"),
    ("courriel", [f"a{i}@example.fr" for i in range(N)], "EMAIL_ADDRESS"),
    # clinical columns stay as they are, whatever their language
    ("dx", ["E11.9", "I10", "J45.909", "N18.3"] * 10, "NONE"),
    ("hba1c_pct", ["6,4", "7.1", "5.9", "8"] * 10, "NONE"),  # decimal comma
    ("sbp", [str(100 + i) for i in range(N)], "NONE"),
    ("flag_smoker", ["Y", "N"] * 20, "NONE"),
    ("Geschlecht", ["m", "w"] * 20, "NONE"),  # a quasi-identifier, not masked
    ("outcome", ["0", "1"] * 20, "NONE"),
    ("drug_name", ["Metformin", "Lisinopril", "Atorvastatin", "Insulin glargine"] * 10, "NONE"),
    ("cardiology_referral", ["yes", "no"] * 20, "NONE"),
    ("visit_note", ["- stable", "+ improved, recheck in 2 weeks"] * 20, "FREE_TEXT"),  # short notes, named
    ("status", ["[PERSON:abcdefghijklmnopqr]", "<US_SSN>"] * 20, "NONE"),  # masking output
]


@pytest.mark.parametrize(("name", "values", "expected"), HINTED)
def test_classify_foreign_names_and_formats(name, values, expected):
    result = classify_column(name, pd.Series(values), load_policy(None))
    assert result.entity == expected, result


def _clinic(rows=60):
    return pd.DataFrame({
        "dx": ["E11.9", "I10", "N18.3"] * (rows // 3),
        "Versichertennummer": [f"A{100000000 + i}" for i in range(rows)],
        "E-Mail": [f"p{i % 40}@example.de" for i in range(rows)],
        "PLZ": [f"{10115 + 7 * (i % 9):05d}" for i in range(rows)],
        "Geburtsdatum": [f"{1 + i % 28:02d}.0{1 + i % 9}.19{50 + i % 40}" for i in range(rows)],
        "Alter": [str(30 + i % 50) for i in range(rows)],
        "Geschlecht": ["m", "w"] * (rows // 2),
        "sbp": [str(110 + i % 40) for i in range(rows)],
        "outcome": ["0", "1", "0"] * (rows // 3),
    })


def test_plan_infers_subject_quasi_identifiers_and_sensitive_column():
    plan = plan_table(_clinic(), load_policy(None))
    assert plan.subject_column == "Versichertennummer" and plan.key_columns == ("Versichertennummer",)
    ladders = {qi.column: qi.levels for qi in plan.k_anonymity.quasi_identifiers}
    assert set(ladders) == {"PLZ", "Geburtsdatum", "Alter", "Geschlecht"}
    assert ladders["PLZ"][0] == ("prefix", 2) and ladders["Geburtsdatum"][0] == ("year_band", 5)
    assert ladders["Alter"][0] == ("band", 5) and ladders["Geschlecht"] == (("prefix", 0),)
    assert plan.k_anonymity.sensitive_column == "dx" and plan.warnings == ()
    assert TablePlan.from_dict(plan.as_dict()) == plan


def test_plan_without_an_identifier_column_keys_rows_by_their_identifiers():
    plan = plan_table(_clinic().drop(columns=["Versichertennummer"]), load_policy(None))
    assert plan.subject_column == "E-Mail"  # an e-mail identifies its person
    plan = plan_table(_clinic().drop(columns=["Versichertennummer", "E-Mail"]), load_policy(None))
    assert plan.subject_column is None and plan.key_columns == ()


def test_plan_follows_the_policy_and_the_label():
    policy = parse_policy("""
version: 1
extends: default
subject_column: chart
columns:
  Alter: {entity: NONE}
k_anonymity:
  sensitive_column: missing_column
  quasi_identifiers:
    - column: PLZ
      levels: [{prefix: 3}]
""")
    plan = plan_table(_clinic(), policy, keep=("outcome",))
    assert [qi.column for qi in plan.k_anonymity.quasi_identifiers] == ["PLZ"]
    assert plan.k_anonymity.sensitive_column == "outcome"  # the label, as the named column is absent
    assert plan.subject_column == "Versichertennummer"  # 'chart' is absent: inferred, with a warning
    assert plan.classes["Alter"].entity == "NONE" and plan.classes["outcome"].reason == "kept (label)"
    assert sorted(plan.warnings) == ["column 'chart' named by the policy is not in the table",
                                     "column 'missing_column' named by the policy is not in the table"]
    required = parse_policy("version: 1\ncolumns:\n  chart: {required: true}\n")
    with pytest.raises(InputError) as error:
        plan_table(_clinic(), required, file="clinic.csv")
    assert error.value.column == "chart" and error.value.file == "clinic.csv"
