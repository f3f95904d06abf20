"""Fault injection on the production path (PostgreSQL + Celery + Redis, real worker processes).

Each fault: the run either succeeds on retry or fails with a clear error; no partial, corrupt or
plaintext object is visible in storage; the input is intact; the audit log and the privacy ledger
hold no duplicates (tasks are idempotent).
"""
from __future__ import annotations

import collections
import json
import time

import pytest

from securepipe.storage import safe_run_id
from securepipe.synth import write_patients

from .conftest import is_ciphertext_bytes, start_worker, stored_objects

pytestmark = pytest.mark.slow
DAG = "secure_training"


def _wait_for_state(stack, run_id, task_id, states, timeout=300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = stack.task_states(DAG, run_id)
        if any(name.split("[")[0] == task_id and state in states for name, state in current.items()):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{task_id} never reached {states}")


def _assert_storage_clean(emulator) -> None:
    for key, body in stored_objects(emulator).items():
        assert ".partial" not in key, key
        assert is_ciphertext_bytes(body), key


def _no_duplicates(stack, run_id: str) -> None:
    """One manifest entry and one ledger charge for the run, however often its tasks ran."""
    state = stack.config.home / "securepipe-state"
    safe = safe_run_id(run_id)
    events = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    keys = [e["idempotency_key"] for e in events if e.get("idempotency_key")]
    assert not [k for k, n in collections.Counter(keys).items() if n > 1], "duplicate audit entries"
    written = [e for e in events if e["event"] == "lineage.manifest_written" and e["payload"]["run_id"] == safe]
    assert len(written) == 1, f"{len(written)} manifests recorded for one run"
    ledger = json.loads((state / "privacy-budget" / "patients.json").read_text())
    assert safe in ledger["runs"]


def _trigger(stack, landing, rows_per_shard=250) -> str:
    return stack.trigger(DAG, {"input_uri": f"file://{landing}", "epochs": 2, "rows_per_shard": rows_per_shard,
                               "max_mia_auc": 0.8})


@pytest.fixture(scope="module")
def landing(celery_stack):
    stack, _ = celery_stack
    path = stack.config.home / "landing" / "patients.csv"
    # Four shards, as before, of half the rows: each fault hits the same tasks, with half the work.
    write_patients(path, 1000, seed=5)
    stack.wait_for_dag(DAG)
    return path


@pytest.mark.parametrize("task_id", ["ingest", "train_model"])
def test_worker_sigkilled_mid_task_then_run_recovers(celery_stack, landing, task_id):
    stack, emulator = celery_stack
    before = landing.read_bytes()
    run_id = _trigger(stack, landing)
    _wait_for_state(stack, run_id, task_id, {"running"})
    time.sleep(1.0)  # inside the task's work (encryption / training)
    stack.kill("worker-default")
    start_worker(stack)
    state = stack.wait_for_run(DAG, run_id, timeout=900)
    tries = {ti["task_id"]: ti["try_number"] for ti in stack.task_instances(DAG, run_id)}
    assert state == "success", stack.task_states(DAG, run_id)
    assert tries[task_id] >= 2, f"{task_id} was not retried after the kill: {tries}"
    assert landing.read_bytes() == before
    _assert_storage_clean(emulator)
    _no_duplicates(stack, run_id)


def test_scheduler_restarted_mid_run(celery_stack, landing):
    stack, emulator = celery_stack
    run_id = _trigger(stack, landing)
    _wait_for_state(stack, run_id, "mask_shard", {"running", "success"})
    stack.kill("scheduler")
    stack.start("scheduler", "scheduler")
    assert stack.wait_for_run(DAG, run_id, timeout=900) == "success"
    _assert_storage_clean(emulator)
    _no_duplicates(stack, run_id)


@pytest.mark.parametrize("mode", ["refuse", "hang"])
def test_kms_and_storage_unreachable_fail_closed(celery_stack, landing, mode):
    stack, emulator = celery_stack
    listing = set(stored_objects(emulator))
    stack.fault_proxy.mode = mode
    try:
        run_id = _trigger(stack, landing)
        # The outage lasts until ingest has used up its retries; then the endpoint comes back.
        _wait_for_state(stack, run_id, "ingest", {"failed"}, timeout=900)
    finally:
        stack.fault_proxy.mode = "pass"
    state = stack.wait_for_run(DAG, run_id, timeout=900)
    assert state == "failed"
    states = stack.task_states(DAG, run_id)
    assert states.get("train_model") in ("upstream_failed", None), states
    after = set(stored_objects(emulator))
    assert not [k for k in after - listing if "/masked/" in k or "/models/" in k], "a failed run published output"
    logs = "\n".join(p.read_text(errors="replace") for p in (stack.config.home / "logs").rglob("*.log")
                     if "task_id=ingest" in str(p) and run_id.replace(":", "") in str(p).replace(":", ""))
    assert "KMS" in logs and "nothing was written unprotected" in logs, "the failure does not say what failed"
    _assert_storage_clean(emulator)
