"""A deterministic refusal fails its task at once, without retries.

Retries are for what a second try can fix: a killed worker, KMS or storage briefly unreachable.
A gate that found residual PII, a budget that would be exceeded or a compliance check that found a
violation gives the same answer to the same inputs, so retrying it only delays the failure (and the
operator's alert) by the retry delay. Such refusals are `securepipe.errors.DeterministicRefusal`;
this turns them into Airflow's fail-without-retry exception, keeping the (PII-free) message.
"""
from __future__ import annotations

import functools

from airflow.sdk.exceptions import AirflowFailException

from securepipe.errors import DeterministicRefusal


def fail_without_retry(function):
    """Decorate a task's function (under `@task`): a DeterministicRefusal fails the task for good."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except DeterministicRefusal as refusal:
            raise AirflowFailException(f"{type(refusal).__name__}: {refusal}") from refusal

    return run
