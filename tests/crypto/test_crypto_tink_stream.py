"""tink_stream writes and reads exactly Tink's AES-GCM-HKDF streaming format: Tink is the oracle both ways."""
from __future__ import annotations

import io
import os
import random

import pytest
import tink
from securepipe.crypto import tink_stream
from tink import aead, secret_key_access, streaming_aead

streaming_aead.register()
aead.register()
TEMPLATES = streaming_aead.streaming_aead_key_templates


def _keyset(template):
    handle = tink.new_keyset_handle(template)
    key = tink_stream.StreamingKey.from_keyset(tink.proto_keyset_format.serialize(handle, secret_key_access.TOKEN))
    return handle.primitive(streaming_aead.StreamingAead), key


def _ours(key, data: bytes, aad: bytes, source=None) -> bytes:
    sink = io.BytesIO()
    assert tink_stream.encrypt(key, source or io.BytesIO(data), sink, aad) == len(data)
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


def _our_decrypt(key, ciphertext: bytes, aad: bytes) -> bytes:
    sink = io.BytesIO()
    assert tink_stream.decrypt(key, io.BytesIO(ciphertext), sink, aad) == len(sink.getvalue())
    return sink.getvalue()


def _our_decrypt_into(key, ciphertext: bytes, aad: bytes, size: int) -> bytes:
    buffer = bytearray(size)
    assert tink_stream.decrypt(key, io.BytesIO(ciphertext), memoryview(buffer), aad) == size
    return bytes(buffer)


# 4 KiB segments: the first holds 4096 - 40 - 16 = 4040 plaintext bytes, the others 4080.
SIZES_4KB = [0, 1, 4040 - 1, 4040, 4040 + 1, 4040 + 4080, 4040 + 4080 + 1, 4096 * 7 + 3]


@pytest.mark.parametrize("size", SIZES_4KB)
def test_interoperates_with_tink_both_ways_4kb(size):
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    data = os.urandom(size)
    ours = _ours(key, data, b"header")
    tinks = _tinks(primitive, data, b"header")
    assert _tink_decrypt(primitive, ours, b"header") == data
    assert _our_decrypt(key, tinks, b"header") == data
    assert _our_decrypt_into(key, tinks, b"header", size) == data
    assert len(ours) == len(tinks)  # same segmentation, same last-segment rule


@pytest.mark.parametrize("size", [0, (1 << 20) - 56, (1 << 20) - 55, 3 << 20])
def test_interoperates_with_tink_both_ways_1mb(size):
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_1MB)
    data = os.urandom(size)
    ours = _ours(key, data, b"h")
    tinks = _tinks(primitive, data, b"h")
    assert _tink_decrypt(primitive, ours, b"h") == data
    assert _our_decrypt_into(key, tinks, b"h", size) == data
    assert len(ours) == len(tinks)


def test_aes128_keys_interoperate_too():
    primitive, key = _keyset(TEMPLATES.AES128_GCM_HKDF_4KB)  # 16-byte salt: a 24-byte stream header
    data = os.urandom(4096 * 3 + 5)
    assert key.header_size == 24
    assert _tink_decrypt(primitive, _ours(key, data, b"a"), b"a") == data
    assert _our_decrypt(key, _tinks(primitive, data, b"a"), b"a") == data


def _tampered(ciphertext: bytes) -> dict[str, bytes]:
    """Ways to change a stored stream of 4 KiB segments (header and first segment end at 4096, the next at 8192...)."""
    first, second = ciphertext[:4096], ciphertext[4096:8192]
    return {
        "header_length_byte": bytes([ciphertext[0] ^ 1]) + ciphertext[1:],
        "salt": ciphertext[:5] + bytes([ciphertext[5] ^ 1]) + ciphertext[6:],
        "nonce_prefix": ciphertext[:35] + bytes([ciphertext[35] ^ 1]) + ciphertext[36:],
        "body_byte": ciphertext[:5000] + bytes([ciphertext[5000] ^ 0x80]) + ciphertext[5001:],
        "last_tag": ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]),
        "header_only": ciphertext[:40],
        "cut_in_header": ciphertext[:20],
        "cut_at_segment_boundary": ciphertext[:8192],  # whole segments left: the new last one is not flagged last
        "cut_mid_segment": ciphertext[:6000],
        "cut_tail": ciphertext[:-1],
        "appended": ciphertext + b"\x00",
        "segments_swapped": first + ciphertext[8192:12288] + second + ciphertext[12288:],
        "segment_dropped": first + ciphertext[8192:],
        "segment_repeated": first + second + ciphertext[4096:],
    }


