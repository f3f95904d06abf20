"""The compliance checks, as plain functions the `compliance_audit` DAG maps over.

Threat model: each check is evidence that one control still holds; together they
defend against every adversary in THREAT-MODEL.md after the fact (a plaintext
file in the bucket, a disabled key, an edited audit entry, an overspent budget,
a run without lineage, data kept past its time, a PII value in a log, a
connection with a plaintext password).

Every check returns `{"check": name, "ok": bool, "details": {...}}` where details
hold counts and locations (paths, table/column/row, conn ids) only, never a value,
so the result can go to XCom, the audit log and the HTML report as is. Inputs are
plain data or paths: nothing here imports Airflow, so every check runs in a unit
test and the DAG only gathers the inputs (connections, users, log folders).
"""
from __future__ import annotations

import fnmatch
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterable

from securepipe import config
from securepipe.audit.log import AuditLog, check_expected_heads, default_log_path, resolve_key_path, verify_log
from securepipe.audit.pii_scan import ScanFindings, SensitiveValueIndex, iter_text_lines
from securepipe.audit.signing import get_signing_key
from securepipe.errors import GateFailed, SecurePipeError
from securepipe.storage import sha256_file

MAX_LOCATIONS = 20
SECRET_EXTRA_KEYS = ("password", "passwd", "secret", "token", "private_key", "api_key", "access_key",
                     "secret_access_key", "client_secret", "key_file_content")


def result(check: str, ok: bool, **details) -> dict:
    return {"check": check, "ok": bool(ok), "details": details}


def _storage_root(root):
    """A local path, or an object-store path (Airflow's ObjectStoragePath / a UPath) as given,
    so file:// and s3:// roots share the same scan."""
    if isinstance(root, (str, os.PathLike)) and "://" not in str(root):
        return Path(root)
    if isinstance(root, str) and root.startswith("file://"):
        return Path(root[len("file://"):])
    return root


def _files_under(root) -> list[tuple[str, object]]:
    """(relative posix path, path) of every file under `root`, sorted; [] when it is not a directory."""
    invalidate = getattr(getattr(root, "fs", None), "invalidate_cache", None)
    if invalidate is not None:
        invalidate()  # s3fs caches listings: a stale one would miss an object written since
    if not root.is_dir():
        return []
    prefix = str(root).rstrip("/") + "/"
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            text = str(path)
            found.append((text[len(prefix):] if text.startswith(prefix) else path.name, path))
    return sorted(found, key=lambda item: item[0])


def _limited(items: list) -> list:
    return items[:MAX_LOCATIONS]


# --- every stored artifact is the pipeline's ciphertext -----------------------------------------
def _default_ciphertext_test() -> Callable[[Path], bool]:
    from securepipe.crypto import is_ciphertext  # the format's owner decides what its ciphertext looks like

    return is_ciphertext


def check_storage_encrypted(storage_root, *, is_ciphertext: Callable[[Path], bool] | None = None,
                            exclude: Iterable[str] = ()) -> dict:
    """Every file under `storage_root` (a local path or an s3:// ObjectStoragePath) must be
    the pipeline's ciphertext.

    `exclude` holds glob patterns (relative paths) for files that are public by
    design (e.g. a model card). Temp files of atomic writes count too: plaintext in
    a half-written file is still plaintext on disk."""
    check = "storage_encrypted"
    root = _storage_root(storage_root)
    if not root.is_dir():
        return result(check, False, reason="storage root not found", root=str(root))
    is_ciphertext = is_ciphertext or _default_ciphertext_test()
    exclude = tuple(exclude)
    scanned, plaintext, excluded = 0, [], 0
    for relative, path in _files_under(root):
        if any(fnmatch.fnmatch(relative, pattern) for pattern in exclude):
            excluded += 1
            continue
        scanned += 1
        if not is_ciphertext(path):
            plaintext.append(relative)
    return result(check, not plaintext, root=str(root), files_scanned=scanned, files_excluded=excluded,
                  plaintext_files=len(plaintext), locations=_limited(plaintext))


