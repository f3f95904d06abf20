"""
### secure_training

Retrains a model on sensitive records without letting raw PII out of the plaintext boundary:

1. **prepare_run** validates the operator's parameters and fixes the run's settings.
2. **ingest** reads the landing file strictly and stores it as encrypted shards.
3. **mask_shard** (mapped over shards) detects PII in columns and free text and masks it
   (keyed pseudonyms, redaction, generalization), re-encrypting each shard.
4. **finalize_masking** joins the shards, enforces k-anonymity and re-scans for residual PII:
   the run fails closed if any remains.
5. **validate_data** checks the masked batch against the signed profile of the last accepted one
   (schema contract, drift, duplicates, outliers, value spikes, label noise); a finding fails the run
   before any ε is spent and quarantines the batch, encrypted; only a batch that passes is published as
   the masked-dataset Asset. The first batch becomes the reference;
   `accept_new_reference` (with `reference_reason`) makes a flagged batch the reference, recording who and why.
6. **check_budget** refuses the run before training when it would exceed the dataset's privacy budget.
7. **train_model** runs DP-SGD in the training environment on the `gpu` queue and pool; it decrypts
   its input in memory and writes only an encrypted model. Under KubernetesExecutor, mask_shard and
   train_model run in the pod templates of deploy/kubernetes/ (train with a GPU).
8. **privacy_gate** checks ε spent and the membership-inference AUC against the run's limits.
9. **publish_lineage** writes the signed lineage manifest and the audit-log entry.
10. **cleanup** always removes the run's encrypted intermediate shards.

Only counts, hashes and pseudonyms travel through XCom and logs.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import (
    AssetAny,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

from securepipe_dags.assets import MASKED_DATASET, MODEL, RAW_DATASET, RETRAIN_REQUEST, version_extra
from securepipe_dags.kubernetes import pod_template
from securepipe_dags.refusals import NO_RETRY_ON_REFUSAL

default_args = {
    "owner": "securepipe",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=2),
    "retry_policy": NO_RETRY_ON_REFUSAL,  # a gate or budget refusal fails at once
}


@dag(
    dag_id="secure_training",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"),
        assets=AssetAny(RAW_DATASET, RETRAIN_REQUEST),
    ),
    catchup=False,
    max_active_runs=4,
    default_args=default_args,
    tags=["securepipe", "training", "pii"],
    doc_md=__doc__,
    params={
        "input_uri": Param(
            "",
            type="string",
            maxLength=1024,
            pattern=r"^$|^(file|s3)://[A-Za-z0-9._~/+=-]+$",
            description="Raw input (CSV or Parquet). Empty: the configured landing file.",
        ),
        "dataset": Param("patients", type="string", pattern=r"^[a-z][a-z0-9_-]{0,63}$"),
        "label_column": Param("readmitted", type="string", pattern=r"^[^\x00-\x1f]{1,128}$",
                              description="The column to predict (any name; 2 to 20 classes)."),
        "target_epsilon": Param(3.0, type="number", minimum=0.1, maximum=10),
        "delta": Param(1e-5, type="number", exclusiveMinimum=0, maximum=1e-3),
        "epochs": Param(5, type="integer", minimum=1, maximum=100),
        "batch_size": Param(256, type="integer", minimum=8, maximum=8192),
        "masking_policy": Param("default", type="string", pattern=r"^[a-z][a-z0-9_-]{0,63}$",
                                description="Name of a policy in the configured policy directory."),
        "rows_per_shard": Param(5000, type="integer", minimum=100, maximum=1_000_000),
        "max_mia_auc": Param(0.6, type="number", minimum=0.5, maximum=1.0),
        "nonprivate_baseline": Param(False, type="boolean"),
        "accept_new_reference": Param(False, type="boolean",
                                      description="Make this batch the data reference even if the checks flag it."),
        "reference_reason": Param("", type="string", maxLength=500,
                                  description="Why the new reference is accepted (required with accept_new_reference)."),
    },
    render_template_as_native_obj=True,
)
def secure_training():
    @task(inlets=[RAW_DATASET])
    def prepare_run() -> dict:
        from securepipe_dags.runs import prepare

        return prepare(get_current_context())

    @task
    def ingest(run: dict) -> list[dict]:
        from securepipe import pipeline
        from securepipe_dags.runs import settings_for

        return pipeline.ingest(settings_for(run))

    @task(max_active_tis_per_dag=4, executor_config=pod_template("mask_shard"))
    def mask_shard(run: dict, shard: dict) -> dict:
        from securepipe import pipeline
        from securepipe_dags.runs import settings_for

        return pipeline.mask_shard(settings_for(run), shard)

    @task
    def finalize_masking(run: dict, masked_shards: list[dict]) -> dict:
        from securepipe import pipeline
        from securepipe_dags.runs import settings_for

        masked = pipeline.finalize_masking(settings_for(run), list(masked_shards))
        get_current_context()["outlet_events"][MASKED_DATASET].extra = version_extra(run["dataset"], masked)
        return masked

    @task(outlets=[MASKED_DATASET])  # a refused batch never reaches the Asset's consumers
    def validate_data(run: dict, masked: dict) -> dict:
        from securepipe import pipeline
        from securepipe_dags.runs import settings_for

        return pipeline.validate_data(settings_for(run), masked)

    @task
    def check_budget(run: dict, masked: dict) -> dict:
        from securepipe import pipeline
        from securepipe_dags.runs import settings_for

        return pipeline.check_budget(settings_for(run), masked)

    @task(queue="gpu", pool="gpu", retries=1, executor_config=pod_template("train_model"))
    def train_model(run: dict, masked: dict, budget: dict) -> dict:
        from securepipe import pipeline
        from securepipe_dags.runs import settings_for

        return pipeline.train(settings_for(run), masked)

    @task
    def privacy_gate(run: dict, trained: dict) -> dict:
        from securepipe import pipeline
        from securepipe_dags.runs import settings_for

        return pipeline.privacy_gate(settings_for(run), trained)

    @task(outlets=[MODEL])
    def publish_lineage(run: dict, shards: list[dict], masked: dict, trained: dict, verdict: dict) -> dict:
        from securepipe import pipeline
        from securepipe_dags.runs import settings_for

        published = pipeline.publish_lineage(settings_for(run), shards, masked, trained, verdict)
        get_current_context()["outlet_events"][MODEL].extra = version_extra(run["dataset"], trained["model"])
        return published

    @task(retries=1, execution_timeout=timedelta(minutes=5))
    def cleanup(run: dict | None) -> int:
        if not run:  # prepare_run failed: nothing was stored
            return 0
        from securepipe import pipeline
        from securepipe_dags.runs import settings_for

        return pipeline.cleanup(settings_for(run))

    run = prepare_run()
    shards = ingest(run)
    masked_shards = mask_shard.partial(run=run).expand(shard=shards)
    masked = finalize_masking(run, masked_shards)
    budget = check_budget(run, masked)
    validate_data(run, masked) >> budget  # no ε is charged for a batch the guard refuses
    trained = train_model(run, masked, budget)
    verdict = privacy_gate(run, trained)
    published = publish_lineage(run, shards, masked, trained, verdict)
    # A teardown: it always runs, and the run's state is decided by the tasks before it.
    published >> cleanup(run).as_teardown()


secure_training()
