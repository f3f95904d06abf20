"""Every change to a stored artifact is detected, and a failed decrypt leaves no output file.

Uses 4 KiB segments so that a few KiB give many segments to cut, reorder and splice.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securepipe.crypto import envelope
from securepipe.crypto.kms import KmsClient
from securepipe.errors import CryptoError

CONTEXT = {"dataset": "patients", "run_id": "run-1", "purpose": "training"}
ALG = "AES256_GCM_HKDF_4KB"
SEG = 4096
DATA = os.urandom(SEG * 5 + 1234)  # 6 segments


def _encrypt(path, kms, data=DATA):
    envelope.encrypt_bytes(data, path, context=CONTEXT, kms=kms, algorithm=ALG)
    blob = path.read_bytes()
    with open(path, "rb") as handle:
        _, header_size = envelope.read_header(handle, str(path))
    return blob, header_size


def _assert_rejected(tmp_path, kms, blob: bytes):
    enc, out = tmp_path / "tampered.enc", tmp_path / "tampered.out"
    enc.write_bytes(blob)
    with pytest.raises(CryptoError):
        envelope.decrypt_file(enc, out, expected_context=CONTEXT, kms=kms)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("tampered")) == ["tampered.enc"]
    with pytest.raises(CryptoError):
        envelope.decrypt_to_bytes(enc, expected_context=CONTEXT, kms=kms)


def _flip(blob: bytes, position: int, mask: int = 0x01) -> bytes:
    return blob[:position] + bytes([blob[position] ^ mask]) + blob[position + 1 :]


def _segments(blob: bytes, header_size: int) -> list[bytes]:
    body = blob[header_size:]
    return [body[i : i + SEG] for i in range(0, len(body), SEG)]


def test_untampered_file_decrypts(tmp_path, kms):
    blob, header_size = _encrypt(tmp_path / "x.enc", kms)
    assert len(_segments(blob, header_size)) == 6
    assert bytes(envelope.decrypt_to_bytes(tmp_path / "x.enc", expected_context=CONTEXT, kms=kms)) == DATA


@pytest.mark.parametrize(
    "where",
    ["magic", "version", "header_length", "algorithm", "context_value", "kms_key_id", "wrapped_keyset",
     "segment_size", "tink_header_salt", "first_segment", "middle_segment", "last_segment", "last_tag"],
)
def test_flipped_byte_is_detected(tmp_path, kms, where):
    blob, header_size = _encrypt(tmp_path / "x.enc", kms)
    header_text = blob[13:header_size]

    def in_header(needle: bytes) -> int:
        return 13 + header_text.index(needle)

    positions = {
        "magic": 0,
        "version": 8,
        "header_length": 12,
        "algorithm": in_header(b"AES256") + 3,
        "context_value": in_header(b"patients") + 2,
        "kms_key_id": in_header(b"arn:aws:kms") + 30,
        "wrapped_keyset": in_header(b'"wrapped_keyset":"') + 40,
        "segment_size": in_header(b'"segment_size":') + 16,
        "tink_header_salt": header_size + 5,
        "first_segment": header_size + 100,
        "middle_segment": header_size + 3 * SEG + 7,
        "last_segment": len(blob) - 100,
        "last_tag": len(blob) - 1,
    }
    _assert_rejected(tmp_path, kms, _flip(blob, positions[where]))


@pytest.mark.parametrize(
    "cut",
    ["last_byte", "last_segment_exactly", "mid_segment", "whole_body", "inside_header", "all_but_tink_header"],
)
def test_truncation_is_detected(tmp_path, kms, cut):
    blob, header_size = _encrypt(tmp_path / "x.enc", kms)
    segments = _segments(blob, header_size)
    ends = {
        "last_byte": len(blob) - 1,
        "last_segment_exactly": len(blob) - len(segments[-1]),
        "mid_segment": header_size + 2 * SEG + 100,
        "whole_body": header_size,
        "inside_header": header_size - 10,
        "all_but_tink_header": header_size + envelope.TINK_HEADER_SIZE,
    }
    _assert_rejected(tmp_path, kms, blob[: ends[cut]])


def test_appended_bytes_are_detected(tmp_path, kms):
    blob, _ = _encrypt(tmp_path / "x.enc", kms)
    _assert_rejected(tmp_path, kms, blob + b"\x00")
    _assert_rejected(tmp_path, kms, blob + os.urandom(SEG))


@pytest.mark.parametrize("order", [(0, 2, 1, 3, 4, 5), (0, 1, 2, 3, 5, 4), (1, 0, 2, 3, 4, 5), (0, 1, 1, 2, 3, 4, 5)])
def test_reordered_or_duplicated_segments_are_detected(tmp_path, kms, order):
    blob, header_size = _encrypt(tmp_path / "x.enc", kms)
    segments = _segments(blob, header_size)
    _assert_rejected(tmp_path, kms, blob[:header_size] + b"".join(segments[i] for i in order))


def test_dropped_middle_segment_is_detected(tmp_path, kms):
    blob, header_size = _encrypt(tmp_path / "x.enc", kms)
    segments = _segments(blob, header_size)
    _assert_rejected(tmp_path, kms, blob[:header_size] + b"".join(segments[:2] + segments[3:]))


def test_header_of_one_artifact_with_body_of_another_is_detected(tmp_path, kms):
    first, header_size = _encrypt(tmp_path / "a.enc", kms)
    second, header_size_b = _encrypt(tmp_path / "b.enc", kms)
    _assert_rejected(tmp_path, kms, first[:header_size] + second[header_size_b:])


def test_non_canonical_header_is_rejected(tmp_path, kms):
    """A header that parses to the same fields but differs in bytes (here: a space) is refused."""
    blob, header_size = _encrypt(tmp_path / "x.enc", kms)
    text = blob[13:header_size].replace(b'"algorithm":', b'"algorithm": ', 1)
    forged = envelope.MAGIC + bytes([1]) + len(text).to_bytes(4, "big") + text + blob[header_size:]
    _assert_rejected(tmp_path, kms, forged)


# Property: for any size and any single changed byte, or any cut, decryption fails closed.
_CACHED_KMS: list[KmsClient] = []


def _cached_kms() -> KmsClient:
    """One client for all examples, so the key's state is checked once, not per example."""
    if not _CACHED_KMS:
        _CACHED_KMS.append(KmsClient())
    return _CACHED_KMS[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(min_value=0, max_value=4 * SEG),
    position=st.floats(min_value=0, max_value=1, exclude_max=True),
    mask=st.integers(min_value=1, max_value=255),
    truncate=st.booleans(),
)
def test_property_any_change_or_cut_fails_closed(tmp_path, kms_env, size, position, mask, truncate):
    kms = _cached_kms()
    data = os.urandom(size)
    enc, out = tmp_path / "p.enc", tmp_path / "p.out"
    envelope.encrypt_bytes(data, enc, context=CONTEXT, kms=kms, algorithm=ALG)
    blob = enc.read_bytes()
    index = int(position * len(blob))
    enc.write_bytes(blob[:index] if truncate else _flip(blob, index, mask))
    with pytest.raises(CryptoError):
        envelope.decrypt_file(enc, out, expected_context=CONTEXT, kms=kms)
    assert not out.exists()
    enc.write_bytes(blob)  # and the untouched file still decrypts with the same client
    envelope.decrypt_file(enc, out, expected_context=CONTEXT, kms=kms)
    assert out.read_bytes() == data
    out.unlink()
