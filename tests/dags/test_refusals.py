"""A deterministic refusal fails its task without retries; anything a retry may fix is left alone."""
from __future__ import annotations

import pytest

from securepipe.errors import BudgetExceeded, GateFailed, InputError, KmsUnavailable, SecurePipeError


@pytest.fixture(scope="module")
def refusals(airflow_home):
    from securepipe_dags import refusals

    return refusals


def _raising(error):
    def task_function(run: dict, masked: dict | None = None):
        raise error
    return task_function


@pytest.mark.parametrize("refusal", [
    GateFailed("residual PII gate: column 'notes' PERSON 3 > 0"),
    BudgetExceeded("dataset patients: epsilon 4.0 would exceed the budget"),
    GateFailed("compliance check storage_encrypted failed: 1 plaintext file"),
])
def test_a_refusal_fails_the_task_for_good(refusals, refusal):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as failure:
        refusals.fail_without_retry(_raising(refusal))({"run_id": "r"})
    assert str(refusal) in str(failure.value) and type(refusal).__name__ in str(failure.value)
    assert failure.value.__cause__ is refusal


@pytest.mark.parametrize("error", [
    KmsUnavailable("KMS unreachable after 3 attempts; nothing was written unprotected"),
    InputError("patients.csv", "row has 3 fields, header has 12", row=7),  # the file may still be arriving
    SecurePipeError("training failed (exit 1): worker lost"),
    OSError("connection reset"),
])
def test_what_a_retry_may_fix_is_raised_unchanged(refusals, error):
    with pytest.raises(type(error)) as raised:
        refusals.fail_without_retry(_raising(error))({"run_id": "r"})
    assert raised.value is error


def test_the_task_keeps_its_name_signature_and_result(refusals):
    import inspect

    def check_budget(run: dict, masked: dict) -> dict:
        return {"charged": run["run_id"], **masked}

    wrapped = refusals.fail_without_retry(check_budget)
    assert wrapped.__name__ == "check_budget"  # the task id comes from it
    assert inspect.signature(wrapped) == inspect.signature(check_budget)  # so does context injection
    assert wrapped({"run_id": "r"}, {"rows": 3}) == {"charged": "r", "rows": 3}


@pytest.mark.parametrize("dag_id,task_ids", [
    ("secure_training", {"finalize_masking", "check_budget", "privacy_gate"}),
    ("compliance_audit", {"run_check", "build_report"}),
])
def test_the_tasks_that_refuse_fail_without_retry(airflow_home, dag_id, task_ids):
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / f"{dag_id}.py")).dags[dag_id]
    wrapped = {task.task_id for task in dag.tasks if hasattr(task.python_callable, "__wrapped__")}
    assert wrapped == task_ids