@pytest.mark.parametrize("how", list(_tampered(b"x" * 20000)))
def test_any_change_is_rejected_like_tink_rejects_it(how):
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    data = os.urandom(4096 * 4 + 100)  # 5 segments
    changed = _tampered(_tinks(primitive, data, b"ad"))[how]
    with pytest.raises(tink_stream.InvalidCiphertext):
        _our_decrypt(key, changed, b"ad")
    with pytest.raises(tink.TinkError):  # the oracle agrees that the change is one
        _tink_decrypt(primitive, changed, b"ad")


def test_bytes_appended_after_a_full_last_segment_are_rejected():
    # Tink's C++ reader stops after a full-size segment that verifies as the last one and
    # ignores what follows; this reader refuses it.
    _, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    data = os.urandom(4040 + 4080)  # two full segments
    with pytest.raises(tink_stream.InvalidCiphertext):
        _our_decrypt(key, _ours(key, data, b"a") + os.urandom(100), b"a")


def test_wrong_associated_data_or_key_is_rejected():
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    _, other_key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    tinks = _tinks(primitive, b"rows" * 3000, b"bound header")
    with pytest.raises(tink_stream.InvalidCiphertext):
        _our_decrypt(key, tinks, b"other header")
    with pytest.raises(tink_stream.InvalidCiphertext):
        _our_decrypt(other_key, tinks, b"bound header")


def test_a_failing_segment_leaves_no_unverified_plaintext_in_the_buffer():
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    data = b"\x01" * (4096 * 3)
    ciphertext = bytearray(_tinks(primitive, data, b"a"))
    ciphertext[4096 + 10] ^= 0x01  # second segment
    buffer = bytearray(len(data))
    with pytest.raises(tink_stream.InvalidCiphertext):
        tink_stream.decrypt(key, io.BytesIO(bytes(ciphertext)), memoryview(buffer), b"a")
    assert buffer[:4040] == data[:4040]  # the verified first segment
    assert buffer[4040:] == bytes(len(data) - 4040)


def test_more_plaintext_than_the_buffer_holds_is_an_error():
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    with pytest.raises(tink_stream.InvalidCiphertext, match="more plaintext"):
        _our_decrypt_into(key, _tinks(primitive, os.urandom(5000), b"a"), b"a", 4999)


def test_short_reads_from_the_source_do_not_end_the_stream():
    primitive, key = _keyset(TEMPLATES.AES256_GCM_HKDF_4KB)
    data = os.urandom(4096 * 5 + 77)
    rng = random.Random(7)

    class Trickle(io.BytesIO):
        def read(self, size=-1):
            return super().read(min(size, rng.randint(1, 700)) if size and size > 0 else size)

        def readinto(self, buffer):
            return super().readinto(buffer[: rng.randint(1, 700)])

    assert _tink_decrypt(primitive, _ours(key, data, b"a", Trickle(data)), b"a") == data
    sink = io.BytesIO()
    tink_stream.decrypt(key, Trickle(_tinks(primitive, data, b"a")), sink, b"a")
    assert sink.getvalue() == data


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
        tink_stream.StreamingKey.from_keyset(tink.proto_keyset_format.serialize(other, secret_key_access.TOKEN))
    ctr = tink.new_keyset_handle(TEMPLATES.AES256_CTR_HMAC_SHA256_4KB)
    with pytest.raises(ValueError):
        tink_stream.StreamingKey.from_keyset(tink.proto_keyset_format.serialize(ctr, secret_key_access.TOKEN))
