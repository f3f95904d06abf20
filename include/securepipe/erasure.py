"""Erasure requests (right to be forgotten): remove one data subject from what the pipeline keeps.

The subject is found through its keyed pseudonym (HMAC-SHA256 under the
KMS-wrapped pseudonymization secret), so the request's identifier is compared in
pseudonymized form only and never written anywhere: the audit log records the
pseudonym token, which is what the masked data holds anyway.

What changes: every stored masked dataset version of the dataset that holds the
subject is rewritten without the subject's rows as a new version (new fresh data
key, new encryption context naming the erasure run), and the old version is
deleted; the landing input is rewritten without the subject's rows (atomically)
so a retrain cannot bring them back. What does not change: the privacy ledger.
ε already spent was spent on everyone in the data; removing one subject does not
give the others their privacy back, so no budget is reset (the erasure is recorded
and models trained on the data are marked for retraining instead).

How a request arrives: the identifier is sealed with KMS where it is submitted
(`seal_subject_id`, on the API server, which needs Encrypt only) and the DAG run's
conf holds only that ciphertext, so no reader of the REST API, the UI or the
metadata DB sees the identifier; the worker opens it (`subject_from_conf`) and
refuses any other conf key, a plaintext identifier included.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from securepipe.config import AwsSettings
from securepipe.errors import CryptoError, InputError
from securepipe.storage import resolve_uri


@dataclass
class ErasureSettings:
    erasure_run_id: str
    dataset: str
    state_dir: Path
    kms_key_id: str
    aws: AwsSettings
    storage_root: object  # Path or ObjectStoragePath
    landing_uri: str | None = None
    subject_column: str = "patient_id"
    resolve_uri: Callable[[str], object] | None = None

    def open_uri(self, uri: str):
        return resolve_uri(uri, self.resolve_uri)


ERASURE_DAG_ID = "erasure_request"
# The only keys an erasure run's conf may hold: anything else (`subject_id`, `mrn`, ...) may be the
# identifier in clear, and the run refuses it before any work.
REQUEST_CONF_KEYS = frozenset({"subject_ciphertext", "dataset"})
DATASET_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
MAX_SUBJECT_ID_CHARS = 256


def request_context(dataset: str) -> dict[str, str]:
    """The KMS encryption context of a sealed identifier: a grant can allow exactly this purpose, and
    a ciphertext sealed for one dataset does not open for another."""
    return {"purpose": "erasure-request", "dataset": dataset}


def validate_request(subject_id, dataset) -> None:
    """Refuse a malformed request without echoing the identifier."""
    if not isinstance(subject_id, str) or not subject_id.strip() or len(subject_id) > MAX_SUBJECT_ID_CHARS:
        raise InputError("subject_id", f"a subject identifier of 1 to {MAX_SUBJECT_ID_CHARS} characters is required")
    if not isinstance(dataset, str) or not re.fullmatch(DATASET_PATTERN, dataset):
        raise InputError("dataset", f"a dataset name matching {DATASET_PATTERN} is required")


def seal_subject_id(subject_id: str, dataset: str, *, kms_key_id: str, kms=None) -> str:
    """KMS-encrypt the identifier (randomized: two requests for one subject do not match); base64 text."""
    from securepipe.crypto.kms import default_kms

    validate_request(subject_id, dataset)
    blob, _ = (kms or default_kms()).wrap(kms_key_id, subject_id.encode("utf-8"), request_context(dataset))
    return base64.b64encode(blob).decode("ascii")


def subject_from_conf(conf: dict, *, kms_key_id: str, aws: AwsSettings | None = None, kms=None) -> str:
    """The identifier of an erasure run, opened from its sealed form; `InputError` for a conf with any
    key besides the sealed identifier and the dataset (key names only in the message)."""
    from securepipe.crypto.kms import default_kms

    unexpected = sorted(set(conf) - REQUEST_CONF_KEYS)
    if unexpected:
        raise InputError("conf", f"refusing key(s) {', '.join(unexpected)}: an erasure request carries only the "
                                 "KMS-sealed identifier (submit it through POST /compliance/erasure)")
    dataset = conf.get("dataset", "patients")
    try:
        blob = base64.b64decode(str(conf.get("subject_ciphertext") or ""), validate=True)
    except (binascii.Error, ValueError):
        blob = b""
    if not blob:
        raise InputError("conf", "subject_ciphertext is missing or not base64")
    try:
        subject_id = (kms or default_kms(aws)).unwrap(kms_key_id, blob, request_context(dataset)).decode("utf-8")
    except UnicodeDecodeError:
        raise CryptoError("the sealed identifier does not decode as text") from None
    validate_request(subject_id, dataset)
    return subject_id


DEFAULT_DEADLINE_HOURS = 72.0
FINISHED_STATES = ("success", "failed")


def request_status(runs, *, now, deadline_hours: float = DEFAULT_DEADLINE_HOURS,
                   completed: dict[str, dict] | None = None) -> list[dict]:
    """Each erasure run as people need to see it: age, how long it waited, whether it is overdue.

    runs: {"run_id", "state", "submitted_at" (aware datetime), "end_date" (or None)} from Airflow's
    metadata; completed: the `erasure.completed` audit payloads by path-safe run id, for the outcome
    (pseudonym tokens and counts, never the identifier). A run waits from submission until it ends;
    it is overdue while it has not ended past the deadline. Newest first."""
    from securepipe.pipeline import safe_run_id

    rows = []
    for run in runs:
        submitted, ended = run["submitted_at"], run.get("end_date")
        finished = run["state"] in FINISHED_STATES
        waited_h = ((ended if finished and ended else now) - submitted).total_seconds() / 3600
        outcome = (completed or {}).get(safe_run_id(run["run_id"]))
        rows.append({
            "run_id": run["run_id"], "state": run["state"], "submitted_at": submitted.isoformat(),
            "age_hours": round((now - submitted).total_seconds() / 3600, 2), "waited_hours": round(waited_h, 2),
            "overdue": not finished and waited_h > deadline_hours,
            "late": finished and waited_h > deadline_hours,
            "subject_tokens": (outcome or {}).get("subject_tokens", []),
            "rows_removed": (outcome or {}).get("rows_removed"),
        })
    return sorted(rows, key=lambda r: r["submitted_at"], reverse=True)


def subject_token(settings: ErasureSettings, subject_id: str, entity: str) -> str:
    from securepipe.crypto.secrets import pseudonym_secret
    from securepipe.pii.operators import pseudonym_token

    return pseudonym_token(subject_id, entity, pseudonym_secret(settings.state_dir, settings.kms_key_id, settings.aws))


def _masked_versions(settings: ErasureSettings) -> list[tuple[dict, dict]]:
    """(manifest, masked artifact) for every masked version of the dataset still in storage."""
    from securepipe.lineage.manifest import load_manifests

    found = []
    for _, manifest in load_manifests(settings.state_dir / "manifests"):
        if not manifest or manifest.get("dataset", settings.dataset) != settings.dataset:
            continue
        for artifact in manifest.get("artifacts", []):
            if artifact.get("kind") == "masked" and settings.open_uri(artifact["uri"]).exists():
                found.append((manifest, artifact))
    return found


def _subject_entity(manifest: dict, column: str) -> str:
    counts = manifest.get("pii_report", {}).get(column)
    if not counts:
        raise InputError(column, "the subject column was not pseudonymized in this dataset version")
    return next(iter(counts))


def erase_subject(settings: ErasureSettings, subject_id: str) -> dict:
    """Rewrite every affected masked version and the landing input without the subject; return counts only."""
    import pandas as pd

    from securepipe.audit.log import state_audit_log
    from securepipe.crypto import decrypt_to_bytes, encrypt_bytes
    from securepipe.lineage.manifest import artifact_record, build_manifest, write_manifest

    validate_request(subject_id, settings.dataset)
    audit = state_audit_log(settings.state_dir, kms_key_id=settings.kms_key_id, aws=settings.aws)
    tokens, rewritten, rows_removed, artifacts, pii_report = set(), [], 0, [], {}
    for manifest, artifact in _masked_versions(settings):
        token = subject_token(settings, subject_id, _subject_entity(manifest, settings.subject_column))
        tokens.add(token)
        source = settings.open_uri(artifact["uri"])
        frame = pd.read_parquet(io.BytesIO(decrypt_to_bytes(source, expected_context=artifact["encryption_context"])))
        keep = frame[settings.subject_column].astype(str) != token
        if keep.all():
            continue
        buffer = io.BytesIO()
        frame[keep].to_parquet(buffer, index=False)
        key = f"{settings.dataset}/masked/{settings.erasure_run_id}/{manifest['run_id']}.parquet.enc"
        context = {"dataset": settings.dataset, "run_id": settings.erasure_run_id, "purpose": "masked-dataset"}
        info = encrypt_bytes(buffer.getvalue(), settings.storage_root / key, key_id=settings.kms_key_id,
                             context=context)
        target = str(settings.storage_root / key)
        artifacts += [
            artifact_record(artifact["uri"], name=f"erased-from-{manifest['run_id']}", kind="masked", role="input",
                            kms_key_arn=artifact.get("kms_key_arn"),
                            encryption_context=artifact["encryption_context"], sha256=artifact["sha256"]),
            artifact_record(target, name=f"masked-without-subject-{manifest['run_id']}", kind="masked",
                            kms_key_arn=info["kms_key_id"], encryption_context=context, sha256=info["sha256"]),
        ]
        source.unlink()
        pii_report.update(manifest.get("pii_report", {}))  # the new version is masked as its source was
        rewritten.append(manifest["run_id"])
        rows_removed += int((~keep).sum())
    landing_rows, landing_before, landing_after = _erase_from_landing(settings, subject_id)
    if landing_rows:  # record the new landing version, so lineage knows the change was ours
        artifacts += [
            artifact_record(settings.landing_uri, name="landing-before-erasure", kind="raw", role="input",
                            sha256=landing_before),
            artifact_record(settings.landing_uri, name="landing-without-subject", kind="raw", sha256=landing_after),
        ]
    if artifacts:
        write_manifest(
            build_manifest(dag_id="erasure_request", run_id=settings.erasure_run_id, trigger={"kind": "erasure"},
                           artifacts=artifacts, pii_report=pii_report,
                           extra={"dataset": settings.dataset, "erased_subject_tokens": sorted(tokens)}),
            manifests_dir=settings.state_dir / "manifests", audit_log=audit,
        )
    outcome = {"dataset": settings.dataset, "versions_rewritten": len(rewritten), "rows_removed": rows_removed,
               "landing_rows_removed": landing_rows, "subject_tokens": sorted(tokens)}
    audit.append("erasure.completed", {"run_id": settings.erasure_run_id, **outcome},
                 idempotency_key=f"erasure:{settings.erasure_run_id}")
    return outcome


def _erase_from_landing(settings: ErasureSettings, subject_id: str) -> tuple[int, str | None, str | None]:
    """Rewrite the landing CSV/Parquet without the subject's rows (compared after normalizing).

    Returns the rows removed and the file's SHA-256 before and after."""
    from securepipe.ingest import input_format, iter_frames
    from securepipe.storage import atomic_write, sha256_file

    if not settings.landing_uri:
        return 0, None, None
    path = settings.open_uri(settings.landing_uri)
    if not path.exists():
        return 0, None, None
    before = sha256_file(path)
    wanted = " ".join(subject_id.split()).casefold()
    import pandas as pd

    frames = list(iter_frames(path, required_columns=[settings.subject_column]))
    frame = pd.concat(frames)
    keep = frame[settings.subject_column].astype(str).map(lambda v: " ".join(v.split()).casefold()) != wanted
    removed = int((~keep).sum())
    if removed:
        with atomic_write(path) as handle:
            if input_format(path) == "csv":
                frame[keep].to_csv(handle, index=False)
            else:
                frame[keep].to_parquet(handle, index=False)
    return removed, before, sha256_file(path)


def erasures_honored(settings: ErasureSettings) -> dict:
    """Compliance check: no stored masked version holds a subject erased earlier (by pseudonym token)."""
    from securepipe.audit.log import state_audit_log
    from securepipe.crypto import decrypt_to_bytes

    import pandas as pd

    audit = state_audit_log(settings.state_dir)
    erased = {t for e in audit.entries() if e.get("event") == "erasure.completed"
              for t in e["payload"].get("subject_tokens", [])}
    offending = []
    for manifest, artifact in _masked_versions(settings) if erased else []:
        frame = pd.read_parquet(io.BytesIO(decrypt_to_bytes(settings.open_uri(artifact["uri"]),
                                                            expected_context=artifact["encryption_context"])),
                                columns=[settings.subject_column])
        hits = int(frame[settings.subject_column].astype(str).isin(erased).sum())
        if hits:
            offending.append({"run_id": manifest["run_id"], "rows": hits})
    return {"check": "erasures_honored", "ok": not offending,
            "details": {"erased_subjects": len(erased), "versions_with_erased_subjects": offending}}