# --- KMS key enabled, rotation on ---------------------------------------------------------------
def check_kms_key(key_id: str | None = None, *, aws=None) -> dict:
    check = "kms_key"
    key_id = config.kms_key_id(key_id)
    if not key_id:
        return result(check, False, reason="no KMS key configured (SECUREPIPE_KMS_KEY_ID)")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    aws = aws or config.aws_from_env()
    client = boto3.client("kms", **aws.boto3_kwargs("kms"))
    try:
        meta = client.describe_key(KeyId=key_id)["KeyMetadata"]
        rotation = client.get_key_rotation_status(KeyId=meta["KeyId"])["KeyRotationEnabled"]
    except ClientError as exc:
        return result(check, False, reason=f"KMS refused: {exc.response.get('Error', {}).get('Code', 'unknown')}")
    except BotoCoreError as exc:
        return result(check, False, reason=f"KMS unreachable: {type(exc).__name__}")
    state = meta.get("KeyState")
    problems = [p for p, bad in (("key not enabled", state != "Enabled" or not meta.get("Enabled")),
                                 ("automatic rotation off", not rotation)) if bad]
    return result(check, not problems, key_arn=meta["Arn"], key_state=state, rotation_enabled=bool(rotation),
                  problems=problems)


# --- audit chain and manifest signatures --------------------------------------------------------
def check_audit_chain(log_path=None, *, manifests_dir=None, key_path=None, aws=None) -> dict:
    """The log's chain, hashes, signatures and head; every manifest's signature; each
    manifest's recorded audit head is in the chain; each manifest written to the
    log still has the hash the log recorded."""
    from securepipe.lineage.manifest import default_manifests_dir, load_manifests, verify_manifest_signature

    check = "audit_chain"
    log_path = Path(log_path) if log_path else default_log_path()
    key = get_signing_key(resolve_key_path(log_path, key_path), aws=aws)
    verdict = verify_log(log_path, key=key)
    details = {"log": str(log_path), "entries": verdict.entries, "first_bad_line": verdict.first_bad_line,
               "first_bad_seq": verdict.first_bad_seq, "reason": verdict.reason}
    manifests = load_manifests(manifests_dir or default_manifests_dir())
    bad_manifests: list[dict] = []
    heads = []
    for path, manifest in manifests:
        if manifest is None:
            bad_manifests.append({"manifest": path.name, "reason": "not valid JSON"})
            continue
        reason = verify_manifest_signature(manifest, key)
        if reason:
            bad_manifests.append({"manifest": path.name, "reason": reason})
            continue
        head = manifest.get("audit_head") or {}
        if head.get("log") == log_path.name and isinstance(head.get("seq"), int) and head["seq"] >= 0:
            heads.append((path.name, head["seq"], head.get("hash")))
    if verdict.ok:
        missing_head = check_expected_heads(verdict, heads)
        if missing_head:
            bad_manifests.append({"manifest": missing_head[0], "reason": missing_head[1]})
        on_disk = {path.name: path for path, _ in manifests}
        recorded_names = set()
        for entry in AuditLog(log_path).entries():
            if entry.get("event") != "lineage.manifest_written":
                continue
            name, recorded = entry["payload"].get("manifest"), entry["payload"].get("manifest_sha256")
            recorded_names.add(name)
            path = on_disk.get(name)
            if path is None:
                bad_manifests.append({"manifest": name, "reason": f"recorded at audit seq {entry['seq']} but missing"})
            elif sha256_file(path) != recorded:
                bad_manifests.append({"manifest": name, "reason": f"differs from the hash at audit seq {entry['seq']}"})
        # A manifest the log never recorded was slipped in, or the log lost its tail (truncated).
        bad_manifests.extend({"manifest": name, "reason": "not recorded in the audit log (log truncated, or "
                                                            "manifest added outside the pipeline)"}
                             for name in sorted(set(on_disk) - recorded_names))
    details.update(manifests_checked=len(manifests), bad_manifests=_limited(bad_manifests))
    return result(check, verdict.ok and not bad_manifests, **details)


