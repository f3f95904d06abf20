"""The whole audit on realistic evidence: passes when clean, fails exactly the right check per violation.

Evidence is made by the real components: ciphertext by securepipe.crypto under the
KMS emulator, manifests and the audit log by the library (evidence key wrapped by
KMS), the privacy ledger by securepipe.training.ledger, task logs and a SQLite
"metadata DB" on disk. The checks are driven the way the compliance_audit DAG
drives them: run, record the verdict in the audit log, build the report from the
verdicts.
"""
from __future__ import annotations

import json
import sqlite3

import pytest

from securepipe.audit import checks
from securepipe.audit.log import AuditLog, head_path
from securepipe.audit.pii_scan import SensitiveValueIndex
from securepipe.audit.report import build_report, write_report
from securepipe.audit.signing import KEY_FILE_NAME
from securepipe.audit.manifest import artifact_record, build_manifest, write_manifest
from securepipe.audit.records import PiiCounts, TriggerRecord
from securepipe.training.ledger import PrivacyLedger

CHECK_NAMES = ("storage_encrypted", "kms_key", "audit_chain", "privacy_budgets", "lineage_complete", "retention",
               "no_pii_in_task_logs", "no_pii_in_metadata_db", "residual_pii_in_masked_sample", "access_review")

SUBJECTS = [
    {"name": "Jane Q. Doe", "email": "jane.doe@example.com", "phone": "555-123-4567", "ssn": "123-45-6789"},
    {"name": "Omar Little", "email": "omar@example.net", "phone": "555-987-6543", "ssn": "987-65-4321"},
]


def sensitive_values():
    return [value for subject in SUBJECTS for value in subject.values()]


class Evidence:
    """Where everything lives, and each check's inputs (what the DAG gathers from Airflow)."""

    def __init__(self, root, kms_env):
        self.root, self.kms_env = root, kms_env
        self.state, self.storage, self.logs = root / "state", root / "storage", root / "logs"
        self.db = root / "airflow.db"
        self.log = AuditLog(self.state / "audit.jsonl", kms_key_id=kms_env.key_arn)
        self.ledger = PrivacyLedger(self.state)
        self.masked_sample = [{"name": "[PERSON:0a1b2c3d4e5f60718293]", "age": 40}]

    def arguments(self, name):
        index = SensitiveValueIndex.from_values(sensitive_values())
        return {
            "storage_encrypted": {"storage_root": self.storage},
            "kms_key": {"key_id": self.kms_env.key_arn},
            "audit_chain": {"log_path": self.log.path, "manifests_dir": self.state / "manifests"},
            "privacy_budgets": {"ledger_path": self.ledger.root},
            "lineage_complete": {"manifests_dir": self.state / "manifests",
                                 "expected_runs": [("secure_training", "run-1")]},
            "retention": {"root": self.storage, "policies": [checks.RetentionPolicy("raw/*", 30, "flag")]},
            "no_pii_in_task_logs": {"root": self.logs, "index": index},
            "no_pii_in_metadata_db": {"url": f"sqlite:///{self.db}", "index": index},
            "residual_pii_in_masked_sample": {"records": self.masked_sample, "index": index},
            "access_review": {"connections": [{"conn_id": "aws_default", "source": "db", "has_password": True,
                                               "password_encrypted": True}],
                              "users": [{"username": "admin", "role": "admin"}, {"username": "aud", "role": "viewer"}]},
        }[name]


@pytest.fixture
def audit_env(tmp_path, kms_env, monkeypatch):
    from securepipe.crypto import encrypt_file

    monkeypatch.setenv("SECUREPIPE_STATE_DIR", str(tmp_path / "state"))
    evidence = Evidence(tmp_path, kms_env)
    landing = tmp_path / "landing.csv"
    landing.write_text("name,phone\n" + "".join(f"{s['name']},{s['phone']}\n" for s in SUBJECTS))
    context = {"dataset": "patients", "purpose": "masked"}
    encrypt_file(landing, evidence.storage / "raw" / "shard-0.enc", key_id=kms_env.key_arn, context=context)
    encrypt_file(landing, evidence.storage / "masked" / "patients.enc", key_id=kms_env.key_arn, context=context)
    evidence.log.append("pipeline.start", {"rows": 2})
    write_manifest(build_manifest(
        dag_id="secure_training", run_id="run-1", trigger=TriggerRecord.create("schedule"),
        artifacts=[artifact_record(landing, name="raw-input", kind="raw", role="input"),
                   artifact_record(evidence.storage / "masked" / "patients.enc", name="masked", kind="masked",
                                   kms_key_arn=kms_env.key_arn, encryption_context=context)],
        pii_report=PiiCounts.from_dict({"name": {"PERSON": 2}, "phone": {"PHONE_NUMBER": 2}})),
        manifests_dir=evidence.state / "manifests", audit_log=evidence.log)
    evidence.ledger.set_budget("patients", 4.0, 1e-4)
    evidence.ledger.charge("patients", "v1", "run-1", 1.5, 1e-5)
    (evidence.logs / "dag_id=secure_training").mkdir(parents=True)
    (evidence.logs / "dag_id=secure_training" / "attempt=1.log").write_text("INFO masked 2 rows; pseudonyms only\n")
    with sqlite3.connect(evidence.db) as db:
        db.execute("create table xcom (id integer primary key, value text)")
        db.execute("insert into xcom (value) values ('{\"rows\": 2}')")
    return evidence


