"""Crypto-shredding: per-dataset and per-data-subject keys whose deletion makes data unreadable.

Why: erasure requests (GDPR art. 17) must also reach copies we cannot edit:
backups, replicas, old object versions. Data protected by a scope key that no
longer exists cannot be read back by anyone, KMS access included, so deleting
one small key file erases every copy at once.

Design: a `ShredKeyStore` directory holds one 256-bit key per scope
("dataset:NAME" or "subject:ID"), each AES-256-GCM-wrapped under a store key
that is derived from one KMS-wrapped master secret (one KMS call per process,
not per subject). File names are an HMAC of the scope, so the directory does not
list which subjects or datasets exist (a subject id such as an MRN is personal
data). Artifacts encrypted with `shred_scope=` carry only that HMAC reference
and need both KMS and the scope key to open; `seal`/`open` protect small values
(e.g. the re-identification entry of one subject) under a subject's key.

Threats: a reader of storage or backups after an erasure (the key is gone);
a reader of the store directory (sees HMACs and wrapped keys only).
Limits, stated plainly: the store directory itself must not be kept in long-term
backups (or only with a retention shorter than the erasure deadline), and
unlinking a file does not scrub the disk blocks of a copy-on-write or SSD
volume; the scope key is still wrapped there, so KMS access is also needed.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets as _random
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securepipe.config import kms_key_id, state_dir
from securepipe.crypto.kms import KmsClient, default_kms
from securepipe.crypto.secrets import create_no_clobber, load_or_create_secret
from securepipe.errors import CryptoError

SCOPE_KINDS = ("dataset", "subject")
MASTER_FILE = "master.kms.json"
MASTER_PURPOSE = "shred-store-master"
_NONCE = 12
_TOKEN_VERSION = b"\x01"


def parse_scope(scope: str) -> tuple[str, str]:
    kind, sep, name = str(scope).partition(":")
    if not sep or kind not in SCOPE_KINDS or not name:
        raise CryptoError(
            f"a shred scope must look like 'dataset:NAME' or 'subject:ID' (kinds: {', '.join(SCOPE_KINDS)})"
        )
    return kind, name


def default_store(key_id: str | None = None, kms: KmsClient | None = None) -> ShredKeyStore:
    return ShredKeyStore(state_dir() / "shred-keys", key_id=kms_key_id(key_id), kms=kms)


class ShredKeyStore:
    """Scope keys under `root`; the master secret is created under `key_id` on first use."""

    def __init__(self, root: Path, *, key_id: str | None = None, kms: KmsClient | None = None):
        self.root = Path(root)
        self.key_id = key_id
        self.kms = kms or default_kms()
        self._derived: tuple[bytes, AESGCM] | None = None

    def _keys(self) -> tuple[bytes, AESGCM]:
        if self._derived is None:
            master = load_or_create_secret(
                self.root / MASTER_FILE, key_id=self.key_id, purpose=MASTER_PURPOSE, kms=self.kms
            )
            name_key = hmac.new(master, b"securepipe shred: scope names v1", hashlib.sha256).digest()
            wrap_key = hmac.new(master, b"securepipe shred: scope key wrapping v1", hashlib.sha256).digest()
            self._derived = (name_key, AESGCM(wrap_key))
        return self._derived

    def ref(self, scope: str) -> str:
        """The stored, non-identifying reference of a scope: 'KIND:HMAC'."""
        kind, name = parse_scope(scope)
        digest = hmac.new(self._keys()[0], f"{kind}:{name}".encode(), hashlib.sha256).hexdigest()[:40]
        return f"{kind}:{digest}"

    def _path(self, ref: str) -> Path:
        kind, _, digest = ref.partition(":")
        if kind not in SCOPE_KINDS or len(digest) != 40 or not all(c in "0123456789abcdef" for c in digest):
            raise CryptoError("malformed shred scope reference")
        return self.root / kind / f"{digest}.key"

    def _scope_aead(self, ref: str, *, create: bool) -> AESGCM:
        path = self._path(ref)
        wrapper = self._keys()[1]
        if not path.exists():
            if not create:
                raise CryptoError(f"the key of shred scope {ref} does not exist: it was shredded (or never created)")
            nonce = _random.token_bytes(_NONCE)
            create_no_clobber(path, nonce + wrapper.encrypt(nonce, _random.token_bytes(32), ref.encode()))
        blob = path.read_bytes()
        try:
            return AESGCM(wrapper.decrypt(blob[:_NONCE], blob[_NONCE:], ref.encode()))
        except InvalidTag:
            raise CryptoError(f"file {path}: scope key failed authentication") from None

    def seal_ref(self, ref: str, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        nonce = _random.token_bytes(_NONCE)
        aad = ref.encode() + b"\x00" + associated_data
        return _TOKEN_VERSION + nonce + self._scope_aead(ref, create=True).encrypt(nonce, plaintext, aad)

    def open_ref(self, ref: str, token: bytes, associated_data: bytes = b"") -> bytes:
        if token[:1] != _TOKEN_VERSION or len(token) < 1 + _NONCE + 16:
            raise CryptoError(f"not a sealed value of shred scope {ref}")
        aad = ref.encode() + b"\x00" + associated_data
        try:
            return self._scope_aead(ref, create=False).decrypt(token[1 : 1 + _NONCE], token[1 + _NONCE :], aad)
        except InvalidTag:
            raise CryptoError(f"sealed value of shred scope {ref} failed authentication") from None

    def seal(self, scope: str, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        """Encrypt a small value under the scope's key (created on first use)."""
        return self.seal_ref(self.ref(scope), plaintext, associated_data)

    def open(self, scope: str, token: bytes, associated_data: bytes = b"") -> bytes:
        """Decrypt a sealed value; `CryptoError` once the scope has been shredded."""
        return self.open_ref(self.ref(scope), token, associated_data)

    def exists(self, scope: str) -> bool:
        return self._path(self.ref(scope)).exists()

    def shred(self, scope: str) -> bool:
        """Delete the scope's key (True if it existed). Everything under it becomes unreadable."""
        path = self._path(self.ref(scope))
        try:
            size = path.stat().st_size
            with open(path, "r+b") as handle:  # best effort: overwrite before unlinking
                handle.write(_random.token_bytes(size))
                handle.flush()
                os.fsync(handle.fileno())
            path.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return True
