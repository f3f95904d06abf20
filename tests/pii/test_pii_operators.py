"""Operators: each one's output, and keyed pseudonym stability across runs and tables."""
from __future__ import annotations

import pandas as pd
import pytest

from securepipe.errors import PolicyError
from securepipe.pii.operators import Context, get_operator, pseudonym_token

SECRET = b"s" * 32


def apply(name, values, params=None, entity="X", subjects=None, secret=SECRET):
    series = pd.Series(values, dtype=object)
    subjects = None if subjects is None else pd.Series(subjects, dtype=object)
    return get_operator(name).apply(series, params or {}, Context(entity, secret, subjects)).tolist()


@pytest.mark.parametrize(
    ("name", "values", "params", "expected"),
    [
        ("redact", ["123-45-6789", None], {}, ["<X>", None]),
        ("redact", ["a"], {"replacement": "[gone]"}, ["[gone]"]),
        ("partial_mask", ["4111 1111 1111 1111"], {"keep_last": 4}, ["**** **** **** 1111"]),
        ("partial_mask", ["(617) 215-7752"], {"keep_last": 2}, ["(***) ***-**52"]),
        ("year", ["1956-03-14", "not a date"], {}, ["1956", "<X>"]),
        ("zip_prefix", ["62704", "03601", "6"], {"digits": 3}, ["627**", "000**", "000**"]),
        ("age_band", [34, 90, 97], {"width": 10, "top": 90}, ["30-39", "90+", "90+"]),
        ("age_band", ["47 años", "95 años", "47"], {"width": 1, "top": 90}, ["47 años", "90+ años", "47"]),
        ("keep", ["E11.9"], {}, ["E11.9"]),
    ],
)
def test_operator_outputs(name, values, params, expected):
    assert apply(name, values, params) == expected


def test_pseudonym_is_stable_keyed_and_distinct():
    first = apply("pseudonym", ["Ann Lee", "ann  lee", "Bob Ray"], entity="PERSON")
    again = apply("pseudonym", ["Bob Ray", "Ann Lee"], entity="PERSON")  # another table, another run
    assert first[0] == first[1] == again[1]  # case and spacing do not break joins
    assert first[2] == again[0] != first[0]
    assert first[0] == pseudonym_token("Ann Lee", "PERSON", SECRET)
    assert apply("pseudonym", ["Ann Lee"], entity="PERSON", secret=b"t" * 32)[0] != first[0]  # keyed
    assert "Ann" not in first[0]


def test_date_shift_is_per_subject_and_keeps_intervals():
    out = apply(
        "date_shift", ["2024-01-01", "2024-01-11", "2024-01-01"], {"max_days": 30},
        subjects=["p1", "p1", "p2"],
    )
    shifted = pd.to_datetime(pd.Series(out))
    assert (shifted[1] - shifted[0]).days == 10  # same subject: interval kept
    assert out[0] != "2024-01-01"
    assert abs((shifted[0] - pd.Timestamp("2024-01-01")).days) <= 30
    assert out == apply("date_shift", ["2024-01-01", "2024-01-11", "2024-01-01"], {"max_days": 30},
                        subjects=["p1", "p1", "p2"])


def test_date_shift_without_subjects_is_refused():
    with pytest.raises(PolicyError):
        apply("date_shift", ["2024-01-01"])


@pytest.mark.parametrize(
    ("name", "params"),
    [("partial_mask", {"keep_last": 9}), ("partial_mask", {"char": "a"}), ("zip_prefix", {"digits": 5}),
     ("redact", {"nope": 1}), ("date_shift", {"max_days": "7"}), ("age_band", {"width": True})],
)
def test_bad_parameters_are_refused(name, params):
    with pytest.raises(PolicyError):
        get_operator(name).validate(params)


def test_unknown_operator_is_refused():
    with pytest.raises(PolicyError):
        get_operator("rot13")
