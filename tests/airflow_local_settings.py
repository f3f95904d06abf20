"""Cluster policy of the test deployments (copied into each test AIRFLOW_HOME's config/ directory).

A retry waits a second, not the DAGs' 20 to 30 seconds: the tests prove that a failed task is
retried and what the retries leave behind (the fault tests, the canaries' failure paths), not how
long a production deployment waits between tries. Retry counts and everything else stay as written.
"""
from datetime import timedelta


def task_policy(task) -> None:
    task.retry_delay = timedelta(seconds=1)
