"""The append-only, hash-chained, signed audit log (JSON Lines).

Threat model: someone who edits history. Each line is one entry:
    {"seq", "time", "event", "payload", "idempotency_key", "key_id", "prev_hash", "hash", "sig"}
`hash` is SHA-256 over the canonical JSON of every field but `hash` and `sig`, so
it covers `prev_hash`, the previous entry's hash: editing, deleting, reordering or
inserting a line breaks the chain at that line. `sig` is HMAC-SHA256 of `hash`
under the KMS-wrapped evidence key (see signing.py), so rewriting the chain from
the edit onwards still fails without the key. Cutting entries off the end leaves a
valid chain, so the head (last seq and hash, signed) is also kept in
`<log>.head.json` and recorded in every signed lineage manifest; a log that ends
before a recorded head was truncated.

Payloads hold counts, hashes and pseudonyms only: raw PII must never be passed in
(the log is read by operators and copied to evidence stores). Appends hold an
exclusive lock for the whole read-tail / write / fsync / update-head sequence, and
an idempotency key makes a retried task's append a no-op.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

from securepipe import config
from securepipe.audit.locking import exclusive_lock, shared_lock
from securepipe.audit.signing import KEY_FILE_NAME, SigningKey, get_signing_key
from securepipe.errors import AuditError
from securepipe.storage import atomic_write

GENESIS_HASH = "0" * 64
LOG_FILE_NAME = "audit.jsonl"
HASHED_FIELDS = ("seq", "time", "event", "payload", "idempotency_key", "key_id", "prev_hash")
ENTRY_FIELDS = HASHED_FIELDS + ("hash", "sig")
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
MAX_PAYLOAD_BYTES = 64 * 1024
TAIL_CHUNK = 64 * 1024


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(canonical_json({name: entry[name] for name in HASHED_FIELDS})).hexdigest()


def head_message(seq: int, hash_: str) -> bytes:
    return f"securepipe-audit-head:{seq}:{hash_}".encode()


def default_log_path(env=None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("SECUREPIPE_AUDIT_LOG") or config.state_dir(env) / LOG_FILE_NAME)


def head_path(log_path: Path) -> Path:
    return Path(f"{log_path}.head.json")


def resolve_key_path(log_path: Path, key_path=None) -> Path | None:
    """The key to use for `log_path`: the one given, else a key file next to the log (the
    pipeline keeps both in its state dir), else None (the default location)."""
    if key_path:
        return Path(key_path)
    sibling = Path(log_path).parent / KEY_FILE_NAME
    return sibling if sibling.exists() else None


@dataclass
class VerifyResult:
    """Outcome of `verify_log`. `first_bad_*` name the first entry that does not hold."""

    log: str
    ok: bool
    entries: int
    signatures_checked: bool
    head: dict | None = None  # {"seq", "hash"} of the last entry that verified
    first_bad_line: int | None = None
    first_bad_seq: int | None = None
    reason: str | None = None
    entry_hashes: dict[int, str] = field(default_factory=dict, repr=False)

    def message(self) -> str:
        if self.ok:
            signed = "chain and signatures hold" if self.signatures_checked else "chain holds (signatures not checked)"
            return f"audit log {self.log}: {self.entries} entries, {signed}"
        where = f"line {self.first_bad_line}" if self.first_bad_line is not None else "end of log"
        seq = f" (seq {self.first_bad_seq})" if self.first_bad_seq is not None else ""
        return f"audit log {self.log}: first bad entry at {where}{seq}: {self.reason}"

    def as_dict(self) -> dict:
        return {
            "log": self.log, "ok": self.ok, "entries": self.entries, "signatures_checked": self.signatures_checked,
            "head": self.head, "first_bad_line": self.first_bad_line, "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
        }


def _read_head_file(log_path: Path) -> dict | None:
    path = head_path(log_path)
    try:
        head = json.loads(path.read_text())
        return {"seq": int(head["seq"]), "hash": str(head["hash"]), "key_id": head.get("key_id"),
                "sig": head.get("sig")}
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        raise AuditError(f"audit head file {path} is unreadable") from None


def _check_entry_shape(entry) -> str | None:
    if not isinstance(entry, dict):
        return "not a JSON object"
    missing = [name for name in ENTRY_FIELDS if name not in entry]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    if not isinstance(entry["seq"], int) or isinstance(entry["seq"], bool):
        return "seq is not an integer"
    return None


def _entry_problem(raw: bytes, expected_seq: int, prev_hash: str, key: SigningKey | None):
    """(entry, None) when the line holds, else (entry or None, why not)."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return None, "not valid JSON (edited or corrupted)"
    shape = _check_entry_shape(entry)
    if shape:
        return None, shape
    seq = entry["seq"]
    if seq != expected_seq:
        how = "entries before it were deleted or reordered" if seq > expected_seq else "inserted or reordered"
        return entry, f"seq {seq} where {expected_seq} was expected: {how}"
    if entry["prev_hash"] != prev_hash:
        return entry, "does not chain onto the previous entry: an entry was inserted, deleted or reordered"
    try:
        actual = entry_hash(entry)
    except (TypeError, ValueError):
        return entry, "content cannot be hashed (edited)"
    if actual != entry["hash"]:
        return entry, "content does not match its hash: the entry was edited"
    if key is not None:
        if entry["key_id"] != key.key_id:
            return entry, f"signed with key id {entry['key_id']!r}, not the verifying key {key.key_id!r}"
        if not key.verify(entry["hash"].encode(), entry["sig"]):
            return entry, "signature does not verify: forged, or re-hashed after an edit"
    return entry, None


