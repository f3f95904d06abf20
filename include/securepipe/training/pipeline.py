"""One DP training run end to end: load, budget check, train, evaluate, save (encrypted), card.

Threat model, in the order the run meets it:
- plaintext on disk: an encrypted input is decrypted into memory only; an encrypted
  model is serialised in a private temporary directory (tmpfs when the host has one),
  read back, encrypted with the pipeline's envelope encryption and the plaintext file
  removed before the function returns, whatever happens;
- running over budget: the privacy ledger is charged with the run's accounted epsilon
  BEFORE the first training step, and a refusal stops the run with nothing written;
- membership leakage: the model card reports epsilon and a measured attack AUC;
- values in logs: the summary and the card carry hashes, counts and parameters only.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from securepipe.errors import PolicyError
from securepipe.storage import atomic_write, sha256_file
from securepipe.training import accounting
from securepipe.training.card import SCHEMA, code_version, utc_now, write_card

log = logging.getLogger("securepipe.training")

MODEL_FILE = "model.keras"
INTERNAL_EVALUATION = "evaluation_internal.json"
INTERNAL_SCHEMA = "securepipe.internal_evaluation/1"
ENCRYPTED_MODEL_FILE = "model.keras.enc"


@dataclass(frozen=True)
class LedgerCharge:
    """Where and under which ids to charge the run's privacy cost (see ledger.PrivacyLedger)."""

    state_dir: str
    dataset: str
    version: str
    run_id: str


@dataclass(frozen=True)
class ModelEncryption:
    """Encrypt the saved model with this KMS key and encryption context."""

    kms_key_id: str | None
    context: dict


