"""Writes Tink's AES-GCM-HKDF streaming ciphertext with `cryptography`'s AES-GCM, at memory speed.

Why not Tink's own encrypting stream: its Python binding copies every segment
about three times on the way in and out (bytes -> C++ string -> segment buffer ->
128 KiB Python bytes) and holds the GIL; measured here it encrypted at ~1.0 GB/s
while the same AES-GCM over the same 1 MiB chunks ran at ~2.4 GB/s, far below the
0.7x target. This module produces the *same wire format* (Tink's documented
AES-GCM-HKDF streaming format) with one AES-GCM call per segment.

Why this is not a home-made format, and how it is kept honest:
- Every file is read back only through Tink's own decrypting stream, so a file
  this writer got wrong cannot be decrypted: it fails closed, never open.
  Because Tink derives each nonce from the header's prefix, the segment number
  and the last-segment flag, a file Tink accepts had exactly Tink's nonces and
  Tink's HKDF-derived key; what remains is the randomness of the salt and the
  nonce prefix, taken from `os.urandom` per file as Tink does.
- tests/crypto/test_crypto_stream_writer.py checks it against Tink in both
  directions for every size class, and that the header is fresh per file.

Format (from Tink's spec for AesGcmHkdfStreaming, ciphertext offset 0):
    header   = header_length (1 byte = 1 + salt + 7) || salt (derived_key_size bytes) || nonce_prefix (7 bytes)
    key      = HKDF-SHA256(ikm=key_value, salt=salt, info=associated_data, length=derived_key_size)
    segment i: AES-GCM(key, nonce = nonce_prefix || i as uint32 big-endian || last (0x01) or not (0x00),
                       plaintext_i, no AAD); the first segment holds
               segment_size - header_length - 16 plaintext bytes, the others segment_size - 16;
               a segment is flagged last only when no more plaintext follows (an empty
               plaintext gives one empty last segment).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
MAX_SEGMENTS = 1 << 32
_KEY_TYPE = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"


@dataclass(frozen=True)
class StreamingKey:
    """The primary AES-GCM-HKDF streaming key of a Tink keyset (plaintext key material: memory only)."""

    key_value: bytes
    derived_key_size: int
    segment_size: int

    @classmethod
    def from_keyset(cls, serialized_keyset: bytes) -> StreamingKey:
        keyset = tink_pb2.Keyset.FromString(serialized_keyset)
        primary = [k for k in keyset.key if k.key_id == keyset.primary_key_id]
        if (
            len(primary) != 1
            or primary[0].key_data.type_url != _KEY_TYPE
            or primary[0].output_prefix_type != tink_pb2.RAW
        ):
            raise ValueError("not a single RAW AES-GCM-HKDF streaming key")
        key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey.FromString(primary[0].key_data.value)
        if key.params.hkdf_hash_type != common_pb2.SHA256:
            raise ValueError("only HKDF-SHA256 streaming keys are supported")
        return cls(bytes(key.key_value), key.params.derived_key_size, key.params.ciphertext_segment_size)


def _read_exact(source: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes; fewer only at end of input (a short read is not taken for the end)."""
    data = source.read(size)
    if len(data) in (0, size):
        return data
    parts = [data]
    remaining = size - len(data)
    while remaining and (more := source.read(remaining)):
        parts.append(more)
        remaining -= len(more)
    return b"".join(parts)


def encrypt(key: StreamingKey, source: BinaryIO, sink, associated_data: bytes) -> int:
    """Encrypt all of `source` into `sink` (anything with write()); returns the plaintext size."""
    salt = os.urandom(key.derived_key_size)
    nonce_prefix = os.urandom(NONCE_PREFIX_SIZE)
    header = bytes([1 + len(salt) + NONCE_PREFIX_SIZE]) + salt + nonce_prefix
    derived = HKDF(hashes.SHA256(), key.derived_key_size, salt=salt, info=associated_data).derive(key.key_value)
    aead = AESGCM(derived)
    sink.write(header)
    first_size = key.segment_size - len(header) - TAG_SIZE
    rest_size = key.segment_size - TAG_SIZE
    current = _read_exact(source, first_size)
    expected, index, total = first_size, 0, 0
    while True:
        # A full segment is the last one only if nothing follows it: read one segment ahead.
        following = _read_exact(source, rest_size) if len(current) == expected else b""
        last = not following
        nonce = nonce_prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        sink.write(aead.encrypt(nonce, current, None))
        total += len(current)
        if last:
            return total
        index += 1
        if index >= MAX_SEGMENTS:
            raise ValueError("plaintext too long for one stream")
        current, expected = following, rest_size
