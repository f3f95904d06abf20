"""Each compliance check passes on clean input and fails on its injected violation."""
from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

from securepipe.audit import checks
from securepipe.audit.checks import RetentionPolicy
from securepipe.audit.log import AuditLog, head_path
from securepipe.audit.pii_scan import SensitiveValueIndex
from securepipe.audit.manifest import artifact_record, build_manifest, write_manifest
from securepipe.audit.records import PiiCounts, PrivacyRecord, TriggerRecord

SENSITIVE = ["Jane Q. Doe", "jane.doe@example.com", "555-123-4567", "123-45-6789", "MRN-0012345",
             "42 Elm Street, Springfield", "F", "12"]


def assert_no_values(outcome):
    text = json.dumps(outcome).casefold()
    for value in SENSITIVE[:6]:
        assert value.casefold() not in text


# --- sensitive value index ------------------------------------------------------------------------
INDEX_CASES = [
    ("call 555-123-4567 today", 1),
    ("call (555) 123 4567 today", 1),
    ("call 5551234567 today", 1),
    ("patient JANE Q DOE seen", 1),
    ("mail jane.doe@example.com", 1),
    ("ssn 123 45 6789", 1),
    ("id mrn-0012345 and 555.123.4567", 2),
    ("lives at 42 elm street springfield", 1),
    # negatives: partial values, neighbours, short values that were not indexed
    ("call 555-123-4568 today", 0),
    ("jane doe", 0),
    ("jane.doe@example.org", 0),
    ("sex F, 12 visits", 0),
    ("MRN-00123456", 0),
    ("", 0),
]


@pytest.fixture(scope="module")
def index():
    return SensitiveValueIndex.from_values(SENSITIVE)


@pytest.mark.parametrize("text,expected", INDEX_CASES)
def test_index_matches(index, text, expected):
    assert index.count_matches(text) == expected


def test_index_holds_no_values(index):
    assert index.indexed == 6 and index.skipped_short == 2
    assert "Jane" not in repr(index) and "555" not in repr(index)
    other = SensitiveValueIndex.from_values(SENSITIVE)
    assert other.digests.isdisjoint(index.digests)  # a fresh key per index: digests are not portable


# --- storage encrypted --------------------------------------------------------------------------
def test_storage_encrypted_passes_on_ciphertext_and_fails_on_plaintext(state, kms_env):
    from securepipe.crypto import encrypt_file

    root = state / "storage"
    (root / "masked").mkdir(parents=True)
    plain = state / "plain.csv"
    plain.write_text("name,phone\nJane Q. Doe,555-123-4567\n")
    for name in ("a.csv.enc", "b.csv.enc"):
        encrypt_file(plain, root / "masked" / name, key_id=kms_env.key_arn, context={"dataset": "patients"})
    (root / "model_card.md").write_text("public card")
    clean = checks.check_storage_encrypted(root, exclude=["model_card.md"])
    assert clean["ok"], clean
    assert clean["details"]["files_scanned"] == 2 and clean["details"]["files_excluded"] == 1

    (root / "masked" / "leak.csv").write_bytes(plain.read_bytes())
    (root / "masked" / "fake.enc").write_bytes(b"\x89SPENC\r\n" + b"\x00" * 40)  # magic alone is not enough
    dirty = checks.check_storage_encrypted(root, exclude=["model_card.md"])
    assert not dirty["ok"]
    assert dirty["details"]["plaintext_files"] == 2
    assert sorted(dirty["details"]["locations"]) == ["masked/fake.enc", "masked/leak.csv"]
    assert_no_values(dirty)