# --- privacy budgets ----------------------------------------------------------------------------
def check_privacy_budgets(ledger_path=None, *, limits: dict[str, float] | None = None) -> dict:
    """Every dataset's spent epsilon and delta are within its budget (the ledger's; for
    epsilon also `limits`, whichever is lower: an operator may tighten a budget but
    the audit never loosens it). A dataset without a budget fails (fail closed)."""
    from securepipe.audit.ledger_view import read_ledger

    check = "privacy_budgets"
    rows, over = [], []
    for dataset in read_ledger(ledger_path):
        name, budget = dataset["dataset"], dataset["epsilon_budget"]
        if limits and name in limits:
            budget = limits[name] if budget is None else min(budget, limits[name])
        problems = []
        if budget is None or dataset["delta_budget"] is None:
            problems.append("no budget set")
        else:
            if dataset["epsilon_spent"] > budget + 1e-9:
                problems.append("epsilon over budget")
            if dataset["delta_spent"] > dataset["delta_budget"] + 1e-15:
                problems.append("delta over budget")
        rows.append({"dataset": name, "epsilon_spent": dataset["epsilon_spent"], "epsilon_budget": budget,
                     "delta_spent": dataset["delta_spent"], "delta_budget": dataset["delta_budget"],
                     "runs": len(dataset["history"]), "voided_runs": dataset["voided_runs"], "problems": problems})
        if problems:
            over.append(name)
    return result(check, not over, datasets=rows, over_budget=over)


# --- lineage complete ---------------------------------------------------------------------------
ROOT_KINDS = ("source", "raw")


def _is_lineage_root(artifact: dict) -> bool:
    """An input that came from outside the pipeline (the landing file): lineage starts there."""
    return artifact.get("role") == "input" and artifact.get("kind") in ROOT_KINDS


def _artifact_problems(artifact: dict) -> list[str]:
    from securepipe.lineage.manifest import ARTIFACT_FIELDS

    problems = [f"no {name}" for name in ARTIFACT_FIELDS if artifact.get(name) in (None, "", {})]
    if artifact.get("kind") in ROOT_KINDS:  # the external drop file (or its erasure rewrite): not ours to encrypt
        problems = [p for p in problems if p not in ("no kms_key_arn", "no encryption_context")]
    return problems


def check_lineage_complete(manifests_dir=None, *, expected_runs: Iterable[tuple[str, str]] = (),
                           model_uris: Iterable[str] = (), verify_local_artifacts: bool = True) -> dict:
    """Every run has a complete manifest, every model traces back to its datasets.

    expected_runs: (dag_id, run_id) pairs that finished (from Airflow's metadata);
    model_uris: models found in storage; each must be an artifact of some manifest.
    An input artifact must be the output of an earlier run (matched by content hash)
    unless it is a lineage root (role input, kind "source" or "raw": the landing file),
    so a model traces to its masked and raw data.
    Local artifacts that still exist must still have their recorded hash."""
    from securepipe.lineage.manifest import REQUIRED_FIELDS, default_manifests_dir, load_manifests

    check = "lineage_complete"
    manifests = load_manifests(manifests_dir or default_manifests_dir())
    problems: list[dict] = []
    produced: set[str] = set()
    seen_runs: set[tuple[str, str]] = set()
    artifact_uris: set[str] = set()
    valid = [(path, m) for path, m in manifests if isinstance(m, dict)]
    # Every version a run wrote at a URI: a file that now holds a later recorded version changed
    # through the pipeline (an erasure rewrites the landing file), not behind its back.
    versions = {}
    for _, manifest in valid:
        for artifact in manifest.get("artifacts") or []:
            if artifact.get("role") == "output" and artifact.get("uri"):
                versions.setdefault(artifact["uri"], set()).add(artifact.get("sha256"))
    for path, manifest in manifests:
        if manifest is None:
            problems.append({"manifest": path.name, "problem": "not valid JSON"})
    for path, manifest in valid:
        seen_runs.add((manifest.get("dag_id"), manifest.get("run_id")))
        missing = [name for name in REQUIRED_FIELDS if manifest.get(name) in (None, "")]
        if missing:
            problems.append({"manifest": path.name, "problem": f"missing {', '.join(missing)}"})
        for artifact in manifest.get("artifacts") or []:
            artifact_uris.add(artifact.get("uri"))
            if artifact.get("role") == "output" and artifact.get("sha256"):
                produced.add(artifact["sha256"])
            for problem in _artifact_problems(artifact):
                problems.append({"manifest": path.name, "artifact": artifact.get("name"), "problem": problem})
            uri = artifact.get("uri") or ""
            if verify_local_artifacts and uri.startswith("file://") and artifact.get("sha256"):
                local = Path(uri[len("file://"):])
                current = sha256_file(local) if local.is_file() else None
                if current is not None and current != artifact["sha256"] and current not in versions.get(uri, ()):
                    problems.append({"manifest": path.name, "artifact": artifact.get("name"),
                                     "problem": "content changed since the run recorded it"})
        model = manifest.get("model")
        if model is not None:
            if not model.get("sha256"):
                problems.append({"manifest": path.name, "problem": "model without sha256"})
            if model.get("uri"):
                artifact_uris.add(model["uri"])
    for path, manifest in valid:
        for artifact in manifest.get("artifacts") or []:
            if artifact.get("role") == "input" and not _is_lineage_root(artifact) \
                    and artifact.get("sha256") not in produced:
                problems.append({"manifest": path.name, "artifact": artifact.get("name"),
                                 "problem": "input not produced by any recorded run"})
    missing_runs = [{"dag_id": d, "run_id": r} for d, r in expected_runs if (d, r) not in seen_runs]
    untraced_models = [uri for uri in model_uris if uri not in artifact_uris]
    return result(check, not problems and not missing_runs and not untraced_models,
                  manifests=len(manifests), problems=len(problems), locations=_limited(problems),
                  runs_without_manifest=_limited(missing_runs), models_without_lineage=_limited(untraced_models))


