"""Load: 20 concurrent secure_training runs on small data, 100 mapped tasks in all, on the Celery setup."""
from __future__ import annotations

import json
import statistics
import time
from datetime import datetime
from pathlib import Path

import pytest

from securepipe.synth import write_patients

pytestmark = pytest.mark.slow
RUNS = 20
# 5 mapped shards a run: 100 mapped tasks and 260 task instances in all. Each costs a task process
# (seconds of CPU) whatever its size; 10 shards a run took longer than the whole suite may.
ROWS, ROWS_PER_SHARD = 500, 100


def _seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def test_twenty_concurrent_runs_finish(celery_stack):
    stack, _ = celery_stack
    landing = stack.config.home / "landing" / "load.csv"
    write_patients(landing, ROWS, seed=9)
    stack.wait_for_dag("secure_training")
    started = time.monotonic()
    run_ids = [stack.trigger("secure_training", {"input_uri": f"file://{landing}", "dataset": f"load{i:02d}",
                                                 "epochs": 1, "rows_per_shard": ROWS_PER_SHARD, "max_mia_auc": 0.9})
               for i in range(RUNS)]
    states = {run_id: stack.wait_for_run("secure_training", run_id, timeout=3600) for run_id in run_ids}
    wall = time.monotonic() - started
    delays, mapped = [], 0
    for run_id in run_ids:
        for ti in stack.task_instances("secure_training", run_id):
            mapped += ti.get("map_index", -1) >= 0
            if ti.get("queued_when") and ti.get("start_date"):
                delays.append(_seconds(ti["queued_when"], ti["start_date"]))
    delays.sort()
    figures = {"runs": RUNS, "succeeded": sum(s == "success" for s in states.values()), "mapped_tasks": mapped,
               "wall_s": round(wall, 1), "scheduler_delay_p50_s": round(statistics.median(delays), 2),
               "scheduler_delay_p95_s": round(delays[int(0.95 * (len(delays) - 1))], 2)}
    out = Path(__file__).resolve().parents[2] / "build" / "load-test.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print("load figures:", json.dumps(figures))
    assert figures["succeeded"] == RUNS, states
    assert mapped == RUNS * ROWS // ROWS_PER_SHARD
