"""KMS rules the emulator does not enforce: key state, no plaintext fallback, retries; wrapped secrets."""
from __future__ import annotations

import os
import threading

import pytest
from securepipe import kms_emulator
from securepipe.config import AwsSettings, aws_from_env
from securepipe.crypto import envelope, secrets
from securepipe.crypto.kms import KmsClient
from securepipe.errors import CryptoError, KmsUnavailable

CONTEXT = {"dataset": "patients", "run_id": "run-1", "purpose": "training"}


def _dead_endpoint_kms(attempts=3) -> tuple[KmsClient, list[float]]:
    """A client whose endpoint refuses connections (a loopback port nobody listens on)."""
    delays: list[float] = []
    endpoint = f"http://127.0.0.1:{kms_emulator.free_port()}"
    aws = AwsSettings(region="us-east-1", kms_endpoint_url=endpoint, s3_endpoint_url=None)
    return KmsClient(aws, attempts=attempts, backoff_s=0.01, sleep=delays.append), delays


@pytest.mark.parametrize("state_change", ["disable", "schedule_deletion"])
def test_key_not_enabled_is_refused_for_encrypt_and_decrypt(tmp_path, kms_admin, new_key, state_change):
    key_id, arn = new_key()
    enc, out = tmp_path / "x.enc", tmp_path / "x.out"
    envelope.encrypt_bytes(b"rows", enc, key_id=arn, context=CONTEXT, kms=KmsClient())
    if state_change == "disable":
        kms_admin.disable_key(KeyId=key_id)
        expected_state = "Disabled"
    else:
        kms_admin.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        expected_state = "PendingDeletion"
    kms = KmsClient()
    with pytest.raises(CryptoError, match=f"is {expected_state}, not Enabled"):
        envelope.decrypt_file(enc, out, expected_context=CONTEXT, kms=kms)
    assert not out.exists()
    with pytest.raises(CryptoError, match="not Enabled"):
        envelope.encrypt_bytes(b"rows", tmp_path / "y.enc", key_id=arn, context=CONTEXT, kms=kms)
    assert not (tmp_path / "y.enc").exists()


def test_key_state_is_cached_briefly_then_rechecked(tmp_path, kms_admin, new_key):
    key_id, arn = new_key()
    kms = KmsClient(state_ttl_s=3600)
    enc = tmp_path / "x.enc"
    envelope.encrypt_bytes(b"rows", enc, key_id=arn, context=CONTEXT, kms=kms)
    calls = kms.calls
    envelope.decrypt_to_bytes(enc, expected_context=CONTEXT, kms=kms)
    assert kms.calls == calls + 1  # Decrypt only: the state came from the cache
    kms_admin.disable_key(KeyId=key_id)
    kms.forget_key_states()  # what the TTL does after state_ttl_s seconds
    with pytest.raises(CryptoError, match="Disabled"):
        envelope.decrypt_to_bytes(enc, expected_context=CONTEXT, kms=kms)
    kms_admin.enable_key(KeyId=key_id)
    kms.forget_key_states()
    assert bytes(envelope.decrypt_to_bytes(enc, expected_context=CONTEXT, kms=kms)) == b"rows"


def test_wrong_key_in_header_is_refused(tmp_path, kms, new_key):
    """The header names another (valid, enabled) key: KMS refuses to unwrap with it."""
    _, other_arn = new_key()
    enc, out = tmp_path / "x.enc", tmp_path / "x.out"
    envelope.encrypt_bytes(b"rows", enc, context=CONTEXT, kms=kms)
    with open(enc, "rb") as handle:
        header, _ = envelope.read_header(handle, "x")
        body = handle.read()
    enc.write_bytes(envelope.Header(**{**header.__dict__, "kms_key_id": other_arn}).encode() + body)
    with pytest.raises(CryptoError, match="KMS refused decrypt"):
        envelope.decrypt_file(enc, out, expected_context=CONTEXT, kms=kms)
    assert not out.exists()


def test_unknown_key_is_refused(tmp_path, kms):
    with pytest.raises(CryptoError, match="NotFoundException"):
        envelope.encrypt_bytes(b"x", tmp_path / "x.enc", key_id="alias/does-not-exist", context=CONTEXT, kms=kms)
    assert not (tmp_path / "x.enc").exists()


def test_missing_key_id_is_a_clear_error(tmp_path, kms, monkeypatch):
    monkeypatch.delenv("SECUREPIPE_KMS_KEY_ID")
    with pytest.raises(CryptoError, match="no KMS key id"):
        envelope.encrypt_bytes(b"x", tmp_path / "x.enc", context=CONTEXT, kms=kms)


