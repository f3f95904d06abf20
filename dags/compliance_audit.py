"""
### compliance_audit

Proves, daily and on demand, that what securepipe promises still holds. One mapped task per check,
each failing loudly:

- every stored artifact is the pipeline's ciphertext (no plaintext in storage);
- the KMS key is enabled and its rotation is on;
- the audit log's hash chain and signatures verify, and every manifest's signature holds;
- privacy budgets are within their limits;
- lineage is complete for every run and model;
- retention: data past its policy's age is flagged;
- no PII in task logs (scanned through keyed hashes, never values in clear);
- access review: connections holding secrets in plain text, users and roles.

The verdicts go to the audit log; `build_report` writes the JSON and HTML report even when a check
failed (then the run fails and the alert callback fires).
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from securepipe_dags.refusals import NO_RETRY_ON_REFUSAL

default_args = {
    "owner": "securepipe",
    "retries": 1,
    "retry_delay": timedelta(seconds=30),
    "retry_policy": NO_RETRY_ON_REFUSAL,  # a check that found a violation fails at once
}


def alert_on_failure(context) -> None:
    """Failure callback: notify through the connection named by the variable securepipe_alert_conn_id."""
    from securepipe_dags.alerts import notify_failure

    notify_failure(context)


@dag(
    dag_id="compliance_audit",
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["securepipe", "compliance", "audit"],
    doc_md=__doc__,
    params={"sample_rows": Param(2000, type="integer", minimum=100, maximum=1_000_000)},
    on_failure_callback=alert_on_failure,
)
def compliance_audit():
    @task
    def list_checks() -> list[str]:
        from securepipe.compliance import CHECK_NAMES

        return list(CHECK_NAMES)

    @task(map_index_template="{{ check }}")
    def run_check(check: str, params=None) -> dict:
        from securepipe.compliance import run_check as run
        from securepipe_dags.compliance import audit_settings

        return run(check, audit_settings(params or {}))

    @task(trigger_rule="all_done")
    def build_report() -> dict:
        """Reads every check's verdict from the audit log (a failed task leaves no XCom)."""
        from securepipe.compliance import finish_audit
        from securepipe_dags.compliance import audit_settings

        return finish_audit(audit_settings({}))

    run_check.expand(check=list_checks()) >> build_report()


compliance_audit()
