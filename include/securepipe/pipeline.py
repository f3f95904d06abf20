"""The stages of one secure_training run, as plain functions (no Airflow).

Each DAG task is a thin call into one of these, so the whole chain can be tested
and run without a scheduler. Stages exchange small dicts of builtins (they become
XCom): storage keys, row counts, content hashes, per-column PII counts and
metrics, never values.

Threat model: raw records exist in plaintext only in a worker's memory during one
task. At rest every shard, dataset and model is Tink streaming AEAD under a fresh
keyset wrapped by KMS, with an encryption context binding it to dataset, run and
purpose (a ciphertext moved to another run or purpose does not decrypt). Failures
fail closed: the gate raises before anything is published, the input is never
modified, and the audit log records the failure.
"""
from __future__ import annotations

import io
import json
import re
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from securepipe.config import AwsSettings
from securepipe.errors import GateFailed, SecurePipeError


def safe_run_id(airflow_run_id: str) -> str:
    """Airflow run ids hold ':' and '+'; storage keys, ledger entries and manifests use this form."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", airflow_run_id)[:120]


@dataclass
class RunSettings:
    run_id: str
    dataset: str
    input_uri: str
    storage_root: Any  # pathlib.Path or ObjectStoragePath: anything with `/` and `.open()`
    state_dir: Path
    kms_key_id: str
    aws: AwsSettings
    label: str = "readmitted"
    policy_path: str = ""
    policy_name: str = "default"
    target_epsilon: float = 3.0
    delta: float = 1e-5
    epochs: int = 5
    batch_size: int = 256
    rows_per_shard: int = 5000
    max_mia_auc: float = 0.6
    nonprivate_baseline: bool = False
    accept_new_reference: bool = False
    reference_reason: str = ""
    train_cli: str = ""
    trigger: dict = field(default_factory=dict)
    budgets: dict = field(default_factory=dict)
    dag_id: str = "secure_training"
    airflow_run_id: str = ""

    @classmethod
    def from_dict(cls, run: dict, *, storage_root, aws: AwsSettings) -> "RunSettings":
        names = {f.name for f in fields(cls)} - {"storage_root", "aws", "state_dir"}
        values = {k: v for k, v in run.items() if k in names}
        return cls(storage_root=storage_root, aws=aws, state_dir=Path(run["state_dir"]), **values)

    def context(self, purpose: str, **extra: str) -> dict[str, str]:
        """The encryption context of an artifact: what it is, of which dataset, from which run."""
        return {"dataset": self.dataset, "run_id": self.run_id, "purpose": purpose, **extra}

    def path(self, key: str):
        return self.storage_root / key

    def uri(self, key: str) -> str:
        return str(self.path(key))


def _kms(run: RunSettings):
    from securepipe.crypto.kms import default_kms

    return default_kms(run.aws)


def _run_scope(run: RunSettings) -> str:
    """The crypto-shredding scope of a run's intermediate shards: `cleanup` deletes its key, so copies
    left in backups or old object versions cannot be read either."""
    return f"dataset:{run.dataset}/runs/{run.run_id}"


def _shred_store(run: RunSettings, kms):
    from securepipe.crypto.shred import ShredKeyStore

    return ShredKeyStore(run.state_dir / "shred-keys", key_id=run.kms_key_id, kms=kms)


def _store_frame(run: RunSettings, frame, key: str, context: dict[str, str], kms=None, *,
                 intermediate: bool = False) -> dict:
    """Encrypt a DataFrame as Parquet straight from memory into storage; return its lineage record.
    An intermediate frame (a shard) is also sealed under the run's shredding scope."""
    from securepipe.crypto import encrypt_bytes

    kms = kms or _kms(run)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    shredding = {"shred_scope": _run_scope(run), "key_store": _shred_store(run, kms)} if intermediate else {}
    info = encrypt_bytes(buffer.getvalue(), run.path(key), key_id=run.kms_key_id, context=context, kms=kms,
                         **shredding)
    return {"key": key, "uri": run.uri(key), "rows": int(len(frame)), "sha256": info["sha256"],
            "kms_key_arn": info.get("kms_key_id", run.kms_key_id), "context": context}


