"""Zero configuration on a table the project never wrote: `securepipe pii mask` with no policy.

The table comes from tests/heldout.py (Faker, four locales, unobvious column names, a
free-text address column and notes). The checks are the ones a reviewer would run: the
command exits 0 with the gate passed; no raw value of any PII column and no identifier
written into a note survives anywhere in the output (case-insensitive substring; numbers
of 7 or more digits compared with separators removed); no clinical cell changes; the
inferred plan is what a person would have written; masking is consistent and idempotent.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

import heldout
from securepipe.errors import DeterministicRefusal, GateFailed
from securepipe.pii.mask import mask_file
from securepipe.pii.policy import load_policy, parse_policy

SECRET = b"h" * 32
SEPARATORS = re.compile(r"[\s\-./()+]")
MIN_NEEDLE = 3  # a two-letter surname ("Le") is a substring of ordinary words in any output


@pytest.fixture(scope="module")
def table():
    return heldout.generate(300, seed=7)


@pytest.fixture(scope="module")
def masked_by_cli(table, tmp_path_factory):
    work = tmp_path_factory.mktemp("heldout")
    source = work / "clinic.csv"
    table.frame.to_csv(source, index=False)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "SECUREPIPE_STATE_DIR": str(work / "state")}
    done = subprocess.run([sys.executable, "-m", "securepipe.cli", "pii", "mask", "--in", str(source),
                           "--out", str(work / "masked.parquet"), "--report", str(work / "report.json")],
                          capture_output=True, text=True, env=env)
    output = pd.read_parquet(work / "masked.parquet") if done.returncode == 0 else None
    return done, output, json.loads((work / "report.json").read_text())


class Haystack:
    """Output cells, lower-cased, searched as the scoring does: substring, and numbers of 7 or
    more digits with separators removed on both sides."""

    def __init__(self, cells):
        cells = [str(v).lower() for v in cells if v is not None]
        self.text = "\x00".join(cells)
        self.digits = "\x00".join(SEPARATORS.sub("", cell) for cell in cells)

    def holds(self, needle: str) -> bool:
        needle = needle.strip().lower()
        if len(needle) < MIN_NEEDLE:
            return False
        digits = SEPARATORS.sub("", needle)
        return needle in self.text or (sum(ch.isdigit() for ch in digits) >= 7 and digits in self.digits)


def _everything(frame: pd.DataFrame) -> Haystack:
    return Haystack(v for column in frame.columns for v in frame[column].tolist())


def _rows_by_key(output: pd.DataFrame) -> dict[str, Haystack]:
    return {str(row[heldout.ROW_KEY]): Haystack(row.values) for _, row in output.iterrows()}


def test_zero_config_mask_exits_0_with_the_gate_passed_and_a_sensible_plan(masked_by_cli):
    done, output, report = masked_by_cli
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["gate"] == "passed" and report["gate"]["passed"]
    assert summary["subject_column"] == "Pat.-Nr."
    assert set(summary["quasi_identifiers"]) == {"Geburtsdatum", "Geschlecht", "PLZ"}
    assert summary["sensitive_column"] == "dx"
    assert set(summary["masked_columns"]) == {*heldout.PII_COLUMNS, heldout.NOTE}
    assert report["rows_out"] == len(output) >= 0.95 * report["rows_in"]
    assert not set(summary["masked_columns"]) & set(heldout.CLINICAL_COLUMNS)


def test_no_raw_value_of_a_pii_column_survives_anywhere(table, masked_by_cli):
    _, output, _ = masked_by_cli
    everything = _everything(output)
    leaked = [(column, value) for column in heldout.PII_COLUMNS for value in table.frame[column]
              if everything.holds(value)]
    assert leaked == [], f"{len(leaked)} raw values survive, first in column {leaked[0][0] if leaked else ''}"


def test_no_identifier_of_the_row_survives_in_its_output_row(table, masked_by_cli):
    """What the row holds in structured columns, written again in its note in another form."""
    _, output, _ = masked_by_cli
    rows = _rows_by_key(output)
    leaked = [(i, value) for i, values in enumerate(table.row_identifiers) if str(i + 1) in rows
              for value in values if rows[str(i + 1)].holds(value)]
    assert leaked == [], f"{len(leaked)} identifiers survive in rows {sorted({i for i, _ in leaked})[:10]}"


def test_identifiers_only_in_the_note_do_not_survive(table, masked_by_cli):
    """A relative's name and phone that appear nowhere else: only free-text detection can find them."""
    _, output, _ = masked_by_cli
    rows = _rows_by_key(output)
    leaked = [value for i, values in enumerate(table.note_only_identifiers) if str(i + 1) in rows
              for value in values if rows[str(i + 1)].holds(value)]
    assert leaked == []


