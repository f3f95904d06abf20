"""Lineage manifests: complete, signed, anchored in the audit log, shown by the CLI."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from securepipe.audit.log import AuditLog
from securepipe.audit.signing import get_signing_key
from securepipe.errors import AuditError, InputError
from securepipe.audit.manifest import (
    artifact_record, build_manifest, find_manifests, manifest_file_name, verify_manifest_signature,
    write_manifest,
)
from securepipe.audit.records import PiiCounts, PrivacyRecord, RunManifest, TriggerRecord

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0000"


def sample_manifest(tmp_path, run_id="manual__2026-11-26T05:00:00+00:00", dag_id="secure_training"):
    artifact = tmp_path / "masked.parquet.enc"
    artifact.write_bytes(b"ciphertext stand-in")
    return build_manifest(
        dag_id=dag_id, run_id=run_id,
        trigger=TriggerRecord.create("manual", user="ops", params={"epsilon": 3.0}),
        artifacts=[artifact_record(artifact, name="masked", kind="masked", kms_key_arn=KEY_ARN,
                                   encryption_context={"dataset": "patients", "purpose": "masked"})],
        pii_report=PiiCounts.from_dict({"notes": {"PERSON": 3, "PHONE_NUMBER": 2}, "email": {"EMAIL_ADDRESS": 5}}),
        masking_policy_hash="sha256:" + "a" * 64,
        privacy=PrivacyRecord.from_dict({"dataset": "patients", "epsilon": 1.2, "delta": 1e-5, "budget_epsilon": 8.0, "budget_left": 6.8}),
        model={"uri": "file:///models/m.enc", "sha256": "b" * 64, "metrics": {"auc": 0.71}},
    )


def test_write_manifest_signs_stores_and_anchors(state):
    log = AuditLog(state / "audit.jsonl")
    log.append("pipeline.start", {})
    head_before = log.head()
    written = write_manifest(sample_manifest(state), manifests_dir=state / "manifests", audit_log=log)
    data = written.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == written.sha256
    manifest = json.loads(data)
    assert verify_manifest_signature(manifest, get_signing_key()) is None
    assert manifest["audit_head"] == {"log": "audit.jsonl", "seq": head_before["seq"], "hash": head_before["hash"]}
    entry = list(log.entries())[-1]
    assert entry["event"] == "lineage.manifest_written" and entry["seq"] == written.audit_seq
    assert entry["payload"]["manifest_sha256"] == written.sha256
    assert manifest["lock_files"]["requirements.txt"] and len(manifest["lock_files"]["requirements.txt"]) == 64
    assert manifest["code_version"]["git_sha"]
    assert log.verify().ok


def test_write_manifest_is_idempotent_per_run(state):
    log = AuditLog(state / "audit.jsonl")
    first = write_manifest(sample_manifest(state), manifests_dir=state / "m", audit_log=log)
    again = write_manifest(sample_manifest(state), manifests_dir=state / "m", audit_log=log)
    assert again == first
    assert sum(1 for e in log.entries() if e["event"] == "lineage.manifest_written") == 1


@pytest.mark.parametrize("change,reason", [
    (lambda m: m["privacy"].update(epsilon=0.1), "edited"),
    (lambda m: m["artifacts"].append({"name": "x"}), "edited"),
    (lambda m: m.pop("signature"), "unsigned"),
    (lambda m: m["signature"].update(key_id="someone-else"), "not the verifying key"),
])
def test_edited_manifest_fails_verification(state, change, reason):
    written = write_manifest(sample_manifest(state), manifests_dir=state / "m", audit_log=AuditLog(state / "a.jsonl"))
    manifest = json.loads(written.path.read_text())
    change(manifest)
    assert reason in verify_manifest_signature(manifest, get_signing_key())


def test_redacted_params_never_stored_in_clear(state):
    trigger = TriggerRecord.create("manual", user="ops", params={"subject_id": "MRN-0012345", "dry_run": True},
                           redact=("subject_id",))
    text = json.dumps(trigger.as_dict())
    assert "0012345" not in text and trigger.params["subject_id"].startswith("hmac-sha256:")
    again = TriggerRecord.create("manual", params={"subject_id": "MRN-0012345"}, redact=("subject_id",))
    assert again.params["subject_id"] == trigger.params["subject_id"]  # stable: an auditor can match it


@pytest.mark.parametrize("kwargs,message", [
    ({"kind": "cron"}, "trigger kind"),
])
def test_trigger_kind_is_validated(state, kwargs, message):
    with pytest.raises(AuditError, match=message):
        TriggerRecord.create(**kwargs)


@pytest.mark.parametrize("run_type,erasure,kind", [
    ("scheduled", False, "schedule"), ("backfill", False, "schedule"), ("DagRunType.MANUAL", False, "manual"),
    ("asset_triggered", False, "asset"), ("manual", True, "erasure"),
])
def test_trigger_kind_from_airflow_run_type(run_type, erasure, kind):
    record = TriggerRecord.from_airflow(run_type, user="ops", erasure=erasure, airflow_run_id="r1")
    assert (record.kind, record.user, record.airflow_run_id) == (kind, "ops", "r1")


def test_unknown_airflow_run_type_is_refused():
    with pytest.raises(AuditError, match="unknown Airflow run type"):
        TriggerRecord.from_airflow("operator_whim", user=None)


def test_readers_see_what_the_writer_wrote(state):
    written = write_manifest(sample_manifest(state), manifests_dir=state / "m", audit_log=AuditLog(state / "a.jsonl"))
    summary = RunManifest.from_dict(json.loads(written.path.read_text())).summary()
    assert (summary["trigger"], summary["user"], summary["budget_left"]) == ("manual", "ops", 6.8)
    assert summary["pii_found"] == 10 and summary["pii_by_type"]["PERSON"] == 3
    assert RunManifest.from_dict({}).summary()["trigger"] is None  # a damaged manifest still lists


def test_build_manifest_rejects_incomplete_artifacts(state):
    with pytest.raises(AuditError, match="artifact 0 lacks"):
        build_manifest(dag_id="d", run_id="r", trigger=TriggerRecord.create("schedule"), artifacts=[{"name": "x"}])
    with pytest.raises(AuditError, match="clash"):
        build_manifest(dag_id="d", run_id="r", trigger=TriggerRecord.create("schedule"), artifacts=[],
                       extra={"run_id": "other"})
    with pytest.raises(AuditError, match="not JSON"):
        build_manifest(dag_id="d", run_id="r", trigger=TriggerRecord.create("schedule"), artifacts=[],
                       extra={"blob": object()})


def test_artifact_record_hashes_and_names_missing_files(state):
    path = state / "x.bin"
    path.write_bytes(b"abc")
    record = artifact_record(path, name="x", kind="masked", kms_key_arn=KEY_ARN, encryption_context={"a": "b"})
    assert record["sha256"] == hashlib.sha256(b"abc").hexdigest() and record["size"] == 3
    assert record["uri"] == path.resolve().as_uri()
    with pytest.raises(InputError, match="missing.bin"):
        artifact_record(state / "missing.bin", name="m", kind="masked")
    with pytest.raises(AuditError, match="role"):
        artifact_record(path, name="x", kind="masked", role="sideways")


def test_manifest_file_names_are_safe_and_distinct():
    a = manifest_file_name("dag", "manual__2026-11-26T05:00:00+00:00")
    b = manifest_file_name("dag", "manual__2026-11-26T05_00_00_00_00")
    assert a != b and "/" not in a and ":" not in a and "+" not in a


def run_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "securepipe.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_lineage_show_cli(state, monkeypatch):
    import os

    run_id = "scheduled__2026-11-26T00:00:00+00:00"
    written = write_manifest(sample_manifest(state, run_id=run_id), audit_log=AuditLog(state / "a.jsonl"))
    env = dict(os.environ)
    shown = run_cli("lineage", "show", run_id, env=env)
    assert shown.returncode == 0, shown.stderr
    reply = json.loads(shown.stdout)
    assert reply["signature"] == "valid" and reply["manifest"]["run_id"] == run_id
    missing = run_cli("lineage", "show", "no-such-run", env=env)
    assert missing.returncode == 2 and "no lineage manifest" in missing.stderr
    manifest = json.loads(written.path.read_text())
    manifest["pii_report"]["notes"]["PERSON"] = 0
    written.path.write_text(json.dumps(manifest))
    edited = run_cli("lineage", "show", run_id, env=env)
    assert edited.returncode == 5 and "edited" in edited.stderr
    assert find_manifests(run_id)  # default dir is the state dir's manifests/
