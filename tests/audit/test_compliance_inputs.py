"""What the audit and an erasure take from the runs they inspect, not from the demo's names: the
masking policy of the run that read the landing input, and the subject column of each version."""
from __future__ import annotations

from pathlib import Path

import pytest

from securepipe.audit.log import AuditLog
from securepipe.audit.manifest import artifact_record, build_manifest, write_manifest
from securepipe.audit.records import TriggerRecord
from securepipe.compliance import AuditSettings, landing_policy
from securepipe.config import AwsSettings
from securepipe.erasure import ErasureSettings, _subject_column
from securepipe.errors import InputError, SecurePipeError
from securepipe.pii import load_policy

AWS = AwsSettings("us-east-1", None, None)
POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _settings(state, policy_dir=POLICIES) -> AuditSettings:
    landing = state / "landing.csv"
    landing.write_text("id\n1\n")
    return AuditSettings(audit_run_id="audit-1", state_dir=state / "state", kms_key_id="k", aws=AWS,
                         landing_uri=landing.resolve().as_uri(), policy_dir=policy_dir)


def _run_with_policy(settings: AuditSettings, name: str, run_id: str) -> None:
    manifest = build_manifest(
        dag_id="secure_training", run_id=run_id, trigger=TriggerRecord.create("manual", user="ops"),
        artifacts=[artifact_record(settings.landing_uri[len("file://"):], name="raw-input", kind="raw", role="input")],
        extra={"masking_policy": name})
    write_manifest(manifest, manifests_dir=settings.manifests_dir, audit_log=AuditLog(settings.state_dir / "a.jsonl"))


def test_the_audit_reads_the_landing_input_with_the_policy_of_its_last_run(state):
    settings = _settings(state)
    assert landing_policy(settings).sha256 == load_policy(None).sha256  # no run yet
    _run_with_policy(settings, "strict", "r1")
    strict = load_policy(POLICIES / "strict.yaml")
    assert strict.sha256 != load_policy(None).sha256
    assert landing_policy(settings).sha256 == strict.sha256


def test_a_named_policy_without_a_policy_directory_fails_the_check(state):
    settings = _settings(state, policy_dir=None)
    _run_with_policy(settings, "strict", "r1")
    with pytest.raises(SecurePipeError, match="no policy directory"):
        landing_policy(settings)


@pytest.mark.parametrize("configured,plan,expected", [
    (None, {"subject_column": "Pat.-Nr."}, "Pat.-Nr."),
    ("mrn", {"subject_column": "Pat.-Nr."}, "mrn"),
    (None, {"subject_column": None}, None),
    (None, None, None),
])
def test_erasure_finds_the_subject_column_in_each_versions_plan(tmp_path, configured, plan, expected):
    settings = ErasureSettings(erasure_run_id="e1", dataset="clinic", state_dir=tmp_path, kms_key_id="k",
                               aws=AWS, storage_root=tmp_path, subject_column=configured)
    manifest = {"run_id": "r1", "masking_plan": plan}
    if expected is None:
        with pytest.raises(InputError, match="names no subject column"):
            _subject_column(settings, manifest)
    else:
        assert _subject_column(settings, manifest) == expected
