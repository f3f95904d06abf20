"""
### erasure_request

Removes one data subject (right to erasure) from everything the pipeline keeps:

1. **erase_subject** finds the subject through its keyed pseudonym (the identifier is compared only
   after HMAC under the KMS-wrapped pseudonymization secret and is never logged), writes new versions
   of the affected masked datasets without the subject, deletes the old ones, removes the subject from
   the landing input and records the erasure in the audit log.
2. **request_retraining** updates the retrain-request Asset, which triggers `secure_training`, so no
   model trained on the subject's data stays current.

The `subject_id` parameter is masked in the UI and the run's conf should be treated as sensitive; the
DAG never writes it to XCom or logs (only the pseudonym token and counts).
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from securepipe_dags.assets import RETRAIN_REQUEST
from securepipe_dags.refusals import NO_RETRY_ON_REFUSAL

default_args = {"owner": "securepipe", "retries": 2, "retry_delay": timedelta(seconds=20),
                "retry_policy": NO_RETRY_ON_REFUSAL}


@dag(
    dag_id="erasure_request",
    schedule=None,
    catchup=False,
    default_args=default_args,
    tags=["securepipe", "privacy", "erasure"],
    doc_md=__doc__,
    params={
        "subject_id": Param("", type="string", minLength=1, maxLength=256, format="password",
                            description="The subject's identifier in the subject column (e.g. the MRN)."),
        "dataset": Param("patients", type="string", pattern=r"^[a-z][a-z0-9_-]{0,63}$"),
    },
)
def erasure_request():
    @task
    def erase_subject() -> dict:
        from securepipe.erasure import erase_subject as erase
        from securepipe_dags.runs import erasure_settings

        context = get_current_context()
        return erase(erasure_settings(context), str(context["params"]["subject_id"]))

    @task(outlets=[RETRAIN_REQUEST])
    def request_retraining(outcome: dict) -> dict:
        context = get_current_context()
        context["outlet_events"][RETRAIN_REQUEST].extra = {
            "reason": "erasure", "dataset": outcome["dataset"], "versions_rewritten": outcome["versions_rewritten"]}
        return {"retrain_requested": True, **outcome}

    request_retraining(erase_subject())


erasure_request()