def _by_value(values: pd.Series) -> list[str]:
    """Numbers compared by value ("6.40" == 6.4), everything else as text."""
    numbers = pd.to_numeric(values, errors="coerce")
    return [repr(float(n)) if pd.notna(n) else str(v) for v, n in zip(values, numbers)]


def test_clinical_cells_come_out_unchanged(table, masked_by_cli):
    _, output, _ = masked_by_cli
    source = table.frame.set_index(heldout.ROW_KEY).loc[output[heldout.ROW_KEY].astype(str)]
    for column in heldout.CLINICAL_COLUMNS:
        assert _by_value(source[column]) == _by_value(output[column]), column


def test_any_order_and_parquet_give_the_same_plan(table, tmp_path):
    frame = table.frame.head(80)
    shuffled = frame[list(reversed(frame.columns))]
    shuffled.to_parquet(tmp_path / "in.parquet", index=False)
    frame.to_csv(tmp_path / "in.csv", index=False)
    policy = load_policy(None)
    plans = [mask_file(tmp_path / name, tmp_path / f"out-{name}.parquet", policy=policy, secret=SECRET)["plan"]
             for name in ("in.parquet", "in.csv")]
    for plan in plans:
        plan["quasi_identifiers"] = sorted(plan["quasi_identifiers"])
    assert plans[0] == plans[1] and plans[0]["subject_column"] == "Pat.-Nr."
    masked = pd.read_parquet(tmp_path / "out-in.parquet.parquet")
    assert list(masked.columns) == list(shuffled.columns)


def test_masking_a_masked_table_changes_nothing(table, tmp_path):
    table.frame.head(80).to_csv(tmp_path / "in.csv", index=False)
    policy = load_policy(None)
    mask_file(tmp_path / "in.csv", tmp_path / "once.parquet", policy=policy, secret=SECRET)
    report = mask_file(tmp_path / "once.parquet", tmp_path / "twice.parquet", policy=policy, secret=SECRET)
    once, twice = pd.read_parquet(tmp_path / "once.parquet"), pd.read_parquet(tmp_path / "twice.parquet")
    pd.testing.assert_frame_equal(once, twice)
    assert report["gate"]["passed"] and report["k_anonymity"]["rows_suppressed"] == 0
    # Under another secret the marker is not trusted: shifted dates are shifted again (nothing is leaked).
    mask_file(tmp_path / "once.parquet", tmp_path / "other.parquet", policy=policy, secret=b"o" * 32)
    other = pd.read_parquet(tmp_path / "other.parquet")
    assert (other["Aufnahme"] != once["Aufnahme"]).any()


def _days(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, format="%Y-%m-%d")


def test_without_a_subject_column_dates_shift_together_within_a_row_and_a_shared_identifier(tmp_path):
    small = heldout.generate(120, seed=7)  # 90 patients, 30 repeat visits
    frame = small.frame.drop(columns=["Pat.-Nr.", "courriel"]).copy()  # no patient number, no e-mail
    visit = pd.to_datetime(frame["Aufnahme"], format="mixed", dayfirst=True)
    frame["Entlassung"] = (visit + pd.Timedelta(days=3)).dt.strftime("%d.%m.%Y")
    frame["Aufnahme"] = visit.dt.strftime("%d.%m.%Y")
    frame.to_csv(tmp_path / "in.csv", index=False)
    policy = parse_policy("version: 1\nextends: default\nk_anonymity: null\n")
    report = mask_file(tmp_path / "in.csv", tmp_path / "out.parquet", policy=policy, secret=SECRET)
    assert report["plan"]["subject_column"] is None and report["plan"]["key_columns"][0] == "Tel"
    out = pd.read_parquet(tmp_path / "out.parquet")
    stay = _days(out["Entlassung"]) - _days(out["Aufnahme"])
    assert (stay == pd.Timedelta(days=3)).all()  # one shift per row
    shift = (_days(out["Aufnahme"]) - visit).dt.days
    assert (shift != 0).all()
    per_patient = shift.groupby(frame["Tel"]).nunique()
    assert (per_patient == 1).all() and (frame["Tel"].value_counts() > 1).any()  # repeat visits share it


def test_gate_refusal_names_columns_and_counts_and_is_final(table, tmp_path):
    table.frame.head(60).to_csv(tmp_path / "in.csv", index=False)
    leaky = parse_policy("version: 1\nextends: default\ncolumns:\n  courriel: {entity: NONE}\n")
    with pytest.raises(GateFailed) as refusal:
        mask_file(tmp_path / "in.csv", tmp_path / "out.parquet", policy=leaky, secret=SECRET)
    assert isinstance(refusal.value, DeterministicRefusal)  # the DAG does not retry it
    assert "column 'courriel' EMAIL_ADDRESS x60" in str(refusal.value)
    assert not any(v in str(refusal.value) for v in table.frame["courriel"].head(60))
    assert not (tmp_path / "out.parquet").exists()
