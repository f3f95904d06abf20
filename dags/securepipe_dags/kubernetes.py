"""Which pod template a task runs in under KubernetesExecutor (the files are in deploy/kubernetes/).

Why per task: mask_shard and train_model hold plaintext in memory and need different resources
(train a GPU) under the same network confinement. The executor reads `pod_template_file` from a
task's executor_config; CeleryExecutor ignores executor_config, so one DAG serves both
deployments. Standard library only: this runs while the DAG file is parsed.
"""
from __future__ import annotations

from pathlib import Path

POD_TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
POD_TEMPLATES = {"mask_shard": "pod-template-mask.yaml", "train_model": "pod-template-train.yaml"}


def pod_template(task_id: str) -> dict[str, str]:
    """The executor_config of `task_id`: its pod template file."""
    return {"pod_template_file": str(POD_TEMPLATE_DIR / POD_TEMPLATES[task_id])}