# --- retention ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetentionPolicy:
    pattern: str  # glob relative to the root, e.g. "raw/**"
    max_age_days: float
    action: str = "flag"  # "flag" or "delete"

    def __post_init__(self):
        if self.action not in ("flag", "delete") or self.max_age_days < 0:
            raise SecurePipeError(f"retention policy {self.pattern}: action must be flag/delete, age >= 0")


def check_retention(root, policies: Iterable[RetentionPolicy], *, now: float | None = None,
                    audit_log: AuditLog | None = None) -> dict:
    """Files older than their policy's age (by modification time) are flagged (the check
    fails) or deleted (recorded in the audit log; the check passes). First matching
    policy wins. `root` is a local path or an object-store path, as for storage_encrypted."""
    check = "retention"
    root = _storage_root(root)
    policies = list(policies)
    now = time.time() if now is None else now
    flagged, deleted, checked = [], [], 0
    for relative, path in _files_under(root):
        policy = next((p for p in policies if fnmatch.fnmatch(relative, p.pattern)), None)
        if policy is None:
            continue
        checked += 1
        if (now - path.stat().st_mtime) / 86400 <= policy.max_age_days:
            continue
        if policy.action == "delete":
            path.unlink()
            deleted.append({"file": relative, "policy": policy.pattern})
        else:
            flagged.append({"file": relative, "policy": policy.pattern})
    if deleted and audit_log is not None:
        audit_log.append("retention.deleted", {"root": str(root), "files": len(deleted),
                                               "policies": sorted({d["policy"] for d in deleted})})
    return result(check, not flagged, root=str(root), files_checked=checked, past_age=len(flagged) + len(deleted),
                  deleted=len(deleted), flagged=len(flagged), locations=_limited(flagged + deleted))


# --- no PII where Airflow stores things ---------------------------------------------------------
def check_no_pii_in_files(root, index: SensitiveValueIndex, *, check: str = "no_pii_in_task_logs",
                          pattern: str = "*") -> dict:
    """Scan every text file under `root` (task logs, exported XCom, ...) line by line."""
    root = Path(root)
    findings = ScanFindings(max_locations=MAX_LOCATIONS)
    files = sorted(p for p in root.rglob(pattern) if p.is_file()) if root.is_dir() else []
    for path in files:
        findings.scanned += 1
        for line_no, line in iter_text_lines(path):
            findings.add(index.count_matches(line), {"file": path.relative_to(root).as_posix(), "line": line_no})
    return result(check, root.is_dir() and findings.matches == 0, root=str(root), values_indexed=index.indexed,
                  values_too_short=index.skipped_short, **findings.as_details("files_scanned"))