def _load_frame(run: RunSettings, record: dict, kms=None):
    import pandas as pd

    from securepipe.crypto import decrypt_to_bytes

    kms = kms or _kms(run)
    data = decrypt_to_bytes(run.path(record["key"]), expected_context=record["context"], kms=kms,
                            key_store=_shred_store(run, kms))
    return pd.read_parquet(io.BytesIO(data))


def audit_log(run: RunSettings):
    """The run's audit log, signed under the evidence key (KMS-wrapped under the run's key)."""
    from securepipe.audit.log import state_audit_log

    return state_audit_log(run.state_dir, kms_key_id=run.kms_key_id, aws=run.aws)


def _audit(run: RunSettings, event: str, payload: dict, idempotency_key: str | None = None) -> None:
    audit_log(run).append(event, {"run_id": run.run_id, "dataset": run.dataset, **payload},
                          idempotency_key=idempotency_key)


def _policy(run: RunSettings):
    from securepipe.pii import load_policy

    return load_policy(run.policy_path or None)


def _secret(run: RunSettings) -> bytes:
    from securepipe.crypto.secrets import pseudonym_secret

    return pseudonym_secret(run.state_dir, run.kms_key_id, run.aws)


# --- stages ------------------------------------------------------------------------------------
def ingest(run: RunSettings) -> list[dict]:
    """Read the raw input strictly and store it as encrypted shards; the input is never modified."""
    from securepipe.ingest import ReadLimits, estimate_rows, iter_frames
    from securepipe.pii.structured import plan_table
    from securepipe.progress import Progress

    kms = _kms(run)
    source = _input_path(run)
    shards = []
    plan = None
    # In a task, stderr is no terminal: this logs a count line every 30 s and one at the end. The total
    # (for an ETA) costs a read of the file: only when it is local, never a second download.
    progress = Progress(f"ingest {run.dataset}", total=estimate_rows(source) if isinstance(source, Path) else None)
    for index, frame in enumerate(
        iter_frames(source, required_columns=[run.label], limits=ReadLimits(chunk_rows=run.rows_per_shard))
    ):
        if plan is None:
            # Plan once (classes, subject, quasi-identifiers), so every shard masks every column the same way.
            plan = plan_table(frame, _policy(run), keep=(run.label,), file=getattr(source, "name", "input")).as_dict()
        shard = f"{index:05d}"
        key = f"{run.dataset}/runs/{run.run_id}/raw/shard-{shard}.parquet.enc"
        record = _store_frame(run, frame, key, run.context("raw-shard", shard=shard), kms, intermediate=True)
        record["index"] = index
        record["first_row"] = int(frame.index[0]) + 1
        record["plan"] = plan
        shards.append(record)
        progress.advance(len(frame))
    progress.close()
    return shards


def _input_path(run: RunSettings):
    uri = run.input_uri
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    if "://" in uri:
        # Same connection and scheme as the storage root (s3://): one code path for both.
        return type(run.storage_root)(uri, conn_id=getattr(run.storage_root, "conn_id", None))
    return Path(uri)


# Inside a task, parallelism comes from mapped tasks: a process pool in a task process would
# re-import Airflow without its DB settings (Airflow 3 task processes have none).
IN_TASK_WORKERS = 1


def mask_shard(run: RunSettings, shard: dict) -> dict:
    """Detect and mask PII in one shard in memory, re-scan the result, store it encrypted."""
    from securepipe.pii import mask_frame
    from securepipe.pii.structured import TablePlan

    kms = _kms(run)
    policy = _policy(run)
    frame = _load_frame(run, shard, kms)
    masked, report = mask_frame(frame, policy, _secret(run), plan=TablePlan.from_dict(shard["plan"]),
                                workers=IN_TASK_WORKERS)
    residual = report.pop("residual_scan")
    key = f"{run.dataset}/runs/{run.run_id}/masked-shards/shard-{int(shard['index']):05d}.parquet.enc"
    record = _store_frame(run, masked, key, run.context("masked-shard", shard=f"{int(shard['index']):05d}"), kms,
                          intermediate=True)
    record.update(index=shard["index"], report=report, residual_scan=residual, plan=shard["plan"])
    return record


