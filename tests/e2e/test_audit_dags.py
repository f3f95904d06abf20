"""compliance_audit and erasure_request end to end with dag.test(), after a real secure_training run.

The audit passes on what a run leaves, and fails on each injected violation: a plaintext file in
storage, an edited audit entry, an over-budget ledger, a PII value in a task log. An erasure request
removes a subject, and the next audit proves the subject is gone.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from securepipe.synth import generate_patients, write_patients

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def deployment(airflow_home, kms_env, tmp_path_factory):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    from securepipe.demo.runner import embedded_env

    with create_session() as session:  # this module's audit must see only its own training runs
        session.query(DagRun).filter(DagRun.dag_id == "secure_training").delete()
    work = tmp_path_factory.mktemp("audit-dags")
    landing = work / "landing" / "patients.csv"
    write_patients(landing, 400, seed=8)
    env = embedded_env(work, kms_env.endpoint_url, kms_env.alias)
    env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(work / "logs")
    (work / "logs").mkdir()  # dag.test() runs tasks in-process and writes no task log files
    os.environ.update(env)
    dags = DagBag(dag_folder=str(REPO / "dags")).dags
    run = dags["secure_training"].test(run_conf={"epochs": 2, "rows_per_shard": 200, "max_mia_auc": 0.8})
    assert run.state == "success"
    return dags, work, landing


def _audit(deployment) -> tuple[str, dict]:
    dags, work, _ = deployment
    run = dags["compliance_audit"].test()
    retried = [ti.task_id for ti in run.get_task_instances() if ti.state == "failed" and ti.try_number > 1]
    assert not retried, f"a check that found a violation was retried: {retried}"
    report = json.loads((work / "securepipe-state" / "reports" / "latest.json").read_text())
    return run.state, {c["check"]: c for c in report["checks"]} if "checks" in report else report


def _failed(report: dict) -> set[str]:
    return {name for name, check in report.items() if isinstance(check, dict) and not check.get("ok", True)}


def test_audit_passes_on_a_clean_deployment(deployment):
    state, report = _audit(deployment)
    assert state == "success", _failed(report)
    assert {"storage_encrypted", "audit_chain", "privacy_budgets", "no_pii_in_metadata_db"} <= set(report)


def _restoring(state: Path):
    """Snapshot the whole state dir: an audit run appends to the log and moves its head file too."""
    saved = state.with_name(state.name + ".saved")
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(state, saved)

    def restore():
        shutil.rmtree(state)
        saved.rename(state)
    return restore


def test_audit_fails_on_a_plaintext_file_in_storage(deployment):
    _, work, landing = deployment
    leaked = work / "storage" / "patients" / "export.csv"
    shutil.copy(landing, leaked)
    try:
        state, report = _audit(deployment)
    finally:
        leaked.unlink()
    assert state == "failed" and "storage_encrypted" in _failed(report)


def test_audit_fails_on_an_edited_audit_entry(deployment):
    _, work, _ = deployment
    log = work / "securepipe-state" / "audit.jsonl"
    restore = _restoring(work / "securepipe-state")
    lines = log.read_text().splitlines()
    entry = json.loads(lines[0])
    entry["payload"]["tampered"] = True
    lines[0] = json.dumps(entry)
    log.write_text("\n".join(lines) + "\n")
    try:
        state, report = _audit(deployment)
    finally:
        restore()
    assert state == "failed" and "audit_chain" in _failed(report)


def test_audit_fails_on_an_over_budget_ledger(deployment):
    _, work, _ = deployment
    ledger = work / "securepipe-state" / "privacy-budget" / "patients.json"
    restore = _restoring(work / "securepipe-state")
    record = json.loads(ledger.read_text())
    record["budget"]["epsilon"] = 0.5  # less than the run already spent
    ledger.write_text(json.dumps(record))
    try:
        state, report = _audit(deployment)
    finally:
        restore()
    assert state == "failed" and "privacy_budgets" in _failed(report)


def test_audit_fails_on_a_pii_value_in_a_task_log(deployment):
    _, work, _ = deployment
    name = generate_patients(400, seed=8)["email"].iloc[17]
    log = work / "logs" / "dag_id=secure_training" / "leak.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"debug: processing {name}\n")
    try:
        state, report = _audit(deployment)
    finally:
        log.unlink()
    assert state == "failed" and "no_pii_in_task_logs" in _failed(report)


def test_erasure_removes_the_subject_and_the_audit_proves_it(deployment, kms_env):
    import io

    import pandas as pd

    from securepipe.crypto import decrypt_to_bytes
    from securepipe.audit.manifest import load_manifests
    from securepipe.erasure import seal_subject_id

    dags, work, landing = deployment
    subject = generate_patients(400, seed=8)["patient_id"].iloc[5]
    # As POST /compliance/erasure submits it: the run's conf holds the KMS ciphertext only.
    sealed = seal_subject_id(subject, "patients", kms_key_id=kms_env.alias)
    run = dags["erasure_request"].test(run_conf={"subject_ciphertext": sealed})
    assert run.state == "success"
    assert subject not in landing.read_text()
    events = [json.loads(line) for line in (work / "securepipe-state" / "audit.jsonl").read_text().splitlines()]
    erasure = [e for e in events if e["event"] == "erasure.completed"][-1]["payload"]
    assert erasure["versions_rewritten"] == 1 and erasure["rows_removed"] == 1
    assert subject not in json.dumps(events)  # only the pseudonym token is recorded
    token = erasure["subject_tokens"][0]
    for _, manifest in load_manifests(work / "securepipe-state" / "manifests"):
        for artifact in manifest["artifacts"]:
            path = Path(artifact["uri"].removeprefix("file://"))
            if artifact["kind"] == "masked" and path.exists():
                frame = pd.read_parquet(io.BytesIO(decrypt_to_bytes(path, expected_context=artifact["encryption_context"])))
                assert token not in set(frame["patient_id"]) and len(frame) > 300
    state, report = _audit(deployment)
    assert state == "success", _failed(report)
    assert report["erasures_honored"]["details"]["erased_subjects"] == 1
    assert report["erasure_requests"]["ok"] and report["erasure_requests"]["details"]["requests"] >= 1


def test_an_over_budget_run_is_refused_before_training(deployment):
    dags, work, _ = deployment
    ledger = json.loads((work / "securepipe-state" / "privacy-budget" / "patients.json").read_text())
    spent = sum(r["epsilon"] for r in ledger["runs"].values())
    target = round(min(10.0, ledger["budget"]["epsilon"] - spent + 0.5), 2)  # more than what is left
    run = dags["secure_training"].test(run_conf={"epochs": 2, "rows_per_shard": 200, "target_epsilon": target})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert states["check_budget"] == "failed" and states["train_model"] == "upstream_failed"
    assert tries["check_budget"] == 1, "a budget refusal was retried"
    after = json.loads((work / "securepipe-state" / "privacy-budget" / "patients.json").read_text())
    assert after["runs"] == ledger["runs"]  # nothing charged
    events = [json.loads(line)["event"] for line in (work / "securepipe-state" / "audit.jsonl").read_text().splitlines()]
    assert "training.budget_refused" in events