def _cell_text(value) -> str | None:
    if value is None or isinstance(value, (int, float, bool)):
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def check_no_pii_in_database(url: str, index: SensitiveValueIndex, *, tables: Iterable[str] | None = None,
                             check: str = "no_pii_in_metadata_db") -> dict:
    """Scan every text-like cell of every table (Airflow's metadata DB: XCom, logs,
    run conf, ...), streaming rows. Rows are located by primary key when it has one
    column, else by position."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    findings = ScanFindings(max_locations=MAX_LOCATIONS)
    tables_scanned = 0
    try:
        metadata = sa.MetaData()
        metadata.reflect(bind=engine, only=list(tables) if tables is not None else None)
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                tables_scanned += 1
                pk = list(table.primary_key.columns)
                rows = connection.execution_options(stream_results=True, yield_per=1000).execute(sa.select(table))
                for position, row in enumerate(rows, start=1):
                    findings.scanned += 1
                    mapping = row._mapping
                    where = str(mapping[pk[0].name]) if len(pk) == 1 else f"#{position}"
                    for column in table.columns:
                        text = _cell_text(mapping[column.name])
                        if text:
                            findings.add(index.count_matches(text),
                                         {"table": table.name, "column": column.name, "row": where})
    finally:
        engine.dispose()
    return result(check, findings.matches == 0, database=engine.url.render_as_string(hide_password=True),
                  tables_scanned=tables_scanned, values_indexed=index.indexed,
                  values_too_short=index.skipped_short, **findings.as_details("rows_scanned"))


def check_no_pii_in_records(records: Iterable[dict], index: SensitiveValueIndex, *,
                            check: str = "residual_pii_in_masked_sample") -> dict:
    """Scan records (e.g. a decrypted sample of a masked dataset, in worker memory)."""
    findings = ScanFindings(max_locations=MAX_LOCATIONS)
    for row_no, record in enumerate(records, start=1):
        findings.scanned += 1
        for column, value in record.items():
            text = _cell_text(value)
            if text:
                findings.add(index.count_matches(text), {"row": row_no, "column": str(column)})
    return result(check, findings.matches == 0, values_indexed=index.indexed,
                  values_too_short=index.skipped_short, **findings.as_details("records_scanned"))


# --- access review ------------------------------------------------------------------------------
DEFAULT_ALLOWED_ROLES = ("admin", "op", "user", "viewer")


def check_access_review(connections: Iterable[dict], users: Iterable[dict], *,
                        allowed_roles: Iterable[str] = DEFAULT_ALLOWED_ROLES, max_admins: int = 1) -> dict:
    """Connections holding secrets in plain text, and users with unknown or too many admin roles.

    connections: {"conn_id", "source" ("db" or "env"), "has_password", "password_encrypted",
                  "extra_keys" (names only), "extra_encrypted"}
    users: {"username", "roles" (list) or "role"}"""
    check = "access_review"
    plaintext = []
    connections = list(connections)
    for conn in connections:
        reasons = []
        if conn.get("has_password") and (conn.get("source") == "env" or not conn.get("password_encrypted")):
            reasons.append("password stored in plain text")
        secret_extras = [k for k in conn.get("extra_keys") or [] if any(s in k.lower() for s in SECRET_EXTRA_KEYS)]
        if secret_extras and (conn.get("source") == "env" or not conn.get("extra_encrypted")):
            reasons.append(f"secret in plain-text extra field(s): {', '.join(sorted(secret_extras))}")
        if reasons:
            plaintext.append({"conn_id": conn.get("conn_id"), "problems": reasons})
    allowed = set(allowed_roles)
    users = list(users)
    unknown_roles, admins = [], []
    for user in users:
        roles = user.get("roles") or ([user["role"]] if user.get("role") else [])
        if any(role not in allowed for role in roles):
            unknown_roles.append(user.get("username"))
        if "admin" in roles:
            admins.append(user.get("username"))
    too_many_admins = len(admins) > max_admins
    ok = not plaintext and not unknown_roles and not too_many_admins
    return result(check, ok, connections_reviewed=len(connections), users_reviewed=len(users),
                  plaintext_secrets=_limited(plaintext), users_with_unknown_roles=_limited(unknown_roles),
                  admins=len(admins), max_admins=max_admins)


# --- erasure requests answered in time ----------------------------------------------------------
def check_erasure_requests(requests: Iterable[dict], *, deadline_hours: float | None = None,
                           now=None) -> dict:
    """No erasure request waits past its deadline (default 72 h) and none failed.

    requests: erasure runs from Airflow's metadata ({"run_id", "state", "submitted_at", "end_date"}).
    A failed run fails the check until it is rerun (cleared) and succeeds; one still waiting past the
    deadline fails it until it ends. A run that ended after the deadline is counted (`completed_late`)
    but passes: the breach is in the record, and it cannot be undone by any action now."""
    from datetime import datetime, timezone

    from securepipe.erasure import DEFAULT_DEADLINE_HOURS, request_status

    check = "erasure_requests"
    deadline = DEFAULT_DEADLINE_HOURS if deadline_hours is None else float(deadline_hours)
    rows = request_status(requests, now=now or datetime.now(timezone.utc), deadline_hours=deadline)
    overdue = [{"run_id": r["run_id"], "waited_hours": r["waited_hours"]} for r in rows if r["overdue"]]
    failed = [r["run_id"] for r in rows if r["state"] == "failed"]
    return result(check, not overdue and not failed, deadline_hours=deadline, requests=len(rows),
                  pending=sum(r["state"] not in ("success", "failed") for r in rows),
                  overdue=_limited(overdue), failed=_limited(failed),
                  completed_late=sum(r["late"] for r in rows))


def check_keys_current(storage_root, state_dir) -> dict:
    """No artifact (in storage or the state dir) is still wrapped by a KMS key the key registry retired."""
    from securepipe.crypto import rotation

    check = "keys_current"
    retired = set(rotation.read_key_registry(state_dir)["retired"])
    stale, scanned = [], 0
    for root in (_storage_root(storage_root), Path(state_dir)):
        if root is None:
            continue
        for name, path in rotation.envelope_files(root):
            scanned += 1
            if rotation.envelope.inspect(path)["kms_key_id"] in retired:
                stale.append(name)
    reason = f"{len(stale)} artifact(s) still wrapped by a retired KMS key" if stale else None
    return result(check, not stale, artifacts_scanned=scanned, retired_keys=len(retired),
                  wrapped_by_retired_key=_limited(stale), reason=reason)


# --- running and recording ----------------------------------------------------------------------
CHECKS: dict[str, Callable[..., dict]] = {
    "storage_encrypted": check_storage_encrypted,
    "kms_key": check_kms_key,
    "audit_chain": check_audit_chain,
    "privacy_budgets": check_privacy_budgets,
    "lineage_complete": check_lineage_complete,
    "retention": check_retention,
    "no_pii_in_task_logs": check_no_pii_in_files,
    "no_pii_in_metadata_db": check_no_pii_in_database,
    "residual_pii_in_masked_sample": check_no_pii_in_records,
    "access_review": check_access_review,
    "erasure_requests": check_erasure_requests,
    "keys_current": check_keys_current,
}


def run_check(name: str, **kwargs) -> dict:
    """Run one check by name; a check that cannot run is a failed check, not a crash,
    and its reason is the safe message of a SecurePipeError (or the exception type)."""
    try:
        return CHECKS[name](**kwargs)
    except KeyError:
        raise SecurePipeError(f"unknown compliance check {name!r}; known: {', '.join(CHECKS)}") from None
    except SecurePipeError as exc:
        return result(name, False, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - the text of an unknown error may hold a value
        return result(name, False, error=f"{type(exc).__name__} (message withheld)")


def record_result(outcome: dict, *, audit_log: AuditLog | None = None, run_id: str | None = None,
                  attempt: int | None = None) -> dict:
    """Append the verdict to the audit log. Each verdict is an event, so a retried check
    appends its new verdict (readers take the latest per run and check); with `attempt`
    (the task's try number) a replay of the same attempt appends nothing."""
    audit_log = audit_log or AuditLog()
    key = f"compliance.check:{run_id}:{outcome['check']}:{attempt}" if run_id and attempt is not None else None
    return audit_log.append("compliance.check", {"run_id": run_id, "check": outcome["check"], "ok": outcome["ok"],
                                                 "attempt": attempt, "details": outcome["details"]},
                            idempotency_key=key)


def require_ok(outcome: dict) -> dict:
    """Raise GateFailed (failing the task loudly) when the check failed."""
    if not outcome["ok"]:
        reason = outcome["details"].get("reason") or outcome["details"].get("error") or "see details"
        raise GateFailed(f"compliance check {outcome['check']} failed: {reason}")
    return outcome
