"""A deterministic refusal fails its task at once, without retries.

Retries are for what a second try can fix: a killed worker, KMS or storage briefly unreachable, an
input file still being written. A gate that found residual PII, a budget that would be exceeded or a
compliance check that found a violation gives the same answer to the same inputs, so retrying it only
delays the failure (and the operator's alert) by the retry delay. Such refusals are
`securepipe.errors.DeterministicRefusal`; every DAG puts this policy in its `default_args`, and
Airflow's task runner consults it when a task raises.
"""
from __future__ import annotations

from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

from securepipe.errors import DeterministicRefusal

NO_RETRY_ON_REFUSAL = ExceptionRetryPolicy(rules=[RetryRule(
    exception=DeterministicRefusal,
    action=RetryAction.FAIL,
    reason="a deterministic refusal: the same inputs would get the same answer",
)])
