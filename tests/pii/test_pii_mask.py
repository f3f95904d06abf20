"""End-to-end masking: policy validation, CSV/Parquet streaming, the gate, bad input, CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from securepipe import synth
from securepipe.errors import GateFailed, InputError, PolicyError
from securepipe.pii.bench import align, non_pii_cells_altered, residual_values
from securepipe.pii.kanon import enforce_k_anonymity
from securepipe.pii.mask import mask_file, mask_frame
from securepipe.pii.policy import load_policy, parse_policy
from securepipe.pii.gate import residual_gate
from securepipe.pii.structured import plan_table

SECRET = b"k" * 32
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def patients():
    return synth.generate_patients(160, seed=5)


@pytest.fixture(scope="module")
def policy():
    return load_policy(None)


def _raw_values(frame):
    return {str(v) for c in synth.PII_COLUMNS for v in frame[c]}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_mask_file_masks_every_pii_value_and_keeps_clinical_columns(tmp_path, patients, policy, suffix):
    source = tmp_path / f"in{suffix}"
    (patients.to_csv if suffix == ".csv" else patients.to_parquet)(source, index=False)
    before = source.read_bytes()
    report = mask_file(source, tmp_path / "out.parquet", policy=policy, secret=SECRET,
                       report_path=tmp_path / "r.json", chunk_rows=70)
    masked = pd.read_parquet(tmp_path / "out.parquet")
    assert list(masked.columns) == list(patients.columns)
    assert report["gate"]["passed"] and report["rows_in"] == 160
    assert report["rows_out"] == len(masked) == 160 - report["k_anonymity"]["rows_dropped"]
    raw = _raw_values(patients)
    for column in masked.columns:
        assert not masked[column].astype(str).isin(raw).any(), column
    source_rows = align(patients, masked, SECRET)  # the same records, in output order
    assert residual_values(source_rows, masked) == 0
    assert non_pii_cells_altered(source_rows, masked) == 0
    for column in synth.PII_COLUMNS:
        assert report["columns"][column]["entity"] != "NONE", column
    text = (tmp_path / "r.json").read_text()
    assert not any(value in text for value in raw)
    assert source.read_bytes() == before


def test_pseudonyms_are_stable_across_runs_and_tables(patients, policy):
    first, _ = mask_frame(patients.head(50), policy, SECRET)
    again, _ = mask_frame(patients.iloc[::-1].head(80), policy, SECRET)
    tokens = dict(zip(patients["patient_id"].head(50), first["patient_id"]))
    for pid, token in zip(patients.iloc[::-1].head(80)["patient_id"], again["patient_id"]):
        if pid in tokens:
            assert tokens[pid] == token
    other, _ = mask_frame(patients.head(50), policy, b"z" * 32)
    assert (other["patient_id"] != first["patient_id"]).all()


def test_gate_fails_closed_with_counts_not_values(tmp_path, patients):
    # A policy that keeps the SSN column: the gate must refuse to publish.
    leaky = parse_policy("version: 1\ncolumns:\n  ssn: {entity: NONE}\n")
    out = tmp_path / "out.parquet"
    with pytest.raises(GateFailed) as failure:
        mask_file_args = dict(policy=leaky, secret=SECRET, report_path=tmp_path / "r.json")
        mask_file(_write(tmp_path, patients), out, **mask_file_args)
    message = str(failure.value)
    assert "'ssn'" in message and "US_SSN" in message
    assert not any(v in message for v in patients["ssn"])
    assert not out.exists()
    assert not list(tmp_path.glob(".out.parquet*"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["gate"]["residual"][0]["column"] == "ssn"


def test_residual_gate_passes_masked_and_fails_raw(patients, policy):
    masked, _ = mask_frame(patients.head(60), policy, SECRET)
    assert residual_gate(masked, policy)["passed"]
    with pytest.raises(GateFailed):
        residual_gate(patients.head(60), policy)


def test_k_anonymity_reaches_k(patients, policy):
    plan = plan_table(patients, policy)
    masked, _ = mask_frame(patients, policy, SECRET, plan=plan)
    result, report = enforce_k_anonymity(masked, plan.k_anonymity)
    assert report["k"] >= policy.k_anonymity.k
    assert set(report["quasi_identifiers"]) == {"zip", "date_of_birth", "age", "sex"}  # inferred
    sizes = result.groupby(report["quasi_identifiers"]).size()
    assert sizes.min() >= policy.k_anonymity.k
    assert report["rows_suppressed"] + report["rows_dropped"] <= len(masked)


def _write(tmp_path, frame, name="in.parquet"):
    path = tmp_path / name
    frame.to_parquet(path, index=False)
    return path


BAD_CSV = [
    (b"", "empty", None, None),
    (b"a,b\n1,2\n3\n", "fields", 2, None),
    (b"a,b\n1,\xff\xfe\n", "UTF-8", 1, None),
    (b"a,a\n1,2\n", "duplicate", 0, "a"),
    (b"a,b\n1,\"" + b"x" * ((1 << 20) + 1) + b"\"\n", "larger than the limit", 1, None),
]


@pytest.mark.parametrize(("content", "reason", "row", "column"), BAD_CSV)
def test_bad_csv_is_refused_naming_where(tmp_path, policy, content, reason, row, column):
    source = tmp_path / "bad.csv"
    source.write_bytes(content)
    no_kanon = parse_policy("version: 1\n")
    with pytest.raises(InputError) as error:
        mask_file(source, tmp_path / "out.parquet", policy=no_kanon, secret=SECRET)
    assert reason in str(error.value) and error.value.row == row and error.value.column == column
    assert "xxxx" not in str(error.value)
    assert not (tmp_path / "out.parquet").exists() and source.read_bytes() == content


def test_bulleted_and_formula_looking_notes_pass_through(tmp_path, policy):
    notes = ["- stable, continue current regimen", "+ improving, recheck in 2 weeks", "=no change",
             "@home since discharge, no complaints"] * 10
    frame = pd.DataFrame({"visit_note": notes, "dx": ["E11.9", "I10"] * 20})
    source = tmp_path / "notes.csv"
    frame.to_csv(source, index=False)
    mask_file(source, tmp_path / "out.parquet", policy=policy, secret=SECRET)
    masked = pd.read_parquet(tmp_path / "out.parquet")
    assert masked["visit_note"].tolist() == notes and masked["dx"].tolist() == frame["dx"].tolist()
    # Written as CSV for people to open, formula-looking cells are neutralized (and nothing else).
    mask_file(source, tmp_path / "out.csv", policy=policy, secret=SECRET)
    as_csv = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert as_csv["visit_note"].tolist()[:4] == [notes[0], notes[1], "'=no change", "'@home since discharge, "
                                                 "no complaints"]


def test_missing_policy_column_is_a_warning_unless_required(tmp_path, patients):
    source = _write(tmp_path, patients.drop(columns=["zip"]))
    named = parse_policy("version: 1\nextends: default\ncolumns:\n  zip: {entity: US_ZIP_CODE}\n")
    report = mask_file(source, tmp_path / "o.parquet", policy=named, secret=SECRET)
    assert report["gate"]["passed"] and report["plan"]["warnings"] == [
        "column 'zip' named by the policy is not in the table"]
    demo = load_policy(REPO / "policies" / "demo.yaml")  # marks zip required
    with pytest.raises(InputError) as error:
        mask_file(source, tmp_path / "p.parquet", policy=demo, secret=SECRET)
    assert error.value.column == "zip" and "required" in str(error.value)
    assert not (tmp_path / "p.parquet").exists()


MALICIOUS = [
    "!!python/object/apply:os.system ['true']",
    "version: 1\noperators: !!python/object/new:dict {}\n",
    "a: &a [1,1,1]\nb: [*a,*a,*a]\n",
    "version: 1\noperators:\n  PERSON: {operator: eval}\n",
    "version: 1\noperators:\n  NOT_AN_ENTITY: {operator: redact}\n",
    "version: 1\nextra: true\n",
    "version: 2\n",
    "version: 1\nk_anonymity: {k: 1, quasi_identifiers: [{column: zip}]}\n",
    "- just\n- a list\n",
]


@pytest.mark.parametrize("text", MALICIOUS)
def test_malicious_or_invalid_policy_is_refused(text):
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_default_policy_loads_and_names_no_column(policy):
    assert policy.k_anonymity.k == 5 and policy.operator_for("PERSON").name == "pseudonym"
    assert policy.operator_for("DATE_TIME", free_text=True).name == "year"
    assert policy.columns == {} and policy.subject_column is None
    assert policy.k_anonymity.quasi_identifiers is None and policy.k_anonymity.sensitive_column is None


def test_named_policies_state_only_their_changes(policy):
    strict = load_policy(REPO / "policies" / "strict.yaml")
    assert len((REPO / "policies" / "strict.yaml").read_text().splitlines()) <= 12
    assert strict.k_anonymity.k == 10 and strict.operator_for("PHONE_NUMBER").name == "redact"
    assert strict.operator_for("PHONE_NUMBER").params == {}  # an operator is replaced whole, not merged
    assert strict.operators.keys() == policy.operators.keys() and strict.sha256 != policy.sha256
    demo = load_policy(REPO / "policies" / "demo.yaml")
    assert demo.subject_column == "patient_id" and demo.required_columns == ("patient_id", "date_of_birth", "zip")
    removed = parse_policy("version: 1\nextends: default\nk_anonymity: null\noperators: {AGE: null}\n")
    assert removed.k_anonymity is None and "AGE" not in removed.operators


@pytest.mark.parametrize("text", [
    "version: 1\nextends: ../etc/passwd\n",
    "version: 1\nextends: sibling\n",  # no directory to find it in
    "version: 1\nextends: default\nbogus: 1\n",
])
def test_extends_is_bounded_and_checked(text):
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_extends_cycle_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("version: 1\nextends: b\n")
    (tmp_path / "b.yaml").write_text("version: 1\nextends: a\n")
    with pytest.raises(PolicyError, match="chain"):
        load_policy(tmp_path / "a.yaml")


def test_cli_mask_and_detect(tmp_path, patients):
    source = _write(tmp_path, patients.head(100), "in.parquet")
    env = {"PATH": "/usr/bin:/bin", "SECUREPIPE_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "securepipe.cli"]
    done = subprocess.run(cli + ["pii", "mask", "--in", str(source), "--out", str(tmp_path / "m.parquet"),
                                 "--report", str(tmp_path / "r.json")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "not be stable" in done.stderr
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text("version: 1\ncolumns:\n  email: {entity: NONE}\n")
    done = subprocess.run(cli + ["pii", "mask", "--in", str(source), "--out", str(tmp_path / "x.parquet"),
                                 "--policy", str(leaky)], capture_output=True, text=True, env=env)
    assert done.returncode == 3 and "EMAIL_ADDRESS" in done.stderr and not (tmp_path / "x.parquet").exists()
    notes = tmp_path / "notes.jsonl"
    notes.write_text("\n".join(json.dumps({"id": str(i), "text": t}) for i, t in enumerate(
        ["Call 312-555-1234 now.", "No PII here."])) + "\n")
    done = subprocess.run(cli + ["pii", "detect", "--in", str(notes), "--out", str(tmp_path / "s.jsonl")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert lines == [{"id": "0", "spans": [{"start": 5, "end": 17, "entity_type": "PHONE_NUMBER", "score": 0.7}]},
                     {"id": "1", "spans": []}]


def test_bench_checks_detect_leaks_and_alterations(patients):
    assert residual_values(patients, patients) >= len(patients) * len(synth.PII_COLUMNS)
    altered = patients.copy()
    altered.loc[3, "diagnosis_code"] = "Z00.0"
    assert non_pii_cells_altered(patients, altered) == 1


NOTE_WITH_PHONE = "Patient called from (617) 215-7752 about a refill; stable vitals, no complaints today."
QUIET_NOTE = "Routine visit, no complaints, continue current regimen and recheck labs in three months."


def test_what_the_rescan_finds_is_masked_in_a_second_pass(monkeypatch, policy):
    from securepipe.pii import mask as mask_module

    real, calls = mask_module.detect_texts, []

    def first_pass_misses_phones(texts, known=None, **options):
        calls.append(len(texts))
        found = real(texts, known, **options)
        return [[s for s in spans if s.entity_type != "PHONE_NUMBER"] for spans in found] if len(calls) == 1 else found

    monkeypatch.setattr(mask_module, "detect_texts", first_pass_misses_phones)
    frame = pd.DataFrame({"note": [NOTE_WITH_PHONE, QUIET_NOTE]})
    masked, report = mask_frame(frame, policy, SECRET)
    assert "215-7752" not in masked["note"].iloc[0] and masked["note"].iloc[1] == QUIET_NOTE
    assert report["columns"]["note"]["second_pass_spans"] == 1
    assert report["residual_scan"]["columns"]["note"] == {"kind": "FREE_TEXT", "cells": 2, "cells_with_pii": 0,
                                                          "entities": {}}
    assert calls == [2, 2, 1]  # the first pass, the re-scan of all, the re-scan of the cell masked again


def test_our_surrogates_are_never_residual_pii():
    """Shifted dates in prose are dates, and a kept entity is what the policy asked for: neither fails the gate."""
    policy = parse_policy("version: 1\nextends: default\nfree_text_operators:\n"
                          "  DATE_TIME: {operator: date_shift}\n  PHONE_NUMBER: {operator: keep}\n")
    frame = pd.DataFrame({"note": ["Seen on 2024-03-05 and again on 2024-04-02; call (617) 215-7752 if worse."] * 3,
                          "mrn": ["MRN-1234567", "MRN-1234568", "MRN-1234567"]})
    masked, report = mask_frame(frame, policy, SECRET)
    assert "2024-03-05" not in masked["note"].iloc[0] and "(617) 215-7752" in masked["note"].iloc[0]
    assert report["residual_scan"]["columns"]["note"]["cells_with_pii"] == 0
    assert masked["note"].iloc[0] == masked["note"].iloc[2] != masked["note"].iloc[1]  # shift per subject


SPLICES = [
    # (text, spans, replacements, earlier ranges, new text, ranges after)
    ("ab CD ef", [(3, 5)], ["<X>"], [], "ab <X> ef", [(3, 6)]),
    ("[T] CD ef", [(4, 6)], ["<Y>"], [(0, 3)], "[T] <Y> ef", [(0, 3), (4, 7)]),
    ("xx [T] CD", [(7, 9)], ["ZZZZ"], [(3, 6)], "xx [T] ZZZZ", [(3, 6), (7, 11)]),
    ("CD [T]", [(0, 2)], ["Z"], [(3, 6)], "Z [T]", [(0, 1), (2, 5)]),
    ("[T] CD", [(0, 6)], ["<Z>"], [(0, 3)], "<Z>", [(0, 3)]),  # a wider span swallows a replacement
]


@pytest.mark.parametrize(("text", "spans", "replacements", "ranges", "expected", "after"), SPLICES)
def test_splice_tracks_where_replacements_lie(text, spans, replacements, ranges, expected, after):
    from securepipe.pii.mask import _splice
    from securepipe.pii.text import Span

    result, placed = _splice(text, [Span(s, e, "X", 1.0) for s, e in spans], replacements, ranges)
    assert (result, placed) == (expected, after)


def test_absorb_drops_spans_inside_replacements_and_widens_those_that_touch_one():
    from securepipe.pii.mask import _absorb
    from securepipe.pii.text import Span

    spans = [Span(1, 2, "A", 1.0), Span(8, 12, "B", 1.0), Span(11, 14, "C", 1.0), Span(20, 22, "D", 1.0)]
    assert _absorb(spans, [(0, 5), (10, 13)]) == [Span(8, 14, "B", 1.0), Span(20, 22, "D", 1.0)]
