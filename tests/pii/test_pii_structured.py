"""Column classification by name and validated value samples, including misleading names."""
from __future__ import annotations

import pandas as pd
import pytest

from securepipe.pii.policy import load_policy, parse_policy
from securepipe.pii.structured import classify_column

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
