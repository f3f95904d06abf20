"""The per-run lineage manifest: what ran, on what, with which keys, producing what.

Threat model: someone who edits history, and an auditor who must trace a model
back to its masked and raw datasets. A manifest records the trigger, code version,
lock-file hashes, every artifact's content hash, storage URI, KMS key ARN and
encryption context, PII counts, masking policy hash, privacy spend and model hash.
It is signed (HMAC-SHA256 under the KMS-wrapped evidence key, see
securepipe.audit.signing), written atomically, and its SHA-256 is appended to the
audit log; the audit head at that moment is recorded inside the signed manifest,
so a later truncation of the log is detectable from any manifest.

Manifests carry counts, hashes and pseudonyms only; their trigger, privacy and PII
records are defined once in `securepipe.audit.records`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path

from securepipe import config
from securepipe.audit.log import AuditLog, canonical_json
from securepipe.audit.records import PiiCounts, PrivacyRecord, TriggerRecord
from securepipe.audit.signing import ALGORITHM, SigningKey
from securepipe.errors import AuditError, InputError
from securepipe.storage import as_uri, atomic_write, sha256_file

SCHEMA = "securepipe.lineage/v1"
MANIFESTS_DIR_NAME = "manifests"
LOCK_FILES = ("requirements.txt", "requirements-train.txt")
# What "lineage complete" means: every manifest has these; every artifact has ARTIFACT_FIELDS.
REQUIRED_FIELDS = ("schema", "dag_id", "run_id", "created_at", "trigger", "code_version", "lock_files", "artifacts")
ARTIFACT_FIELDS = ("name", "kind", "role", "uri", "sha256", "kms_key_arn", "encryption_context")
ARTIFACT_ROLES = ("input", "output")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def project_root() -> Path:
    """The checkout this package runs from (holds pyproject.toml and the lock files)."""
    explicit = os.environ.get("SECUREPIPE_PROJECT_ROOT")
    if explicit:
        return Path(explicit)
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").exists() and (parent / "include" / "securepipe").is_dir():
            return parent
    return Path.cwd()


def code_version(root: Path | None = None) -> dict:
    """Git commit of the running code, and whether the work tree had uncommitted changes."""
    root = root or project_root()
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10, check=True).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": None, "dirty": None}
    return {"git_sha": sha, "dirty": dirty}


def lock_file_hashes(root: Path | None = None) -> dict:
    root = root or project_root()
    return {name: (sha256_file(root / name) if (root / name).exists() else None) for name in LOCK_FILES}


def artifact_record(uri, *, name: str, kind: str, role: str = "output", kms_key_arn: str | None = None,
                    encryption_context: dict | None = None, sha256: str | None = None,
                    size: int | None = None) -> dict:
    """Describe one stored artifact; its content hash is computed when not given.

    `kind` says what it is (raw, masked, model, model_card, pii_report, ...);
    plaintext-at-rest artifacts do not exist in this pipeline, so a missing KMS key
    ARN is recorded as null and flagged by the lineage check."""
    if role not in ARTIFACT_ROLES:
        raise AuditError(f"artifact {name}: role must be one of {', '.join(ARTIFACT_ROLES)}")
    text = str(uri)
    if sha256 is None:
        try:
            sha256 = sha256_file(uri)
        except FileNotFoundError:
            raise InputError(text, "artifact not found while building the lineage manifest") from None
    if size is None and not text.startswith(("s3://", "gs://")):
        local = Path(text[len("file://"):] if text.startswith("file://") else text)
        size = local.stat().st_size if local.exists() else None
    return {"name": name, "kind": kind, "role": role, "uri": as_uri(text),
            "sha256": sha256, "size": size, "kms_key_arn": kms_key_arn,
            "encryption_context": dict(encryption_context or {})}


def build_manifest(*, dag_id: str, run_id: str, trigger: TriggerRecord, artifacts: list[dict],
                   pii_report: PiiCounts | None = None, masking_policy_hash: str | None = None,
                   privacy: PrivacyRecord | None = None, model: dict | None = None, extra: dict | None = None,
                   root: Path | None = None) -> dict:
    """Assemble an unsigned manifest; trigger, PII counts and privacy are the records of
    `securepipe.audit.records`, which the readers parse back.

    model: {"uri", "sha256", "metrics": {...}} (metrics are numbers, e.g. auc, mia_auc).
    """
    for name, value in (("dag_id", dag_id), ("run_id", run_id)):
        if not isinstance(value, str) or not value:
            raise AuditError(f"lineage manifest: {name} must be a non-empty string")
    for index, artifact in enumerate(artifacts):
        missing = [f for f in ARTIFACT_FIELDS if f not in artifact]
        if missing:
            raise AuditError(f"lineage manifest: artifact {index} lacks {', '.join(missing)} (use artifact_record)")
    manifest = {
        "schema": SCHEMA,
        "dag_id": dag_id,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "trigger": trigger.as_dict(),
        "code_version": code_version(root),
        "lock_files": lock_file_hashes(root),
        "artifacts": artifacts,
        "pii_report": (pii_report or PiiCounts()).as_dict(),
        "masking_policy_hash": masking_policy_hash,
        "privacy": privacy.as_dict() if privacy else None,
        "model": model,
    }
    if extra:
        clash = set(extra) & set(manifest)
        if clash:
            raise AuditError(f"lineage manifest: extra fields clash with standard ones: {', '.join(sorted(clash))}")
        manifest.update(extra)
    try:
        canonical_json(manifest)
    except (TypeError, ValueError):
        raise AuditError("lineage manifest holds a value that is not JSON (numbers, strings, lists, objects only)") \
            from None
    return manifest


def signing_payload(manifest: dict) -> bytes:
    return canonical_json({k: v for k, v in manifest.items() if k != "signature"})


def sign_manifest(manifest: dict, key: SigningKey) -> dict:
    signed = {k: v for k, v in manifest.items() if k != "signature"}
    signed["signature"] = {"algorithm": ALGORITHM, "key_id": key.key_id, "value": key.sign(signing_payload(signed))}
    return signed


def verify_manifest_signature(manifest: dict, key: SigningKey) -> str | None:
    """None when the signature holds, else the reason it does not."""
    signature = manifest.get("signature")
    if not isinstance(signature, dict) or "value" not in signature:
        return "unsigned"
    if signature.get("key_id") != key.key_id:
        return f"signed with key id {signature.get('key_id')!r}, not the verifying key {key.key_id!r}"
    if not key.verify(signing_payload(manifest), signature["value"]):
        return "signature does not verify: the manifest was edited"
    return None


def default_manifests_dir(env=None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("SECUREPIPE_MANIFESTS_DIR") or config.state_dir(env) / MANIFESTS_DIR_NAME)


def manifest_file_name(dag_id: str, run_id: str) -> str:
    # Airflow run ids hold ':' and '+'; a short hash keeps two ids that sanitise alike apart.
    digest = hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:8]
    return f"{_UNSAFE_NAME.sub('_', dag_id)}__{_UNSAFE_NAME.sub('_', run_id)}__{digest}.json"


@dataclass(frozen=True)
class WrittenManifest:
    path: Path
    sha256: str
    audit_seq: int

    def as_dict(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "audit_seq": self.audit_seq}


def write_manifest(manifest: dict, *, manifests_dir=None, audit_log: AuditLog | None = None) -> WrittenManifest:
    """Record the audit head in the manifest, sign it, write it atomically, and append a
    `lineage.manifest_written` audit entry holding its SHA-256.

    Idempotent per (dag_id, run_id): a retried task that writes the same run again
    gets the first manifest's record back (the audit entry uses an idempotency key).
    """
    audit_log = audit_log or AuditLog()
    head = audit_log.head()
    # Manifests and the log share the evidence key; a new one only for a brand-new log.
    key = audit_log.signing_key(may_create=head is None)
    manifests_dir = Path(manifests_dir) if manifests_dir else default_manifests_dir()
    path = manifests_dir / manifest_file_name(manifest["dag_id"], manifest["run_id"])
    idempotency_key = f"lineage.manifest:{manifest['dag_id']}:{manifest['run_id']}"
    existing = audit_log.find_idempotent(idempotency_key)
    if existing is not None and path.exists():
        return WrittenManifest(path, existing["payload"]["manifest_sha256"], existing["seq"])
    recorded = dict(manifest, audit_head={"log": audit_log.path.name, "seq": head["seq"] if head else -1,
                                         "hash": head["hash"] if head else None})
    data = json.dumps(sign_manifest(recorded, key), indent=2, sort_keys=True).encode() + b"\n"
    digest = hashlib.sha256(data).hexdigest()
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    entry = audit_log.append(
        "lineage.manifest_written",
        {"dag_id": manifest["dag_id"], "run_id": manifest["run_id"], "manifest": path.name, "manifest_sha256": digest,
         "artifacts": len(manifest["artifacts"])},
        idempotency_key=idempotency_key,
    )
    return WrittenManifest(path, digest, entry["seq"])


def load_manifests(manifests_dir=None) -> list[tuple[Path, dict | None]]:
    """Every manifest file, parsed (None where it is not valid JSON), oldest first."""
    manifests_dir = Path(manifests_dir) if manifests_dir else default_manifests_dir()
    if not manifests_dir.is_dir():
        return []
    loaded = []
    for path in sorted(manifests_dir.glob("*.json")):
        try:
            loaded.append((path, json.loads(path.read_text())))
        except (ValueError, UnicodeDecodeError):
            loaded.append((path, None))
    loaded.sort(key=lambda item: (item[1] or {}).get("created_at", "") if isinstance(item[1], dict) else "")
    return loaded


def find_manifests(run_id: str, *, dag_id: str | None = None, manifests_dir=None) -> list[tuple[Path, dict]]:
    return [(path, m) for path, m in load_manifests(manifests_dir)
            if isinstance(m, dict) and m.get("run_id") == run_id and (dag_id is None or m.get("dag_id") == dag_id)]
