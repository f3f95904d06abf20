"""The key_rotation DAG's stages: idempotent re-wrap per artifact, the key registry, the keys_current check."""
from __future__ import annotations

from securepipe.audit.checks import check_keys_current
from securepipe.crypto import decrypt_to_bytes, encrypt_bytes, inspect
from securepipe.crypto.rotation import envelope_files, retire_keys, rewrap_artifact

CONTEXT = {"dataset": "patients", "purpose": "test"}


def test_every_artifact_is_rewrapped_once_still_decrypts_and_a_left_behind_one_is_flagged(tmp_path, kms, new_key):
    _, old = new_key()
    _, new = new_key()
    storage, state = tmp_path / "storage", tmp_path / "state"
    for path in (storage / "patients/masked/r1/dataset.parquet.enc", storage / "patients/models/r1/model.keras.enc",
                 state / "data-profiles/patients.profile.enc"):
        encrypt_bytes(path.name.encode() * 100, path, key_id=old, context=CONTEXT, kms=kms)
    (storage / "notes.txt").write_text("not an envelope")
    artifacts = [path for root in (storage, state) for _, path in envelope_files(root)]
    assert len(artifacts) == 3

    first = [rewrap_artifact(path, to_key_id=new, kms=kms) for path in artifacts]
    assert all(o["rewrapped"] and o["kms_key_id_before"] == old and o["kms_key_id"] == new for o in first)
    again = [rewrap_artifact(path, to_key_id=new, kms=kms) for path in artifacts]  # a resumed run skips them
    assert not any(o["rewrapped"] for o in again)
    for path in artifacts:
        assert decrypt_to_bytes(path, expected_context=CONTEXT, kms=kms) == path.name.encode() * 100

    registry = retire_keys(state, current=new, previous=[old])
    assert registry == {"current": new, "retired": [old]}
    assert check_keys_current(storage, state)["ok"]

    encrypt_bytes(b"late", storage / "patients/models/r0/model.keras.enc", key_id=old, context=CONTEXT, kms=kms)
    verdict = check_keys_current(storage, state)
    assert not verdict["ok"] and verdict["details"]["wrapped_by_retired_key"] == ["patients/models/r0/model.keras.enc"]
    assert inspect(storage / "patients/models/r0/model.keras.enc")["kms_key_id"] == old


def test_rewrap_state_moves_the_evidence_signing_key_so_the_old_key_can_go(tmp_path, kms, kms_admin, new_key):
    from securepipe.audit.log import state_audit_log
    from securepipe.crypto.rotation import rewrap_state

    old_id, old = new_key()
    _, new = new_key()
    state = tmp_path / "state"
    state_audit_log(state, kms_key_id=old).append("test.before", {"n": 1})
    (moved,) = rewrap_state(state, to_key_id=new, kms=kms)
    assert moved["kms_key_id_before"] == old and moved["kms_key_id"] == new
    import json

    assert json.loads((state / "evidence-signing-key.json").read_text())["kms_key_arn"] == new
    kms_admin.disable_key(KeyId=old_id)  # (moto still serves disabled keys: the line above is the proof)
    log = state_audit_log(state, kms_key_id=new)  # a fresh process: unwraps the key under the new KMS key
    log.append("test.after", {"n": 2})
    assert log.verify().ok
