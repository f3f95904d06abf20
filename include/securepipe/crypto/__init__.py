"""Client-side envelope encryption at rest (Tink streaming AEAD, KMS-wrapped keys), rotation, shredding.

Why a lazy package: `securepipe.crypto.cli` is imported by the top-level CLI in
both virtual environments and must only pull the standard library; the heavy
modules (tink, boto3, cryptography) load on first use of a name below.

Public API (see envelope.py for the file format):
    encrypt_file(src, dst, *, key_id=None, context, kms=None, algorithm=..., shred_scope=None, key_store=None) -> dict
    encrypt_bytes(data, dst, *, key_id=None, context, kms=None, ...) -> dict
    decrypt_file(src, dst, *, expected_context, kms=None, key_store=None) -> dict
    decrypt_to_bytes(src, *, expected_context, kms=None, key_store=None) -> bytearray
    inspect(src) -> dict;  is_ciphertext(path) -> bool;  body_sha256(src) -> str
    rewrap(src, *, to_key_id=None, kms=None) -> dict;  enable_key_rotation(key_id=None, kms=None) -> bool
    rewrap_state(state_dir, *, to_key_id=None, kms=None);  rewrap_artifacts(paths, *, to_key_id=None, kms=None)
    KmsClient(aws=None, *, state_ttl_s=30, attempts=4, ...);  default_kms(aws=None)
    ShredKeyStore(root, *, key_id=None, kms=None): seal/open/shred/exists;  default_store()
    pseudonym_secret(state_dir, key_id, aws) -> bytes;  rewrap_secret(path, *, purpose, to_key_id=None, kms=None)
"""
from __future__ import annotations

import importlib

_MODULE_EXPORTS = {
    "envelope": ["encrypt_file", "encrypt_bytes", "encrypt_stream", "decrypt_file", "decrypt_stream",
                 "decrypt_to_bytes", "inspect", "is_ciphertext", "body_sha256", "rewrap"],
    "rotation": ["enable_key_rotation", "rewrap_state", "rewrap_artifacts"],
    "kms": ["KmsClient", "default_kms"],
    "shred": ["ShredKeyStore", "default_store"],
    "secrets": ["pseudonym_secret", "rewrap_secret"],
}
_EXPORTS = {name: module for module, names in _MODULE_EXPORTS.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
