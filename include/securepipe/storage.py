"""Storage helpers shared by every stage: atomic writes, content hashes, and the rules for names and URIs.

Threat model: nothing half-written may be visible. Local files are written to a
temporary name in the same directory and renamed into place only when complete;
object stores (s3://) publish an object only when its upload completes, so the same
contract holds there. Paths may be `str`, `pathlib.Path` or Airflow's
`ObjectStoragePath` (anything with `.open()` and a URI), so file:// and s3:// share
one code path.

URI rules: a run id becomes a storage-safe name with `safe_run_id`; an input URI is
accepted only inside its root (`uri_within`, which resolves `..` and links for
file://, so path traversal cannot leave the landing zone); a local path is recorded
as a file:// URI (`as_uri`).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

CHUNK = 1 << 20


def safe_run_id(airflow_run_id: str) -> str:
    """Airflow run ids hold ':' and '+'; storage keys, ledger entries and manifests use this form."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", airflow_run_id)[:120]


def uri_within(uri: str, root_uri: str) -> bool:
    """True when `uri` lies under `root_uri`, after resolving `..` and links for file://."""
    if uri.startswith("file://") and root_uri.startswith("file://"):
        path = Path(uri[len("file://"):]).resolve()
        root = Path(root_uri[len("file://"):]).resolve()
        return path == root or root in path.parents
    return uri.startswith(root_uri.rstrip("/") + "/") and "/../" not in uri and not uri.endswith("/..")


def as_uri(location) -> str:
    """A URI for a path or URI: object-store and file URIs as they are, local paths as absolute file://."""
    text = str(location)
    return text if "://" in text else Path(text).resolve().as_uri()


def is_local(path) -> bool:
    if isinstance(path, (str, os.PathLike)) and not str(path).startswith(("s3://", "gs://", "memory://")):
        return True
    protocol = getattr(path, "protocol", None)
    return protocol in ("file", "local", "")


def local_path(path) -> Path:
    text = str(path)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb") -> Iterator[BinaryIO]:
    """Yield a writable file; on success it appears at `path` in one step, on error nothing does."""
    if not is_local(path):
        # ObjectStoragePath / fsspec: the object becomes visible when close() completes the upload.
        # On an error, discard() drops the buffered or multipart upload; close() would publish it.
        handle = path.open(mode)
        try:
            yield handle
        except BaseException:
            discard = getattr(handle, "discard", None)
            if discard is None:
                raise RuntimeError("object store file cannot discard a failed upload") from None
            discard()
            handle.closed = True  # so the garbage collector's close() does not try to upload either
            raise
        handle.close()
        return
    target = local_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def resolve_uri(uri: str, resolver=None):
    """A path object for `uri`: `resolver` (e.g. an ObjectStoragePath factory) when given, else local."""
    return resolver(uri) if resolver is not None else local_path(uri)


def open_read(path) -> BinaryIO:
    if is_local(path):
        return open(local_path(path), "rb")
    return path.open("rb")


def sha256_stream(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path) -> str:
    with open_read(path) as handle:
        return sha256_stream(handle)