def merge_mask_reports(reports: list[dict]) -> dict:
    """Per-column totals over shards: entity, operator and counts (never values)."""
    total: dict = {"rows": 0, "columns": {}}
    for part in reports:
        total["rows"] += part["rows"]
        for column, entry in part["columns"].items():
            into = total["columns"].setdefault(
                column, {k: v for k, v in entry.items() if k not in ("cells_masked", "cells_with_pii", "spans")})
            for key in ("cells_masked", "cells_with_pii"):
                if key in entry:
                    into[key] = into.get(key, 0) + entry[key]
            for entity, count in entry.get("spans", {}).items():
                into.setdefault("spans", {})[entity] = into.setdefault("spans", {}).get(entity, 0) + count
    return total


def finalize_masking(run: RunSettings, masked_shards: list[dict]) -> dict:
    """Decide the residual-PII gate over all shards, join them, enforce k-anonymity, publish encrypted."""
    import pandas as pd

    from securepipe.pii import enforce_k_anonymity
    from securepipe.pii.gate import decide, merge_scans
    from securepipe.pii.structured import TablePlan

    kms = _kms(run)
    policy = _policy(run)
    ordered = sorted(masked_shards, key=lambda s: s["index"])
    scan = None
    for shard in ordered:
        scan = merge_scans(scan, shard["residual_scan"])
    try:
        gate_report = decide(scan, policy)
    except GateFailed as exc:
        _audit(run, "pipeline.gate_failed", {"gate": "residual_pii", "reason": str(exc)},
               idempotency_key=f"{run.run_id}:gate_failed")
        raise
    frame = pd.concat([_load_frame(run, s, kms) for s in ordered], ignore_index=True)
    # Generalizing quasi-identifiers only coarsens already-masked values: the gate's verdict stands.
    plan = TablePlan.from_dict(ordered[0]["plan"])
    frame, k_report = enforce_k_anonymity(frame, plan.k_anonymity)
    key = f"{run.dataset}/masked/{run.run_id}/dataset.parquet.enc"
    record = _store_frame(run, frame, key, run.context("masked-dataset"), kms)
    record["report"] = {
        "pii": merge_mask_reports([s["report"] for s in ordered]),
        "k_anonymity": k_report,
        "plan": plan.describe(),
        "residual": {k: v for k, v in gate_report.items() if k != "columns"},
        "policy": run.policy_name,
        "policy_sha256": policy_sha256(run),
    }
    return record


def policy_sha256(run: RunSettings) -> str:
    """The hash of the masking policy in force, as resolved (`extends` included)."""
    return _policy(run).sha256


