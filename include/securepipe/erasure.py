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
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from securepipe.audit.records import PiiCounts, TriggerRecord
from securepipe.config import AwsSettings
from securepipe.errors import InputError
from securepipe.storage import resolve_uri


@dataclass
class ErasureSettings:
    erasure_run_id: str
    dataset: str | None  # None: every dataset (the audit's erasures_honored check)
    state_dir: Path
    kms_key_id: str
    aws: AwsSettings
    storage_root: object  # Path or ObjectStoragePath
    landing_uri: str | None = None
    subject_column: str | None = None  # default: the one each version's masking plan chose
    resolve_uri: Callable[[str], object] | None = None
    trigger: TriggerRecord = field(default_factory=lambda: TriggerRecord.create("erasure"))

    def open_uri(self, uri: str):
        return resolve_uri(uri, self.resolve_uri)


def subject_token(settings: ErasureSettings, subject_id: str, entity: str) -> str:
    from securepipe.crypto.secrets import pseudonym_secret
    from securepipe.pii.operators import pseudonym_token

    return pseudonym_token(subject_id, entity, pseudonym_secret(settings.state_dir, settings.kms_key_id, settings.aws))


def _masked_versions(settings: ErasureSettings) -> list[tuple[dict, dict]]:
    """(manifest, masked artifact) for every masked version of the dataset still in storage."""
    from securepipe.audit.manifest import load_manifests

    found = []
    for _, manifest in load_manifests(settings.state_dir / "manifests"):
        if not manifest or (settings.dataset is not None
                            and manifest.get("dataset", settings.dataset) != settings.dataset):
            continue
        for artifact in manifest.get("artifacts", []):
            if artifact.get("kind") == "masked" and settings.open_uri(artifact["uri"]).exists():
                found.append((manifest, artifact))
    return found


def _subject_column(settings: ErasureSettings, manifest: dict) -> str:
    """The column that identifies a subject in this version: as configured, else as its masking plan chose."""
    column = settings.subject_column or (manifest.get("masking_plan") or {}).get("subject_column")
    if not column:
        raise InputError(manifest.get("run_id", "manifest"),
                         "the dataset version names no subject column (its masking plan found none)")
    return column


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
    from securepipe.audit.manifest import artifact_record, build_manifest, write_manifest

    if not subject_id or len(subject_id) > 256:
        raise InputError("subject_id", "a subject identifier of 1 to 256 characters is required")
    audit = state_audit_log(settings.state_dir, kms_key_id=settings.kms_key_id, aws=settings.aws)
    tokens, rewritten, rows_removed, artifacts, pii_report = set(), [], 0, [], {}
    landing_column, plan = settings.subject_column, None
    for manifest, artifact in _masked_versions(settings):
        column = landing_column = _subject_column(settings, manifest)
        token = subject_token(settings, subject_id, _subject_entity(manifest, column))
        tokens.add(token)
        source = settings.open_uri(artifact["uri"])
        frame = pd.read_parquet(io.BytesIO(decrypt_to_bytes(source, expected_context=artifact["encryption_context"])))
        keep = frame[column].astype(str) != token
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
        plan = manifest.get("masking_plan") or plan  # and has its roles, so a later erasure finds its subject
        rewritten.append(manifest["run_id"])
        rows_removed += int((~keep).sum())
    landing_rows, landing_before, landing_after = _erase_from_landing(settings, subject_id, landing_column)
    if landing_rows:  # record the new landing version, so lineage knows the change was ours
        artifacts += [
            artifact_record(settings.landing_uri, name="landing-before-erasure", kind="raw", role="input",
                            sha256=landing_before),
            artifact_record(settings.landing_uri, name="landing-without-subject", kind="raw", sha256=landing_after),
        ]
    if artifacts:
        write_manifest(
            build_manifest(dag_id="erasure_request", run_id=settings.erasure_run_id, trigger=settings.trigger,
                           artifacts=artifacts, pii_report=PiiCounts.from_dict(pii_report),
                           extra={"dataset": settings.dataset, "erased_subject_tokens": sorted(tokens),
                                  "masking_plan": plan}),
            manifests_dir=settings.state_dir / "manifests", audit_log=audit,
        )
    outcome = {"dataset": settings.dataset, "versions_rewritten": len(rewritten), "rows_removed": rows_removed,
               "landing_rows_removed": landing_rows, "subject_tokens": sorted(tokens)}
    audit.append("erasure.completed", {"run_id": settings.erasure_run_id, **outcome},
                 idempotency_key=f"erasure:{settings.erasure_run_id}")
    return outcome


def _erase_from_landing(settings: ErasureSettings, subject_id: str, column: str | None
                        ) -> tuple[int, str | None, str | None]:
    """Rewrite the landing CSV/Parquet without the subject's rows (compared after normalizing) in
    `column`: the subject column of the latest masked version (None: no version, nothing to match).

    Returns the rows removed and the file's SHA-256 before and after."""
    from securepipe.ingest import input_format, iter_frames
    from securepipe.storage import atomic_write, sha256_file

    if not settings.landing_uri or not column:
        return 0, None, None
    path = settings.open_uri(settings.landing_uri)
    if not path.exists():
        return 0, None, None
    before = sha256_file(path)
    wanted = " ".join(subject_id.split()).casefold()
    import pandas as pd

    frames = list(iter_frames(path, required_columns=[column]))
    frame = pd.concat(frames)
    keep = frame[column].astype(str).map(lambda v: " ".join(v.split()).casefold()) != wanted
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
        column = _subject_column(settings, manifest)
        frame = pd.read_parquet(io.BytesIO(decrypt_to_bytes(settings.open_uri(artifact["uri"]),
                                                            expected_context=artifact["encryption_context"])),
                                columns=[column])
        hits = int(frame[column].astype(str).isin(erased).sum())
        if hits:
            offending.append({"run_id": manifest["run_id"], "rows": hits})
    return {"check": "erasures_honored", "ok": not offending,
            "details": {"erased_subjects": len(erased), "versions_with_erased_subjects": offending}}
