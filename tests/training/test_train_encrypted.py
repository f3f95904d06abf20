"""The DAG's training path end to end: encrypted input in, encrypted model out, no plaintext on disk.

Runs `.venv-train/bin/securepipe train` (the CLI the DAG calls) against the session's KMS
emulator; the Airflow environment encrypts the input and decrypts the model, so the two
environments' envelope formats are exercised in both directions.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from securepipe.crypto import envelope
from securepipe.synth import generate_patients

TRAIN_CLI = Path(__file__).resolve().parents[2] / ".venv-train" / "bin" / "securepipe"
INPUT_CONTEXT = {"dataset": "patients", "run_id": "run-7", "purpose": "training-input"}
MODEL_CONTEXT = {"dataset": "patients", "run_id": "run-7", "purpose": "model"}

pytestmark = pytest.mark.skipif(not TRAIN_CLI.exists(), reason=".venv-train is not set up")


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TRAIN_CLI), "train", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)


def _context_args(option: str, context: dict) -> list[str]:
    return [part for key, value in context.items() for part in (option, f"{key}={value}")]


def test_encrypted_input_to_encrypted_model(tmp_path, kms_env):
    frame = generate_patients(400, seed=11)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    encrypted_input = tmp_path / "patients.csv.enc"
    envelope.encrypt_bytes(buffer.getvalue().encode(), encrypted_input, context=INPUT_CONTEXT)
    out = tmp_path / "model-out"
    done = _train("--data", str(encrypted_input), "--label", "readmitted", "--target-epsilon", "3",
                  "--epochs", "2", "--batch-size", "64", "--out", str(out),
                  *_context_args("--context", INPUT_CONTEXT),
                  "--encrypt-model", *_context_args("--model-context", MODEL_CONTEXT))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["encrypted"] is True and summary["model"].endswith("model.keras.enc")
    # only ciphertext and the card are left: the plaintext model never persisted
    assert sorted(os.listdir(out)) == ["evaluation_internal.json", "model.keras.enc", "model_card.json", "model_card.md"]
    card = json.loads((out / "model_card.json").read_text())
    assert card["data"]["encrypted"] is True and card["model"]["encryption_context"] == MODEL_CONTEXT
    assert card["data"]["file_sha256"] == hashlib.sha256(encrypted_input.read_bytes()).hexdigest()
    plaintext = bytes(envelope.decrypt_to_bytes(out / "model.keras.enc", expected_context=MODEL_CONTEXT))
    assert zipfile.is_zipfile(io.BytesIO(plaintext))  # a .keras archive
    assert hashlib.sha256(plaintext).hexdigest() == card["model"]["plaintext_sha256"]
    # nothing sensitive reached the logs or the summary
    for value in frame["name"].head(50).tolist() + frame["ssn"].head(50).tolist():
        assert value not in done.stderr and value not in done.stdout


def test_wrong_input_context_is_refused_and_writes_nothing(tmp_path, kms_env):
    encrypted_input = tmp_path / "patients.csv.enc"
    envelope.encrypt_bytes(b"age,readmitted\n1,0\n", encrypted_input, context=INPUT_CONTEXT)
    out = tmp_path / "model-out"
    done = _train("--data", str(encrypted_input), "--label", "readmitted", "--target-epsilon", "3",
                  "--out", str(out), *_context_args("--context", {**INPUT_CONTEXT, "run_id": "run-8"}))
    assert done.returncode == 4, done.stderr[-2000:]  # CryptoError
    assert not out.exists()