def test_storage_and_retention_checks_on_s3(state, kms_env, monkeypatch):
    """The same scan over s3:// through Airflow's ObjectStoragePath (moto S3 on loopback)."""
    pytest.importorskip("s3fs", reason="s3:// needs s3fs in .venv")
    import boto3
    from airflow.sdk import ObjectStoragePath

    from securepipe.crypto import encrypt_bytes

    monkeypatch.setenv("AIRFLOW_CONN_SECUREPIPE_AUDIT_S3", json.dumps(
        {"conn_type": "aws", "login": "testing", "password": "testing",
         "extra": {"endpoint_url": kms_env.endpoint_url, "region_name": "us-east-1"}}))
    client = boto3.client("s3", endpoint_url=kms_env.endpoint_url)
    client.create_bucket(Bucket="securepipe-audit-test")
    root = ObjectStoragePath("s3://securepipe-audit-test/storage", conn_id="securepipe_audit_s3")
    encrypt_bytes(b"name\nJane Q. Doe\n", root / "masked" / "a.enc", key_id=kms_env.key_arn,
                  context={"dataset": "patients"})
    assert checks.check_storage_encrypted(root)["ok"]
    client.put_object(Bucket="securepipe-audit-test", Key="storage/masked/leak.csv", Body=b"name\nJane Q. Doe\n")
    outcome = checks.check_storage_encrypted(root)
    assert not outcome["ok"] and outcome["details"]["locations"] == ["masked/leak.csv"]
    policies = [RetentionPolicy("masked/*.csv", 0, "delete"), RetentionPolicy("masked/*", 365, "flag")]
    outcome = checks.check_retention(root, policies, now=time.time() + 86400)
    assert outcome["ok"] and outcome["details"]["deleted"] == 1 and outcome["details"]["files_checked"] == 2
    assert checks.check_storage_encrypted(root)["ok"]  # retention removed the plaintext object


def test_storage_encrypted_fails_when_root_missing(state):
    assert not checks.check_storage_encrypted(state / "nope", is_ciphertext=lambda p: True)["ok"]


# --- KMS key ------------------------------------------------------------------------------------
def test_kms_key_check(state, kms_env):
    from securepipe.kms_emulator import kms_client

    assert checks.check_kms_key(kms_env.key_arn)["ok"]
    client = kms_client(kms_env.endpoint_url)
    no_rotation = client.create_key(Description="no rotation")["KeyMetadata"]["Arn"]
    outcome = checks.check_kms_key(no_rotation)
    assert not outcome["ok"] and outcome["details"]["problems"] == ["automatic rotation off"]
    disabled = client.create_key(Description="disabled")["KeyMetadata"]["KeyId"]
    client.enable_key_rotation(KeyId=disabled)
    client.disable_key(KeyId=disabled)
    outcome = checks.check_kms_key(disabled)
    assert not outcome["ok"] and outcome["details"]["problems"] == ["key not enabled"]
    assert not checks.check_kms_key("alias/does-not-exist")["ok"]


def test_kms_key_check_without_key_configured(state, monkeypatch):
    monkeypatch.delenv("SECUREPIPE_KMS_KEY_ID")
    outcome = checks.check_kms_key(None)
    assert not outcome["ok"] and "no KMS key" in outcome["details"]["reason"]


# --- audit chain and manifests ------------------------------------------------------------------
@pytest.fixture
def evidence(state):
    log = AuditLog(state / "state" / "audit.jsonl")
    log.append("pipeline.start", {"rows": 100})
    source = state / "drop.csv"
    source.write_text("header\n")
    masked = state / "masked.enc"
    masked.write_bytes(b"m")
    model = state / "model.enc"
    model.write_bytes(b"w")
    arn, ctx = "arn:aws:kms:us-east-1:1:key/k", {"dataset": "patients"}
    ingest = build_manifest(
        dag_id="ingest_and_mask", run_id="run-1", trigger=TriggerRecord.create("asset"),
        artifacts=[artifact_record(source, name="drop", kind="source", role="input"),
                   artifact_record(masked, name="masked", kind="masked", kms_key_arn=arn, encryption_context=ctx)],
        pii_report=PiiCounts.from_dict({"notes": {"PERSON": 4}}))
    training = build_manifest(
        dag_id="secure_training", run_id="run-2", trigger=TriggerRecord.create("asset"),
        artifacts=[artifact_record(masked, name="masked", kind="masked", role="input", kms_key_arn=arn,
                                   encryption_context=ctx),
                   artifact_record(model, name="model", kind="model", kms_key_arn=arn, encryption_context=ctx)],
        privacy=PrivacyRecord("patients", 1.0, 1e-5, budget_epsilon=3.0, budget_left=2.0),
        model={"uri": model.resolve().as_uri(), "sha256": "c" * 64, "metrics": {"auc": 0.7}})
    written = [write_manifest(m, audit_log=log) for m in (ingest, training)]
    log.append("pipeline.end", {})
    return {"log": log, "written": written, "masked": masked, "model": model}


