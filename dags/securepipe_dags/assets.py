"""The Assets the DAGs produce and consume: data-aware scheduling and OpenLineage datasets.

URIs use the file scheme with a logical path: Airflow normalizes known schemes at
parse time, and s3:// would load the AWS provider (boto3) in every DAG parse. The
assets name stages, not datasets: `dataset` is a run parameter that parse time does
not know. Which dataset, and the real storage URI, content hash and encryption
context of each version, travel in the asset event's `extra` (`version_extra`) and
in the run's lineage manifest.
"""
from airflow.sdk import Asset

RAW_DATASET = Asset(name="securepipe_raw_dataset", uri="file:///securepipe/datasets/raw")
RETRAIN_REQUEST = Asset(name="securepipe_retrain_request", uri="file:///securepipe/datasets/retrain")
MASKED_DATASET = Asset(name="securepipe_masked_dataset", uri="file:///securepipe/datasets/masked")
MODEL = Asset(name="securepipe_model", uri="file:///securepipe/models")
AUDIT_REPORT = Asset(name="securepipe_audit_report", uri="file:///securepipe/reports/compliance")


def version_extra(dataset: str, record: dict) -> dict:
    """An asset event's extra for one stored version: dataset, URI, hash and context (no values)."""
    return {"dataset": dataset, "uri": record["uri"], "sha256": record["sha256"], "context": record["context"]}
