"""atomic_write: a failed write leaves nothing visible, locally and on s3 (moto S3 via s3fs); an input URI
must stay inside its root (no path traversal)."""
from __future__ import annotations

import hashlib

import pytest

from securepipe.storage import atomic_write, is_local, sha256_file, uri_within


class Boom(Exception):
    pass


def test_local_success_then_failure_keeps_previous_version(tmp_path):
    target = tmp_path / "out" / "data.bin"
    with atomic_write(target) as handle:
        handle.write(b"first")
    with pytest.raises(Boom):
        with atomic_write(target) as handle:
            handle.write(b"half of the second vers")
            raise Boom
    assert target.read_bytes() == b"first"
    assert [p.name for p in target.parent.iterdir()] == ["data.bin"]  # no temp file left
    assert sha256_file(target) == hashlib.sha256(b"first").hexdigest()


def test_local_failure_on_new_file_leaves_nothing(tmp_path):
    target = tmp_path / "new.bin"
    with pytest.raises(Boom):
        with atomic_write(target) as handle:
            handle.write(b"x" * 100_000)
            raise Boom
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [10, 12 * 1024 * 1024])
def test_s3_failure_publishes_no_object(kms_env, size):
    import boto3
    from upath import UPath

    s3 = boto3.client("s3", endpoint_url=kms_env.endpoint_url, region_name="us-east-1")
    bucket = f"atomic-test-{size}"
    s3.create_bucket(Bucket=bucket)
    options = {"endpoint_url": kms_env.endpoint_url, "key": "testing", "secret": "testing"}
    target = UPath(f"s3://{bucket}/dir/obj.bin", **options)
    assert not is_local(target)
    with pytest.raises(Boom):
        with atomic_write(target) as handle:
            handle.write(b"y" * size)
            raise Boom
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with atomic_write(target) as handle:
        handle.write(b"complete")
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read() == b"complete"


@pytest.mark.parametrize(
    "uri,inside",
    [
        ("file:///data/landing/patients.csv", True),
        ("file:///data/landing/sub/p.parquet", True),
        ("file:///data/landing/../secrets/keys.csv", False),
        ("file:///data/landing2/p.csv", False),
        ("file:///etc/passwd", False),
        ("s3://bucket/landing/p.csv", False),
    ],
)
def test_input_must_lie_in_the_landing_zone(uri, inside):
    assert uri_within(uri, "file:///data/landing") is inside


@pytest.mark.parametrize(
    "uri,inside",
    [("s3://bucket/landing/p.csv", True), ("s3://bucket/landing/../x.csv", False), ("s3://bucket/other.csv", False)],
)
def test_object_store_landing_zone(uri, inside):
    assert uri_within(uri, "s3://bucket/landing") is inside
