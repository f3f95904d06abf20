"""The "Compliance" page in the Airflow UI: runs and their lineage, audit verdicts, budgets, the latest report.

Threat model: an operator in the web UI, and anyone who can reach the API server.
Every route depends on Airflow's auth manager (`requires_authenticated`, which
reads the Bearer header or the UI's `_token` cookie), so without a session the
answer is 401/403 and no content; a browser that lands here with an expired
session gets a friendly sign-in message instead of raw JSON. The page shows
only what the evidence holds: counts, hashes, pseudonyms, key ARNs and
encryption contexts, never a value. The API server sits outside the plaintext
boundary and does not hold the evidence signing key: the page checks the audit
chain's structure itself and shows the signature verdict that the
`compliance_audit` DAG recorded (in the latest report); it cannot sign anything.

Its one write, `POST /erasure` (for whoever may trigger `erasure_request`), seals the
subject's identifier with KMS (Encrypt only) and triggers the DAG with the ciphertext,
so the identifier never reaches the metadata DB, the REST API or the UI; the erasure
list shows run ids, times, states and pseudonyms only.

The FastAPI app is built on first access of `fastapi_apps` (only the API server
asks), so schedulers and workers that load plugins import nothing from here.
The evidence is read from the state directory the DAGs write (see `state_dir`),
with the layout of securepipe.audit under it.
"""
# No `from __future__ import annotations` here: FastAPI must resolve `GetUserDep`, which is
# imported inside build_app, from the live annotation rather than from module globals.
import html
import json
import os
import urllib.parse
from functools import cached_property
from pathlib import Path

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/compliance"
LOGIN_URL = "/auth/login?next=%2Fplugin%2Fcompliance"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem 1.5rem; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1.25rem; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f4f4f4; text-align: left; } code { font-size: 12px; } .ok { color: #1a7f37; font-weight: bold; }
.bad { color: #c00; font-weight: bold; } .muted { color: #777; } section { margin-bottom: 1.5rem; }
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def _verdict(ok: bool | None, good: str = "OK", bad: str = "FAILED") -> str:
    if ok is None:
        return '<span class="muted">not checked yet</span>'
    return f'<span class="ok">{good}</span>' if ok else f'<span class="bad">{bad}</span>'


def _variable(name: str) -> str | None:
    """An Airflow variable as the DAGs read it, or None."""
    try:
        from airflow.models.variable import Variable

        return Variable.get(name, default_var=None)
    except Exception:  # noqa: BLE001 - no metadata DB here: the caller falls back to its default
        return None


def state_dir() -> Path:
    """The evidence directory the DAGs write: SECUREPIPE_STATE_DIR, else the Airflow variable
    `securepipe_state_dir` (as the DAGs resolve it), else $AIRFLOW_HOME/securepipe-state."""
    explicit = os.environ.get("SECUREPIPE_STATE_DIR")
    if explicit:
        return Path(explicit)
    configured = _variable("securepipe_state_dir")
    return Path(configured or Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "securepipe-state")


def kms_key_id() -> str:
    """The KMS key erasure requests are sealed under: the DAGs' variable, else SECUREPIPE_KMS_KEY_ID."""
    return (_variable("securepipe_kms_key_id") or os.environ.get("SECUREPIPE_KMS_KEY_ID")
            or "alias/securepipe-demo")


def erasure_requests(root: Path) -> dict:
    """The latest erasure runs from Airflow's metadata (ids, states, times: the conf is not even
    read) with their outcome from the audit log (pseudonym tokens and counts only)."""
    from datetime import datetime, timezone

    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from securepipe.audit.log import LOG_FILE_NAME, AuditLog
    from securepipe.erasure import DEFAULT_DEADLINE_HOURS, ERASURE_DAG_ID, request_status
    from securepipe.errors import SecurePipeError

    with create_session() as session:
        rows = session.execute(
            select(DagRun.run_id, DagRun.state, DagRun.queued_at, DagRun.run_after, DagRun.end_date)
            .where(DagRun.dag_id == ERASURE_DAG_ID).order_by(DagRun.run_after.desc()).limit(25)).all()
    try:
        completed = {e["payload"].get("run_id"): e["payload"] for e in AuditLog(root / LOG_FILE_NAME).entries()
                     if e.get("event") == "erasure.completed"}
    except SecurePipeError:
        completed = {}
    deadline = float(_variable("securepipe_erasure_deadline_hours") or DEFAULT_DEADLINE_HOURS)
    runs = [{"run_id": run_id, "state": str(state), "submitted_at": queued_at or run_after, "end_date": end_date}
            for run_id, state, queued_at, run_after, end_date in rows]
    return {"deadline_hours": deadline,
            "requests": request_status(runs, now=datetime.now(timezone.utc), deadline_hours=deadline,
                                       completed=completed)}


def gather_summary(root: Path) -> dict:
    """Everything the page shows, as JSON-ready data (also served at /api/summary)."""
    from securepipe.audit.ledger_view import read_ledger
    from securepipe.audit.log import LOG_FILE_NAME, AuditLog, verify_log
    from securepipe.audit.report import REPORTS_DIR_NAME
    from securepipe.errors import SecurePipeError
    from securepipe.audit.manifest import MANIFESTS_DIR_NAME, load_manifests
    from securepipe.audit.records import RunManifest

    runs = []
    for path, manifest in reversed(load_manifests(root / MANIFESTS_DIR_NAME)):
        if not isinstance(manifest, dict):
            runs.append({"manifest": path.name, "unreadable": True})
            continue
        runs.append({"manifest": path.name, **RunManifest.from_dict(manifest).summary()})
    log_path = root / LOG_FILE_NAME
    try:
        chain = verify_log(log_path, check_signatures=False).as_dict()
    except SecurePipeError as exc:
        chain = {"ok": False, "reason": str(exc), "entries": 0}
    recent = []
    try:
        recent = [{"seq": e.get("seq"), "time": e.get("time"), "event": e.get("event")}
                  for e in AuditLog(log_path).entries()][-15:][::-1]
    except SecurePipeError:
        pass
    try:
        budgets = [{k: b[k] for k in ("dataset", "epsilon_spent", "epsilon_budget", "delta_spent", "delta_budget")}
                   for b in read_ledger(root)]
    except SecurePipeError:
        budgets = []
    latest = root / REPORTS_DIR_NAME / "latest.json"
    report = None
    if latest.exists():
        try:
            data = json.loads(latest.read_text())
            report = {"generated_at": data["generated_at"], "ok": data["ok"], "passed": data["passed"],
                      "failed": data["failed"],
                      "checks": [{"check": c["check"], "ok": c["ok"]} for c in data["checks"]]}
        except (ValueError, KeyError, TypeError):
            report = {"unreadable": True}
    return {"runs": runs, "audit": {"chain": chain, "recent_events": recent}, "budgets": budgets, "report": report,
            "erasures": erasure_requests(root)}


def _number(value, places: int = 2) -> str:
    """A number for people: fixed decimals and thousands separators (ε 2.9991965 reads 3.00)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _e(value)
    return f"{value:,.{places}f}" if isinstance(value, float) else f"{value:,}"


def _run_row(run: dict) -> str:
    if run.get("unreadable"):
        return f'<tr><td colspan="9" class="bad">{_e(run["manifest"])}: unreadable</td></tr>'
    trigger = _e(run.get("trigger")) + (f" by {_e(run['user'])}" if run.get("user") else "")
    return (f'<tr><td><a href="runs/{_e(run["manifest"])}">{_e(run.get("dag_id"))}</a></td>'
            f'<td><code>{_e(run.get("run_id"))}</code></td><td>{_e(run.get("created_at"))}</td><td>{trigger}</td>'
            f'<td>{_number(run.get("artifacts"))}</td><td>{_number(run.get("pii_found"))}</td>'
            f'<td>{_number(run.get("epsilon"))}</td><td>{_number(run.get("budget_left"))}</td>'
            f'<td><code>{_e((run.get("model_sha256") or "")[:12])}</code></td></tr>')


def _within_budget(budget: dict) -> bool:
    if budget["epsilon_budget"] is None or budget["delta_budget"] is None:
        return False
    return budget["epsilon_spent"] <= budget["epsilon_budget"] and budget["delta_spent"] <= budget["delta_budget"]


def _hours(hours: float) -> str:
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _erasure_row(request: dict) -> str:
    link = f'/dags/erasure_request/runs/{urllib.parse.quote(request["run_id"], safe="")}'
    if request["state"] == "success" and request["rows_removed"] is None:
        outcome = '<span class="ok">done</span>; <span class="muted">no outcome in the audit log</span>'
    elif request["state"] == "success":
        tokens = ", ".join(f"<code>{_e(t)}</code>" for t in request["subject_tokens"]) or "no stored rows held"
        outcome = f'<span class="ok">erased</span> {tokens}; {_e(request["rows_removed"])} masked rows removed'
    elif request["state"] == "failed":
        outcome = '<span class="bad">FAILED</span>: open the run, fix the cause, clear it to rerun'
    else:
        outcome = ('<span class="bad">OVERDUE</span>' if request["overdue"] else '<span class="muted">pending</span>')
    return (f'<tr><td><a href="{_e(link)}" target="_top"><code>{_e(request["run_id"])}</code></a></td>'
            f'<td>{_e(request["submitted_at"][:16].replace("T", " "))} UTC</td><td>{_hours(request["age_hours"])}</td>'
            f'<td>{_hours(request["waited_hours"])}</td><td>{_e(request["state"])}</td><td>{outcome}</td></tr>')


# The form posts JSON with the session cookie (same origin). A cross-site page cannot send that
# content type without a CORS preflight, which this app never grants, and FastAPI refuses a JSON
# body sent as anything else (422), so the cookie alone cannot submit a request (no CSRF).
ERASURE_FORM = """
<form id="erasure-form" autocomplete="off">
<label>Subject identifier <input name="subject_id" type="password" required maxlength="256"></label>
<label>Dataset <input name="dataset" value="patients" required pattern="[a-z][a-z0-9_-]{0,63}"></label>
<button type="submit">Submit erasure request</button> <span id="erasure-result" role="status"></span>
</form>
<script>
document.getElementById("erasure-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target, out = document.getElementById("erasure-result");
  const body = {subject_id: form.subject_id.value, dataset: form.dataset.value};
  form.subject_id.value = "";
  const reply = await fetch("erasure", {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "Accept": "application/json"}, body: JSON.stringify(body)});
  const data = await reply.json().catch(() => ({}));
  const detail = Array.isArray(data.detail) ? data.detail.map((d) => d.msg).join("; ") : data.detail;
  out.textContent = reply.ok ? `Submitted as run ${data.dag_run_id}.`
    : `Not submitted (${reply.status}): ${detail || "see the API server log"}`;
});
</script>"""


def _erasure_section(erasures: dict) -> str:
    rows = "".join(_erasure_row(r) for r in erasures["requests"])
    return f"""<section><h2>Erasure requests</h2>
