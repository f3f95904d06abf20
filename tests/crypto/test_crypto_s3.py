"""s3:// storage through Airflow's ObjectStoragePath against the moto S3 endpoint.

Proves the client-side encryption does not depend on S3 server-side encryption:
the object S3 stores is our ciphertext, and S3 reports no SSE of its own.
"""
from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from securepipe.crypto import envelope
from securepipe.errors import CryptoError

pytest.importorskip("s3fs", reason="s3:// needs s3fs in .venv")

CONTEXT = {"dataset": "patients", "run_id": "run-1", "purpose": "training"}
BUCKET = "securepipe-crypto-test"


@pytest.fixture()
def s3_root(kms_env, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SECUREPIPE_S3_TEST",
        json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                    "extra": {"endpoint_url": kms_env.endpoint_url, "region_name": "us-east-1"}}),
    )
    client = boto3.client("s3", endpoint_url=kms_env.endpoint_url)
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(f"s3://{BUCKET}/artifacts", conn_id="securepipe_s3_test"), client


def test_s3_round_trip_inspect_rewrap(tmp_path, kms, s3_root):
    root, client = s3_root
    data = b"patient_id,name\nMRN-0012345,Jane Doe\n" * 50_000  # ~2 MiB: several segments, multipart-sized
    target = root / "patients.csv.enc"
    info = envelope.encrypt_bytes(data, target, context=CONTEXT, kms=kms)

    stored = client.get_object(Bucket=BUCKET, Key="artifacts/patients.csv.enc")
    body = stored["Body"].read()
    assert stored.get("ServerSideEncryption") is None  # nothing relies on SSE
    assert b"MRN-0012345" not in body
    assert info["sha256"] == hashlib.sha256(body).hexdigest()  # the lineage hash is of what S3 holds
    assert envelope.is_ciphertext(target)
    assert envelope.inspect(target)["plaintext_size"] == len(data)
    assert bytes(envelope.decrypt_to_bytes(target, expected_context=CONTEXT, kms=kms)) == data

    body_before = envelope.body_sha256(target)
    envelope.rewrap(target, kms=kms)
    assert envelope.body_sha256(target) == body_before
    envelope.decrypt_file(target, tmp_path / "local.csv", expected_context=CONTEXT, kms=kms)
    assert (tmp_path / "local.csv").read_bytes() == data


def test_s3_tampered_object_is_rejected(kms, s3_root):
    root, client = s3_root
    target = root / "tampered.enc"
    envelope.encrypt_bytes(b"rows" * 1000, target, context=CONTEXT, kms=kms)
    blob = bytearray(client.get_object(Bucket=BUCKET, Key="artifacts/tampered.enc")["Body"].read())
    blob[-3] ^= 0x10
    client.put_object(Bucket=BUCKET, Key="artifacts/tampered.enc", Body=bytes(blob))
    with pytest.raises(CryptoError, match="failed authentication"):
        envelope.decrypt_to_bytes(target, expected_context=CONTEXT, kms=kms)


def test_s3_kms_down_leaves_no_object(kms_env, s3_root):
    from securepipe import kms_emulator
    from securepipe.config import AwsSettings
    from securepipe.crypto.kms import KmsClient
    from securepipe.errors import KmsUnavailable

    root, client = s3_root
    dead = KmsClient(AwsSettings("us-east-1", f"http://127.0.0.1:{kms_emulator.free_port()}", None), attempts=1)
    with pytest.raises(KmsUnavailable):
        envelope.encrypt_bytes(b"rows", root / "never.enc", key_id=kms_env.key_arn, context=CONTEXT, kms=dead)
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix="artifacts/never").get("Contents", [])
    assert listing == []
