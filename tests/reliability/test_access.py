"""Access: who may trigger runs and read evidence, against a real api-server with SimpleAuthManager.

Roles (see README "Access"): admin (everything), op (trigger runs, clear tasks), viewer (read the UI
and the Compliance page). Every API route refuses a request without a valid token; the api-server
binds loopback by default.
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from securepipe.demo.stack import AirflowStack, StackConfig, passwords_file
from securepipe.kms_emulator import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-access")
    stack = AirflowStack(StackConfig(home=home, api_port=free_port(), sql_alchemy_conn=f"sqlite:///{home}/a.db"))
    stack.migrate()
    stack.start("api-server", "api-server")
    stack.start("dag-processor", "dag-processor")
    try:
        stack.wait_for_dag("secure_training")
        yield stack
    finally:
        stack.stop()


def _call(stack, method, path, user=None, body=None, token=None):
    request = urllib.request.Request(f"{stack.config.base_url}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if user:
        password = json.loads(passwords_file(stack.config.home).read_text())[user]
        reply = urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - loopback
            f"{stack.config.base_url}/auth/token", method="POST",
            data=json.dumps({"username": user, "password": password}).encode(),
            headers={"Content-Type": "application/json"}))
        token = json.load(reply)["access_token"]
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request) as reply:  # noqa: S310 - loopback
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


TRIGGER = "/api/v2/dags/secure_training/dagRuns"


@pytest.mark.parametrize("user,expected", [("viewer_missing", None), ("auditor", 403), ("ops", 200), ("admin", 200)])
def test_who_may_trigger_a_training_run(api, user, expected):
    if expected is None:
        assert _call(api, "POST", TRIGGER, body={"logical_date": None}) == 401
        assert _call(api, "POST", TRIGGER, body={"logical_date": None}, token="not-a-jwt") in (401, 403)
        return
    assert _call(api, "POST", TRIGGER, user=user, body={"logical_date": None, "conf": {"epochs": 1}}) == expected


# (route, what a viewer gets): connections and variables may hold secrets, so viewers are refused.
ROUTES = [("/api/v2/dags", 200), ("/api/v2/dags/secure_training/dagRuns", 200), ("/compliance/", 200),
          ("/compliance/api/summary", 200), ("/api/v2/connections", 403), ("/api/v2/variables", 403)]


@pytest.mark.parametrize("path,viewer", ROUTES)
def test_every_route_needs_a_session(api, path, viewer):
    assert _call(api, "GET", path) in (401, 403)
    assert _call(api, "GET", path, user="auditor") == viewer
    assert _call(api, "GET", path, user="admin") == 200


def test_viewer_cannot_change_variables_or_connections(api):
    body = {"key": "securepipe_kms_key_id", "value": "alias/attacker"}
    assert _call(api, "POST", "/api/v2/variables", user="auditor", body=body) == 403


def test_api_binds_loopback_by_default(api):
    assert api.config.host == "127.0.0.1"
    assert api.env["AIRFLOW__API__HOST"] == "127.0.0.1"


SECRET_PATTERNS = [r"AKIA[0-9A-Z]{16}", r"(?i)(password|secret|token)\s*=\s*['\"][^'\"]{6,}['\"]",
                   r"[A-Za-z0-9_-]{43}=", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"]


def test_no_secret_in_dag_code():
    for path in (REPO / "dags").rglob("*.py"):
        text = path.read_text()
        for pattern in SECRET_PATTERNS:
            assert not re.search(pattern, text), f"{path.name} matches {pattern}"