<p class="muted">Deadline {_hours(erasures["deadline_hours"])}. Identifiers are sealed with KMS on submission and
never shown; an erased subject appears as its pseudonym.</p>
<table id="erasures"><tr><th>run</th><th>submitted</th><th>age</th><th>waited</th><th>state</th><th>outcome</th></tr>
{rows or '<tr><td colspan="6" class="muted">No erasure requests.</td></tr>'}</table>{ERASURE_FORM}</section>"""


def render_index(summary: dict, user_name: str) -> str:
    chain = summary["audit"]["chain"]
    report = summary["report"] or {}
    signature_verdict = next((c["ok"] for c in report.get("checks", []) if c["check"] == "audit_chain"), None)
    run_rows = "".join(_run_row(r) for r in summary["runs"])
    budget_rows = "".join(
        f'<tr><td>{_e(b["dataset"])}</td><td>{b["epsilon_spent"]:.3f}</td><td>{_e(b["epsilon_budget"])}</td>'
        f'<td>{_verdict(_within_budget(b), "within", "OVER")}</td></tr>' for b in summary["budgets"])
    event_rows = "".join(f'<tr><td>{_e(e["seq"])}</td><td>{_e(e["time"])}</td><td>{_e(e["event"])}</td></tr>'
                         for e in summary["audit"]["recent_events"])
    check_rows = "".join(f'<tr><td>{_e(c["check"])}</td><td>{_verdict(c["ok"], "PASS", "FAIL")}</td></tr>'
                         for c in report.get("checks", []))
    chain_text = (f'{_verdict(chain.get("ok"), "intact", "BROKEN")} ({_e(chain.get("entries"))} entries)'
                  + ("" if chain.get("ok") else f' <span class="bad">{_e(chain.get("reason"))}</span>'))
    report_block = (
        f'<p id="report-summary">Latest report {_e(report.get("generated_at"))}: '
        f'{_verdict(report.get("ok"), "PASS", "FAIL")}, {_e(report.get("passed"))} passed, '
        f'{_e(report.get("failed"))} failed. <a href="report" target="_blank">Open the full report</a></p>'
        f'<table id="report-checks"><tr><th>check</th><th>verdict</th></tr>{check_rows}</table>'
        if report.get("generated_at") else '<p id="report-summary" class="muted">No compliance report yet.</p>')
    return _page("Compliance", f"""