def test_audit_chain_passes_on_clean_evidence(evidence):
    outcome = checks.check_audit_chain(evidence["log"].path)
    assert outcome["ok"], outcome
    assert outcome["details"]["manifests_checked"] == 2 and outcome["details"]["entries"] == 4


def _edit_entry(evidence):
    lines = evidence["log"].path.read_text().splitlines(keepends=True)
    entry = json.loads(lines[0])
    entry["payload"]["rows"] = 1
    lines[0] = json.dumps(entry) + "\n"
    evidence["log"].path.write_text("".join(lines))


def _edit_manifest(evidence):
    path = evidence["written"][0].path
    manifest = json.loads(path.read_text())
    manifest["pii_report"]["notes"]["PERSON"] = 0
    path.write_text(json.dumps(manifest))


def _truncate_log_and_head(evidence):
    lines = evidence["log"].path.read_text().splitlines(keepends=True)
    evidence["log"].path.write_text("".join(lines[:2]))
    head_path(evidence["log"].path).unlink()


@pytest.mark.parametrize("tamper,expect", [
    (_edit_entry, "edited"),
    (_edit_manifest, "edited"),
    (lambda e: e["written"][1].path.unlink(), "missing"),
    (_truncate_log_and_head, "truncated"),
])
def test_audit_chain_fails_on_tampering(evidence, tamper, expect):
    tamper(evidence)
    outcome = checks.check_audit_chain(evidence["log"].path)
    assert not outcome["ok"]
    assert expect in json.dumps(outcome["details"])


# --- lineage ------------------------------------------------------------------------------------
def test_lineage_complete_on_clean_evidence(evidence):
    outcome = checks.check_lineage_complete(
        expected_runs=[("ingest_and_mask", "run-1"), ("secure_training", "run-2")],
        model_uris=[evidence["model"].resolve().as_uri()])
    assert outcome["ok"], outcome


def test_lineage_incomplete_cases(evidence, state):
    outcome = checks.check_lineage_complete(expected_runs=[("secure_training", "run-3")],
                                            model_uris=["file:///elsewhere/model.enc"])
    assert not outcome["ok"]
    assert outcome["details"]["runs_without_manifest"] == [{"dag_id": "secure_training", "run_id": "run-3"}]
    assert outcome["details"]["models_without_lineage"] == ["file:///elsewhere/model.enc"]

    evidence["masked"].write_bytes(b"changed")  # content no longer what the runs recorded
    outcome = checks.check_lineage_complete()
    assert not outcome["ok"]
    assert {p["problem"] for p in outcome["details"]["locations"]} == {"content changed since the run recorded it"}

    orphan = build_manifest(
        dag_id="secure_training", run_id="run-9", trigger=TriggerRecord.create("manual"),
        artifacts=[{"name": "mystery", "kind": "masked", "role": "input", "uri": "file:///x", "sha256": "d" * 64,
                    "kms_key_arn": None, "encryption_context": {}}])
    write_manifest(orphan, audit_log=evidence["log"])
    evidence["masked"].write_bytes(b"m")
    problems = {p["problem"] for p in checks.check_lineage_complete()["details"]["locations"]}
    assert problems == {"no kms_key_arn", "no encryption_context", "input not produced by any recorded run"}

    # A run whose trigger and privacy records were never written: the page would show empty cells.
    unrecorded = build_manifest(dag_id="secure_training", run_id="run-10", trigger=TriggerRecord(None), artifacts=[],
                                model={"uri": evidence["model"].resolve().as_uri(), "sha256": "e" * 64})
    write_manifest(unrecorded, audit_log=evidence["log"])
    problems = {p["problem"] for p in checks.check_lineage_complete()["details"]["locations"]
                if p["manifest"].startswith("secure_training__run-10")}
    assert problems == {"trigger has no known kind", "model without a privacy record (budget left)"}