def test_kms_down_encrypt_retries_then_fails_without_output(tmp_path, kms_env):
    kms, delays = _dead_endpoint_kms(attempts=3)
    src, enc = tmp_path / "plain.csv", tmp_path / "plain.csv.enc"
    src.write_bytes(b"patient_id\nMRN-1\n")
    with pytest.raises(KmsUnavailable, match="after 3 attempts") as failure:
        envelope.encrypt_file(src, enc, key_id=kms_env.key_arn, context=CONTEXT, kms=kms)
    assert "nothing was written unprotected" in str(failure.value)
    assert kms.calls == 3 and len(delays) == 2 and delays[1] > delays[0]  # exponential backoff
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.csv"]  # no ciphertext, no plaintext copy


def test_kms_down_decrypt_fails_without_output(tmp_path, kms):
    enc, out = tmp_path / "x.enc", tmp_path / "x.out"
    envelope.encrypt_bytes(b"rows", enc, context=CONTEXT, kms=kms)
    dead, _ = _dead_endpoint_kms(attempts=2)
    with pytest.raises(KmsUnavailable):
        envelope.decrypt_file(enc, out, expected_context=CONTEXT, kms=dead)
    assert not out.exists()


def test_kms_errors_never_carry_plaintext(tmp_path, kms_env):
    kms, _ = _dead_endpoint_kms(attempts=1)
    secret_value = "MRN-0012345"
    with pytest.raises(KmsUnavailable) as failure:
        envelope.encrypt_bytes(secret_value.encode() * 10, tmp_path / "x.enc", key_id=kms_env.key_arn,
                               context={"dataset": "d"}, kms=kms)
    assert secret_value not in str(failure.value)


# -- wrapped secrets ----------------------------------------------------------------------------
def test_pseudonym_secret_is_created_once_and_stable(tmp_path, kms_env):
    aws = aws_from_env()
    first = secrets.pseudonym_secret(tmp_path, kms_env.key_arn, aws)
    again = secrets.pseudonym_secret(tmp_path, kms_env.key_arn, aws)
    assert len(first) == 32 and first == again
    stored = (tmp_path / secrets.PSEUDONYM_SECRET_FILE).read_bytes()
    assert first not in stored and first.hex().encode() not in stored
    assert oct((tmp_path / secrets.PSEUDONYM_SECRET_FILE).stat().st_mode & 0o777) == "0o600"
    secrets._unwrapped.clear()  # a new process: unwraps through KMS, same value
    assert secrets.pseudonym_secret(tmp_path, kms_env.key_arn, aws) == first
    other_dir = tmp_path / "other"
    assert secrets.pseudonym_secret(other_dir, kms_env.key_arn, aws) != first


def test_concurrent_creation_yields_one_secret(tmp_path, kms_env):
    results: list[bytes] = []
    barrier = threading.Barrier(4)

    def create():
        barrier.wait()
        results.append(secrets.load_or_create_secret(tmp_path / "s.kms.json", key_id=kms_env.key_arn,
                                                     purpose="pseudonym-secret", kms=KmsClient()))

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["s.kms.json"]  # no temp files left


def test_secret_of_another_purpose_is_refused(tmp_path, kms):
    secrets.load_or_create_secret(tmp_path / "s.kms.json", key_id=os.environ["SECUREPIPE_KMS_KEY_ID"],
                                  purpose="shred-store-master", kms=kms)
    with pytest.raises(CryptoError, match="another purpose"):
        secrets.load_or_create_secret(tmp_path / "s.kms.json", key_id=None, purpose="pseudonym-secret", kms=kms)


def test_secret_stops_working_when_its_key_is_disabled(tmp_path, kms_admin, new_key):
    key_id, arn = new_key()
    kms = KmsClient()
    secrets.load_or_create_secret(tmp_path / "s.kms.json", key_id=arn, purpose="pseudonym-secret", kms=kms)
    kms_admin.disable_key(KeyId=key_id)
    with pytest.raises(CryptoError, match="Disabled"):
        secrets.load_or_create_secret(tmp_path / "s.kms.json", key_id=arn, purpose="pseudonym-secret", kms=KmsClient())


def test_missing_secret_without_key_is_a_clear_error(tmp_path, kms):
    with pytest.raises(CryptoError, match="missing, and no KMS key id"):
        secrets.load_or_create_secret(tmp_path / "none.kms.json", key_id=None, purpose="pseudonym-secret", kms=kms)


def test_client_from_an_explicit_boto3_session(tmp_path, kms_env, monkeypatch):
    """The DAG passes the session of its Airflow AWS connection instead of the environment's credentials."""
    import boto3

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never look for instance credentials off-box
    with pytest.raises(KmsUnavailable, match="NoCredentialsError"):
        envelope.encrypt_bytes(b"rows", tmp_path / "x.enc", context=CONTEXT,
                               kms=KmsClient(attempts=1, session=boto3.Session()))
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    kms = KmsClient(aws_from_env(), session=session)
    envelope.encrypt_bytes(b"rows", tmp_path / "x.enc", context=CONTEXT, kms=kms)
    assert kms.calls == 2
