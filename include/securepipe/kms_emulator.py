"""The local KMS/S3 emulator for the embedded default: moto server on 127.0.0.1.

Threat model: this is for development and tests only. moto does not enforce key
state (a disabled key still works there), so securepipe.crypto enforces it
itself; nothing the emulator does is a security guarantee.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEMO_KEY_ALIAS = "alias/securepipe-demo"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Emulator:
    endpoint_url: str
    process: subprocess.Popen | None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until_up(endpoint_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=2):  # noqa: S310 - loopback only
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"KMS emulator at {endpoint_url} did not start within {timeout:.0f}s")
            time.sleep(0.2)


def start_emulator(host: str = "127.0.0.1", port: int = 0, log_path: Path | None = None) -> Emulator:
    """Start moto server bound to loopback on `port` (a free one when 0)."""
    port = port or free_port(host)
    moto_server = Path(sys.executable).with_name("moto_server")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [str(moto_server), "-H", host, "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **DUMMY_CREDENTIALS},
    )
    emulator = Emulator(f"http://{host}:{port}", process)
    try:
        wait_until_up(emulator.endpoint_url)
    except BaseException:
        emulator.stop()
        raise
    return emulator


def kms_client(endpoint_url: str, region: str = "us-east-1"):
    import boto3

    return boto3.client(
        "kms",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def create_key(endpoint_url: str, alias: str = DEMO_KEY_ALIAS, region: str = "us-east-1") -> str:
    """Return the ARN of the key behind `alias`, creating key and alias when missing (idempotent)."""
    kms = kms_client(endpoint_url, region)
    try:
        return kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
    except kms.exceptions.NotFoundException:
        pass
    meta = kms.create_key(Description="securepipe local demo key", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    kms.enable_key_rotation(KeyId=meta["KeyId"])
    kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return meta["Arn"]


def client_env(endpoint_url: str, key_id: str, region: str = "us-east-1") -> dict[str, str]:
    """The environment a `securepipe` CLI needs to use this emulator."""
    return {
        **DUMMY_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "SECUREPIPE_KMS_KEY_ID": key_id,
    }


@contextmanager
def configured_or_private_kms():
    """Yield (AwsSettings, key id): the configured KMS and key, or a private emulator on loopback.

    For benchmarks run on a developer's machine: with no KMS configured, a private
    emulator is started with a fresh key, and the environment points at it (child
    `securepipe` processes read endpoint, dummy credentials and key id from it);
    the emulator is stopped and the environment restored afterwards.
    """
    from securepipe.config import aws_from_env, kms_key_id

    aws, key_id = aws_from_env(), kms_key_id()
    if aws.kms_endpoint_url or key_id:
        yield aws, key_id or create_key(aws.kms_endpoint_url)
        return
    emulator, saved_environ = start_emulator(), dict(os.environ)
    try:
        key_id = create_key(emulator.endpoint_url)
        os.environ.update(client_env(emulator.endpoint_url, key_id))
        yield aws_from_env(), key_id
    finally:
        emulator.stop()
        os.environ.clear()
        os.environ.update(saved_environ)
