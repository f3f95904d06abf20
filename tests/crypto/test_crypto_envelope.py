"""Round trips, header facts, contexts and KMS call counts of the envelope format."""
from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from securepipe.crypto import envelope
from securepipe.crypto.kms import KmsClient
from securepipe.errors import CryptoError

CONTEXT = {"dataset": "patients", "run_id": "run-1", "purpose": "training"}
SEG_1MB = 1 << 20
FIRST_1MB = SEG_1MB - envelope.TINK_HEADER_SIZE - envelope.TAG_SIZE  # plaintext in the first segment
REST_1MB = SEG_1MB - envelope.TAG_SIZE


@pytest.mark.parametrize(
    "size",
    [0, 1, FIRST_1MB - 1, FIRST_1MB, FIRST_1MB + 1, SEG_1MB - 1, SEG_1MB, SEG_1MB + 1,
     FIRST_1MB + REST_1MB, FIRST_1MB + REST_1MB + 1, 5 * SEG_1MB + 12345],
)
def test_round_trip_sizes_1mb_segments(tmp_path, kms, size):
    data = os.urandom(size)
    src, enc, out = tmp_path / "plain", tmp_path / "plain.enc", tmp_path / "plain.out"
    src.write_bytes(data)
    info = envelope.encrypt_file(src, enc, context=CONTEXT, kms=kms)
    assert info["plaintext_size"] == size
    assert info["sha256"] == hashlib.sha256(enc.read_bytes()).hexdigest()
    inspected = envelope.inspect(enc)
    assert inspected["plaintext_size"] == size
    assert inspected["frame_count"] == 1 + max(0, -(-(size - FIRST_1MB) // REST_1MB))
    assert inspected["context"] == CONTEXT and inspected["algorithm"] == "AES256_GCM_HKDF_1MB"
    envelope.decrypt_file(enc, out, expected_context=CONTEXT, kms=kms)
    assert out.read_bytes() == data
    assert bytes(envelope.decrypt_to_bytes(enc, expected_context=CONTEXT, kms=kms)) == data


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 4096 * 3 + 17])
def test_round_trip_sizes_4kb_segments(tmp_path, kms, size):
    data = os.urandom(size)
    enc = tmp_path / "x.enc"
    envelope.encrypt_bytes(data, enc, context=CONTEXT, kms=kms, algorithm="AES256_GCM_HKDF_4KB")
    assert envelope.inspect(enc)["frame_size"] == 4096
    assert envelope.inspect(enc)["plaintext_size"] == size
    assert bytes(envelope.decrypt_to_bytes(enc, expected_context=CONTEXT, kms=kms)) == data


def test_frame_count_matches_segments(tmp_path, kms):
    enc = tmp_path / "x.enc"
    # 3 segments: first holds 4096-40-16 bytes, the others 4096-16.
    envelope.encrypt_bytes(b"a" * (4040 + 4080 + 10), enc, context=CONTEXT, kms=kms, algorithm="AES256_GCM_HKDF_4KB")
    assert envelope.inspect(enc)["frame_count"] == 3


def test_ciphertext_hides_plaintext_and_each_artifact_has_fresh_key(tmp_path, kms):
    data = b"MRN-0012345 John Q Public 123-45-6789 " * 2000
    first = envelope.encrypt_bytes(data, tmp_path / "a.enc", context=CONTEXT, kms=kms)
    second = envelope.encrypt_bytes(data, tmp_path / "b.enc", context=CONTEXT, kms=kms)
    blob = (tmp_path / "a.enc").read_bytes()
    assert b"MRN-0012345" not in blob and b"123-45-6789" not in blob
    assert first["wrapped_keyset_sha256"] != second["wrapped_keyset_sha256"]
    assert first["sha256"] != second["sha256"]


def test_header_records_key_arn_and_context_without_key_material(tmp_path, kms, kms_env):
    enc = tmp_path / "x.enc"
    envelope.encrypt_bytes(b"payload", enc, key_id=kms_env.alias, context=CONTEXT, kms=kms)
    info = envelope.inspect(enc)
    assert info["kms_key_id"] == kms_env.key_arn  # the alias is resolved: aliases can move
    assert info["format_version"] == 1
    assert set(info) >= {"kms_key_id", "context", "algorithm", "frame_size", "frame_count"}
    with open(enc, "rb") as handle:
        wrapped = envelope.read_header(handle, "x")[0].wrapped_keyset
    assert "wrapped_keyset" not in info
    assert base64.b64encode(wrapped).decode() not in json.dumps(info)


