"""The guard as the DAG and the shell use it: a signed, encrypted profile; refusal, quarantine, audit; the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from securepipe import pipeline
from securepipe.cli import main
from securepipe.config import aws_from_env
from securepipe.crypto import is_ciphertext
from securepipe.errors import AuditError, DataValidationFailed
from securepipe.synth import FEATURES, LABEL, generate_patients
from securepipe.validation.profile import build_profile
from securepipe.validation.store import load_profile, profile_path, save_profile

COLUMNS = [*FEATURES, "diagnosis_code", LABEL]


def _frame(seed: int, rows: int = 2000):
    return generate_patients(rows, seed=seed)[COLUMNS]


def _shifted(frame):
    frame["glucose"] = frame["glucose"] + 40
    return frame


@pytest.fixture
def run_for(tmp_path, kms_env):
    def make(run_id: str, **options) -> pipeline.RunSettings:
        return pipeline.RunSettings(run_id=run_id, dataset="patients", input_uri="", storage_root=tmp_path / "storage",
                                    state_dir=tmp_path / "state", kms_key_id=kms_env.key_arn, aws=aws_from_env(),
                                    **options)
    return make


def _masked(run, frame) -> dict:
    return pipeline._store_frame(run, frame, f"patients/masked/{run.run_id}/dataset.parquet.enc",
                                 run.context("masked-dataset"))


def _events(run) -> list[dict]:
    return [e for e in pipeline.audit_log(run).entries() if e["event"].startswith("data.")]


def test_first_batch_becomes_the_reference_a_clean_one_passes_a_poisoned_one_is_refused_and_quarantined(run_for):
    first = run_for("run-1")
    assert pipeline.validate_data(first, _masked(first, _frame(1)))["event"] == "data.reference_set"
    path = profile_path(first.state_dir, "patients")
    assert is_ciphertext(path)

    second = run_for("run-2")
    assert pipeline.validate_data(second, _masked(second, _frame(2)))["clean"] is True

    poisoned = run_for("run-3")
    profile_before = path.read_bytes()
    with pytest.raises(DataValidationFailed) as refused:
        pipeline.validate_data(poisoned, _masked(poisoned, _shifted(_frame(3))))
    assert "drift.psi column 'glucose'" in str(refused.value)
    assert path.read_bytes() == profile_before  # a refused batch never becomes the reference
    quarantine = poisoned.storage_root / "patients" / "quarantine" / "run-3"
    assert all(is_ciphertext(quarantine / name) for name in ("batch.parquet.enc", "findings.json.enc"))
    failed = _events(poisoned)[-1]
    assert failed["event"] == "data.validation_failed"
    assert {"check": "drift.psi", "column": "glucose"}.items() <= failed["payload"]["findings"][0].items()
    assert [e["event"] for e in _events(poisoned)] == ["data.reference_set", "data.validation_passed",
                                                       "data.validation_failed"]


def test_an_operator_accepts_a_flagged_batch_as_the_new_reference_with_who_and_why(run_for):
    first = run_for("run-1")
    pipeline.validate_data(first, _masked(first, _frame(1)))
    accept = run_for("run-2", accept_new_reference=True, reference_reason="new glucose assay from 2027",
                     trigger={"user": "alice"})
    result = pipeline.validate_data(accept, _masked(accept, _shifted(_frame(2))))
    assert result["event"] == "data.reference_accepted" and result["findings"]
    payload = _events(accept)[-1]["payload"]
    assert payload["accepted_by"] == "alice" and payload["reason"] == "new glucose assay from 2027"
    after = run_for("run-3")  # the shifted distribution is now the reference
    from securepipe.validation.checks import check_batch

    reference = load_profile(profile_path(after.state_dir, "patients"), dataset="patients",
                             signing_key=pipeline.audit_log(after).signing_key(may_create=False))
    assert "drift.psi" not in {f.check for f in check_batch(_shifted(_frame(3)), reference)}


def test_a_profile_signed_by_another_key_or_edited_does_not_load(run_for, tmp_path):
    from securepipe.audit.signing import create_signing_key

    run = run_for("run-1")
    profile = build_profile(_frame(1, 500), LABEL)
    ours = pipeline.audit_log(run).signing_key(may_create=True)
    theirs = create_signing_key(tmp_path / "other-key.json", kms_key_id=run.kms_key_id, aws=run.aws)
    path = tmp_path / "p.enc"
    save_profile(profile, path, dataset="patients", signing_key=theirs, key_id=run.kms_key_id)
    with pytest.raises(AuditError, match="another key"):
        load_profile(path, dataset="patients", signing_key=ours)


def test_cli_profile_and_check_exit_0_clean_3_findings_2_unreadable(tmp_path, state, kms_env, capsys):
    reference, clean, poisoned = tmp_path / "ref.csv", tmp_path / "new.csv", tmp_path / "bad.csv"
    _frame(1).to_csv(reference, index=False)
    _frame(2).to_csv(clean, index=False)
    bad = _frame(3)
    rows = np.random.default_rng(0).choice(len(bad), len(bad) // 20, replace=False)
    bad.iloc[rows] = bad.iloc[(rows + 1) % len(bad)].to_numpy()  # 5% duplicates
    bad.to_csv(poisoned, index=False)
    profile = tmp_path / "patients.profile.enc"

    assert main(["data", "profile", "--in", str(reference), "--label", LABEL, "--out", str(profile),
                 "--kms-key-id", kms_env.key_arn]) == 0
    assert is_ciphertext(profile)
    assert main(["data", "check", "--in", str(clean), "--profile", str(profile)]) == 0
    capsys.readouterr()
    assert main(["data", "check", "--in", str(poisoned), "--profile", str(profile), "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert not report["clean"] and "duplicates" in {f["check"] for f in report["findings"]}
    (tmp_path / "broken.csv").write_bytes(b"a,b\n1,2,3\n")
    assert main(["data", "check", "--in", str(tmp_path / "broken.csv"), "--profile", str(profile)]) == 2
