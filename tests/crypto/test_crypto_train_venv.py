"""The training venv (tink 1.10, protobuf 4) reads and writes the same format as the Airflow venv (tink 1.16).

The training worker decrypts its input in memory with `decrypt_to_bytes`; this runs
that call in the other interpreter against the session's KMS emulator.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from securepipe.crypto import envelope

TRAIN_PYTHON = Path(__file__).resolve().parents[2] / ".venv-train" / "bin" / "python"
CONTEXT = {"dataset": "patients", "run_id": "run-1", "purpose": "training"}

pytestmark = pytest.mark.skipif(not TRAIN_PYTHON.exists(), reason=".venv-train is not set up")

_DECRYPT = """
import hashlib, json, sys, tink
from securepipe.crypto import envelope
data = envelope.decrypt_to_bytes(sys.argv[1], expected_context=json.loads(sys.argv[2]))
print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}))
"""
_ENCRYPT = """
import json, sys
from securepipe.crypto import envelope
print(json.dumps(envelope.encrypt_bytes(bytes(range(256)) * 5000, sys.argv[1], context=json.loads(sys.argv[2]))))
"""


def _train(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TRAIN_PYTHON), "-c", code, *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def test_training_venv_decrypts_in_memory(tmp_path, kms_env):
    data = os.urandom(3 * (1 << 20) + 5)
    enc = tmp_path / "train.enc"
    envelope.encrypt_bytes(data, enc, context=CONTEXT)
    done = _train(_DECRYPT, str(enc), json.dumps(CONTEXT))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    wrong = _train(_DECRYPT, str(enc), json.dumps({**CONTEXT, "run_id": "other"}))
    assert wrong.returncode != 0 and "CryptoError" in wrong.stderr


def test_airflow_venv_decrypts_what_training_venv_wrote(tmp_path, kms_env):
    enc = tmp_path / "model.enc"
    done = _train(_ENCRYPT, str(enc), json.dumps(CONTEXT))
    assert done.returncode == 0, done.stderr[-2000:]
    assert bytes(envelope.decrypt_to_bytes(enc, expected_context=CONTEXT)) == bytes(range(256)) * 5000
