"""The exact CLI forms: `securepipe audit append|verify|report`, run as a real process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SECUREPIPE = [sys.executable, "-m", "securepipe.cli"]


@pytest.fixture
def env(tmp_path, kms_env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SECUREPIPE_")}
    environment["SECUREPIPE_STATE_DIR"] = str(tmp_path / "state")
    environment["SECUREPIPE_KMS_KEY_ID"] = kms_env.key_arn
    return environment


def cli(env, *args):
    return subprocess.run([*SECUREPIPE, *args], capture_output=True, text=True, env=env, timeout=120)


def test_append_creates_then_verify_holds(tmp_path, env):
    log = tmp_path / "evidence" / "audit.jsonl"
    first = cli(env, "audit", "append", "--log", str(log), "--event",
                '{"type": "operator.key_rotation", "payload": {"key": "alias/securepipe-demo"}}')
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["seq"] == 0
    flat = cli(env, "audit", "append", "--log", str(log), "--event", '{"note": "manual review done"}')
    assert json.loads(flat.stdout) == {"seq": 1, "hash": json.loads(flat.stdout)["hash"], "event": "operator.event"}
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[0]["event"] == "operator.key_rotation" and entries[1]["payload"]["note"] == "manual review done"
    ok = cli(env, "audit", "verify", "--log", str(log))
    assert ok.returncode == 0 and "2 entries" in ok.stdout


def test_append_without_a_kms_key_signs_nothing(tmp_path, env):
    del env["SECUREPIPE_KMS_KEY_ID"]
    reply = cli(env, "audit", "append", "--log", str(tmp_path / "a.jsonl"), "--event", '{"note": "x"}')
    assert reply.returncode == 5 and "never stored unwrapped" in reply.stderr
    assert not (tmp_path / "a.jsonl").exists()


@pytest.mark.parametrize("event,message", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"type": "Not A Type"}', "dotted lower-case"),
])
def test_append_rejects_bad_events(tmp_path, env, event, message):
    reply = cli(env, "audit", "append", "--log", str(tmp_path / "a.jsonl"), "--event", event)
    assert reply.returncode == 5 and message in reply.stderr
    assert not (tmp_path / "a.jsonl").exists()


def test_verify_names_the_first_bad_entry(tmp_path, env):
    log = tmp_path / "audit.jsonl"
    for i in range(4):
        assert cli(env, "audit", "append", "--log", str(log), "--event", json.dumps({"i": i})).returncode == 0
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join([lines[0], lines[2], lines[1], lines[3]]))  # reordered
    reply = cli(env, "audit", "verify", "--log", str(log))
    assert reply.returncode == 5
    assert "first bad entry at line 2 (seq 2)" in reply.stderr
    missing = cli(env, "audit", "verify", "--log", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 5 and "not found" in missing.stderr


def test_report_writes_html_and_json(tmp_path, env):
    log = Path(env["SECUREPIPE_STATE_DIR"]) / "audit.jsonl"
    assert cli(env, "audit", "append", "--log", str(log), "--event", '{"type": "pipeline.start"}').returncode == 0
    out = tmp_path / "report.html"
    reply = cli(env, "audit", "report", "--out", str(out))
    assert reply.returncode == 0, reply.stderr
    summary = json.loads(reply.stdout)
    assert summary["ok"] and summary["html"] == str(out)
    assert 'id="verdict"' in out.read_text()
    report = json.loads(out.with_suffix(".json").read_text())
    assert {c["check"] for c in report["checks"]} == {"audit_chain", "lineage_complete", "kms_key"}


def test_verify_finds_the_key_kept_next_to_the_log(tmp_path, env):
    """The pipeline keeps log and key together in its state dir; verify works from anywhere."""
    state = Path(env["SECUREPIPE_STATE_DIR"])
    log = state / "audit.jsonl"
    assert cli(env, "audit", "append", "--log", str(log), "--event", '{"type": "pipeline.start"}').returncode == 0
    elsewhere = {**env, "SECUREPIPE_STATE_DIR": str(tmp_path / "other-state")}
    reply = cli(elsewhere, "audit", "verify", "--log", str(log))
    assert reply.returncode == 0, reply.stderr
    wrong = cli(elsewhere, "audit", "verify", "--log", str(log), "--key-file", str(tmp_path / "nope.json"))
    assert wrong.returncode == 5 and "not found" in wrong.stderr
