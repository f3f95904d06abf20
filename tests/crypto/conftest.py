"""Fixtures for the crypto tests: KMS clients and extra keys on the session's moto server."""
from __future__ import annotations

import pytest
from securepipe import kms_emulator


@pytest.fixture(scope="session")
def kms_admin(kms_env):
    """A plain boto3 KMS client for test set-up (creating, disabling keys): not the code under test."""
    return kms_emulator.kms_client(kms_env.endpoint_url)


@pytest.fixture()
def kms(kms_env):
    """A fresh securepipe KmsClient (no cached key states between tests)."""
    from securepipe.crypto.kms import KmsClient

    return KmsClient(backoff_s=0.01)


@pytest.fixture()
def new_key(kms_admin):
    """Factory: a new Enabled symmetric key; returns (key id, ARN). moto's DisableKey needs the key id."""

    def make():
        meta = kms_admin.create_key(Description="securepipe crypto test key")["KeyMetadata"]
        return meta["KeyId"], meta["Arn"]

    return make


@pytest.fixture()
def state_dir(tmp_path, monkeypatch):
    path = tmp_path / "state"
    monkeypatch.setenv("SECUREPIPE_STATE_DIR", str(path))
    return path