# --- privacy budgets ----------------------------------------------------------------------------
def _ledger(state, charges, budget=(3.0, 1e-4)):
    from securepipe.training.ledger import PrivacyLedger

    ledger = PrivacyLedger(state / "state")
    ledger.set_budget("patients", *budget)
    for i, (version, epsilon) in enumerate(charges):
        ledger.charge("patients", version, f"run-{i}", epsilon, 1e-5)
    return ledger


def _lower_budget(ledger):
    ledger.set_budget("patients", 2.0, 1e-4)  # allowed by the ledger, below what was spent


def _hand_edited_run(ledger):
    path = ledger.path("patients")
    state = json.loads(path.read_text())
    state["runs"]["sneaky"] = {"version": "v1", "epsilon": 1.0, "delta": 1e-5,
                               "charged_at": "2026-11-26T00:00:00+00:00", "voided_at": None}
    path.write_text(json.dumps(state))


def _no_budget(ledger):
    path = ledger.path("patients")
    state = json.loads(path.read_text())
    state["budget"] = None
    path.write_text(json.dumps(state))


def _lower_delta(ledger):
    ledger.set_budget("patients", 3.0, 1.5e-5)


BUDGET_CASES = [
    ("within budget", None, None, True, []),
    ("budget lowered below spend", _lower_budget, None, False, ["epsilon over budget"]),
    ("hand-edited extra run", _hand_edited_run, None, False, ["epsilon over budget"]),
    ("no budget set", _no_budget, None, False, ["no budget set"]),
    ("delta over budget", _lower_delta, None, False, ["delta over budget"]),
    ("operator limit tighter", None, {"patients": 2.0}, False, ["epsilon over budget"]),
    ("operator limit looser never loosens", None, {"patients": 9.0}, True, []),
]


@pytest.mark.parametrize("name,tamper,limits,ok,problems", BUDGET_CASES, ids=[c[0] for c in BUDGET_CASES])
def test_privacy_budgets(state, name, tamper, limits, ok, problems):
    ledger = _ledger(state, [("v1", 1.0), ("v1", 1.5)])
    if tamper:
        tamper(ledger)
    outcome = checks.check_privacy_budgets(state / "state", limits=limits)
    assert outcome["ok"] is ok
    assert outcome["details"]["over_budget"] == ([] if ok else ["patients"])
    assert outcome["details"]["datasets"][0]["problems"] == problems


def test_voided_runs_do_not_count(state):
    ledger = _ledger(state, [("v1", 2.0)])
    ledger.reset_version("patients", "v1")
    ledger.charge("patients", "v2", "run-9", 2.5, 1e-5)
    outcome = checks.check_privacy_budgets(ledger.root)
    assert outcome["ok"]
    row = outcome["details"]["datasets"][0]
    assert row["epsilon_spent"] == 2.5 and row["voided_runs"] == 1 and row["runs"] == 1


def test_privacy_budget_check_fails_on_unreadable_or_missing_ledger(state):
    ledger = _ledger(state, [("v1", 1.0)])
    ledger.path("patients").write_text("{not json")
    outcome = checks.run_check("privacy_budgets", ledger_path=ledger.root)
    assert not outcome["ok"] and "not a privacy ledger file" in outcome["details"]["error"]
    outcome = checks.run_check("privacy_budgets", ledger_path=state / "nowhere")
    assert not outcome["ok"] and "not found" in outcome["details"]["error"]