def validate_data(run: RunSettings, masked: dict) -> dict:
    """The poisoning guard: check the masked batch against the signed profile of the last accepted one.

    Runs before `check_budget`, so a refused batch spends no ε. With no profile yet the batch
    becomes the reference; a clean batch replaces it (drift is measured from the last accepted
    dataset). Findings fail the run closed (`DataValidationFailed`): the batch and its findings
    are quarantined encrypted and the audit log records check and column names, never values.
    An operator may accept a batch as the new reference despite findings (`accept_new_reference`,
    with a reason); the audit entry records who and why.
    """
    from securepipe.crypto import encrypt_bytes
    from securepipe.errors import DataValidationFailed
    from securepipe.validation.checks import check_batch
    from securepipe.validation.profile import build_profile
    from securepipe.validation.store import load_profile, profile_path, save_profile

    kms = _kms(run)
    frame = _load_frame(run, masked, kms)
    log = audit_log(run)
    key = log.signing_key(may_create=log.head() is None)
    path = profile_path(run.state_dir, run.dataset)
    previous = load_profile(path, dataset=run.dataset, signing_key=key, kms=kms) if path.exists() else None
    findings = check_batch(frame, previous) if previous is not None else []
    summary = [{"check": f.check, "column": f.column, "measured": round(f.measured, 6), "limit": round(f.limit, 6)}
               for f in findings]
    if findings and not run.accept_new_reference:
        base = f"{run.dataset}/quarantine/{run.run_id}"
        batch = _store_frame(run, frame, f"{base}/batch.parquet.enc", run.context("quarantined-batch"), kms)
        report = json.dumps({"run_id": run.run_id, "dataset": run.dataset, "masked_sha256": masked["sha256"],
                             "findings": [f.as_dict() for f in findings]}, sort_keys=True).encode()
        encrypt_bytes(report, run.path(f"{base}/findings.json.enc"), key_id=run.kms_key_id,
                      context=run.context("quarantine-findings"), kms=kms)
        _audit(run, "data.validation_failed", {"findings": summary, "quarantine": batch["uri"],
                                               "masked_sha256": masked["sha256"]},
               idempotency_key=f"{run.run_id}:data_validation_failed")
        raise DataValidationFailed(
            f"data validation refused the batch before training ({len(findings)} finding(s): "
            + "; ".join(f"{f.check} column {f.column!r}" if f.column else f.check for f in findings)
            + "); quarantined encrypted, see the audit log")
    profile = build_profile(frame, run.label, file="masked-dataset")
    info = save_profile(profile, path, dataset=run.dataset, signing_key=key, key_id=run.kms_key_id, kms=kms)
    if previous is None:
        event, extra = "data.reference_set", {"reason": "first accepted batch of the dataset"}
    elif findings:
        event, extra = "data.reference_accepted", {"findings": summary, "accepted_by": run.trigger.get("user", "unknown"),
                                                   "reason": run.reference_reason}
    else:
        event, extra = "data.validation_passed", {}
    _audit(run, event, {"masked_sha256": masked["sha256"], "profile_sha256": info["sha256"],
                        "previous_profile_created_at": previous and previous["created_at"], **extra},
           idempotency_key=f"{run.run_id}:{event}")
    return {"clean": not findings, "findings": summary, "event": event, "profile_sha256": info["sha256"]}


DEFAULT_BUDGET = {"epsilon": 10.0, "delta": 1e-4}


def _ledger(run: RunSettings):
    from securepipe.training.ledger import PrivacyLedger

    return PrivacyLedger(run.state_dir)


def check_budget(run: RunSettings, masked: dict) -> dict:
    """Charge the run's target ε to the dataset's budget before training; refuse (fail closed) when it does not fit.

    The ledger needs a budget per dataset; it comes from configuration (`budgets`, the variable
    securepipe_privacy_budgets), "*" being the default. Charging the same run again replaces its
    entry, so a retried task never double counts.
    """
    from securepipe.errors import BudgetExceeded

    ledger = _ledger(run)
    configured = run.budgets.get(run.dataset) or run.budgets.get("*") or DEFAULT_BUDGET
    if ledger.status(run.dataset)["budget_epsilon"] is None:
        ledger.set_budget(run.dataset, configured["epsilon"], configured["delta"])
        _audit(run, "privacy.budget_set", {"epsilon": configured["epsilon"], "delta": configured["delta"]},
               idempotency_key=f"budget_set:{run.dataset}")
    try:
        return ledger.charge(run.dataset, _version(masked), run.run_id, run.target_epsilon, run.delta)
    except BudgetExceeded as exc:
        _audit(run, "training.budget_refused", {"target_epsilon": run.target_epsilon, "reason": str(exc)},
               idempotency_key=f"{run.run_id}:budget_refused")
        raise


def _version(masked: dict) -> str:
    """A dataset version is named by the content hash of its masked ciphertext."""
    return f"sha256-{masked['sha256'][:16]}"


