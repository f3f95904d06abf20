"""The evidence signing key: HMAC-SHA256 under a key that is itself wrapped by KMS.

Threat model: someone who edits history (audit entries, lineage manifests) must
not be able to produce valid signatures. The hash chain alone only detects edits
made by someone who does not recompute the hashes; the signature binds every
entry and manifest to a 32-byte secret that never lands on disk in plaintext when
a KMS key is configured: the key file holds the KMS ciphertext only, and KMS
Decrypt (with an encryption context naming the purpose) unwraps it in memory for
one process. Without a KMS key the secret is stored in a 0600 file and a loud
warning says that this is for development only: anyone who can read that file
can forge evidence.

The key file is JSON:
    {"version": 1, "key_id": "<random hex>", "wrapping": "kms",
     "kms_key_arn": "...", "encryption_context": {...}, "ciphertext_b64": "..."}
or, for the unprotected development fallback,
    {"version": 1, "key_id": "...", "wrapping": "none", "key_b64": "..."}
`key_id` is a random label (not derived from the secret) that entries carry so a
verifier can say "signed by another key" rather than just "bad signature".
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from securepipe import config
from securepipe.audit.locking import exclusive_lock
from securepipe.errors import AuditError, CryptoError, KmsUnavailable
from securepipe.storage import atomic_write

log = logging.getLogger(__name__)

KEY_FILE_NAME = "evidence-signing-key.json"
KEY_BYTES = 32
ALGORITHM = "HMAC-SHA256"
ENCRYPTION_CONTEXT = {"securepipe:purpose": "evidence-signing"}
UNPROTECTED_WARNING = (
    "WARNING: no KMS key is configured (SECUREPIPE_KMS_KEY_ID); the evidence signing key "
    "is stored UNWRAPPED in {path}. Anyone who can read that file can forge audit entries "
    "and manifests. Use this for local development only."
)


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    wrapping: str  # "kms" or "none"
    _secret: bytes

    def __repr__(self) -> str:  # never show the secret, even in a debugger or a traceback
        return f"SigningKey(key_id={self.key_id!r}, wrapping={self.wrapping!r})"

    def sign(self, message: bytes) -> str:
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), str(signature))


def default_key_path(env=None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("SECUREPIPE_SIGNING_KEY_FILE")
    return Path(explicit) if explicit else config.state_dir(env) / KEY_FILE_NAME


def _kms_client(aws):
    import boto3
    from botocore.config import Config

    aws = aws or config.aws_from_env()
    # A short connect timeout and bounded retries: a dead KMS must fail the task, not hang it.
    return boto3.client(
        "kms", config=Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=5, read_timeout=15),
        **aws.boto3_kwargs("kms"),
    )


def _kms_call(operation: str, call):
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    try:
        return call()
    except (EndpointConnectionError, ConnectionError) as exc:
        raise KmsUnavailable(f"KMS {operation} failed: endpoint unreachable ({type(exc).__name__})") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "unknown")
        raise CryptoError(f"KMS {operation} refused the evidence signing key: {code}") from None
    except BotoCoreError as exc:
        raise KmsUnavailable(f"KMS {operation} failed: {type(exc).__name__}") from None


def create_signing_key(path: Path, *, kms_key_id: str | None = None, aws=None) -> SigningKey:
    """Create a new key file at `path` (refuses to overwrite one)."""
    path = Path(path)
    if path.exists():
        raise AuditError(f"signing key file {path} already exists; refusing to replace it")
    secret = secrets.token_bytes(KEY_BYTES)
    key_id = secrets.token_hex(8)
    record: dict = {"version": 1, "key_id": key_id, "algorithm": ALGORITHM}
    if kms_key_id:
        client = _kms_client(aws)
        response = _kms_call(
            "Encrypt",
            lambda: client.encrypt(KeyId=kms_key_id, Plaintext=secret, EncryptionContext=ENCRYPTION_CONTEXT),
        )
        record.update(
            wrapping="kms",
            kms_key_arn=response["KeyId"],
            encryption_context=ENCRYPTION_CONTEXT,
            ciphertext_b64=base64.b64encode(response["CiphertextBlob"]).decode(),
        )
    else:
        log.warning(UNPROTECTED_WARNING.format(path=path))
        record.update(wrapping="none", key_b64=base64.b64encode(secret).decode())
    path.parent.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # the temp file is created 0600 before any byte is written
    try:
        with atomic_write(path, "w") as handle:
            json.dump(record, handle, indent=2)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return SigningKey(key_id, record["wrapping"], secret)


def load_signing_key(path: Path, *, aws=None) -> SigningKey:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
        key_id, wrapping = record["key_id"], record["wrapping"]
    except FileNotFoundError:
        raise AuditError(f"signing key file {path} not found") from None
    except (ValueError, KeyError, TypeError):
        raise AuditError(f"signing key file {path} is not a valid key file") from None
    if wrapping == "kms":
        client = _kms_client(aws)
        blob = base64.b64decode(record["ciphertext_b64"])
        response = _kms_call(
            "Decrypt",
            lambda: client.decrypt(
                CiphertextBlob=blob, EncryptionContext=record["encryption_context"], KeyId=record["kms_key_arn"]
            ),
        )
        secret = response["Plaintext"]
    elif wrapping == "none":
        if path.stat().st_mode & 0o077:
            raise AuditError(f"signing key file {path} is readable by group or others; expected mode 0600")
        log.warning(UNPROTECTED_WARNING.format(path=path))
        secret = base64.b64decode(record["key_b64"])
    else:
        raise AuditError(f"signing key file {path}: unknown wrapping {wrapping!r}")
    if len(secret) != KEY_BYTES:
        raise AuditError(f"signing key file {path}: unwrapped key has the wrong length")
    return SigningKey(key_id, wrapping, secret)


def rewrap_signing_key(path: Path, *, to_key_id: str, kms) -> dict:
    """Re-wrap a KMS-wrapped key file under `to_key_id` (KMS ReEncrypt: the secret never leaves KMS),
    so key rotation can retire the old key without orphaning the evidence."""
    path = Path(path)
    with exclusive_lock(path):
        record = json.loads(path.read_text())
        if record.get("wrapping") != "kms":
            return {"path": str(path), "kms_key_id_before": None, "kms_key_id": None}
        before = record["kms_key_arn"]
        wrapped, arn = kms.rewrap(base64.b64decode(record["ciphertext_b64"]), before,
                                  record["encryption_context"], to_key_id)
        record.update(kms_key_arn=arn, ciphertext_b64=base64.b64encode(wrapped).decode())
        old_umask = os.umask(0o077)
        try:
            with atomic_write(path, "w") as handle:
                json.dump(record, handle, indent=2)
        finally:
            os.umask(old_umask)
    os.chmod(path, 0o600)
    return {"path": str(path), "kms_key_id_before": before, "kms_key_id": arn}


def get_signing_key(path: Path | None = None, *, create: bool = False, kms_key_id: str | None = None, aws=None):
    """Load the key at `path` (default: state dir); create it first when `create` and missing.

    A new key is KMS-wrapped when `kms_key_id` (or SECUREPIPE_KMS_KEY_ID) names a key.
    """
    path = Path(path) if path else default_key_path()
    if create and not path.exists():
        with exclusive_lock(path):  # two first appends at once must not create two keys
            if not path.exists():
                return create_signing_key(path, kms_key_id=config.kms_key_id(kms_key_id), aws=aws)
    return load_signing_key(path, aws=aws)
