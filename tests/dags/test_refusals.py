"""A deterministic refusal fails its task without retries; anything a retry may fix keeps its retries."""
from __future__ import annotations

from pathlib import Path

import pytest

from securepipe.errors import BudgetExceeded, GateFailed, InputError, KmsUnavailable, SecurePipeError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def policy(airflow_home):
    from securepipe_dags.refusals import NO_RETRY_ON_REFUSAL

    return NO_RETRY_ON_REFUSAL


@pytest.mark.parametrize("error,retried", [
    (GateFailed("residual PII gate: column 'notes' PERSON 3 > 0"), False),
    (BudgetExceeded("dataset patients: epsilon 4.0 would exceed the budget"), False),
    (GateFailed("compliance check storage_encrypted failed: 1 plaintext file"), False),
    (KmsUnavailable("KMS unreachable after 3 attempts; nothing was written unprotected"), True),
    (InputError("patients.csv", "row has 3 fields, header has 12", row=7), True),  # may still be arriving
    (SecurePipeError("training failed (exit 1): worker lost"), True),
    (OSError("connection reset"), True),
])
def test_only_a_refusal_skips_the_retries(policy, error, retried):
    from airflow.sdk.definitions.retry_policy import RetryAction

    decision = policy.evaluate(error, try_number=1, max_tries=3)
    assert decision.action == (RetryAction.DEFAULT if retried else RetryAction.FAIL)
    if not retried:
        assert "deterministic refusal" in decision.reason and str(error) not in decision.reason


def test_every_task_of_every_dag_has_the_policy(airflow_home, policy):
    from airflow.dag_processing.dagbag import DagBag

    dags = DagBag(dag_folder=str(REPO / "dags")).dags
    assert {"secure_training", "compliance_audit", "erasure_request", "key_rotation"} <= set(dags)
    for dag_id, dag in dags.items():
        for task in dag.tasks:
            assert task.retry_policy is policy, f"{dag_id}.{task.task_id}"
