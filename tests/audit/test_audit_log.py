"""The audit log detects every kind of history edit and survives concurrent writers."""
from __future__ import annotations

import json
import multiprocessing
import os
import stat

import pytest

from securepipe.audit.log import AuditLog, GENESIS_HASH, entry_hash, head_path, verify_log
from securepipe.audit.signing import KEY_FILE_NAME, SigningKey, get_signing_key
from securepipe.errors import AuditError, CryptoError


def random_key() -> SigningKey:
    return SigningKey.from_secret(os.urandom(32))


def make_log(tmp_path, n=5) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(n):
        log.append("pipeline.step", {"step": i, "rows": 10 * i})
    return log


def read_lines(log):
    return log.path.read_text().splitlines(keepends=True)


def write_lines(log, lines):
    log.path.write_text("".join(lines))


def rehash_and_resign_with(key):
    """An attacker with a different key rewrites an entry consistently."""
    def edit(entry):
        entry["payload"]["rows"] = 0
        entry["hash"] = entry_hash(entry)
        entry["sig"] = key.sign(entry["hash"].encode())
        return entry
    return edit


def edit_line(index, change):
    def tamper(lines):
        entry = json.loads(lines[index])
        lines[index] = json.dumps(change(entry)) + "\n"
        return lines
    return tamper


def set_payload(entry):
    entry["payload"]["rows"] = 999
    return entry


def set_payload_and_rehash(entry):
    entry["payload"]["rows"] = 999
    entry["hash"] = entry_hash(entry)
    return entry


def drop(index):
    return lambda lines: lines[:index] + lines[index + 1:]


def swap(i, j):
    def tamper(lines):
        lines[i], lines[j] = lines[j], lines[i]
        return lines
    return tamper


def insert_copy(source, at):
    return lambda lines: lines[:at] + [lines[source]] + lines[at:]


def insert_forged(at):
    """A forged entry that chains correctly and has the right seq, but no valid signature."""
    def tamper(lines):
        previous = json.loads(lines[at - 1])
        forged = {"seq": at, "time": previous["time"], "event": "pipeline.step", "payload": {"step": "x"},
                  "idempotency_key": None, "key_id": previous["key_id"], "prev_hash": previous["hash"]}
        forged["hash"] = entry_hash(forged)
        forged["sig"] = "0" * 64
        return lines[:at] + [json.dumps(forged) + "\n"] + lines[at:]
    return tamper


# (name, tamper(lines) -> lines, expected first bad line, words in the reason)
TAMPER_CASES = [
    ("edited payload", edit_line(2, set_payload), 3, "edited"),
    ("edited and re-hashed", edit_line(2, set_payload_and_rehash), 3, "signature does not verify"),
    ("deleted middle entry", drop(2), 3, "seq 3 where 2 was expected"),
    ("deleted first entry", drop(0), 1, "seq 1 where 0 was expected"),
    ("reordered entries", swap(1, 3), 2, "seq 3 where 1 was expected"),
    ("inserted copy", insert_copy(1, 3), 4, "seq 1 where 3 was expected"),
    ("inserted forged entry", insert_forged(2), 3, "signature does not verify"),
    ("blank line inserted", lambda lines: lines[:2] + ["\n"] + lines[2:], 3, "not valid JSON"),
    ("cut-off last line", lambda lines: lines[:-1] + [lines[-1][:40]], 5, "incomplete last line"),
    ("prev_hash rewired", edit_line(3, lambda e: {**e, "prev_hash": GENESIS_HASH}), 4, "does not chain"),
]


@pytest.mark.parametrize("name,tamper,bad_line,reason", TAMPER_CASES, ids=[c[0] for c in TAMPER_CASES])
def test_verify_names_first_bad_entry(state, name, tamper, bad_line, reason):
    log = make_log(state)
    assert log.verify().ok
    write_lines(log, tamper(read_lines(log)))
    verdict = log.verify()
    assert not verdict.ok
    assert verdict.first_bad_line == bad_line
    assert reason in verdict.reason
    assert f"line {bad_line}" in verdict.message()


def test_clean_log_verifies(state):
    log = make_log(state, n=7)
    verdict = log.verify()
    assert verdict.ok and verdict.entries == 7 and verdict.head["seq"] == 6
    assert "7 entries, chain and signatures hold" in verdict.message()


def test_truncated_tail_is_detected_by_head_file(state):
    log = make_log(state)
    write_lines(log, read_lines(log)[:3])
    verdict = log.verify()
    assert not verdict.ok
    assert "truncated" in verdict.reason and verdict.first_bad_seq == 3


def test_truncated_to_empty_is_detected(state):
    log = make_log(state)
    log.path.write_text("")
    verdict = log.verify()
    assert not verdict.ok and "truncated" in verdict.reason


def test_append_refused_after_truncation(state):
    """Appending would overwrite the head file, the evidence of the truncation."""
    log = make_log(state)
    write_lines(log, read_lines(log)[:3])
    with pytest.raises(AuditError, match="truncated"):
        log.append("pipeline.step", {"step": 9})


def test_forged_head_file_is_detected(state):
    log = make_log(state)
    write_lines(log, read_lines(log)[:3])
    head = json.loads(head_path(log.path).read_text())
    head.update(seq=2, hash=json.loads(read_lines(log)[2])["hash"])
    head_path(log.path).write_text(json.dumps(head))
    verdict = log.verify()
    assert not verdict.ok and "head file signature" in verdict.reason