def train(run: RunSettings, masked: dict) -> dict:
    """DP-SGD in the training environment; it reads the masked dataset's ciphertext and decrypts in memory."""
    cli = run.train_cli or str(Path(__file__).resolve().parents[2] / ".venv-train" / "bin" / "securepipe")
    with tempfile.TemporaryDirectory(prefix="securepipe-train-") as work:
        work = Path(work)
        data = work / "dataset.parquet.enc"
        with run.path(masked["key"]).open("rb") as src, open(data, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)  # ciphertext only
        out = work / "out"
        argv = [cli, "train", "--data", str(data), "--label", run.label,
                "--target-epsilon", str(run.target_epsilon), "--delta", str(run.delta),
                "--epochs", str(run.epochs), "--batch-size", str(run.batch_size), "--out", str(out),
                "--encrypt-model", "--kms-key-id", run.kms_key_id]
        for k, v in masked["context"].items():
            argv += ["--context", f"{k}={v}"]
        for k, v in run.context("model").items():
            argv += ["--model-context", f"{k}={v}"]
        argv += ["--masking-policy-hash", masked["report"]["policy_sha256"]]
        if run.nonprivate_baseline:
            argv.append("--nonprivate-baseline")
        result = subprocess.run(argv, env={**os.environ, **_aws_env(run)}, capture_output=True, text=True)  # noqa: S603
        if result.returncode != 0:
            # The training CLI prints only safe messages; pass its last line on, not its data.
            last = (result.stderr.strip().splitlines() or ["no output"])[-1][:500]
            raise SecurePipeError(f"training failed (exit {result.returncode}): {last}")
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        card = json.loads((out / "model_card.json").read_text())
        # Exact evaluation (attack AUC for the gate): outside ε, so it stays in XCom, never on the card.
        internal = json.loads((out / "evaluation_internal.json").read_text())
        model_file = next(p for p in out.iterdir() if p.name.endswith(".enc"))
        key = f"{run.dataset}/models/{run.run_id}/{model_file.name}"
        from securepipe.storage import atomic_write, sha256_file

        with open(model_file, "rb") as src, atomic_write(run.path(key)) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        cards = run.state_dir / "runs" / run.run_id
        cards.mkdir(parents=True, exist_ok=True)
        for name in ("model_card.json", "model_card.md"):
            if (out / name).exists():
                shutil.copy(out / name, cards / name)
        return {"version": _version(masked), "model": {"key": key, "uri": run.uri(key), "sha256": sha256_file(model_file),
                          "context": run.context("model"), "kms_key_arn": run.kms_key_id},
                "card": card, "internal_evaluation": internal["metrics"], "summary": summary}


def _aws_env(run: RunSettings) -> dict[str, str]:
    env = {"AWS_DEFAULT_REGION": run.aws.region}
    if run.aws.kms_endpoint_url:
        env["AWS_ENDPOINT_URL_KMS"] = run.aws.kms_endpoint_url
    if run.aws.access_key_id and run.aws.secret_access_key:
        env["AWS_ACCESS_KEY_ID"] = run.aws.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = run.aws.secret_access_key
    return env


def privacy_gate(run: RunSettings, trained: dict) -> dict:
    """Fail closed when ε spent exceeds the target or the membership-inference AUC is too high; record ε."""
    card = trained["card"]
    mia_auc = trained["internal_evaluation"].get("mia_auc")
    problems = []
    if card["epsilon"] > run.target_epsilon * 1.0001:
        problems.append(f"epsilon spent {card['epsilon']:.3f} exceeds the target {run.target_epsilon}")
    if mia_auc is not None and mia_auc > run.max_mia_auc:
        problems.append(f"membership-inference AUC {mia_auc:.3f} exceeds {run.max_mia_auc}")
    if problems:
        _audit(run, "pipeline.gate_failed", {"gate": "privacy", "reason": "; ".join(problems)},
               idempotency_key=f"{run.run_id}:privacy_gate")
        raise GateFailed("privacy gate: " + "; ".join(problems))
    # Re-charge with what the accountant says was spent (never more than the target checked above).
    budget = _ledger(run).charge(run.dataset, trained["version"], run.run_id, card["epsilon"], card["delta"])
    return {"epsilon": card["epsilon"], "delta": card["delta"], "mia_auc": mia_auc, "budget": budget}


