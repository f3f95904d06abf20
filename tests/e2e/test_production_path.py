"""secure_training on PostgreSQL + CeleryExecutor + Redis with a real celery worker and s3:// storage."""
from __future__ import annotations

import json

import pytest

from securepipe.synth import generate_patients, write_patients

from .conftest import is_ciphertext_bytes, stored_objects

pytestmark = pytest.mark.slow


def test_secure_training_on_celery(celery_stack, tmp_path):
    stack, emulator = celery_stack
    landing = stack.config.home / "landing" / "patients.csv"
    write_patients(landing, 600, seed=11)
    stack.wait_for_dag("secure_training")
    # A dataset of its own: the fault tests on this stack leave their data profile as "patients"' reference.
    run_id = stack.trigger("secure_training", {"input_uri": f"file://{landing}", "dataset": "celery_patients",
                                               "epochs": 2, "rows_per_shard": 200, "max_mia_auc": 0.75})
    state = stack.wait_for_run("secure_training", run_id, timeout=900)
    tasks = stack.task_states("secure_training", run_id)
    assert state == "success", tasks
    assert sum(1 for name in tasks if name.startswith("mask_shard[")) == 3

    # The worker ran the tasks: celery, not a local fallback.
    worker_log = (stack.log_dir / "worker-default.log").read_text(errors="replace")
    assert "execute_workload" in worker_log or "ExecuteTask" in worker_log or "celery" in worker_log.lower()

    # Storage is s3:// on the emulator: every object is ciphertext, no PII byte in any of them.
    objects = stored_objects(emulator)
    assert objects, "nothing was stored in s3"
    raw = generate_patients(600, seed=11)
    needles = [v.encode() for col in ("name", "email", "ssn", "phone") for v in raw[col]]
    for key, body in objects.items():
        assert is_ciphertext_bytes(body), key
        assert not any(n in body for n in needles), key

    manifest = stack.request(
        "GET", f"/api/v2/dags/secure_training/dagRuns/{run_id}/taskInstances/publish_lineage/xcomEntries/return_value"
    )["value"]
    manifest = json.loads(manifest) if isinstance(manifest, str) else manifest
    assert manifest["privacy"]["epsilon"] <= 3.0
    assert manifest["outputs"]["model"].startswith("s3://")