<h1 id="compliance-title">Compliance</h1>
<p class="muted" id="signed-in">Signed in as {_e(user_name)}. Evidence holds counts, hashes and pseudonyms only.</p>
<section><h2>Audit log</h2>
<p id="audit-verdict">Hash chain: {chain_text}. Signatures (verified by compliance_audit):
{_verdict(signature_verdict, "valid", "INVALID")}.</p>
<table id="audit-events"><tr><th>seq</th><th>time</th><th>event</th></tr>{event_rows}</table></section>
<section><h2>Runs</h2>
<table id="runs"><tr><th>DAG</th><th>run</th><th>created</th><th>trigger</th><th>artifacts</th><th>PII found</th>
<th>&epsilon;</th><th>&epsilon; budget left</th><th>model</th></tr>
{run_rows or '<tr><td colspan="8" class="muted">No runs recorded.</td></tr>'}</table>
</section>
<section><h2>Privacy budgets</h2>
<table id="budgets"><tr><th>dataset</th><th>&epsilon; spent</th><th>&epsilon; budget</th><th></th></tr>
{budget_rows}</table>
</section>
{_erasure_section(summary["erasures"])}
<section><h2>Latest compliance report</h2>{report_block}</section>""")


def render_run(name: str, manifest: dict) -> str:
    artifacts = "".join(
        f'<tr><td>{_e(a.get("role"))}</td><td>{_e(a.get("kind"))}</td><td>{_e(a.get("name"))}</td>'
        f'<td><code>{_e(a.get("uri"))}</code></td><td><code>{_e((a.get("sha256") or "")[:16])}</code></td>'
        f'<td><code>{_e(a.get("kms_key_arn"))}</code></td>'
        f'<td><code>{_e(json.dumps(a.get("encryption_context"), sort_keys=True))}</code></td></tr>'
        for a in manifest.get("artifacts") or [])
    return _page(f"Run {manifest.get('run_id')}", f"""