def verify_log(
    log_path, *, key: SigningKey | None = None, key_path=None, check_signatures: bool = True
) -> VerifyResult:
    """Verify chain, hashes, signatures and head; stop at the first bad entry.

    With `check_signatures=False` no key is needed (used where the key must not be
    present, e.g. the web UI); the chain and head structure are still checked.
    """
    log_path = Path(log_path)
    if check_signatures and key is None:
        key = get_signing_key(resolve_key_path(log_path, key_path))
    result = VerifyResult(log=str(log_path), ok=False, entries=0, signatures_checked=check_signatures)
    # Log and head are read under the lock: an append between the two reads would
    # otherwise look like a truncation.
    with shared_lock(log_path):
        try:
            data = log_path.read_bytes()
        except FileNotFoundError:
            data = None
        head = _read_head_file(log_path)
    if data is None:
        if head is None:
            result.reason = "log file not found"
            return result
        data = b""
    lines = data.split(b"\n")
    torn_tail = lines[-1] != b""
    if not torn_tail:
        lines.pop()
    prev_hash = GENESIS_HASH
    for index, raw in enumerate(lines):
        if torn_tail and index == len(lines) - 1:
            entry, reason = None, "incomplete last line (a write was cut off, or the file was edited)"
        else:
            entry, reason = _entry_problem(raw, index, prev_hash, key if check_signatures else None)
        if reason:
            seq = entry.get("seq") if isinstance(entry, dict) else None
            result.first_bad_line, result.reason = index + 1, reason
            result.first_bad_seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
            return result
        seq = entry["seq"]
        result.entry_hashes[seq] = entry["hash"]
        prev_hash = entry["hash"]
        result.entries += 1
        result.head = {"seq": seq, "hash": entry["hash"]}

    if head is not None:
        last_seq = result.head["seq"] if result.head else -1
        if check_signatures and (head["key_id"] != key.key_id or not key.verify(
                head_message(head["seq"], head["hash"]), head["sig"] or "")):
            result.reason = "head file signature does not verify: the head file was forged"
            return result
        if head["seq"] > last_seq:
            result.first_bad_seq = last_seq + 1
            result.reason = (
                f"log ends at seq {last_seq} but its head file records seq {head['seq']}: "
                f"entries from seq {last_seq + 1} were cut off (truncated)"
            )
            return result
        if result.entry_hashes.get(head["seq"]) != head["hash"]:
            result.first_bad_seq, result.first_bad_line = head["seq"], head["seq"] + 1
            result.reason = "entry differs from the one its head file records: the log was rewritten"
            return result
        # head["seq"] < last_seq: a writer stopped between its append and its head update;
        # every entry after the head was still verified above, so this is not tampering.
    result.ok = True
    return result


def check_expected_heads(result: VerifyResult, heads: list[tuple[str, int, str]]) -> tuple[str, str] | None:
    """Each (source, seq, hash) recorded elsewhere (manifests) must be in the verified chain.

    Returns (source, reason) for the first that is not, else None. This catches a
    truncation that also removed or rewrote the head file.
    """
    for source, seq, hash_ in heads:
        known = result.entry_hashes.get(seq)
        if known is None:
            return source, f"records audit head seq {seq}, but the log ends at seq {result.entries - 1}: truncated"
        if known != hash_:
            return source, f"records audit head seq {seq} with a hash the log does not have: the log was rewritten"
    return None


