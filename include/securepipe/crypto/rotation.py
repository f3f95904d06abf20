"""Key rotation: KMS automatic rotation, and re-wrapping stored keys without touching bulk data.

Why: a KMS key may have to be replaced (compromise, policy, account move), and
old key versions should not be needed forever. Re-wrapping uses KMS ReEncrypt,
so data keys never leave KMS in plaintext, and bulk ciphertext is copied byte
for byte, never decrypted. Threat: a retired or compromised KMS key that still
guards stored data; after a rewrap to a new key the old one can be disabled
(tests prove the data still opens and a stale copy does not).

What a rotation task does, in order: `enable_key_rotation` on the current key
(yearly backing-key rotation by KMS, same ARN), then `rewrap_state` (the
pseudonymization secret and the shred store's master), then `rewrap_artifacts`
over every stored artifact (fan out per file in the DAG).
"""
from __future__ import annotations

from pathlib import Path

from securepipe.config import kms_key_id as configured_key_id
from securepipe.crypto import envelope, secrets, shred
from securepipe.crypto.kms import KmsClient, default_kms
from securepipe.errors import CryptoError


def enable_key_rotation(key_id: str | None = None, kms: KmsClient | None = None) -> bool:
    """Turn on KMS automatic key rotation for the configured key (True once enabled)."""
    key_id = configured_key_id(key_id)
    if not key_id:
        raise CryptoError("no KMS key id: pass --kms-key-id or set SECUREPIPE_KMS_KEY_ID")
    return (kms or default_kms()).enable_rotation(key_id)


def rewrap_state(state_dir: Path, *, to_key_id: str | None = None, kms: KmsClient | None = None) -> list[dict]:
    """Re-wrap the KMS-wrapped secrets kept under `state_dir` (those that exist); with `to_key_id`,
    also the evidence signing key, so the old key can be retired without orphaning the audit log."""
    from securepipe.audit.signing import KEY_FILE_NAME, rewrap_signing_key

    state_dir = Path(state_dir)
    stored = [
        (state_dir / secrets.PSEUDONYM_SECRET_FILE, "pseudonym-secret"),
        (state_dir / "shred-keys" / shred.MASTER_FILE, shred.MASTER_PURPOSE),
    ]
    done = [
        secrets.rewrap_secret(path, purpose=purpose, to_key_id=to_key_id, kms=kms)
        for path, purpose in stored
        if path.exists()
    ]
    if to_key_id and (state_dir / KEY_FILE_NAME).exists():
        done.append(rewrap_signing_key(state_dir / KEY_FILE_NAME, to_key_id=to_key_id, kms=kms or default_kms()))
    return done


def rewrap_artifacts(paths, *, to_key_id: str | None = None, kms: KmsClient | None = None) -> list[dict]:
    """Re-wrap each artifact's data key; returns, per file, the new ciphertext sha256 for lineage."""
    kms = kms or default_kms()
    return [envelope.rewrap(path, to_key_id=to_key_id, kms=kms) for path in paths]


# -- the key_rotation DAG's stages ---------------------------------------------------------------
KEY_REGISTRY_FILE = "kms-keys.json"


def envelope_files(root) -> list[tuple[str, object]]:
    """(relative path, path) of every securepipe envelope under `root` (storage root or state dir)."""
    from securepipe.audit.checks import _files_under

    return [(name, path) for name, path in _files_under(root) if envelope.is_ciphertext(path)]


def rewrap_artifact(path, *, to_key_id: str, kms: KmsClient | None = None) -> dict:
    """Re-wrap one artifact under `to_key_id` unless it already is (idempotent: a retried or resumed
    rotation skips what is done). The body is never decrypted."""
    kms = kms or default_kms()
    target = kms.require_enabled(to_key_id)
    before = envelope.inspect(path)["kms_key_id"]
    if before == target:
        return {"path": str(path), "kms_key_id_before": before, "kms_key_id": target, "rewrapped": False}
    return {**envelope.rewrap(path, to_key_id=target, kms=kms), "rewrapped": True}


def read_key_registry(state_dir) -> dict:
    """{"current": ARN or None, "retired": [ARN, ...]}: which KMS keys may still wrap artifacts."""
    import json

    path = Path(state_dir) / KEY_REGISTRY_FILE
    if not path.exists():
        return {"current": None, "retired": []}
    try:
        registry = json.loads(path.read_text())
        return {"current": registry.get("current"), "retired": sorted(set(registry["retired"]))}
    except (ValueError, KeyError, TypeError):
        raise CryptoError(f"key registry {path} is unreadable; refusing to guess which keys are retired") from None


def retire_keys(state_dir, *, current: str, previous: list[str]) -> dict:
    """Record `current` as the key every artifact is wrapped by, and `previous` keys as retired
    (the compliance check `keys_current` flags any artifact still under one of them)."""
    import json

    from securepipe.storage import atomic_write

    registry = read_key_registry(state_dir)
    retired = sorted((set(registry["retired"]) | set(previous) | ({registry["current"]} - {None})) - {current})
    updated = {"current": current, "retired": retired}
    with atomic_write(Path(state_dir) / KEY_REGISTRY_FILE, "w") as handle:
        json.dump(updated, handle, indent=2, sort_keys=True)
    return updated