<p><a href="../">&larr; Compliance</a></p>
<h1 id="run-title">{_e(manifest.get("dag_id"))} / <code>{_e(manifest.get("run_id"))}</code></h1>
<h2>Lineage</h2>
<table id="lineage"><tr><th>role</th><th>kind</th><th>name</th><th>URI</th><th>sha256</th><th>KMS key</th>
<th>encryption context</th></tr>{artifacts}</table>
<h2>Manifest</h2><pre id="manifest"><code>{_e(json.dumps(manifest, indent=2, sort_keys=True))}</code></pre>""")


def build_app():
    from typing import Annotated

    from fastapi import Body, Depends, FastAPI, Request
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException

    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.common.dagbag import create_dag_bag
    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_authenticated

    from securepipe.erasure import ERASURE_DAG_ID
    from securepipe.errors import InputError

    dag_bag = create_dag_bag()

    app = FastAPI(title="securepipe compliance", dependencies=[Depends(requires_authenticated())],
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def friendly_auth_errors(request: Request, exc: HTTPException):
        # A browser (the UI's iframe) gets a sign-in message; API clients keep the JSON error.
        if exc.status_code in (401, 403) and "text/html" in request.headers.get("accept", ""):
            body = (f'<h1>Compliance</h1><p id="session-expired">Your Airflow session has expired or you are not '
                    f'signed in. <a href="{LOGIN_URL}" target="_top">Sign in again</a> to see the compliance '
                    f"evidence.</p>")
            return HTMLResponse(_page("Sign in required", body), status_code=exc.status_code)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_errors_without_input(request: Request, exc: RequestValidationError):
        # FastAPI echoes the offending input by default; here that input may be a subject's identifier.
        return JSONResponse({"detail": [{"loc": e.get("loc"), "msg": e.get("msg")} for e in exc.errors()]},
                            status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def index(user: GetUserDep) -> str:
        return render_index(gather_summary(state_dir()), user.get_name())

    @app.get("/api/summary")
    def summary() -> dict:
        return gather_summary(state_dir())

    @app.post("/erasure", status_code=201, dependencies=[Depends(requires_access_dag(
        "POST", DagAccessEntity.RUN, param_dag_id=ERASURE_DAG_ID))])
    def submit_erasure(request: Request, body: Annotated[dict, Body()], user: GetUserDep, session: SessionDep) -> dict:
        """Seal the identifier with KMS and trigger erasure_request with the ciphertext only (unpaused
        first: a request must never queue behind a paused DAG). Who may: whoever may trigger that DAG."""
        from sqlalchemy import update

        from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
        from airflow.api_fastapi.core_api.routes.public.dag_run import trigger_dag_run
        from airflow.models.dag import DagModel

        from securepipe.erasure import seal_subject_id
        from securepipe.errors import SecurePipeError

        dataset = body.get("dataset", "patients")
        try:
            sealed = seal_subject_id(body.get("subject_id"), dataset, kms_key_id=kms_key_id())
        except SecurePipeError as exc:  # names the field or the KMS error code, never the identifier
            raise HTTPException(status_code=400 if isinstance(exc, InputError) else 503, detail=str(exc)) from None
        session.execute(update(DagModel).where(DagModel.dag_id == ERASURE_DAG_ID).values(is_paused=False))
        # Airflow's own trigger handler: the run is created exactly as POST .../dagRuns would create it
        # (params validated, triggering user recorded), in this request's transaction.
        run = trigger_dag_run(ERASURE_DAG_ID, TriggerDAGRunPostBody(
            logical_date=None, conf={"subject_ciphertext": sealed, "dataset": dataset}),
            dag_bag, user, session, request)
        return {"dag_id": ERASURE_DAG_ID, "dag_run_id": run.run_id, "state": str(run.state),
                "url": f"/dags/{ERASURE_DAG_ID}/runs/{urllib.parse.quote(run.run_id, safe='')}"}

    @app.get("/runs/{manifest_name}", response_class=HTMLResponse)
    def run(manifest_name: str) -> str:
        return render_run(manifest_name, _manifest_by_name(manifest_name))

    @app.get("/api/runs/{manifest_name}")
    def run_json(manifest_name: str) -> dict:
        return _manifest_by_name(manifest_name)

    @app.get("/report", response_class=HTMLResponse)
    def report() -> str:
        from securepipe.audit.report import REPORTS_DIR_NAME

        latest = state_dir() / REPORTS_DIR_NAME / "latest.html"
        if not latest.exists():
            return _page("Compliance report", '<p class="muted">No compliance report yet.</p>')
        return latest.read_text()

    def _manifest_by_name(manifest_name: str) -> dict:
        from securepipe.audit.manifest import MANIFESTS_DIR_NAME

        # Only names listed in the directory are served: no path from the URL reaches the filesystem.
        directory = state_dir() / MANIFESTS_DIR_NAME
        known = {p.name: p for p in directory.glob("*.json")} if directory.is_dir() else {}
        if manifest_name not in known:
            raise HTTPException(status_code=404, detail="no such manifest")
        try:
            return json.loads(known[manifest_name].read_text())
        except ValueError:
            raise HTTPException(status_code=422, detail="manifest is not valid JSON") from None

    return app


class CompliancePlugin(AirflowPlugin):
    name = "securepipe_compliance"
    external_views = [{"name": "Compliance", "href": f"{URL_PREFIX}/", "url_route": "compliance",
                       "destination": "nav", "category": "browse"}]

    @cached_property
    def fastapi_apps(self):
        return [{"app": build_app(), "url_prefix": URL_PREFIX, "name": "Compliance"}]