def test_head_lagging_after_a_crash_is_not_tampering(state):
    """A writer that died between its append and its head update left a valid, signed entry."""
    log = make_log(state)
    saved_head = head_path(log.path).read_text()
    log.append("pipeline.step", {"step": 5})
    head_path(log.path).write_text(saved_head)
    assert log.verify().ok
    log.append("pipeline.step", {"step": 6})  # the next append repairs the head
    assert json.loads(head_path(log.path).read_text())["seq"] == 6


def test_wrong_key_is_detected(state):
    log = make_log(state)
    verdict = verify_log(log.path, key=random_key())
    assert not verdict.ok and verdict.first_bad_line == 1 and "not the verifying key" in verdict.reason


def test_same_key_id_different_secret_is_detected(state):
    log = make_log(state)
    forged = SigningKey(get_signing_key().key_id, os.urandom(32))
    verdict = verify_log(log.path, key=forged)
    assert not verdict.ok and verdict.first_bad_line == 1 and "signature does not verify" in verdict.reason


def test_verify_without_signatures_checks_structure_only(state):
    log = make_log(state)
    write_lines(log, edit_line(1, rehash_and_resign_with(random_key()))(read_lines(log)))
    # The attacker's consistent rewrite of one entry still breaks the chain at the next one.
    verdict = verify_log(log.path, check_signatures=False)
    assert not verdict.ok and verdict.first_bad_line == 3 and not verdict.signatures_checked


def test_idempotency_key_appends_once(state):
    log = make_log(state, n=2)
    first = log.append("training.run_finished", {"epsilon": 1.0}, idempotency_key="run-1:finished")
    again = log.append("training.run_finished", {"epsilon": 1.0}, idempotency_key="run-1:finished")
    assert again == first
    assert len(read_lines(log)) == 3
    with pytest.raises(AuditError, match="already used"):
        log.append("training.other", {}, idempotency_key="run-1:finished")
    assert log.verify().ok


@pytest.mark.parametrize("event,payload,message", [
    ("Bad Type", {}, "dotted lower-case"),
    ("", {}, "dotted lower-case"),
    ("ok.event", [1, 2], "payload must be a JSON object"),
    ("ok.event", {"x": object()}, "not JSON-serialisable"),
    ("ok.event", {"x": float("nan")}, "not JSON-serialisable"),
    ("ok.event", {"blob": "a" * 70000}, "payload over"),
])
def test_append_rejects_bad_events(state, event, payload, message):
    log = AuditLog(state / "audit.jsonl")
    with pytest.raises(AuditError, match=message):
        log.append(event, payload)
    assert not log.path.exists()


def test_append_refuses_a_cut_off_tail(state):
    log = make_log(state, n=2)
    log.path.write_bytes(log.path.read_bytes()[:-5])
    with pytest.raises(AuditError, match="incomplete"):
        log.append("pipeline.step", {})


def test_existing_log_without_key_is_not_given_a_new_key(state):
    log = make_log(state, n=2)
    (state / "state" / KEY_FILE_NAME).unlink()
    with pytest.raises(AuditError, match="not found"):
        AuditLog(log.path).append("pipeline.step", {})


def _append_many(path, worker, count):
    log = AuditLog(path)
    for i in range(count):
        log.append("pipeline.step", {"worker": worker, "i": i})


def test_concurrent_appends_keep_the_chain(state):
    log = AuditLog(state / "audit.jsonl")
    log.append("pipeline.start", {})  # the key exists before the writers start
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(log.path, w, 25)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    verdict = log.verify()
    assert verdict.ok, verdict.message()
    assert verdict.entries == 101
    entries = list(log.entries())
    assert sorted((e["payload"].get("worker"), e["payload"].get("i")) for e in entries[1:]) == \
        sorted((w, i) for w in range(4) for i in range(25))


def test_without_a_kms_key_nothing_is_signed(state, monkeypatch):
    monkeypatch.delenv("SECUREPIPE_KMS_KEY_ID")
    with pytest.raises(AuditError, match="never stored unwrapped"):
        make_log(state, n=1)
    assert not (state / "state" / KEY_FILE_NAME).exists()


def test_signing_key_is_a_kms_wrapped_secret(state, kms_env):
    log = make_log(state, n=1)
    key_file = state / "state" / KEY_FILE_NAME
    record = json.loads(key_file.read_text())
    assert record["format"] == "securepipe-wrapped-secret" and record["purpose"] == "evidence-signing"
    assert record["kms_key_id"] == kms_env.key_arn
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = get_signing_key(key_file)
    assert key._secret.hex() not in key_file.read_text() and key._secret.hex() not in repr(key)
    assert verify_log(log.path).ok
    # A tampered wrapped key is refused by KMS rather than yielding a wrong key.
    blob = bytearray(record["wrapped"].encode())
    blob[-6:-2] = b"AAAA" if blob[-6:-2] != b"AAAA" else b"BBBB"
    record["wrapped"] = blob.decode()
    key_file.write_text(json.dumps(record))
    with pytest.raises(CryptoError):
        get_signing_key(key_file)
