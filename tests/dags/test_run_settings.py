"""Run settings from params: the input must stay inside the landing zone (no path traversal)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def runs(airflow_home):
    from securepipe_dags import runs

    return runs


@pytest.mark.parametrize(
    "uri,inside",
    [
        ("file:///data/landing/patients.csv", True),
        ("file:///data/landing/sub/p.parquet", True),
        ("file:///data/landing/../secrets/keys.csv", False),
        ("file:///data/landing2/p.csv", False),
        ("file:///etc/passwd", False),
        ("s3://bucket/landing/p.csv", False),
    ],
)
def test_input_must_lie_in_the_landing_zone(runs, uri, inside):
    assert runs._within(uri, "file:///data/landing") is inside


@pytest.mark.parametrize(
    "uri,inside",
    [("s3://bucket/landing/p.csv", True), ("s3://bucket/landing/../x.csv", False), ("s3://bucket/other.csv", False)],
)
def test_object_store_landing_zone(runs, uri, inside):
    assert runs._within(uri, "s3://bucket/landing") is inside


def test_merge_mask_reports_adds_counts_per_column():
    from securepipe.pipeline import merge_mask_reports

    part = {"rows": 2, "columns": {"email": {"entity": "EMAIL_ADDRESS", "operator": "pseudonym", "cells_masked": 2},
                                   "notes": {"entity": "FREE_TEXT", "operator": "spans", "cells_with_pii": 1,
                                             "spans": {"PERSON": 3}}}}
    total = merge_mask_reports([part, part])
    assert total["rows"] == 4
    assert total["columns"]["email"]["cells_masked"] == 4
    assert total["columns"]["notes"]["spans"] == {"PERSON": 6}
    assert total["columns"]["notes"]["cells_with_pii"] == 2
