"""The fast writer produces exactly Tink's AES-GCM-HKDF streaming format: Tink is the oracle."""
from __future__ import annotations

import io
import os
import random

import pytest
import tink
from securepipe.crypto import stream_writer
from tink import aead, secret_key_access, streaming_aead

streaming_aead.register()
aead.register()
TEMPLATES = streaming_aead.streaming_aead_key_templates


def _keyset(template):
    handle = tink.new_keyset_handle(template)
    key = stream_writer.StreamingKey.from_keyset(tink.proto_keyset_format.serialize(handle, secret_key_access.TOKEN))
    return handle.primitive(streaming_aead.StreamingAead), key


def _ours(key, data: bytes, aad: bytes, source=None) -> bytes:
    sink = io.BytesIO()
    assert stream_writer.encrypt(key, source or io.BytesIO(data), sink, aad) == len(data)
    return sink.getvalue()


def _tinks(primitive, data: bytes, aad: bytes) -> bytes:
    class Keep(io.BytesIO):
        def close(self):  # Tink closes its destination; keep the bytes readable
            pass

    sink = Keep()
    with primitive.new_encrypting_stream(sink, aad) as stream:
        stream.write(data)
    return sink.getvalue()


def _tink_decrypt(primitive, ciphertext: bytes, aad: bytes) -> bytes:
    with primitive.new_decrypting_stream(io.BytesIO(ciphertext), aad) as stream:
        return stream.read()


SIZES_4KB = [0, 1, 4040 - 1, 4040, 4040 + 1, 4040 + 4080, 4040 + 4080 + 1, 4096 * 7 + 3]


@pytest.mark.parametrize("size", SIZES_4KB)
def test_tink_decrypts_ours_and_lengths_match_tinks_writer(size):
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    data = os.urandom(size)
    ours = _ours(key, data, b"header")
    assert _tink_decrypt(primitive, ours, b"header") == data
    assert len(ours) == len(_tinks(primitive, data, b"header"))  # same segmentation, same last-segment rule


@pytest.mark.parametrize("size", [0, (1 << 20) - 56, (1 << 20) - 55, 3 << 20])
def test_one_mib_segments(size):
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_1MB)
    data = os.urandom(size)
    ours = _ours(key, data, b"h")
    assert _tink_decrypt(primitive, ours, b"h") == data
    assert len(ours) == len(_tinks(primitive, data, b"h"))


def test_short_reads_from_the_source_do_not_end_the_stream():
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    data = os.urandom(4096 * 5 + 77)
    rng = random.Random(7)

    class Trickle(io.BytesIO):
        def read(self, size=-1):
            return super().read(min(size, rng.randint(1, 700)) if size and size > 0 else size)

    assert _tink_decrypt(primitive, _ours(key, data, b"a", Trickle(data)), b"a") == data


def test_each_stream_has_a_fresh_salt_and_nonce_prefix():
    _, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    headers = {_ours(key, b"same", b"a")[:40] for _ in range(20)}
    assert len(headers) == 20


def test_associated_data_is_bound():
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    ours = _ours(key, b"rows" * 3000, b"bound header")
    with pytest.raises(tink.TinkError):
        _tink_decrypt(primitive, ours, b"other header")


def test_only_aes_gcm_hkdf_streaming_keysets_are_accepted():
    other = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
    with pytest.raises(ValueError, match="streaming key"):
        stream_writer.StreamingKey.from_keyset(tink.proto_keyset_format.serialize(other, secret_key_access.TOKEN))
    ctr = tink.new_keyset_handle(TEMPLATES.AES256_CTR_HMAC_SHA256_4KB)
    with pytest.raises(ValueError):
        stream_writer.StreamingKey.from_keyset(tink.proto_keyset_format.serialize(ctr, secret_key_access.TOKEN))
