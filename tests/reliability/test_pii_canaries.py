"""PII canaries: unique values injected into the input must never appear outside ciphertext.

secure_training runs to success and through failure paths (a bad row, a failed residual-PII
gate, KMS unreachable); then everything the system wrote is scanned: task logs, the metadata
DB (XCom, rendered fields, dag_run conf, import errors: the whole SQLite file), lineage
manifests, the audit log, reports, model cards, storage and the temp directory.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from securepipe.synth import generate_patients

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

CANARIES = {
    "name": "Quintessa Vorhalberg",
    "email": "quintessa.vorhalberg.canary@example.org",
    "phone": "(617) 555-0199",
    "ssn": "512-44-7391",  # a valid SSN shape (219-09-9999 is on the SSA blacklist)
    "card_number": "4929 8761 2345 6782",
    "address": "8123 Canaryfield Blvd, Boston, MA 02118",
    "patient_id": "MRN-7654321",
}


def _variants(value: str) -> set[bytes]:
    """The value as written, lower-cased, and (for numbers) digits only: how a leak could look."""
    forms = {value, value.lower()}
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 7:
        forms.add(digits)
    return {f.encode() for f in forms}


NEEDLES = set().union(*(_variants(v) for v in CANARIES.values()))


def _input_with_canaries(path: Path, rows: int, *, bad_row: bool = False) -> None:
    frame = generate_patients(rows, seed=21)
    for column, value in CANARIES.items():
        frame.loc[3, column] = value
    frame.loc[5, "notes"] = f"Patient {CANARIES['name']} called from {CANARIES['phone']}, SSN {CANARIES['ssn']}."
    text = frame.to_csv(index=False)
    if bad_row:  # a ragged row right after the canary row: ingest must refuse it without the values
        lines = text.splitlines(keepends=True)
        lines.insert(6, f"{CANARIES['name']},{CANARIES['email']}\n")
        text = "".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _scan(paths) -> list[str]:
    from securepipe.crypto import is_ciphertext

    leaks = []
    for root in paths:
        for file in [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file()):
            if file.suffix == ".enc" and is_ciphertext(file):
                continue  # inside ciphertext is the one allowed place
            data = file.read_bytes()
            leaks += [f"{file}: {needle[:6]!r}…" for needle in NEEDLES if needle in data]
    return leaks


@pytest.fixture(scope="module")
def canary_runs(airflow_home, kms_env, tmp_path_factory):
    from airflow.dag_processing.dagbag import DagBag

    from securepipe.demo.runner import embedded_env

    work = tmp_path_factory.mktemp("canaries")
    temp_before = set(Path(tempfile.gettempdir()).iterdir())
    env = embedded_env(work, kms_env.endpoint_url, kms_env.alias)
    policies = work / "policies"
    policies.mkdir()
    leaky = yaml.safe_load((REPO / "include/securepipe/pii/default_policy.yaml").read_text())
    leaky["columns"]["email"] = {"entity": "NONE"}  # a policy gap: the gate must catch it
    (policies / "leaky.yaml").write_text(yaml.safe_dump(leaky))
    env["AIRFLOW_VAR_SECUREPIPE_POLICY_DIR"] = str(policies)
    env["AIRFLOW_VAR_SECUREPIPE_LANDING_ROOT"] = f"file://{work / 'landing'}"
    os.environ.update(env)
    dag = DagBag(dag_folder=str(REPO / "dags")).dags["secure_training"]

    good, bad = work / "landing" / "good.csv", work / "landing" / "bad.csv"
    _input_with_canaries(good, 400)
    _input_with_canaries(bad, 400, bad_row=True)
    runs = {}
    conf = {"epochs": 2, "rows_per_shard": 200, "max_mia_auc": 0.8}
    runs["success"] = dag.test(run_conf={**conf, "input_uri": f"file://{good}"})
    runs["bad_row"] = dag.test(run_conf={**conf, "input_uri": f"file://{bad}"})
    runs["gate"] = dag.test(run_conf={**conf, "input_uri": f"file://{good}", "masking_policy": "leaky"})
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = os.environ["AIRFLOW_CONN_AWS_DEFAULT"].replace(
        kms_env.endpoint_url, "http://127.0.0.1:9")  # nothing listens on the discard port
    os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
    try:
        runs["kms_down"] = dag.test(run_conf={**conf, "input_uri": f"file://{good}"})
    finally:
        os.environ.update(env)
    temp_new = [p for p in Path(tempfile.gettempdir()).iterdir() if p not in temp_before]
    return runs, work, airflow_home, temp_new


def test_each_path_ended_as_expected(canary_runs):
    runs, *_ = canary_runs
    assert runs["success"].state == "success"
    for failure in ("bad_row", "gate", "kms_down"):
        assert runs[failure].state == "failed", failure
    gate = {ti.task_id: ti for ti in runs["gate"].get_task_instances()}
    assert gate["finalize_masking"].state == "failed"
    assert gate["finalize_masking"].try_number == 1, "the residual-PII gate's refusal was retried"


def test_failed_runs_published_nothing(canary_runs):
    runs, work, *_ = canary_runs
    published = {p.parent.name for p in (work / "storage").rglob("dataset.parquet.enc")}
    from securepipe.storage import safe_run_id

    safe_ids = {safe_run_id(r.run_id) for r in runs.values()}
    assert published & safe_ids == {safe_run_id(runs["success"].run_id)}


def test_no_canary_anywhere_but_ciphertext(canary_runs):
    _, work, airflow_home, temp_new = canary_runs
    places = [
        airflow_home.path / "logs",            # task logs
        airflow_home.path / "airflow.db",      # XCom, rendered fields, dag_run conf, import errors
        work / "securepipe-state",             # audit log, manifests, ledger, model cards, reports
        work / "storage",                      # every stored artifact
        work / "openlineage",
        *temp_new,                             # temp files left behind
    ]
    scanned = [p for p in places if p.exists()]
    assert airflow_home.path / "airflow.db" in scanned and work / "storage" in scanned
    assert _scan(scanned) == []


def test_canaries_are_findable_by_the_scan(canary_runs):
    """The scan would see a leak: the input itself holds every canary."""
    _, work, *_ = canary_runs
    assert len(_scan([work / "landing" / "good.csv"])) >= len(CANARIES)


def test_audit_log_recorded_the_failures(canary_runs):
    import json

    _, work, *_ = canary_runs
    events = [json.loads(line)["event"] for line in (work / "securepipe-state" / "audit.jsonl").read_text().splitlines()]
    assert "pipeline.gate_failed" in events
    assert "lineage.manifest_written" in events
