"""Progress: a bar on a terminal (a real pseudo-terminal here), count lines in task logs, quiet is quiet."""
from __future__ import annotations

import io
import logging
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from securepipe.progress import Progress

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _terminal():
    """(stream writing to a pseudo-terminal, function returning what it received)."""
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w")

    def received() -> str:
        stream.flush()
        return os.read(master, 65536).decode()
    return stream, received


def test_a_terminal_gets_a_bar_with_counts_and_eta():
    stream, received = _terminal()
    clock = Clock()
    progress = Progress("mask patients.csv", total=200_000, stream=stream, clock=clock)
    assert progress.mode == "bar"
    clock.now = 10.0
    progress.advance(50_000)
    shown = received()
    assert shown.startswith("\r\x1b[2Kmask patients.csv [######")
    assert "50,000/200,000 rows (25%)" in shown and "5,000 rows/s" in shown and "ETA 00:30" in shown
    clock.now = 40.0
    progress.advance(150_000)
    progress.close()
    assert "200,000/200,000 rows (100%)" in received()


def test_bytes_are_shown_as_sizes():
    progress = Progress("encrypt big.bin", total=8 * 1024 ** 2, unit="bytes", quiet=True, clock=Clock())
    progress.done = 2 * 1024 ** 2
    assert progress.describe(2.0).startswith("2.0 MiB/8.0 MiB (25%), 1.0 MiB/s")


def test_without_a_terminal_count_lines_go_to_the_log(caplog):
    stream, clock = io.StringIO(), Clock()
    progress = Progress("ingest patients", total=1000, stream=stream, interval_s=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="securepipe.progress"):
        clock.now = 5
        progress.advance(100)  # within the interval: no line yet
        clock.now = 31
        progress.advance(100)
        progress.close()
    assert [r.getMessage() for r in caplog.records] == [
        "ingest patients: 200/1,000 rows (20%), 6 rows/s, elapsed 00:31, ETA 02:04",
        "ingest patients: 200/1,000 rows (20%), 6 rows/s, elapsed 00:31, ETA 02:04 (done)"]
    assert stream.getvalue() == ""


def test_quiet_shows_nothing_anywhere(caplog):
    stream, received = _terminal()
    with caplog.at_level(logging.INFO, logger="securepipe.progress"):
        with Progress("x", total=10, stream=stream, quiet=True, clock=Clock()) as progress:
            progress.advance(10)
    stream.write("end")
    assert received() == "end" and not caplog.records and progress.done == 10


def _run_on_a_terminal(argv: list[str], env: dict) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe); returns (code, stdout, stderr)."""
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "securepipe.cli", *argv], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)
    reader = threading.Thread(target=drain)
    reader.start()
    stdout, _ = process.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(master)
    return process.returncode, stdout.decode(), b"".join(chunks).decode()


def test_pii_mask_shows_a_bar_on_a_terminal_and_nothing_extra_with_quiet(tmp_path):
    from securepipe.synth import write_patients

    source = tmp_path / "patients.csv"
    write_patients(source, 300, seed=3)
    env = {k: v for k, v in os.environ.items() if k != "SECUREPIPE_KMS_KEY_ID"}
    env["PYTHONPATH"] = str(REPO / "include")
    code, out, err = _run_on_a_terminal(["pii", "mask", "--in", str(source), "--out", str(tmp_path / "a.parquet")],
                                        env)
    assert code == 0, err
    assert "\r\x1b[2Kmask patients.csv [" in err and "300/300 rows (100%)" in err
    code, quiet_out, quiet_err = _run_on_a_terminal(
        ["pii", "mask", "--quiet", "--in", str(source), "--out", str(tmp_path / "b.parquet")], env)
    assert code == 0, quiet_err
    warning = err[err.index("securepipe: warning"):].split("\n")[0].strip()
    assert quiet_err.strip() == warning and "rows" not in warning  # the same warning, nothing else
    assert quiet_out.splitlines()[-1] == out.splitlines()[-1]  # the same summary


@pytest.mark.parametrize("quiet", [True, False])
def test_crypto_counts_every_byte_it_reads(kms_env, tmp_path, quiet):
    from securepipe.crypto.envelope import decrypt_file, encrypt_file

    plain = tmp_path / "data.bin"
    plain.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    stream = io.StringIO()
    with Progress("encrypt", total=plain.stat().st_size, unit="bytes", quiet=quiet, stream=stream) as progress:
        encrypt_file(plain, tmp_path / "data.enc", context={"purpose": "test"}, progress=progress)
    assert progress.done == plain.stat().st_size
    with Progress("decrypt", unit="bytes", quiet=quiet, stream=stream) as progress:
        decrypt_file(tmp_path / "data.enc", tmp_path / "back.bin", expected_context={"purpose": "test"},
                     progress=progress)
    assert progress.done == (tmp_path / "data.enc").stat().st_size and stream.getvalue() == ""