def _artifact(record: dict, *, name: str, kind: str, role: str = "output") -> dict:
    from securepipe.lineage.manifest import artifact_record

    return artifact_record(record["uri"], name=name, kind=kind, role=role, kms_key_arn=record.get("kms_key_arn"),
                           encryption_context=record.get("context"), sha256=record["sha256"])


def publish_lineage(run: RunSettings, shards: list[dict], masked: dict, trained: dict, verdict: dict) -> dict:
    """Write the signed lineage manifest (it records the audit head) and its audit entry; return a summary."""
    from securepipe.lineage.manifest import build_manifest, write_manifest
    from securepipe.storage import sha256_file

    card = trained["card"]
    artifacts = [
        _artifact({"uri": run.input_uri, "sha256": sha256_file(_input_path(run)), "kms_key_arn": None},
                  name="raw-input", kind="raw", role="input"),
        *[_artifact(s, name=f"raw-shard-{int(s['index']):05d}", kind="raw_shard") for s in shards],
        _artifact(masked, name="masked-dataset", kind="masked"),
        _artifact(trained["model"], name="model", kind="model"),
    ]
    pii = masked["report"]["pii"]
    pii_counts = {
        column: ({entry["entity"]: entry.get("cells_masked", entry.get("cells_with_pii", 0))}
                 if "spans" not in entry else dict(entry["spans"]))
        for column, entry in pii.get("columns", {}).items() if entry.get("operator") != "keep"
    }
    metric_names = ("accuracy",)  # what the card releases inside ε; the rest stays with the gate
    manifest = build_manifest(
        dag_id=run.dag_id,
        run_id=run.run_id,
        trigger={**run.trigger, "airflow_run_id": run.airflow_run_id},
        artifacts=artifacts,
        pii_report=pii_counts,
        masking_policy_hash=masked["report"].get("policy_sha256"),
        privacy={"dataset": run.dataset, "epsilon": verdict["epsilon"], "delta": verdict["delta"],
                 "target_epsilon": run.target_epsilon, "budget": verdict["budget"],
                 "noise_multiplier": card.get("noise_multiplier"), "accountant": card.get("accountant"),
                 "statement": card.get("privacy_statement")},
        model={"uri": trained["model"]["uri"], "sha256": trained["model"]["sha256"],
               "metrics": {k: card[k] for k in metric_names if isinstance(card.get(k), (int, float))},
               "device": card.get("device")},
        extra={"dataset": run.dataset, "rows_in": sum(int(s["rows"]) for s in shards),
               "rows_out": masked["rows"], "kms_key_id": run.kms_key_id, "k_anonymity": masked["report"]["k_anonymity"],
               "masking_policy": run.policy_name},
    )
    written = write_manifest(manifest, manifests_dir=run.state_dir / "manifests", audit_log=audit_log(run))
    return {**written.as_dict(), "run_id": run.run_id, "rows_in": manifest["rows_in"], "rows_out": masked["rows"],
            "pii_report": pii_counts, "k_anonymity": masked["report"]["k_anonymity"], "privacy": manifest["privacy"],
            "model": manifest["model"], "kms_key_id": run.kms_key_id,
            "masking_plan": masked["report"].get("plan"), "training_columns": card.get("data", {}).get("columns"),
            "outputs": {"masked-dataset": masked["uri"], "model": trained["model"]["uri"]},
            "audit_log": str(audit_log(run).path)}


def cleanup(run: RunSettings) -> int:
    """Remove the run's intermediate shards (ciphertext) and shred their scope key; the input and
    published outputs stay."""
    prefix = run.path(f"{run.dataset}/runs/{run.run_id}")
    if not prefix.exists():
        return 0
    removed = sum(1 for item in prefix.rglob("*") if item.is_file())
    if isinstance(prefix, Path):
        shutil.rmtree(prefix)
    else:
        prefix.fs.rm(prefix.path, recursive=True)
    _shred_store(run, _kms(run)).shred(_run_scope(run))
    return removed