class AuditLog:
    """One audit log file. The signing key is loaded on first use (one KMS Decrypt)."""

    def __init__(self, path=None, *, key: SigningKey | None = None, key_path=None, kms_key_id: str | None = None,
                 aws=None):
        self.path = Path(path) if path else default_log_path()
        self._key, self._kms_key_id, self._aws = key, kms_key_id, aws
        self._key_path = resolve_key_path(self.path, key_path)

    def signing_key(self, *, may_create: bool) -> SigningKey:
        if self._key is None:
            self._key = get_signing_key(self._key_path, create=may_create, kms_key_id=self._kms_key_id, aws=self._aws)
        return self._key

    def verify(self, *, check_signatures: bool = True) -> VerifyResult:
        key = self.signing_key(may_create=False) if check_signatures else None
        return verify_log(self.path, key=key, check_signatures=check_signatures)

    def head(self) -> dict | None:
        """{"seq", "hash"} of the last entry, or None for an empty log."""
        with shared_lock(self.path):
            last = self._read_last_entry()
        return {"seq": last["seq"], "hash": last["hash"]} if last else None

    def entries(self):
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return
        with handle:
            for line_no, raw in enumerate(handle, start=1):
                try:
                    yield json.loads(raw)
                except ValueError:
                    raise AuditError(f"audit log {self.path}: line {line_no} is not valid JSON") from None

    def append(self, event: str, payload: dict | None = None, *, idempotency_key: str | None = None) -> dict:
        """Append one entry and return it. With `idempotency_key`, a second append with
        the same key returns the first entry instead of writing a new one (a retried
        task records its event once; the first write wins)."""
        if not isinstance(event, str) or not EVENT_TYPE.match(event) or len(event) > 100:
            raise AuditError("audit event type must be dotted lower-case words, e.g. 'training.budget_refused'")
        payload = {} if payload is None else payload
        if not isinstance(payload, dict):
            raise AuditError(f"audit event {event}: payload must be a JSON object")
        try:
            payload_bytes = canonical_json(payload)
        except (TypeError, ValueError):
            raise AuditError(f"audit event {event}: payload is not JSON-serialisable") from None
        if len(payload_bytes) > MAX_PAYLOAD_BYTES:
            raise AuditError(f"audit event {event}: payload over {MAX_PAYLOAD_BYTES} bytes; record counts and hashes")
        if idempotency_key is not None and not (isinstance(idempotency_key, str) and 0 < len(idempotency_key) <= 200):
            raise AuditError("idempotency key must be a non-empty string of at most 200 characters")

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.path):
            if idempotency_key is not None:
                existing = self.find_idempotent(idempotency_key)
                if existing is not None:
                    if existing["event"] != event:
                        raise AuditError(
                            f"idempotency key already used by a {existing['event']!r} entry (seq {existing['seq']})"
                        )
                    return existing
            last = self._read_last_entry()
            self._refuse_if_truncated(last)
            key = self.signing_key(may_create=last is None)
            entry = {
                "seq": 0 if last is None else last["seq"] + 1,
                "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                "event": event,
                "payload": json.loads(payload_bytes),
                "idempotency_key": idempotency_key,
                "key_id": key.key_id,
                "prev_hash": GENESIS_HASH if last is None else last["hash"],
            }
            entry["hash"] = entry_hash(entry)
            entry["sig"] = key.sign(entry["hash"].encode())
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, canonical_json(entry) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            with atomic_write(head_path(self.path), "w") as handle:
                json.dump({"seq": entry["seq"], "hash": entry["hash"], "key_id": key.key_id,
                           "sig": key.sign(head_message(entry["seq"], entry["hash"]))}, handle)
            return entry

    def find_idempotent(self, idempotency_key: str) -> dict | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        # Cheap substring test first: a full parse only when the key may be present.
        if json.dumps(idempotency_key, ensure_ascii=False).encode() not in data:
            return None
        for entry in self.entries():
            if isinstance(entry, dict) and entry.get("idempotency_key") == idempotency_key:
                return entry
        return None

    def _read_last_entry(self) -> dict | None:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return None
        with handle:
            end = handle.seek(0, os.SEEK_END)
            if end == 0:
                return None
            handle.seek(end - 1)
            if handle.read(1) != b"\n":
                raise AuditError(
                    f"audit log {self.path}: the last line is incomplete (a cut-off write or an edit); "
                    "refusing to append until it is inspected"
                )
            # Read backwards until the start of the last line is in the buffer.
            position, tail = end, b""
            while position > 0 and tail.count(b"\n") < 2:
                step = min(TAIL_CHUNK, position)
                position -= step
                handle.seek(position)
                tail = handle.read(step) + tail
            last_line = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            entry = json.loads(last_line)
        except ValueError:
            raise AuditError(f"audit log {self.path}: the last entry is not valid JSON; refusing to append") from None
        if _check_entry_shape(entry):
            raise AuditError(f"audit log {self.path}: the last entry is malformed; refusing to append")
        return entry

    def _refuse_if_truncated(self, last: dict | None) -> None:
        # Appending after a truncation would overwrite the head file, the very evidence of it.
        head = _read_head_file(self.path)
        if head is None:
            return
        last_seq = -1 if last is None else last["seq"]
        if head["seq"] > last_seq or (head["seq"] == last_seq and head["hash"] != last["hash"]):
            raise AuditError(
                f"audit log {self.path} ends at seq {last_seq} but its head file records seq {head['seq']}: "
                "the log was truncated or rewritten; refusing to append"
            )


def state_audit_log(state_dir, *, kms_key_id: str | None = None, aws=None) -> "AuditLog":
    """The audit log of a state directory, with its evidence signing key beside it."""
    from securepipe.audit.signing import KEY_FILE_NAME

    state_dir = Path(state_dir)
    return AuditLog(state_dir / LOG_FILE_NAME, key_path=state_dir / KEY_FILE_NAME, kms_key_id=kms_key_id, aws=aws)
