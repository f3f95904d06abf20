"""Profiles at rest: signed with the evidence key, then envelope-encrypted under the KMS key.

The pipeline keeps one profile per dataset beside the dataset's other state
(`<state_dir>/data-profiles/<dataset>.profile.enc`, as the privacy ledger keeps
`privacy-budget/<dataset>.json`). Two layers, because they stop different people: the
envelope (Tink streaming AEAD, KMS-wrapped data key, encryption context naming dataset and
purpose) keeps the profile's category values and aggregates from readers of the state dir;
the HMAC under the evidence key (the audit log's) stops anyone who may call KMS Encrypt
from substituting a profile that fits a poisoned batch.
"""
from __future__ import annotations

import json
from pathlib import Path

from securepipe.audit.log import canonical_json
from securepipe.errors import AuditError

PROFILES_DIRNAME = "data-profiles"
PURPOSE = "data-profile"


def profile_path(state_dir, dataset: str) -> Path:
    from securepipe.training.ledger import _check_id

    return Path(state_dir) / PROFILES_DIRNAME / f"{_check_id('dataset id', dataset)}.profile.enc"


def encryption_context(dataset: str) -> dict[str, str]:
    return {"dataset": dataset, "purpose": PURPOSE}


def save_profile(profile: dict, path, *, dataset: str, signing_key, key_id: str | None, kms=None) -> dict:
    """Sign and encrypt `profile` to `path` atomically; returns the envelope info (sha256, key)."""
    from securepipe.crypto import encrypt_bytes

    signed = {"profile": profile, "signature": {"key_id": signing_key.key_id,
                                                "value": signing_key.sign(canonical_json(profile))}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return encrypt_bytes(canonical_json(signed), path, key_id=key_id, context=encryption_context(dataset), kms=kms)


def load_profile(path, *, dataset: str, signing_key, kms=None) -> dict:
    """Decrypt and verify a profile; AuditError when its signature does not hold."""
    from securepipe.crypto import decrypt_to_bytes

    signed = json.loads(bytes(decrypt_to_bytes(path, expected_context=encryption_context(dataset), kms=kms)))
    signature = signed.get("signature") or {}
    if signature.get("key_id") != signing_key.key_id:
        raise AuditError(f"data profile {Path(path).name}: signed by another key, not the evidence key")
    if not signing_key.verify(canonical_json(signed["profile"]), signature.get("value", "")):
        raise AuditError(f"data profile {Path(path).name}: signature does not verify: the profile was edited")
    return signed["profile"]