@pytest.mark.parametrize(
    "expected",
    [
        {**CONTEXT, "run_id": "run-2"},  # a different value
        {k: v for k, v in CONTEXT.items() if k != "purpose"},  # a missing pair
        {**CONTEXT, "extra": "x"},  # an extra pair
    ],
)
def test_wrong_context_fails_and_writes_nothing(tmp_path, kms, expected):
    enc, out = tmp_path / "x.enc", tmp_path / "x.out"
    envelope.encrypt_bytes(b"secret rows", enc, context=CONTEXT, kms=kms)
    with pytest.raises(CryptoError, match="encryption context does not match"):
        envelope.decrypt_file(enc, out, expected_context=expected, kms=kms)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [enc]


def test_header_with_other_context_is_refused_by_kms(tmp_path, kms):
    """Rewriting the context in the header (and recomputing nothing else) fails at KMS and at the body."""
    enc = tmp_path / "x.enc"
    envelope.encrypt_bytes(b"rows", enc, context=CONTEXT, kms=kms)
    with open(enc, "rb") as handle:
        header, size = envelope.read_header(handle, "x")
        body = handle.read()
    forged = envelope.Header(**{**header.__dict__, "context": {**CONTEXT, "run_id": "run-9"}})
    enc.write_bytes(forged.encode() + body)
    with pytest.raises(CryptoError, match="KMS refused decrypt"):
        envelope.decrypt_to_bytes(enc, expected_context=forged.context, kms=kms)


@pytest.mark.parametrize(
    "context, message",
    [({}, "at least one"), ({"securepipe:purpose": "x"}, "reserved"), ({"a": ""}, "non-empty"), ({"a": 1}, "strings")],
)
def test_invalid_context_is_refused_before_kms(tmp_path, kms, context, message):
    with pytest.raises(CryptoError, match=message):
        envelope.encrypt_bytes(b"x", tmp_path / "x.enc", context=context, kms=kms)
    assert kms.calls == 0
    assert not (tmp_path / "x.enc").exists()


def test_is_ciphertext(tmp_path, kms):
    plain, enc = tmp_path / "plain.csv", tmp_path / "x.enc"
    plain.write_bytes(b"patient_id,name\nMRN-1,Jane\n")
    envelope.encrypt_file(plain, enc, context=CONTEXT, kms=kms)
    truncated_header = tmp_path / "cut.enc"
    truncated_header.write_bytes(enc.read_bytes()[:20])
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert envelope.is_ciphertext(enc)
    assert not envelope.is_ciphertext(plain)
    assert not envelope.is_ciphertext(truncated_header)
    assert not envelope.is_ciphertext(empty)


def test_inspect_needs_no_kms(tmp_path, kms, monkeypatch):
    enc = tmp_path / "x.enc"
    envelope.encrypt_bytes(b"x" * 10, enc, context=CONTEXT, kms=kms)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    assert envelope.inspect(enc)["plaintext_size"] == 10


def test_decrypt_refuses_plaintext_to_object_storage(tmp_path, kms):
    enc = tmp_path / "x.enc"
    envelope.encrypt_bytes(b"x", enc, context=CONTEXT, kms=kms)
    with pytest.raises(CryptoError, match="non-local"):
        envelope.decrypt_file(enc, "s3://bucket/plain.csv", expected_context=CONTEXT, kms=kms)


def test_many_shards_cost_constant_kms_calls(tmp_path, kms_env):
    """One DescribeKey per run (the key state is cached), then one Encrypt and one Decrypt per shard."""
    kms = KmsClient()
    for i in range(10):
        envelope.encrypt_bytes(os.urandom(100), tmp_path / f"{i}.enc", context=CONTEXT, kms=kms)
        envelope.decrypt_to_bytes(tmp_path / f"{i}.enc", expected_context=CONTEXT, kms=kms)
    assert kms.calls == 1 + 2 * 10


def test_one_artifact_costs_constant_kms_calls(tmp_path, kms):
    src = tmp_path / "big"
    src.write_bytes(os.urandom(3 * SEG_1MB))
    envelope.encrypt_file(src, tmp_path / "big.enc", context=CONTEXT, kms=kms)
    assert kms.calls == 2  # DescribeKey + Encrypt, whatever the size
    envelope.decrypt_file(tmp_path / "big.enc", tmp_path / "big.out", expected_context=CONTEXT, kms=kms)
    assert kms.calls == 3  # + Decrypt (the key state is cached)


def test_failure_mid_stream_leaves_no_output_and_no_hashing_thread(tmp_path, kms):
    import threading

    class FailingSource:
        def __init__(self):
            self.reads = 0

        def read(self, size=-1):
            self.reads += 1
            if self.reads > 2:
                raise OSError("disk read error")
            return os.urandom(size)

    target = tmp_path / "x.enc"
    with pytest.raises(OSError):
        with envelope.atomic_write(target) as destination:
            envelope.encrypt_stream(FailingSource(), destination, key_id=None, context=CONTEXT, kms=kms)
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "ciphertext-sha256"]