@contextlib.contextmanager
def _private_tempdir():
    """A 0700 temporary directory, in RAM-backed /dev/shm when present, removed on exit."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="securepipe-model-", dir=base) as tmp:
        yield Path(tmp)


def _save_model(served, out_dir: Path, encryption: ModelEncryption | None) -> dict:
    with _private_tempdir() as tmp:
        plain = tmp / MODEL_FILE
        served.save(plain)
        payload = plain.read_bytes()
        plain.unlink()
    plaintext_sha256 = hashlib.sha256(payload).hexdigest()
    if encryption is None:
        target = out_dir / MODEL_FILE
        with atomic_write(target) as handle:
            handle.write(payload)
        return {"file": MODEL_FILE, "path": str(target), "sha256": plaintext_sha256, "encrypted": False}
    from securepipe.crypto import encrypt_bytes

    target = out_dir / ENCRYPTED_MODEL_FILE
    encrypt_bytes(payload, target, key_id=encryption.kms_key_id, context=encryption.context)
    del payload
    return {
        "file": ENCRYPTED_MODEL_FILE, "path": str(target), "sha256": sha256_file(target),
        "plaintext_sha256": plaintext_sha256, "encrypted": True,
        "encryption_context": dict(encryption.context),
    }


def train_and_report(
    data_path, label: str, target_epsilon: float, out_dir, *,
    delta: float | None = None, epochs: int = 60, batch_size: int = 256,
    accountant: str = accounting.DEFAULT_ACCOUNTANT, l2_norm_clip: float | None = None,
    learning_rate: float | None = None, hidden=None, seed: int | None = None,
    input_context: dict | None = None, encryption: ModelEncryption | None = None,
    ledger: LedgerCharge | None = None, masking_policy_sha256: str | None = None,
    nonprivate_baseline: bool = False,
) -> dict:
    """Train the pipeline's model with DP-SGD at `target_epsilon` and write the model and its card.

    Returns a JSON-safe summary (also the CLI's last stdout line). Raises InputError for bad
    data, BudgetExceeded when the ledger refuses (before training), CryptoError for keys.
    """
    from securepipe.training import data, evaluate, model

    settings = {
        "hidden": tuple(hidden or model.DEFAULT_HIDDEN),
        "l2_norm_clip": model.DEFAULT_L2_NORM_CLIP if l2_norm_clip is None else l2_norm_clip,
        "learning_rate": model.DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate,
    }
    out = Path(out_dir)
    frame, data_sha256 = data.load_table(data_path, context=input_context)
    # δ from the whole table's size (the training split's would be larger, so this is the stricter one):
    # the scaling's noise is set before the split exists.
    delta = delta or accounting.default_delta(len(frame))
    try:
        releases = accounting.release_noise(target_epsilon, delta, accountant)
    except ValueError as exc:  # our own messages: parameters only, no data
        raise PolicyError(f"cannot plan the releases for {data_path}: {exc}") from None
    # The held-out split may be reproducible; the training noise (model.fit, seed None) never is.
    split = data.prepare(frame, label, file=str(data_path), seed=0 if seed is None else seed,
                         scaling_noise_multiplier=releases["scaling"])
    del frame  # the only full plaintext copy besides the arrays; free it early
    n = len(split.y_train)
    if batch_size > n:
        batch_size = n  # small tables: one full batch (sampling rate 1) instead of an error
    try:
        plan = accounting.noise_for_epsilon(target_epsilon, n, batch_size, epochs, delta, accountant, releases)
    except ValueError as exc:  # our own messages: parameters only, no data
        raise PolicyError(f"cannot plan DP-SGD for {data_path}: {exc}") from None
    budget_status = None
    if ledger is not None:
        from securepipe.training.ledger import PrivacyLedger

        budget_status = PrivacyLedger(ledger.state_dir).charge(
            ledger.dataset, ledger.version, ledger.run_id, plan.epsilon, plan.delta
        )
    device = model.configure_device()
    log.info("DP-SGD plan: epsilon %.3f delta %.3g noise %.4g steps %d", plan.epsilon, plan.delta,
             plan.noise_multiplier, plan.steps)
    settings["n_classes"] = split.n_classes
    trained = model.fit(split.x_train, split.y_train, epochs=epochs, batch_size=batch_size,
                        noise_multiplier=plan.noise_multiplier, seed=seed, **settings)
    metrics = evaluate.evaluate(trained, split)
    released = evaluate.dp_accuracy(trained, split, releases["accuracy"])
    baseline = None
    if nonprivate_baseline:
        plain = model.fit(split.x_train, split.y_train, epochs=epochs, batch_size=batch_size,
                          noise_multiplier=None, seed=seed, **settings)
        baseline = {**evaluate.evaluate(plain, split), "examples_per_s": plain.examples_seen / plain.seconds}
    statement = accounting.privacy_statement(plan, settings["l2_norm_clip"])
    out.mkdir(parents=True, exist_ok=True)
    artifact = _save_model(model.export_network(trained, split.mean, split.std), out, encryption)
    card = {
        "schema": SCHEMA,
        "created_at": utc_now(),
        "code_version": code_version(),
        "device": device,
        # flat copies of the key facts, for tools that read one level
        "epsilon": plan.epsilon, "delta": plan.delta, "noise_multiplier": plan.noise_multiplier,
        "sampling_rate": plan.sampling_rate, "steps": plan.steps, "accountant": plan.accountant,
        "l2_norm_clip": settings["l2_norm_clip"],
        "accuracy": released["accuracy"],
        "privacy_statement": statement,
        "privacy": {
            **plan.as_dict(), "target_epsilon": target_epsilon, "l2_norm_clip": settings["l2_norm_clip"],
            "release_epsilon_shares": dict(accounting.RELEASE_EPSILON_SHARES),
            "statement": statement,
            "budget": budget_status,
        },
        "data": {
            "file_sha256": data_sha256, "encrypted": bool(input_context), "label": label,
            "classes": list(split.classes), "features": list(split.features), "columns": dict(split.columns),
            "rows_train": n, "rows_test": len(split.y_test), "masking_policy_sha256": masking_policy_sha256,
        },
        "released_metrics": released,
        "model": {
            "name": f"dp-mlp-{label}",
            "architecture": f"MLP {'-'.join(map(str, settings['hidden']))} relu, "
                            f"{'sigmoid' if split.n_classes == 2 else f'softmax ({split.n_classes} classes)'} "
                            f"output, Adam lr {settings['learning_rate']:g}, DP input scaling built in",
            **artifact,
        },
    }
    # Exact figures, outside ε: for the privacy gate and operators inside the plaintext boundary, never
    # on the card (the card says they are not released).
    internal = {"schema": INTERNAL_SCHEMA, "released": False, "metrics": {**metrics, "examples_per_s": trained.examples_seen / trained.seconds},
                "nonprivate_baseline": baseline}
    card_path = write_card(out, card)
    with atomic_write(out / INTERNAL_EVALUATION, "w") as handle:
        json.dump(internal, handle, indent=2, sort_keys=True)
    summary = {
        "status": "ok", "model_card": str(card_path), "model": artifact["path"],
        "model_sha256": artifact["sha256"], "encrypted": artifact["encrypted"],
        "epsilon": plan.epsilon, "delta": plan.delta, "noise_multiplier": plan.noise_multiplier,
        "accuracy": released["accuracy"], "mia_auc": metrics["mia_auc"],
        "device": device,
    }
    if baseline is not None:
        summary.update(nonprivate_accuracy=baseline["accuracy"], nonprivate_mia_auc=baseline["mia_auc"])
    return summary

