"""The compliance audit as the DAG runs it: gather each check's inputs, run it, record the verdict.

The checks themselves live in `securepipe.audit.checks` (plain functions on plain
data); this module decides where their inputs come from for a deployment described
by `AuditSettings`, so the `compliance_audit` DAG stays a thin mapping over
`CHECK_NAMES`. Each verdict is appended to the audit log before a failed check
raises, so the report (built from the log) sees every check, failed ones included.

Threat model: to look for raw PII in logs, the metadata DB and masked data, the
audit needs the sensitive values themselves. It reads them from the landing input
inside this worker only and keeps them as keyed hashes under a per-audit random key
(`SensitiveValueIndex`); no value is ever stored, logged or reported in clear.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from securepipe.config import AwsSettings
from securepipe.errors import GateFailed, SecurePipeError
from securepipe.storage import resolve_uri

CHECK_NAMES = (
    "storage_encrypted",
    "kms_key",
    "audit_chain",
    "privacy_budgets",
    "lineage_complete",
    "retention",
    "no_pii_in_task_logs",
    "no_pii_in_metadata_db",
    "residual_pii_in_masked_sample",
    "access_review",
    "erasures_honored",
    "erasure_requests",
    "keys_current",
)
# Entity types left out of the leak index: their values look like ordinary log content
# (timestamps, five-digit numbers), so a match would say nothing.
UNINDEXED_ENTITIES = frozenset({"DATE", "DATE_TIME", "BIRTH_DATE", "ZIP", "US_ZIP", "AGE", "NONE", "FREE_TEXT"})


@dataclass
class AuditSettings:
    audit_run_id: str
    state_dir: Path
    kms_key_id: str
    aws: AwsSettings
    storage_root: Path | None = None
    landing_uri: str | None = None
    log_dir: Path | None = None
    metadata_db_url: str | None = None
    dataset: str = "patients"
    sample_rows: int = 2000
    retention: list = field(default_factory=list)  # RetentionPolicy
    budget_limits: dict[str, float] = field(default_factory=dict)
    users: list[dict] = field(default_factory=list)
    connections: list[dict] = field(default_factory=list)
    finished_runs: list[tuple[str, str]] = field(default_factory=list)
    erasure_requests: list[dict] = field(default_factory=list)  # see checks.check_erasure_requests
    erasure_deadline_hours: float | None = None
    resolve_uri: Callable[[str], object] | None = None

    @property
    def manifests_dir(self) -> Path:
        return self.state_dir / "manifests"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir
    def audit_log(self):
        from securepipe.audit.log import state_audit_log

        return state_audit_log(self.state_dir, kms_key_id=self.kms_key_id, aws=self.aws)

    def open_uri(self, uri: str):
        return resolve_uri(uri, self.resolve_uri)


def sensitive_index(settings: AuditSettings):
    """Keyed hashes of every identifying value in the landing input (none kept in clear)."""
    from securepipe.audit.pii_scan import SensitiveValueIndex
    from securepipe.ingest import iter_frames
    from securepipe.pii import load_policy
    from securepipe.pii.structured import classify_columns

    index = SensitiveValueIndex()
    if not settings.landing_uri:
        return index
    source = settings.open_uri(settings.landing_uri)
    if isinstance(source, Path) and not source.exists():
        return index
    policy = load_policy(None)
    columns = None
    for frame in iter_frames(source):
        if columns is None:
            classes = classify_columns(frame, policy)
            columns = [c for c, cls in classes.items() if cls.entity not in UNINDEXED_ENTITIES]
        for column in columns:
            for value in frame[column].dropna().unique():
                index.add(value)
    return index


def _latest_masked_records(settings: AuditSettings) -> list[dict]:
    import pandas as pd

    from securepipe.crypto import decrypt_to_bytes
    from securepipe.lineage.manifest import load_manifests

    manifests = [m for _, m in load_manifests(settings.manifests_dir) if m]
    masked = [a for m in sorted(manifests, key=lambda m: m.get("created_at", ""))
              for a in m.get("artifacts", []) if a.get("kind") == "masked"]
    if not masked:
        return []
    latest = masked[-1]
    data = decrypt_to_bytes(settings.open_uri(latest["uri"]), expected_context=latest["encryption_context"])
    frame = pd.read_parquet(io.BytesIO(data))
    return frame.sample(min(settings.sample_rows, len(frame)), random_state=0).to_dict("records")


def check_inputs(name: str, settings: AuditSettings) -> dict:
    """The keyword arguments of one check, gathered for this deployment."""
    from securepipe.audit.log import LOG_FILE_NAME
    from securepipe.audit.signing import KEY_FILE_NAME

    if name == "storage_encrypted":
        return {"storage_root": settings.storage_root}
    if name == "kms_key":
        return {"key_id": settings.kms_key_id, "aws": settings.aws}
    if name == "audit_chain":
        return {"log_path": settings.state_dir / LOG_FILE_NAME, "manifests_dir": settings.manifests_dir,
                "key_path": settings.state_dir / KEY_FILE_NAME, "aws": settings.aws}
    if name == "privacy_budgets":
        return {"ledger_path": settings.ledger_path, "limits": settings.budget_limits or None}
    if name == "lineage_complete":
        return {"manifests_dir": settings.manifests_dir, "expected_runs": settings.finished_runs}
    if name == "retention":
        return {"root": settings.storage_root, "policies": settings.retention, "audit_log": settings.audit_log()}
    if name == "no_pii_in_task_logs":
        return {"root": settings.log_dir, "index": sensitive_index(settings)}
    if name == "no_pii_in_metadata_db":
        return {"url": settings.metadata_db_url, "index": sensitive_index(settings)}
    if name == "residual_pii_in_masked_sample":
        return {"records": _latest_masked_records(settings), "index": sensitive_index(settings)}
    if name == "access_review":
        return {"connections": settings.connections, "users": settings.users}
    if name == "erasure_requests":
        return {"requests": settings.erasure_requests, "deadline_hours": settings.erasure_deadline_hours}
    if name == "keys_current":
        return {"storage_root": settings.storage_root, "state_dir": settings.state_dir}
    if name == "erasures_honored":
        from securepipe.erasure import ErasureSettings

        return {"settings": ErasureSettings(
            erasure_run_id=settings.audit_run_id, dataset=settings.dataset, state_dir=settings.state_dir,
            kms_key_id=settings.kms_key_id, aws=settings.aws, storage_root=settings.storage_root,
            resolve_uri=settings.resolve_uri)}
    raise KeyError(name)


def _run(name: str, kwargs: dict) -> dict:
    from securepipe.audit import checks

    if name == "erasures_honored":
        from securepipe.erasure import erasures_honored

        try:
            return erasures_honored(**kwargs)
        except SecurePipeError as exc:
            return checks.result(name, False, error=str(exc))
    return checks.run_check(name, **kwargs)


def run_check(name: str, settings: AuditSettings) -> dict:
    """Run one check, append its verdict to the audit log, and raise when it failed."""
    from securepipe.audit import checks

    try:
        kwargs = check_inputs(name, settings)
    except Exception as exc:  # noqa: BLE001 - a check whose inputs cannot be gathered has failed
        reason = str(exc) if isinstance(exc, SecurePipeError) else f"{type(exc).__name__} (message withheld)"
        outcome = checks.result(name, False, error=f"inputs could not be gathered: {reason}")
    else:
        outcome = _run(name, kwargs)
    checks.record_result(outcome, audit_log=settings.audit_log(), run_id=settings.audit_run_id)
    return checks.require_ok(outcome)


def finish_audit(settings: AuditSettings) -> dict:
    """Build the JSON and HTML report from the verdicts this audit run recorded; fail if any check failed."""
    from securepipe.audit.report import build_report, write_report

    log = settings.audit_log()
    latest: dict[str, dict] = {}
    for entry in log.entries():
        payload = entry.get("payload", {})
        if entry.get("event") == "compliance.check" and payload.get("run_id") == settings.audit_run_id:
            latest[payload["check"]] = {"check": payload["check"], "ok": payload["ok"], "details": payload["details"]}
    results = [latest.get(name) or {"check": name, "ok": False, "details": {"error": "did not run"}}
               for name in CHECK_NAMES]
    report = build_report(results, run_id=settings.audit_run_id, manifests_dir=settings.manifests_dir,
                          ledger_path=settings.ledger_path)
    written = write_report(report, reports_dir=settings.state_dir / "reports")
    failed = [r["check"] for r in results if not r["ok"]]
    log.append("compliance.verdict", {"run_id": settings.audit_run_id, "ok": not failed, "failed": failed},
               idempotency_key=f"compliance.verdict:{settings.audit_run_id}")
    if failed:
        raise GateFailed(f"compliance audit failed: {', '.join(failed)}")
    return {"ok": True, "checks": len(results), "report": written}
