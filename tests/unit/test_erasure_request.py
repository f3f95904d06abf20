"""Erasure requests: sealed on the API server, opened on the worker, never readable in between.

The Compliance plugin's FastAPI app runs in-process (TestClient) against this session's migrated
SQLite metadata DB, Airflow's SimpleAuthManager (real JWTs, real role checks) and the KMS emulator;
erasure_request is parsed from dags/ and stored in the DB as the dag-processor would.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from securepipe.erasure import request_context, seal_subject_id, subject_from_conf
from securepipe.errors import CryptoError, InputError

REPO = Path(__file__).resolve().parents[2]
SUBJECT = "MRN-00424242"


@pytest.fixture(scope="module")
def plugin_app(airflow_home, kms_env):
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(REPO / "dags" / "erasure_request.py"))
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:  # as a deployment that pauses DAGs at creation would leave it
        session.query(DagModel).filter(DagModel.dag_id == "erasure_request").update({"is_paused": True})
    sys.path.insert(0, str(REPO / "plugins"))
    from compliance_plugin import build_app
    from fastapi.testclient import TestClient

    auth_manager = create_auth_manager()
    return TestClient(build_app()), auth_manager


def _token(auth_manager, name: str, role: str) -> dict:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return {"Authorization": f"Bearer {auth_manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))}"}


def _erasure_runs() -> list:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return [(r.run_id, dict(r.conf or {}), r.triggering_user_name)
                for r in session.query(DagRun).filter(DagRun.dag_id == "erasure_request")]


def test_an_op_submits_and_the_run_holds_only_the_ciphertext(plugin_app, kms_env):
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    client, auth_manager = plugin_app
    reply = client.post("/erasure", json={"subject_id": SUBJECT, "dataset": "patients"},
                        headers=_token(auth_manager, "ops", "op"))
    assert reply.status_code == 201, reply.text
    run_id = reply.json()["dag_run_id"]
    assert reply.json()["url"].startswith("/dags/erasure_request/runs/") and SUBJECT not in reply.text
    runs = {run: (conf, user) for run, conf, user in _erasure_runs()}
    conf, user = runs[run_id]
    assert set(conf) == {"subject_ciphertext", "dataset"} and user == "ops"
    assert SUBJECT not in json.dumps(conf)
    with create_session() as session:  # the request unpaused the DAG: it cannot queue unseen
        assert session.query(DagModel.is_paused).filter(DagModel.dag_id == "erasure_request").scalar() is False
    # The worker opens it; the same ciphertext does not open for another dataset.
    assert subject_from_conf(conf, kms_key_id=kms_env.key_arn) == SUBJECT
    with pytest.raises(CryptoError):
        subject_from_conf({**conf, "dataset": "visits"}, kms_key_id=kms_env.key_arn)


@pytest.mark.parametrize("headers,status", [({}, 401), ({"Authorization": "Bearer not-a-jwt"}, 403)])
def test_refused_without_a_session(plugin_app, headers, status):
    client, _ = plugin_app
    before = _erasure_runs()
    assert client.post("/erasure", json={"subject_id": SUBJECT}, headers=headers).status_code == status
    assert _erasure_runs() == before


def test_a_viewer_cannot_submit(plugin_app):
    client, auth_manager = plugin_app
    before = _erasure_runs()
    reply = client.post("/erasure", json={"subject_id": SUBJECT}, headers=_token(auth_manager, "auditor", "viewer"))
    assert reply.status_code == 403 and _erasure_runs() == before


@pytest.mark.parametrize("kwargs,status", [
    ({"json": {"subject_id": "", "dataset": "patients"}}, 400),
    ({"json": {"subject_id": SUBJECT, "dataset": "../etc"}}, 400),
    ({"content": json.dumps({"subject_id": SUBJECT}), "headers": {"Content-Type": "text/plain"}}, 422),
    ({"json": [SUBJECT]}, 422),
])
def test_bad_requests_are_refused_without_echoing_the_identifier(plugin_app, kwargs, status):
    client, auth_manager = plugin_app
    headers = {**_token(auth_manager, "ops", "op"), **kwargs.pop("headers", {})}
    before = _erasure_runs()
    reply = client.post("/erasure", headers=headers, **kwargs)
    assert reply.status_code == status and SUBJECT not in reply.text and _erasure_runs() == before


def test_the_page_lists_requests_without_identifiers(plugin_app):
    client, auth_manager = plugin_app
    run_id = client.post("/erasure", json={"subject_id": SUBJECT, "dataset": "patients"},
                         headers=_token(auth_manager, "ops", "op")).json()["dag_run_id"]
    summary = client.get("/api/summary", headers=_token(auth_manager, "auditor", "viewer")).json()
    assert summary["erasures"]["deadline_hours"] == 72
    # (other tests on this worker's database may have run erasures of their own)
    listed = {r["run_id"]: r for r in summary["erasures"]["requests"]}
    assert listed[run_id]["state"] == "queued" and not listed[run_id]["overdue"]
    page = client.get("/", headers=_token(auth_manager, "auditor", "viewer")).text
    assert 'id="erasures"' in page and 'id="erasure-form"' in page and SUBJECT not in page


def test_plaintext_in_conf_is_refused_by_name_only(kms_env):
    sealed = seal_subject_id(SUBJECT, "patients", kms_key_id=kms_env.key_arn)
    for conf in ({"subject_id": SUBJECT, "dataset": "patients"},
                 {"subject_ciphertext": sealed, "subject_id": SUBJECT}):
        with pytest.raises(InputError) as refused:
            subject_from_conf(conf, kms_key_id=kms_env.key_arn)
        assert "subject_id" in str(refused.value) and SUBJECT not in str(refused.value)
    with pytest.raises(InputError):
        subject_from_conf({"subject_ciphertext": "not base64!"}, kms_key_id=kms_env.key_arn)
    with pytest.raises(CryptoError):  # base64, but no KMS ciphertext (a pasted identifier, say)
        subject_from_conf({"subject_ciphertext": "TVJOMDA0MjQyNDI="}, kms_key_id=kms_env.key_arn)
    assert request_context("patients") == {"purpose": "erasure-request", "dataset": "patients"}


def test_the_dag_fails_at_once_on_a_plaintext_identifier(airflow_home, kms_env, tmp_path, monkeypatch, capsys):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_VAR_SECUREPIPE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AIRFLOW_VAR_SECUREPIPE_KMS_KEY_ID", kms_env.key_arn)
    dag = DagBag(dag_folder=str(REPO / "dags" / "erasure_request.py")).dags["erasure_request"]
    sealed = seal_subject_id(SUBJECT, "patients", kms_key_id=kms_env.key_arn)
    # Without the sealed identifier the params refuse the trigger itself; with it, a plaintext key is
    # what the run must refuse.
    run = dag.test(run_conf={"subject_ciphertext": sealed, "subject_id": SUBJECT, "dataset": "patients"})
    tries = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert tries["erase_subject"] == ("failed", 1)  # no retry: the same conf is refused again
    assert tries["request_retraining"][0] == "upstream_failed"
    assert SUBJECT not in capsys.readouterr().out
