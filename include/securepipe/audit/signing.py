"""The evidence signing key: HMAC-SHA256 under a 32-byte secret wrapped by KMS.

Threat model: someone who edits history (audit entries, lineage manifests) must
not be able to produce valid signatures. The hash chain alone only detects edits
made by someone who does not recompute the hashes; the signature binds every
entry and manifest to a secret that never lands on disk in plaintext. It is
stored like every other securepipe secret (`securepipe.crypto.secrets`: one
wrapped-secret file, KMS through `securepipe.crypto.kms`, an encryption context
naming the purpose "evidence-signing"), created no-clobber on the first append and
unwrapped in memory for one process. Without a KMS key nothing is signed: there is
no unprotected fallback, so evidence is never signed with a key anyone could copy.

`key_id` is an HMAC of a fixed label under the secret: entries carry it so a
verifier can say "signed by another key" rather than just "bad signature", and it
reveals nothing about the secret. It survives a rewrap to another KMS key (the
secret does not change).
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from securepipe import config
from securepipe.crypto.kms import default_kms
from securepipe.crypto.secrets import EVIDENCE_SIGNING_KEY_FILE, load_or_create_secret
from securepipe.errors import AuditError

KEY_FILE_NAME = EVIDENCE_SIGNING_KEY_FILE
PURPOSE = "evidence-signing"
ALGORITHM = "HMAC-SHA256"


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    _secret: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> SigningKey:
        key_id = hmac.new(secret, b"securepipe evidence key id", hashlib.sha256).hexdigest()[:16]
        return cls(key_id, secret)

    def __repr__(self) -> str:  # never show the secret, even in a debugger or a traceback
        return f"SigningKey(key_id={self.key_id!r})"

    def sign(self, message: bytes) -> str:
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), str(signature))


def default_key_path(env=None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("SECUREPIPE_SIGNING_KEY_FILE")
    return Path(explicit) if explicit else config.state_dir(env) / KEY_FILE_NAME


def get_signing_key(path: Path | None = None, *, create: bool = False, kms_key_id: str | None = None, aws=None):
    """The key stored at `path` (default: state dir); created first, wrapped under `kms_key_id` (or
    SECUREPIPE_KMS_KEY_ID), when `create` and missing. An existing file is unwrapped with the KMS
    key it records."""
    path = Path(path) if path else default_key_path()
    if not path.exists():
        if not create:
            raise AuditError(f"signing key file {path} not found")
        kms_key_id = config.kms_key_id(kms_key_id)
        if not kms_key_id:
            raise AuditError("no KMS key is configured (SECUREPIPE_KMS_KEY_ID): the evidence signing key "
                             "is never stored unwrapped, so nothing can be signed")
    secret = load_or_create_secret(path, key_id=kms_key_id if create else None, purpose=PURPOSE, kms=default_kms(aws))
    return SigningKey.from_secret(secret)