# --- retention ----------------------------------------------------------------------------------
def test_retention_flags_and_deletes(state):
    root = state / "storage"
    for name in ("raw/old.enc", "raw/new.enc", "masked/old.enc", "models/old.enc"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    old = time.time() - 40 * 86400
    for name in ("raw/old.enc", "masked/old.enc", "models/old.enc"):
        os.utime(root / name, (old, old))
    log = AuditLog(state / "audit.jsonl")
    policies = [RetentionPolicy("raw/*", 30, "delete"), RetentionPolicy("masked/*", 30, "flag"),
                RetentionPolicy("models/*", 365, "flag")]
    outcome = checks.check_retention(root, policies, audit_log=log)
    assert not outcome["ok"]
    assert outcome["details"]["deleted"] == 1 and outcome["details"]["flagged"] == 1
    assert not (root / "raw/old.enc").exists() and (root / "raw/new.enc").exists()
    assert [e["event"] for e in log.entries()] == ["retention.deleted"]
    os.utime(root / "masked/old.enc", None)
    assert checks.check_retention(root, policies)["ok"]
    with pytest.raises(Exception, match="action"):
        RetentionPolicy("x", 1, "shred-everything")


# --- PII in logs, DB, records -------------------------------------------------------------------
def test_no_pii_in_task_logs(state, index):
    logs = state / "logs" / "dag_id=secure_training" / "run_id=r1"
    logs.mkdir(parents=True)
    (logs / "attempt=1.log").write_text("INFO rows=100 masked=100\nINFO pseudonym=psn_8f3a\n")
    clean = checks.check_no_pii_in_files(state / "logs", index)
    assert clean["ok"] and clean["details"]["files_scanned"] == 1
    (logs / "attempt=2.log").write_text("INFO start\nERROR bad phone 555 123 4567 in row 7\n")
    dirty = checks.check_no_pii_in_files(state / "logs", index)
    assert not dirty["ok"]
    assert dirty["details"]["locations"] == [
        {"file": "dag_id=secure_training/run_id=r1/attempt=2.log", "line": 2, "matches": 1}]
    assert_no_values(dirty)
    assert not checks.check_no_pii_in_files(state / "no-logs", index)["ok"]


def test_no_pii_in_database(state, index):
    db = state / "airflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table xcom (id integer primary key, key text, value blob)")
        connection.execute("create table dag_run (run_id text, conf text)")
        connection.execute("insert into xcom (key, value) values ('return_value', ?)", (b'{"rows": 3}',))
        connection.execute("insert into dag_run values ('r1', '{\"epsilon\": 1.0}')")
    url = f"sqlite:///{db}"
    clean = checks.check_no_pii_in_database(url, index)
    assert clean["ok"] and clean["details"]["tables_scanned"] == 2 and clean["details"]["rows_scanned"] == 2
    with sqlite3.connect(db) as connection:
        connection.execute("insert into xcom (key, value) values ('leak', ?)", (b'{"ssn": "123-45-6789"}',))
        connection.execute("insert into dag_run values ('r2', '{\"email\": \"JANE.DOE@example.com\"}')")
    dirty = checks.check_no_pii_in_database(url, index)
    assert not dirty["ok"] and dirty["details"]["matches"] == 2
    assert {"table": "xcom", "column": "value", "row": "2", "matches": 1} in dirty["details"]["locations"]
    assert {"table": "dag_run", "column": "conf", "row": "#2", "matches": 1} in dirty["details"]["locations"]
    assert_no_values(dirty)


def test_no_pii_in_records(index):
    clean = [{"notes": "seen by [PERSON]", "age": 40}, {"notes": None, "age": 50}]
    assert checks.check_no_pii_in_records(clean, index)["ok"]
    dirty = clean + [{"notes": "call Jane Q Doe", "age": 60}]
    outcome = checks.check_no_pii_in_records(dirty, index)
    assert not outcome["ok"] and outcome["details"]["locations"] == [{"row": 3, "column": "notes", "matches": 1}]


