"""Key rotation (rewrap without touching bulk data) and crypto-shredding (erased data stays unreadable)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from securepipe.crypto import envelope, rotation, secrets
from securepipe.crypto.kms import KmsClient
from securepipe.crypto.shred import ShredKeyStore, parse_scope
from securepipe.errors import CryptoError

CONTEXT = {"dataset": "patients", "run_id": "run-1", "purpose": "training"}


# -- rotation ------------------------------------------------------------------------------------
def test_enable_rotation(kms, kms_admin, new_key):
    key_id, arn = new_key()
    assert kms_admin.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    assert rotation.enable_key_rotation(arn, kms=kms) is True
    assert kms_admin.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True


def test_rewrap_under_current_version_keeps_body(tmp_path, kms):
    enc = tmp_path / "x.enc"
    envelope.encrypt_bytes(b"rows" * 5000, enc, context=CONTEXT, kms=kms)
    before_info, before_body = envelope.inspect(enc), envelope.body_sha256(enc)
    result = envelope.rewrap(enc, kms=kms)
    after_info = envelope.inspect(enc)
    assert result["body_sha256"] == before_body == envelope.body_sha256(enc)
    assert after_info["kms_key_id"] == before_info["kms_key_id"]
    assert after_info["wrapped_keyset_sha256"] != before_info["wrapped_keyset_sha256"]
    assert bytes(envelope.decrypt_to_bytes(enc, expected_context=CONTEXT, kms=kms)) == b"rows" * 5000


def test_rewrap_to_new_key_then_old_key_is_no_longer_needed(tmp_path, kms_admin, new_key):
    old_id, old_arn = new_key()
    _, new_arn = new_key()
    enc = tmp_path / "x.enc"
    envelope.encrypt_bytes(b"rows" * 100, enc, key_id=old_arn, context=CONTEXT, kms=KmsClient())
    stale_copy = tmp_path / "stale.enc"
    shutil.copy(enc, stale_copy)
    body = envelope.body_sha256(enc)
    result = envelope.rewrap(enc, to_key_id=new_arn, kms=KmsClient())
    assert result["kms_key_id_before"] == old_arn and result["kms_key_id"] == new_arn
    assert envelope.body_sha256(enc) == body
    kms_admin.disable_key(KeyId=old_id)
    kms = KmsClient()
    assert bytes(envelope.decrypt_to_bytes(enc, expected_context=CONTEXT, kms=kms)) == b"rows" * 100
    with pytest.raises(CryptoError, match="Disabled"):  # the copy wrapped under the old key is dead
        envelope.decrypt_to_bytes(stale_copy, expected_context=CONTEXT, kms=kms)


def test_rewrap_to_disabled_key_is_refused_and_file_kept(tmp_path, kms, kms_admin, new_key):
    key_id, arn = new_key()
    kms_admin.disable_key(KeyId=key_id)
    enc = tmp_path / "x.enc"
    envelope.encrypt_bytes(b"rows", enc, context=CONTEXT, kms=kms)
    before = enc.read_bytes()
    with pytest.raises(CryptoError, match="Disabled"):
        envelope.rewrap(enc, to_key_id=arn, kms=kms)
    assert enc.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.enc"]


def test_rewrap_secret_keeps_the_secret_value(tmp_path, kms, kms_env, new_key):
    _, new_arn = new_key()
    path = tmp_path / secrets.PSEUDONYM_SECRET_FILE
    value = secrets.load_or_create_secret(path, key_id=kms_env.key_arn, purpose="pseudonym-secret", kms=kms)
    result = secrets.rewrap_secret(path, purpose="pseudonym-secret", to_key_id=new_arn, kms=kms)
    assert result["kms_key_id_before"] == kms_env.key_arn and result["kms_key_id"] == new_arn
    secrets._unwrapped.clear()
    assert secrets.load_or_create_secret(path, key_id=None, purpose="pseudonym-secret", kms=kms) == value


def test_rotation_task_rewraps_state_and_artifacts_then_old_key_can_go(tmp_path, kms_admin, new_key):
    old_id, old_arn = new_key()
    _, new_arn = new_key()
    kms = KmsClient()
    state = tmp_path / "state"
    secret = secrets.load_or_create_secret(state / secrets.PSEUDONYM_SECRET_FILE, key_id=old_arn,
                                           purpose="pseudonym-secret", kms=kms)
    store = ShredKeyStore(state / "shred-keys", key_id=old_arn, kms=kms)
    token = store.seal("subject:MRN-1", b"Jane")
    artifacts = [tmp_path / f"{i}.enc" for i in range(3)]
    for i, path in enumerate(artifacts):
        envelope.encrypt_bytes(b"shard %d" % i, path, key_id=old_arn, context=CONTEXT, kms=kms)
    bodies = [envelope.body_sha256(path) for path in artifacts]

    state_results = rotation.rewrap_state(state, to_key_id=new_arn, kms=kms)
    assert sorted(Path(r["path"]).name for r in state_results) == ["master.kms.json", secrets.PSEUDONYM_SECRET_FILE]
    results = rotation.rewrap_artifacts(artifacts, to_key_id=new_arn, kms=kms)
    assert [r["kms_key_id"] for r in results] == [new_arn] * 3
    assert [envelope.body_sha256(path) for path in artifacts] == bodies

    kms_admin.disable_key(KeyId=old_id)
    secrets._unwrapped.clear()
    after = KmsClient()
    assert secrets.load_or_create_secret(state / secrets.PSEUDONYM_SECRET_FILE, key_id=None,
                                         purpose="pseudonym-secret", kms=after) == secret
    assert ShredKeyStore(state / "shred-keys", kms=after).open("subject:MRN-1", token) == b"Jane"
    for i, path in enumerate(artifacts):
        assert bytes(envelope.decrypt_to_bytes(path, expected_context=CONTEXT, kms=after)) == b"shard %d" % i


def test_rewrap_state_of_an_empty_state_dir_does_nothing(tmp_path, kms):
    assert rotation.rewrap_state(tmp_path, kms=kms) == []
    assert kms.calls == 0


# -- crypto-shredding --------------------------------------------------------------------------
@pytest.fixture()
def store(tmp_path, kms_env):
    return ShredKeyStore(tmp_path / "shred-keys", key_id=kms_env.key_arn, kms=KmsClient())


def test_shredded_dataset_cannot_be_read_back(tmp_path, store):
    kms = store.kms
    a1, a2, b1 = tmp_path / "a1.enc", tmp_path / "a2.enc", tmp_path / "b1.enc"
    envelope.encrypt_bytes(b"dataset A part 1", a1, context=CONTEXT, kms=kms, shred_scope="dataset:A", key_store=store)
    envelope.encrypt_bytes(b"dataset A part 2", a2, context=CONTEXT, kms=kms, shred_scope="dataset:A", key_store=store)
    envelope.encrypt_bytes(b"dataset B", b1, context=CONTEXT, kms=kms, shred_scope="dataset:B", key_store=store)
    backup = tmp_path / "backup-of-a1.enc"
    shutil.copy(a1, backup)
    read_back = envelope.decrypt_to_bytes(a1, expected_context=CONTEXT, kms=kms, key_store=store)
    assert bytes(read_back) == b"dataset A part 1"

    assert store.shred("dataset:A") is True
    assert store.shred("dataset:A") is False  # already gone
    fresh_kms = KmsClient()  # no cache could help: a new process, KMS fully working
    reopened = ShredKeyStore(store.root, kms=fresh_kms)
    for artifact in (a1, a2, backup):
        with pytest.raises(CryptoError, match="shredded"):
            envelope.decrypt_to_bytes(artifact, expected_context=CONTEXT, kms=fresh_kms, key_store=reopened)
        with pytest.raises(CryptoError):
            envelope.decrypt_file(
                artifact, tmp_path / "out", expected_context=CONTEXT, kms=fresh_kms, key_store=reopened
            )
        assert not (tmp_path / "out").exists()
    other_dataset = envelope.decrypt_to_bytes(b1, expected_context=CONTEXT, kms=fresh_kms, key_store=reopened)
    assert bytes(other_dataset) == b"dataset B"


def test_recreating_a_shredded_scope_does_not_revive_old_data(tmp_path, store):
    old = tmp_path / "old.enc"
    envelope.encrypt_bytes(b"old", old, context=CONTEXT, kms=store.kms, shred_scope="dataset:A", key_store=store)
    store.shred("dataset:A")
    envelope.encrypt_bytes(b"new", tmp_path / "new.enc", context=CONTEXT, kms=store.kms, shred_scope="dataset:A",
                           key_store=store)
    with pytest.raises(CryptoError):
        envelope.decrypt_to_bytes(old, expected_context=CONTEXT, kms=store.kms, key_store=store)


def test_subject_values_are_shredded_individually(store):
    token_1 = store.seal("subject:MRN-0000001", b"Jane Doe|555-0100", b"reid")
    token_2 = store.seal("subject:MRN-0000002", b"John Roe|555-0199", b"reid")
    assert store.open("subject:MRN-0000001", token_1, b"reid") == b"Jane Doe|555-0100"
    with pytest.raises(CryptoError, match="failed authentication"):
        store.open("subject:MRN-0000001", token_1, b"other associated data")
    with pytest.raises(CryptoError, match="failed authentication"):
        store.open("subject:MRN-0000002", token_1, b"reid")  # wrong subject's key
    assert store.shred("subject:MRN-0000001") is True
    assert not store.exists("subject:MRN-0000001")
    with pytest.raises(CryptoError, match="shredded"):
        store.open("subject:MRN-0000001", token_1, b"reid")
    assert store.open("subject:MRN-0000002", token_2, b"reid") == b"John Roe|555-0199"


def test_store_reveals_no_subject_ids_and_no_keys(store):
    store.seal("subject:MRN-0012345", b"x")
    names = [str(p.relative_to(store.root)) for p in store.root.rglob("*")]
    assert not any("MRN" in name or "0012345" in name for name in names)
    ref = store.ref("subject:MRN-0012345")
    assert ref.startswith("subject:") and "MRN" not in ref


def test_store_survives_a_new_process(store, kms_env):
    token = store.seal("dataset:A", b"value")
    secrets._unwrapped.clear()
    reopened = ShredKeyStore(store.root, kms=KmsClient())  # no key id needed once the master exists
    assert reopened.open("dataset:A", token) == b"value"


@pytest.mark.parametrize("scope", ["A", "user:1", "dataset:", ":x", "subject"])
def test_invalid_scope_is_refused(scope):
    with pytest.raises(CryptoError, match="shred scope must look like"):
        parse_scope(scope)


def test_tampered_scope_key_file_is_detected(store):
    token = store.seal("dataset:A", b"value")
    path = store._path(store.ref("dataset:A"))
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(CryptoError, match="scope key failed authentication"):
        store.open("dataset:A", token)
