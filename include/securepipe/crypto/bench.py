"""`securepipe bench crypto`: the envelope format against its baselines, measured in one run.

Why: speed claims must be checked by a command, against a baseline measured on
the same machine at the same time (the machine is shared, so absolute numbers
drift; ratios much less). Each in-memory measurement is repeated and the best
of the repeats is kept for the format and the baseline alike.

Baselines:
- in memory: `cryptography`'s AESGCM over the same bytes in 1 MiB chunks, every
  output kept in memory (the format's outputs are kept too);
- file to file: `cp` of the same file, against the whole `securepipe crypto
  encrypt` command (interpreter start-up, KMS calls, fsync included), each
  starting with its input evicted from the page cache (so both read the disk).
Also reported: KMS calls per artifact, KMS calls for many small shards sharing a
data-key cache, and the peak RSS of the streaming CLI on the file.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess  # nosec B404
import sys
import tempfile
import time
from pathlib import Path

from securepipe.crypto import envelope
from securepipe.crypto.kms import DataKeyCache, KmsClient

MIB = 1 << 20
REPEATS = 5
FILE_REPEATS = 2
SHARDS = 200
SHARD_BYTES = 16 << 10
BENCH_CONTEXT = {"dataset": "bench", "run_id": "bench", "purpose": "benchmark"}


class _ChunkList:
    """A sink that keeps every written chunk, like the raw baseline keeps its outputs."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)


def _best_rates(mib: float, runs: dict) -> dict:
    """Best rate (MiB/s) of each run over REPEATS rounds, the runs interleaved within each round
    so that a burst of load from other processes hits the format and its baseline alike."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(REPEATS):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: mib / seconds for name, seconds in best.items()}


def _in_memory(mib: int, key_id: str, kms: KmsClient) -> dict:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = os.urandom(mib * MIB)
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    raw_outputs: list[bytes] = []
    plaintext = bytearray(len(data))
    plaintext_view = memoryview(plaintext)

    # The baseline does the format's memory traffic: chunks read from an in-memory
    # file, outputs kept in a list (encrypt) or copied into one preallocated buffer (decrypt).
    def raw_encrypt():
        raw_outputs.clear()
        source = io.BytesIO(data)
        while chunk := source.read(MIB):
            raw_outputs.append(aead.encrypt(nonce, chunk, None))

    def raw_decrypt():
        offset = 0
        for chunk in raw_outputs:
            opened = aead.decrypt(nonce, chunk, None)
            plaintext_view[offset : offset + len(opened)] = opened
            offset += len(opened)

    sink = _ChunkList()

    def format_encrypt(sha256=False):
        sink.chunks.clear()
        envelope.encrypt_stream(io.BytesIO(data), sink, key_id=key_id, context=BENCH_CONTEXT, kms=kms, sha256=sha256)

    def format_decrypt():
        envelope.decrypt_stream(io.BytesIO(ciphertext), plaintext_view, expected_context=BENCH_CONTEXT, kms=kms)

    format_encrypt()
    ciphertext = b"".join(sink.chunks)
    raw_encrypt()
    rates = _best_rates(mib, {
        "sha256": lambda: hashlib.sha256(data).digest(),
        "raw_encrypt": raw_encrypt,
        "format_encrypt": format_encrypt,
        "raw_decrypt": raw_decrypt,
        "format_decrypt": format_decrypt,
        "format_encrypt_sha256": lambda: format_encrypt(sha256=True),
    })
    plaintext_view[:] = bytes(len(plaintext))
    format_decrypt()
    if plaintext != data:
        raise RuntimeError("benchmark round trip mismatch")
    raw_enc, raw_dec = rates["raw_encrypt"], rates["raw_decrypt"]
    fmt_enc, fmt_dec, fmt_enc_hashed = rates["format_encrypt"], rates["format_decrypt"], rates["format_encrypt_sha256"]
    return {
        "mib": mib,
        "raw_aesgcm_mib_s": round(raw_enc, 1),
        "raw_aesgcm_decrypt_mib_s": round(raw_dec, 1),
        "encrypt_mib_s": round(fmt_enc, 1),
        "decrypt_mib_s": round(fmt_dec, 1),
        "encrypt_with_sha256_mib_s": round(fmt_enc_hashed, 1),
        "sha256_mib_s": round(rates["sha256"], 1),  # the lineage hash alone: a bound on file encryption
        "ratio_encrypt": round(fmt_enc / raw_enc, 3),
        # As the issue defines it: over the raw primitive's (encrypt) rate; and, stricter,
        # over raw AES-GCM decryption of the same chunks.
        "ratio_decrypt": round(fmt_dec / raw_enc, 3),
        "ratio_decrypt_vs_raw_decrypt": round(fmt_dec / raw_dec, 3),
    }


def _kms_calls(key_id: str, aws) -> dict:
    """KMS calls for one artifact (fresh client, no cache) and for many small shards sharing a cache."""
    single = KmsClient(aws)
    blob = _ChunkList()
    envelope.encrypt_stream(io.BytesIO(b"x" * 1000), blob, key_id=key_id, context=BENCH_CONTEXT, kms=single)
    encrypt_calls = single.calls
    envelope.decrypt_stream(io.BytesIO(b"".join(blob.chunks)), io.BytesIO(), expected_context=BENCH_CONTEXT, kms=single)
    cached = KmsClient(aws, data_key_cache=DataKeyCache(max_entries=16, max_age_s=300, max_uses=1000))
    for _ in range(SHARDS):
        shard = _ChunkList()
        envelope.encrypt_stream(io.BytesIO(os.urandom(SHARD_BYTES)), shard, key_id=key_id,
                                context=BENCH_CONTEXT, kms=cached)
        envelope.decrypt_stream(io.BytesIO(b"".join(shard.chunks)), io.BytesIO(),
                                expected_context=BENCH_CONTEXT, kms=cached)
    return {
        "kms_calls": single.calls,
        "kms_calls_encrypt": encrypt_calls,
        "kms_calls_decrypt": single.calls - encrypt_calls,
        "kms_calls_shards": cached.calls,
        "shards": SHARDS,
    }


# Runs one command and reports its wall time and peak RSS. A separate small launcher is
# needed because Linux keeps ru_maxrss across exec: a child forked straight from this
# (large) benchmark process would report this process's RSS as its own peak.
_LAUNCHER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "rc": done.returncode,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "stderr_tail": done.stderr.decode(errors="replace")[-500:]}))
"""


