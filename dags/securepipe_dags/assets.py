"""The Assets the DAGs produce and consume: data-aware scheduling and OpenLineage datasets.

URIs use the file scheme with a logical path: Airflow normalizes known schemes at
parse time, and s3:// would load the AWS provider (boto3) in every DAG parse. The
real storage URI, content hash and encryption context of each version travel in
the asset event's `extra` and in the run's lineage manifest.
"""
from airflow.sdk import Asset

RAW_DATASET = Asset(name="securepipe_raw_patients", uri="file:///securepipe/datasets/patients/raw")
RETRAIN_REQUEST = Asset(name="securepipe_retrain_request", uri="file:///securepipe/datasets/patients/retrain")
MASKED_DATASET = Asset(name="securepipe_masked_patients", uri="file:///securepipe/datasets/patients/masked")
MODEL = Asset(name="securepipe_model", uri="file:///securepipe/models/readmission")
AUDIT_REPORT = Asset(name="securepipe_audit_report", uri="file:///securepipe/reports/compliance")