# --- access review ------------------------------------------------------------------------------
GOOD_CONN = {"conn_id": "aws_default", "source": "db", "has_password": True, "password_encrypted": True,
             "extra_keys": ["region_name"], "extra_encrypted": True}
ACCESS_CASES = [
    ("clean", [GOOD_CONN], [{"username": "admin", "role": "admin"}, {"username": "aud", "role": "viewer"}], True, None),
    ("plaintext password", [{**GOOD_CONN, "password_encrypted": False}], [], False, "password stored in plain text"),
    ("password in env URI", [{**GOOD_CONN, "source": "env"}], [], False, "password stored in plain text"),
    ("secret in extra", [{**GOOD_CONN, "extra_keys": ["aws_secret_access_key"], "extra_encrypted": False}], [],
     False, "aws_secret_access_key"),
    ("unknown role", [], [{"username": "x", "roles": ["superuser"]}], False, "users_with_unknown_roles"),
    ("two admins", [], [{"username": "a", "role": "admin"}, {"username": "b", "role": "admin"}], False, "admins"),
]


@pytest.mark.parametrize("name,connections,users,ok,evidence", ACCESS_CASES, ids=[c[0] for c in ACCESS_CASES])
def test_access_review(name, connections, users, ok, evidence):
    outcome = checks.check_access_review(connections, users)
    assert outcome["ok"] is ok
    if evidence:
        assert evidence in json.dumps(outcome["details"])


# --- running and recording ----------------------------------------------------------------------
def test_run_check_reports_failures_instead_of_crashing(state):
    outcome = checks.run_check("lineage_complete", manifests_dir=state / "none")
    assert outcome["ok"]  # no manifests and none expected
    outcome = checks.run_check("audit_chain", log_path=state / "missing.jsonl", key_path=state / "missing-key")
    assert not outcome["ok"] and "not found" in outcome["details"]["error"]
    with pytest.raises(Exception, match="unknown compliance check"):
        checks.run_check("no_such_check")


def test_record_and_require(state):
    log = AuditLog(state / "audit.jsonl")
    failed = checks.result("privacy_budgets", False, over_budget=["patients"], reason="over budget")
    checks.record_result(failed, audit_log=log, run_id="audit-1", attempt=1)
    checks.record_result(failed, audit_log=log, run_id="audit-1", attempt=1)  # a replayed attempt records once
    checks.record_result(checks.result("privacy_budgets", True), audit_log=log, run_id="audit-1", attempt=2)
    assert [(e["payload"]["attempt"], e["payload"]["ok"]) for e in log.entries()] == [(1, False), (2, True)]
    from securepipe.errors import GateFailed

    with pytest.raises(GateFailed, match="privacy_budgets failed: over budget"):
        checks.require_ok(failed)
    assert checks.require_ok(checks.result("x", True))["ok"]


def test_lineage_accepts_a_file_rewritten_by_a_recorded_run_but_not_behind_its_back(state):
    from securepipe.audit.checks import check_lineage_complete
    from securepipe.audit.manifest import artifact_record, build_manifest, write_manifest

    landing = state / "landing.csv"
    landing.write_text("v1\n")
    first = artifact_record(landing, name="landing", kind="raw", role="input")
    write_manifest(build_manifest(dag_id="secure_training", run_id="r1", trigger=TriggerRecord.create("manual"),
                                  artifacts=[first]))
    landing.write_text("v2\n")  # an erasure rewrites the landing file and records the new version
    write_manifest(build_manifest(dag_id="erasure_request", run_id="e1", trigger=TriggerRecord.create("manual"),
                                  artifacts=[artifact_record(landing, name="landing", kind="raw")]))
    assert check_lineage_complete()["ok"]
    landing.write_text("v3, edited by hand\n")
    outcome = check_lineage_complete()
    assert not outcome["ok"]
    assert {loc["problem"] for loc in outcome["details"]["locations"]} == {"content changed since the run recorded it"}