def _timed_child(argv: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one command."""
    launched = subprocess.run(  # noqa: S603 # nosec B603
        [sys.executable, "-c", _LAUNCHER, *argv], env=env, capture_output=True, check=True, text=True
    )
    report = json.loads(launched.stdout)
    if report["rc"] != 0:
        raise RuntimeError(f"{argv[0]} exited {report['rc']}: {report['stderr_tail']}")
    return report["seconds"], report["maxrss_kib"] / 1024


def _evict_from_page_cache(path: Path) -> None:
    """Drop this one file's pages from the page cache, so the next reader reads the disk
    (posix_fadvise on the file only: other processes' cached data is left alone)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _file_to_file(mib: int, env: dict) -> dict:
    cli = str(Path(sys.executable).with_name("securepipe"))
    context_args = [arg for name, value in BENCH_CONTEXT.items() for arg in ("--context", f"{name}={value}")]
    with tempfile.TemporaryDirectory(prefix="securepipe-bench-") as tmp:
        plain, copy, encrypted, decrypted = (Path(tmp) / name for name in ("plain", "copy", "plain.enc", "plain.out"))
        with open(plain, "wb") as handle:
            for _ in range(mib):
                handle.write(os.urandom(MIB))
        # Every timed command starts with its input out of the page cache, so cp and the
        # encrypt command both read the disk, as a first read of an artifact does; each
        # is run FILE_REPEATS times and its best time kept (the disk is shared too).
        def best_of(argv, source: Path, output: Path) -> tuple[float, float]:
            runs = []
            for _ in range(FILE_REPEATS):
                output.unlink(missing_ok=True)
                _evict_from_page_cache(source)
                runs.append(_timed_child(argv, env))
            return min(seconds for seconds, _ in runs), max(rss for _, rss in runs)

        cp_warm_s, _ = _timed_child(["cp", str(plain), str(copy)], env)
        cp_s, _ = best_of(["cp", str(plain), str(copy)], plain, copy)
        cp_sync_s, _ = best_of(["sh", "-c", f'cp "{plain}" "{copy}" && sync "{copy}"'], plain, copy)
        copy.unlink()
        encrypt_s, encrypt_rss = best_of(
            [cli, "crypto", "encrypt", "--in", str(plain), "--out", str(encrypted), *context_args], plain, encrypted
        )
        decrypt_s, decrypt_rss = best_of(
            [cli, "crypto", "decrypt", "--in", str(encrypted), "--out", str(decrypted), *context_args],
            encrypted, decrypted,
        )
        startup_s, _ = _timed_child([cli, "crypto", "inspect", str(encrypted)], env)
        if os.path.getsize(decrypted) != os.path.getsize(plain):
            raise RuntimeError("file round trip changed the size")
    return {
        "file_mib": mib,
        "cp_mib_s": round(mib / cp_s, 1),
        "cp_page_cache_mib_s": round(mib / cp_warm_s, 1),  # source already cached: not the baseline
        "cp_fsync_mib_s": round(mib / cp_sync_s, 1),
        "file_encrypt_mib_s": round(mib / encrypt_s, 1),
        "file_decrypt_mib_s": round(mib / decrypt_s, 1),
        "ratio_file_encrypt_vs_cp": round(cp_s / encrypt_s, 3),
        "ratio_file_encrypt_vs_cp_fsync": round(cp_sync_s / encrypt_s, 3),
        "cli_startup_s": round(startup_s, 3),  # `crypto inspect`: interpreter, imports, no KMS
        "peak_rss_mib": round(max(encrypt_rss, decrypt_rss), 1),
    }


def run_bench(mib: int, *, file_mib: int | None = None) -> dict:
    from securepipe.kms_emulator import configured_or_private_kms

    with configured_or_private_kms() as (aws, key_id):
        kms = KmsClient(aws)
        result = {"bench": "crypto", "algorithm": envelope.DEFAULT_ALGORITHM, "repeats": REPEATS,
                  "file_repeats": FILE_REPEATS}
        result.update(_kms_calls(key_id, aws))
        result.update(_in_memory(mib, key_id, kms))
        env = {**os.environ, "SECUREPIPE_KMS_KEY_ID": key_id}
        file_mib = mib if file_mib is None else file_mib
        if file_mib > 0:
            result.update(_file_to_file(file_mib, env))
        result["bench_process_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        result["cpu_count"] = os.cpu_count()
        result["load_avg_1m"] = round(os.getloadavg()[0], 2)
        return result
