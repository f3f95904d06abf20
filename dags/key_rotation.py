"""
### key_rotation

Re-wraps every stored artifact's data key under the current KMS key, monthly and on demand:

1. **plan_rotation** resolves the target key (the `to_kms_key_id` param, else the configured key) and
   refuses one that is not Enabled.
2. **list_artifacts** lists every securepipe envelope in the storage root and the state dir.
3. **rewrap_artifact** (mapped over artifacts) re-wraps one data key with KMS ReEncrypt; the body is
   never decrypted. One audit entry per artifact; an artifact already under the target is skipped, so
   a retried or re-triggered rotation resumes where it stopped.
4. **rewrap_state** re-wraps the pseudonym secret, the shred store's master key and the evidence signing key.
5. **retire_keys** records the target as current and every key artifacts were wrapped by before as
   retired (`compliance_audit`'s `keys_current` check fails while any artifact is still under one), and
   makes the target the configured key (`securepipe_kms_key_id`).

Only paths, key ARNs and hashes travel through XCom and the audit log.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from securepipe_dags.refusals import NO_RETRY_ON_REFUSAL

default_args = {"owner": "securepipe", "retries": 2, "retry_delay": timedelta(seconds=20),
                "retry_policy": NO_RETRY_ON_REFUSAL}


@dag(
    dag_id="key_rotation",
    schedule="0 4 1 * *",
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["securepipe", "crypto", "kms"],
    doc_md=__doc__,
    params={"to_kms_key_id": Param("", type="string", maxLength=2048, pattern=r"^$|^[A-Za-z0-9:/_+=,.@-]+$",
                                   description="The new KMS key (id, ARN or alias). Empty: the configured key.")},
)
def key_rotation():
    @task
    def plan_rotation() -> str:
        from securepipe.crypto.kms import default_kms
        from securepipe_dags import settings

        target = get_current_context()["params"]["to_kms_key_id"] or settings.kms_key_id()
        return default_kms(settings.aws_settings()).require_enabled(target)

    @task
    def list_artifacts() -> list[str]:
        from securepipe.crypto.rotation import envelope_files
        from securepipe_dags import settings

        roots = {"storage": settings.storage_root(), "state": settings.state_dir()}
        return [f"{where}:{name}" for where, root in roots.items() for name, _ in envelope_files(root)]

    @task(map_index_template="{{ artifact }}", max_active_tis_per_dag=4)
    def rewrap_artifact(target: str, artifact: str) -> dict:
        from securepipe.audit.log import state_audit_log
        from securepipe.crypto.kms import default_kms
        from securepipe.crypto.rotation import rewrap_artifact as rewrap
        from securepipe_dags import settings

        where, _, name = artifact.partition(":")
        path = (settings.storage_root() if where == "storage" else settings.state_dir()) / name
        outcome = rewrap(path, to_key_id=target, kms=default_kms(settings.aws_settings()))
        run_id = get_current_context()["run_id"]
        state_audit_log(settings.state_dir(), kms_key_id=target, aws=settings.aws_settings()).append(
            "crypto.artifact_rewrapped",
            {"run_id": run_id, "artifact": artifact, "kms_key_id_before": outcome["kms_key_id_before"],
             "kms_key_id": outcome["kms_key_id"], "rewrapped": outcome["rewrapped"]},
            idempotency_key=f"key_rotation:{run_id}:{artifact}")
        return {"artifact": artifact, "before": outcome["kms_key_id_before"], "rewrapped": outcome["rewrapped"]}

    @task
    def rewrap_state(target: str) -> int:
        from securepipe.crypto.kms import default_kms
        from securepipe.crypto.rotation import rewrap_state as rewrap
        from securepipe_dags import settings

        return len(rewrap(settings.state_dir(), to_key_id=target, kms=default_kms(settings.aws_settings())))

    @task
    def retire_keys(target: str, outcomes: list[dict], secrets_rewrapped: int) -> dict:
        from airflow.sdk import Variable

        from securepipe.audit.log import state_audit_log
        from securepipe.crypto.rotation import retire_keys as retire
        from securepipe_dags import settings

        previous = sorted({o["before"] for o in outcomes} - {target})
        registry = retire(settings.state_dir(), current=target, previous=previous)
        if settings.kms_key_id() != target:
            Variable.set("securepipe_kms_key_id", target)  # new runs wrap under the new key
        state_audit_log(settings.state_dir(), kms_key_id=target, aws=settings.aws_settings()).append(
            "crypto.keys_retired",
            {"run_id": get_current_context()["run_id"], "current": target, "retired": registry["retired"],
             "artifacts": len(outcomes), "rewrapped": sum(o["rewrapped"] for o in outcomes),
             "state_secrets": secrets_rewrapped},
            idempotency_key=f"key_rotation:{get_current_context()['run_id']}:retired")
        return registry

    target = plan_rotation()
    outcomes = rewrap_artifact.partial(target=target).expand(artifact=list_artifacts())
    retire_keys(target, outcomes, rewrap_state(target))


key_rotation()