def run_all(evidence, audit_run="compliance_audit__1"):
    results = {}
    for name in CHECK_NAMES:
        results[name] = checks.run_check(name, **evidence.arguments(name))
        checks.record_result(results[name], audit_log=evidence.log, run_id=audit_run, attempt=1)
    return results


def finish(evidence, audit_run="compliance_audit__1"):
    """What the DAG's last task does: the report from the verdicts recorded in the log."""
    latest = {}
    for entry in evidence.log.entries():
        if entry["event"] == "compliance.check" and entry["payload"]["run_id"] == audit_run:
            latest[entry["payload"]["check"]] = checks.result(entry["payload"]["check"], entry["payload"]["ok"],
                                                              **entry["payload"]["details"])
    report = build_report([latest[name] for name in CHECK_NAMES], run_id=audit_run,
                          manifests_dir=evidence.state / "manifests", ledger_path=evidence.ledger.root)
    return report, write_report(report)


def test_clean_evidence_passes_every_check(audit_env):
    results = run_all(audit_env)
    assert not {name: r["details"] for name, r in results.items() if not r["ok"]}
    report, paths = finish(audit_env)
    assert report["ok"] and report["passed"] == len(CHECK_NAMES)
    assert [c["check"] for c in json.loads(open(paths["json"]).read())["checks"]] == list(CHECK_NAMES)
    assert audit_env.log.verify().ok  # the verdicts themselves went into the chain
    assert json.loads((audit_env.state / KEY_FILE_NAME).read_text())["purpose"] == "evidence-signing"


def _plaintext_in_storage(evidence):
    (evidence.storage / "masked" / "export.csv").write_text("name\nJane Q. Doe\n")


def _edited_audit_entry(evidence):
    lines = evidence.log.path.read_text().splitlines(keepends=True)
    entry = json.loads(lines[0])
    entry["payload"]["rows"] = 3
    lines[0] = json.dumps(entry) + "\n"
    evidence.log.path.write_text("".join(lines))


def _over_budget_ledger(evidence):
    path = evidence.ledger.path("patients")
    state = json.loads(path.read_text())
    state["runs"]["run-2"] = {"version": "v1", "epsilon": 3.0, "delta": 1e-5, "charged_at": "2026-11-26T00:00:00",
                              "voided_at": None}
    path.write_text(json.dumps(state))


def _pii_in_a_log(evidence):
    (evidence.logs / "dag_id=secure_training" / "attempt=2.log").write_text(
        "INFO start\nERROR row 2: bad phone (555) 987 6543\n")


def _pii_in_xcom(evidence):
    with sqlite3.connect(evidence.db) as db:
        db.execute("insert into xcom (value) values ('{\"email\": \"omar@example.net\"}')")


def _pii_left_in_masked_data(evidence):
    evidence.masked_sample.append({"name": "Omar Little", "age": 52})


def _truncated_log(evidence):
    lines = evidence.log.path.read_text().splitlines(keepends=True)
    evidence.log.path.write_text("".join(lines[:1]))
    head_path(evidence.log.path).unlink()


VIOLATIONS = [
    ("plaintext file in storage", _plaintext_in_storage, "storage_encrypted"),
    ("edited audit entry", _edited_audit_entry, "audit_chain"),
    ("truncated audit log", _truncated_log, "audit_chain"),
    ("over-budget ledger", _over_budget_ledger, "privacy_budgets"),
    ("PII value in a task log", _pii_in_a_log, "no_pii_in_task_logs"),
    ("PII value in XCom", _pii_in_xcom, "no_pii_in_metadata_db"),
    ("PII left in masked data", _pii_left_in_masked_data, "residual_pii_in_masked_sample"),
]


@pytest.mark.parametrize("name,inject,failing", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_each_violation_fails_its_check(audit_env, name, inject, failing):
    inject(audit_env)
    results = run_all(audit_env)
    assert {n for n, r in results.items() if not r["ok"]} == {failing}
    with pytest.raises(checks.GateFailed, match=failing):
        checks.require_ok(results[failing])
    report, paths = finish(audit_env)
    assert not report["ok"] and [c["check"] for c in report["checks"] if not c["ok"]] == [failing]
    text = open(paths["json"]).read() + open(paths["latest_html"]).read()
    for value in sensitive_values():
        assert value not in text
