"""Small long-lived secrets stored KMS-wrapped on local disk: the pseudonymization secret, the
evidence signing key (`securepipe.audit.signing`) and the shred store's master. One file format for all.

Why: pseudonyms must be stable across runs (the same patient gets the same
pseudonym), so their HMAC secret must persist; but a secret on disk in the clear
would let anyone who reads the state directory re-identify every record by
brute force over the identifier space. The secret is therefore generated once,
wrapped by KMS under an encryption context naming its purpose (so a wrapped
blob cannot be swapped for another kind of secret), and unwrapped in memory only.

Creation is atomic and no-clobber: two workers creating the secret at the same
time both end up using the one that reached the disk first (hard link of a
complete temp file, never a rename over an existing file), so pseudonyms never
fork. Threats: a reader of the state directory or its backups (sees only a KMS
ciphertext); a race between parallel tasks (no-clobber create).
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets as _random
import tempfile
from pathlib import Path

from securepipe.config import AwsSettings
from securepipe.crypto.kms import RESERVED_CONTEXT_PREFIX, KmsClient, default_kms
from securepipe.errors import CryptoError

SECRET_FILE_FORMAT = "securepipe-wrapped-secret"  # noqa: S105 # nosec B105
PSEUDONYM_SECRET_FILE = "pseudonym-secret.kms.json"  # noqa: S105 # nosec B105
EVIDENCE_SIGNING_KEY_FILE = "evidence-signing-key.kms.json"
SECRET_BYTES = 32

# Unwrapped secrets of this process, keyed by (path, exact file content): a rewrap or
# re-creation changes the content and so misses the cache.
_unwrapped: dict[tuple[str, bytes], bytes] = {}


def _context(purpose: str) -> dict[str, str]:
    return {f"{RESERVED_CONTEXT_PREFIX}purpose": purpose}


def _encode(kms_key_arn: str, purpose: str, wrapped: bytes) -> bytes:
    record = {
        "format": SECRET_FILE_FORMAT,
        "version": 1,
        "purpose": purpose,
        "kms_key_id": kms_key_arn,
        "wrapped": base64.b64encode(wrapped).decode("ascii"),
    }
    return (json.dumps(record, sort_keys=True, indent=1) + "\n").encode("ascii")


def _decode(path: Path, content: bytes, purpose: str) -> tuple[str, bytes]:
    try:
        record = json.loads(content)
        if record["format"] != SECRET_FILE_FORMAT or record["version"] != 1:
            raise ValueError
        wrapped = base64.b64decode(record["wrapped"], validate=True)
        key_arn = record["kms_key_id"]
    except (ValueError, KeyError, TypeError):
        raise CryptoError(f"file {path}: not a securepipe wrapped secret") from None
    if record["purpose"] != purpose:
        raise CryptoError(f"file {path}: holds a secret for another purpose")
    return key_arn, wrapped


def create_no_clobber(path: Path, content: bytes) -> None:
    """Publish `content` at `path` only if nothing is there yet (a complete file or nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):  # another worker won the race: use theirs
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_or_create_secret(path: Path, *, key_id: str | None, purpose: str, kms: KmsClient) -> bytes:
    """The secret stored at `path`, creating it (wrapped under `key_id`) on first use."""
    path = Path(path)
    if not path.exists():
        if not key_id:
            raise CryptoError(f"file {path}: missing, and no KMS key id given to create it")
        wrapped, arn = kms.wrap(key_id, _random.token_bytes(SECRET_BYTES), _context(purpose))
        create_no_clobber(path, _encode(arn, purpose, wrapped))
    content = path.read_bytes()
    key_arn, wrapped = _decode(path, content, purpose)
    if kms.require_enabled(key_arn) != key_arn:  # a disabled key stops the secret too, even when cached
        raise CryptoError(f"file {path}: the recorded KMS key id is not the key's ARN")
    cache_key = (str(path.resolve()), content)
    if cache_key not in _unwrapped:
        secret = kms.unwrap(key_arn, wrapped, _context(purpose))
        if len(secret) != SECRET_BYTES:
            raise CryptoError(f"file {path}: unwrapped secret has the wrong length")
        _unwrapped[cache_key] = secret
    return _unwrapped[cache_key]


def rewrap_secret(path: Path, *, purpose: str, to_key_id: str | None = None, kms: KmsClient | None = None) -> dict:
    """Re-wrap a stored secret under `to_key_id` (default: its own key's current version) via KMS ReEncrypt."""
    kms = kms or default_kms()
    path = Path(path)
    key_arn, wrapped = _decode(path, path.read_bytes(), purpose)
    new_wrapped, new_arn = kms.rewrap(wrapped, key_arn, _context(purpose), to_key_id or key_arn)
    from securepipe.storage import atomic_write

    with atomic_write(path) as handle:
        handle.write(_encode(new_arn, purpose, new_wrapped))
    os.chmod(path, 0o600)
    return {"path": str(path), "kms_key_id_before": key_arn, "kms_key_id": new_arn}


def pseudonym_secret(state_dir: Path, key_id: str, aws: AwsSettings) -> bytes:
    """The 32-byte pseudonymization secret: created KMS-wrapped under `state_dir` on first use, stable after.

    `key_id` is used only to create it; afterwards the key recorded in the file is
    used (so a rewrap to another key keeps working). Never log the return value.
    """
    return load_or_create_secret(
        Path(state_dir) / PSEUDONYM_SECRET_FILE, key_id=key_id, purpose="pseudonym-secret", kms=default_kms(aws)
    )
