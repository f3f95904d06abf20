"""Advisory locks on a sidecar file, so concurrent writers serialise and readers see whole states.

Threat model: two tasks appending to the audit log at once must not interleave
bytes or both chain onto the same previous entry (which would read as tampering),
and a verifier must not read the log before an append and its head file after it
(which would read as a truncation). `fcntl.flock` on `<path>.lock` is held by a
writer for the whole read-tail / write / fsync / update-head sequence, and shared
by readers. The lock file holds no data, so deleting it is harmless.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def _lock_path(path: Path) -> Path:
    return Path(f"{path}.lock")


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    lock_path = _lock_path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def shared_lock(path: Path) -> Iterator[None]:
    """A reader's lock. Where no lock file can be made (a read-only copy of the
    evidence), nobody can be writing, so reading unlocked is safe."""
    try:
        fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)
