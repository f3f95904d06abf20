"""
### erasure_request

Removes one data subject (right to erasure) from everything the pipeline keeps:

1. **erase_subject** finds the subject through its keyed pseudonym (the identifier is compared only
   after HMAC under the KMS-wrapped pseudonymization secret and is never logged), writes new versions
   of the affected masked datasets without the subject, deletes the old ones, removes the subject from
   the landing input and records the erasure in the audit log.
2. **request_retraining** updates the retrain-request Asset, which triggers `secure_training`, so no
   model trained on the subject's data stays current.

Submit requests through the Compliance page (`POST /compliance/erasure`): it seals the identifier
with KMS (context `purpose=erasure-request`) and triggers this DAG with the ciphertext only, so the
run's conf, the REST API and the UI never show the identifier. A run whose conf holds anything else
(a plaintext `subject_id`, say) fails at once, without retries. The identifier is opened in the task,
on the worker, and never written to XCom or logs (only the pseudonym token and counts).

Created unpaused (`is_paused_upon_creation=False`, whatever the deployment's default): an erasure
has a legal deadline, and a request queued behind a paused DAG waits unseen.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from securepipe.erasure import DATASET_PATTERN, ERASURE_DAG_ID
from securepipe_dags.assets import RETRAIN_REQUEST
from securepipe_dags.refusals import NO_RETRY_ON_REFUSAL

default_args = {"owner": "securepipe", "retries": 2, "retry_delay": timedelta(seconds=20),
                "retry_policy": NO_RETRY_ON_REFUSAL}


@dag(
    dag_id=ERASURE_DAG_ID,
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    default_args=default_args,
    tags=["securepipe", "privacy", "erasure"],
    doc_md=__doc__,
    params={
        "subject_ciphertext": Param("", type="string", minLength=1, maxLength=8192, format="password",
                                    pattern=r"^[A-Za-z0-9+/]+={0,2}$",
                                    description="The KMS-sealed identifier that POST /compliance/erasure "
                                                "puts here; never the identifier itself."),
        "dataset": Param("patients", type="string", pattern=DATASET_PATTERN),
    },
)
def erasure_request():
    @task
    def erase_subject() -> dict:
        from securepipe.erasure import erase_subject as erase, subject_from_conf
        from securepipe.errors import InputError
        from securepipe_dags.runs import erasure_settings

        context = get_current_context()
        settings = erasure_settings(context)
        try:
            subject_id = subject_from_conf(context["dag_run"].conf or {}, kms_key_id=settings.kms_key_id,
                                           aws=settings.aws)
        except InputError as exc:  # the same conf is refused again on every retry
            raise AirflowFailException(str(exc)) from None
        return erase(settings, subject_id)

    @task(outlets=[RETRAIN_REQUEST])
    def request_retraining(outcome: dict) -> dict:
        context = get_current_context()
        context["outlet_events"][RETRAIN_REQUEST].extra = {
            "reason": "erasure", "dataset": outcome["dataset"], "versions_rewritten": outcome["versions_rewritten"]}
        return {"retrain_requested": True, **outcome}

    request_retraining(erase_subject())


erasure_request()
