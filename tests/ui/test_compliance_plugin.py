"""The Compliance page in a real Airflow 3 api-server: refused without a session, shown with one.

One api-server per module (temp AIRFLOW_HOME, SQLite, migrated DB, SimpleAuthManager
with a passwords file, a free port, BASE_URL and JWT secret set by
securepipe.demo.stack), with evidence written by the real library: an audit log, two
signed manifests, a privacy ledger and a compliance report.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from securepipe.demo.stack import AirflowStack, StackConfig, passwords_file
from securepipe.kms_emulator import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO_ROOT / "docs" / "screenshots" / "compliance.png"
REPORT_SCREENSHOT = REPO_ROOT / "docs" / "screenshots" / "compliance-report.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
RUN_ID = "manual__2026-11-26T05:00:00+00:00"


def seed_evidence(state: Path) -> None:
    """Evidence as the DAGs leave it, written through the library under test."""
    saved = os.environ.get("SECUREPIPE_STATE_DIR"), os.environ.pop("SECUREPIPE_KMS_KEY_ID", None)
    os.environ["SECUREPIPE_STATE_DIR"] = str(state)
    try:
        from securepipe.audit import checks
        from securepipe.audit.log import AuditLog
        from securepipe.audit.report import build_report, write_report
        from securepipe.lineage.manifest import artifact_record, build_manifest, trigger_info, write_manifest
        from securepipe.training.ledger import PrivacyLedger

        log = AuditLog()
        log.append("pipeline.start", {"rows": 200})
        arn, ctx = "arn:aws:kms:us-east-1:000000000000:key/demo", {"dataset": "patients", "purpose": "masked"}
        landing, masked = state / "patients.csv", state / "masked.parquet.enc"
        landing.write_text("stand-in\n")
        masked.write_bytes(b"stand-in")
        write_manifest(build_manifest(
            dag_id="ingest_and_mask", run_id="scheduled__2026-11-25T00:00:00+00:00", trigger=trigger_info("schedule"),
            artifacts=[artifact_record(landing, name="landing", kind="raw", role="input"),
                       artifact_record(masked, name="masked", kind="masked", kms_key_arn=arn, encryption_context=ctx)],
            pii_report={"notes": {"PERSON": 31, "PHONE_NUMBER": 9}, "email": {"EMAIL_ADDRESS": 200}}), audit_log=log)
        # The first audit runs before any training: no ledger yet, so its budget check fails.
        write_report(build_report([checks.run_check("audit_chain"), checks.run_check("privacy_budgets")],
                                  run_id="compliance_audit__0"))
        write_manifest(build_manifest(
            dag_id="secure_training", run_id=RUN_ID, trigger=trigger_info("manual", user="ops", params={"epsilon": 3}),
            artifacts=[artifact_record(masked, name="masked", kind="masked", role="input", kms_key_arn=arn,
                                       encryption_context=ctx)],
            pii_report={"notes": {"PERSON": 12, "PHONE_NUMBER": 4}},
            privacy={"dataset": "patients", "epsilon": 1.25, "delta": 1e-5, "budget_left": 6.75},
            model={"uri": "file:///models/model.enc", "sha256": "ab" * 32, "metrics": {"auc": 0.72}}), audit_log=log)
        ledger = PrivacyLedger(state)
        for name, budget, spends in (("patients", 8.0, [1.0, 0.75, 1.25]), ("visits", 3.0, [0.5, 0.5])):
            ledger.set_budget(name, budget, 1e-4)
            for i, epsilon in enumerate(spends):
                ledger.charge(name, "v1", f"{name}-run-{i}", epsilon, 1e-5)
            # Spread the charges over days, as a week of scheduled runs would.
            record = json.loads(ledger.path(name).read_text())
            for i, run in enumerate(record["runs"].values()):
                run["charged_at"] = f"2026-11-2{i + 3}T05:00:00+00:00"
            ledger.path(name).write_text(json.dumps(record))
        results = [checks.run_check("audit_chain"), checks.run_check("lineage_complete"),
                   checks.run_check("privacy_budgets")]
        write_report(build_report(results, run_id="compliance_audit__1"))
    finally:
        os.environ.pop("SECUREPIPE_STATE_DIR")
        if saved[0] is not None:
            os.environ["SECUREPIPE_STATE_DIR"] = saved[0]
        if saved[1] is not None:
            os.environ["SECUREPIPE_KMS_KEY_ID"] = saved[1]


def wait_for_api(stack: AirflowStack, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        try:
            with urllib.request.urlopen(f"{stack.config.base_url}/api/v2/monitor/health", timeout=3):  # noqa: S310
                return
        except OSError:  # refused while starting (HTTPError is an OSError too)
            if time.monotonic() > deadline:
                raise TimeoutError(f"api-server not up in {timeout:.0f}s; see {stack.log_dir}") from None
            time.sleep(0.5)


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory, kms_env):
    home = tmp_path_factory.mktemp("airflow-home")
    state = home / "securepipe-state"
    seed_evidence(state)
    # The emulator's KMS: erasure requests are sealed with it on the api-server.
    config = StackConfig(home=home, api_port=free_port(), sql_alchemy_conn=f"sqlite:///{home / 'airflow.db'}",
                         extra_env={"SECUREPIPE_STATE_DIR": str(state), "AIRFLOW__API__WORKERS": "1", **kms_env.env})
    stack = AirflowStack(config)
    stack.migrate()
    stack.start("api-server", "api-server")
    try:
        wait_for_api(stack)
        yield stack
    finally:
        stack.stop()


def login(stack: AirflowStack, user: str) -> str:
    password = json.loads(passwords_file(stack.config.home).read_text())[user]
    reply = urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - loopback
        f"{stack.config.base_url}/auth/token", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"username": user, "password": password}).encode()), timeout=30)
    return json.load(reply)["access_token"]


def call(stack, path, *, token=None, cookie=None, accept="application/json"):
    request = urllib.request.Request(f"{stack.config.base_url}{path}", headers={"Accept": accept})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if cookie:
        request.add_header("Cookie", f"_token={cookie}")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - loopback
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


ROUTES = ["/compliance/", "/compliance/api/summary", "/compliance/report",
          "/compliance/api/runs/whatever.json", "/compliance/runs/whatever.json"]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("credentials,expected", [
    ({}, 401),
    ({"token": "not-a-jwt"}, 403),
    ({"cookie": "not-a-jwt"}, 403),
])
def test_refused_without_a_valid_session(airflow_api, path, credentials, expected):
    status, body = call(airflow_api, path, **credentials)
    assert status == expected
    assert "secure_training" not in body and "patients" not in body


def test_expired_session_in_a_browser_gets_a_friendly_message(airflow_api):
    status, body = call(airflow_api, "/compliance/", cookie="expired.or.bad", accept="text/html,*/*")
    assert status == 403
    assert 'id="session-expired"' in body and "Sign in again" in body and "secure_training" not in body


def test_authenticated_calls_see_the_evidence(airflow_api):
    token = airflow_api.token()
    status, body = call(airflow_api, "/compliance/api/summary", token=token)
    assert status == 200
    summary = json.loads(body)
    assert [r["run_id"] for r in summary["runs"]] == [RUN_ID, "scheduled__2026-11-25T00:00:00+00:00"]
    assert [r["pii_found"] for r in summary["runs"]] == [16, 240]
    assert summary["audit"]["chain"]["ok"] and summary["audit"]["chain"]["entries"] == 3
    assert [(b["dataset"], b["epsilon_spent"], b["epsilon_budget"]) for b in summary["budgets"]] == [
        ("patients", 3.0, 8.0), ("visits", 1.0, 3.0)]
    assert summary["report"]["ok"] and summary["report"]["passed"] == 3
    status, page = call(airflow_api, "/compliance/", cookie=token, accept="text/html")
    assert status == 200 and "Signed in as admin" in page
    manifest_name = summary["runs"][0]["manifest"]
    status, run_page = call(airflow_api, f"/compliance/runs/{manifest_name}", token=token)
    assert status == 200 and "arn:aws:kms:us-east-1:000000000000:key/demo" in run_page
    assert call(airflow_api, "/compliance/api/runs/..%2Fprivacy-budget%2Fpatients.json", token=token)[0] == 404
    status, report = call(airflow_api, "/compliance/report", token=token)
    assert status == 200 and 'id="epsilon-chart"' in report


def test_viewer_role_can_read(airflow_api):
    assert call(airflow_api, "/compliance/api/summary", token=login(airflow_api, "auditor"))[0] == 200


def test_an_erasure_request_leaves_the_identifier_nowhere(airflow_api):
    """Submitted as ops through the real api-server; then read back as every role, and the DB and logs."""
    subject = "MRN-77120934"
    airflow_api.run_cli("dags", "reserialize")  # the DAG as a dag-processor would store it, paused or not
    body = json.dumps({"subject_id": subject, "dataset": "patients"}).encode()
    request = urllib.request.Request(f"{airflow_api.config.base_url}/compliance/erasure", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {login(airflow_api, 'ops')}"})
    with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310 - loopback
        assert reply.status == 201
        run_id = json.load(reply)["dag_run_id"]
    for user in ("admin", "ops", "auditor"):
        status, runs = call(airflow_api, "/api/v2/dags/erasure_request/dagRuns", token=login(airflow_api, user))
        assert status == 200 and run_id in runs and subject not in runs
        status, dag = call(airflow_api, "/api/v2/dags/erasure_request", token=login(airflow_api, user))
        assert json.loads(dag)["is_paused"] is False
    summary = json.loads(call(airflow_api, "/compliance/api/summary", token=login(airflow_api, "auditor"))[1])
    assert [(r["run_id"], r["state"]) for r in summary["erasures"]["requests"]] == [(run_id, "queued")]
    stored = [airflow_api.config.home / "airflow.db", *airflow_api.log_dir.glob("*.log")]
    assert not [p.name for p in stored if subject.encode() in p.read_bytes()]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium "
                                                 "(apt-get install -y chromium chromium-driver)")
def test_browser_login_and_compliance_page(airflow_api):
    from playwright.sync_api import expect, sync_playwright

    base = airflow_api.config.base_url
    password = json.loads(passwords_file(airflow_api.config.home).read_text())["admin"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # Signed out: the plugin route redirects to the login page, the app answers 401.
            page.goto(f"{base}/plugin/compliance")
            page.wait_for_selector("input[name=username]", timeout=60_000)
            assert "/auth/login" in page.url
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)
            page.goto(f"{base}/")
            page.get_by_role("button", name="Browse").click()
            page.get_by_role("menuitem", name="Compliance", exact=True).click()
            page.wait_for_url(re.compile(r".*/plugin/compliance.*"), timeout=30_000)
            frame = page.frame_locator('iframe[title="Compliance"]')
            expect(frame.locator("#compliance-title")).to_have_text("Compliance", timeout=30_000)
            expect(frame.locator("#runs")).to_contain_text("secure_training")
            expect(frame.locator("#runs")).to_contain_text(RUN_ID)
            expect(frame.locator("#audit-verdict")).to_contain_text("intact")
            expect(frame.locator("#audit-verdict")).to_contain_text("valid")
            expect(frame.locator("#budgets")).to_contain_text("patients")
            expect(frame.locator("#report-summary")).to_contain_text("PASS")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            # The lineage of the run, one click further.
            frame.get_by_role("link", name="secure_training").click()
            expect(frame.locator("#lineage")).to_contain_text("arn:aws:kms:us-east-1:000000000000:key/demo")
            # The full report, served to the same session (the cookie goes along).
            page.goto(f"{base}/compliance/report")
            expect(page.locator("#verdict")).to_have_text("PASS")
            expect(page.locator("#epsilon-chart")).to_be_visible()
            page.screenshot(path=str(REPORT_SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000 and REPORT_SCREENSHOT.stat().st_size > 10_000
