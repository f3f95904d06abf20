"""The exact `securepipe crypto ...` and `securepipe bench crypto` forms, as checks outside the suite call them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from securepipe.cli import main
from securepipe.crypto.kms import default_kms

CLI = str(Path(sys.executable).with_name("securepipe"))
CONTEXT_ARGS = ["--context", "dataset=patients", "--context", "run_id=run-1"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=dict(os.environ), timeout=120)


def test_encrypt_inspect_decrypt_rewrap_through_the_real_entry_point(tmp_path, kms_env, new_key):
    plain, enc, out = tmp_path / "data.csv", tmp_path / "data.csv.enc", tmp_path / "data.out.csv"
    plain.write_bytes(b"patient_id,name\nMRN-0012345,Jane Doe\n" * 1000)

    done = _run("crypto", "encrypt", "--in", str(plain), "--out", str(enc), *CONTEXT_ARGS)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kms_key_id"] == kms_env.key_arn

    done = _run("crypto", "inspect", str(enc))
    assert done.returncode == 0, done.stderr
    header = json.loads(done.stdout)
    assert header["context"] == {"dataset": "patients", "run_id": "run-1"}
    assert header["algorithm"] == "AES256_GCM_HKDF_1MB" and header["frame_size"] == 1 << 20
    assert header["frame_count"] == 1 and header["plaintext_size"] == plain.stat().st_size

    done = _run("crypto", "decrypt", "--in", str(enc), "--out", str(out), "--context", "run_id=run-1",
                "--context", "dataset=patients")  # order does not matter
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == plain.read_bytes()

    _, other_arn = new_key()
    done = _run("crypto", "rewrap", "--in", str(enc), "--to-kms-key-id", other_arn)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kms_key_id"] == other_arn


@pytest.mark.parametrize(
    "case",
    ["other_context_value", "missing_context", "flipped_body_byte", "truncated", "disabled_key"],
)
def test_decrypt_failures_exit_nonzero_and_leave_no_output(tmp_path, kms_env, kms_admin, new_key, capsys, case):
    key_id, arn = new_key()
    plain, enc, out = tmp_path / "p", tmp_path / "p.enc", tmp_path / "p.out"
    plain.write_bytes(os.urandom(3000))
    assert main(["crypto", "encrypt", "--in", str(plain), "--out", str(enc), "--kms-key-id", arn, *CONTEXT_ARGS]) == 0
    context = list(CONTEXT_ARGS)
    blob = enc.read_bytes()
    if case == "other_context_value":
        context[-1] = "run_id=run-2"
    elif case == "missing_context":
        context = context[:2]
    elif case == "flipped_body_byte":
        enc.write_bytes(blob[:-50] + bytes([blob[-50] ^ 0x40]) + blob[-49:])
    elif case == "truncated":
        enc.write_bytes(blob[:-1])
    elif case == "disabled_key":
        kms_admin.disable_key(KeyId=key_id)
        default_kms().forget_key_states()  # as a new CLI process would: the state cache lives 30 s
    capsys.readouterr()
    code = main(["crypto", "decrypt", "--in", str(enc), "--out", str(out), *context])
    assert code != 0
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "p.enc"]
    assert "error" in capsys.readouterr().err


def test_decrypt_failure_exit_code_through_the_real_entry_point(tmp_path, kms_env):
    plain, enc, out = tmp_path / "p", tmp_path / "p.enc", tmp_path / "p.out"
    plain.write_bytes(b"x" * 100)
    assert main(["crypto", "encrypt", "--in", str(plain), "--out", str(enc), *CONTEXT_ARGS]) == 0
    done = _run("crypto", "decrypt", "--in", str(enc), "--out", str(out), "--context", "dataset=other",
                "--context", "run_id=run-1")
    assert done.returncode == 4 and "encryption context does not match" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize("bad", ["novalue", "=x"])
def test_malformed_context_argument(tmp_path, kms_env, capsys, bad):
    plain = tmp_path / "p"
    plain.write_bytes(b"x")
    assert main(["crypto", "encrypt", "--in", str(plain), "--out", str(tmp_path / "p.enc"), "--context", bad]) != 0
    assert "key=value" in capsys.readouterr().err
    assert not (tmp_path / "p.enc").exists()


def test_inspect_of_a_plain_file_fails(tmp_path, capsys):
    plain = tmp_path / "p.csv"
    plain.write_bytes(b"a,b\n1,2\n")
    assert main(["crypto", "inspect", str(plain)]) == 4
    assert "not a securepipe encrypted file" in capsys.readouterr().err


def test_shred_and_enable_rotation_commands(tmp_path, kms_env, state_dir, capsys):
    plain, enc = tmp_path / "p", tmp_path / "p.enc"
    plain.write_bytes(b"subject row")
    assert main(["crypto", "encrypt", "--in", str(plain), "--out", str(enc), "--shred-scope", "subject:MRN-7",
                 *CONTEXT_ARGS]) == 0
    capsys.readouterr()
    assert main(["crypto", "shred", "--scope", "subject:MRN-7"]) == 0
    assert json.loads(capsys.readouterr().out)["shredded"] is True
    assert main(["crypto", "decrypt", "--in", str(enc), "--out", str(tmp_path / "out"), *CONTEXT_ARGS]) == 4
    assert not (tmp_path / "out").exists()
    assert main(["crypto", "enable-rotation"]) == 0
    assert json.loads(capsys.readouterr().out)["rotation_enabled"] is True
    assert main(["crypto", "rewrap-state"]) == 0  # the shred store's master exists now
    assert [Path(r["path"]).name for r in json.loads(capsys.readouterr().out)["rewrapped"]] == ["master.kms.json"]


def test_bench_prints_one_json_object_with_the_required_fields(kms_env):
    done = _run("bench", "crypto", "--mib", "4", "--file-mib", "4", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for name in ("encrypt_mib_s", "decrypt_mib_s", "raw_aesgcm_mib_s", "ratio_encrypt", "ratio_decrypt",
                 "kms_calls", "peak_rss_mib", "cp_mib_s", "file_encrypt_mib_s", "ratio_file_encrypt_vs_cp"):
        assert result[name] > 0, name
    assert result["kms_calls"] == 3  # DescribeKey + Encrypt, then Decrypt
    # One key-state check for the whole run, then one Encrypt and one Decrypt per shard.
    assert result["kms_calls_shards"] == 1 + 2 * result["shards"]
