"""Resolve run settings from Airflow connections and variables, inside a task.

Connection `aws_default` (or the variable `securepipe_aws_conn_id`) gives the KMS/S3
endpoint, region and credentials; variables give the KMS key, storage root, state
directory and the training environment's CLI. Defaults are the embedded setup.
"""
from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import BaseHook, ObjectStoragePath, Variable

from securepipe.config import AwsSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


def _home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / ".airflow"))


def variable(name: str, default: str) -> str:
    return Variable.get(name, default=default)


def aws_conn_id() -> str:
    return variable("securepipe_aws_conn_id", "aws_default")


def aws_settings() -> AwsSettings:
    """KMS/S3 settings from the AWS connection; the standard AWS env variables fill the gaps."""
    from securepipe.config import aws_from_env

    fallback = aws_from_env()
    try:
        conn = BaseHook.get_connection(aws_conn_id())
    except Exception:  # noqa: BLE001 - no connection defined: the environment decides
        return fallback
    extra = conn.extra_dejson
    endpoint = extra.get("endpoint_url") or fallback.kms_endpoint_url
    service_endpoints = extra.get("service_config", {})
    return AwsSettings(
        region=extra.get("region_name") or fallback.region,
        kms_endpoint_url=service_endpoints.get("kms", {}).get("endpoint_url") or endpoint,
        s3_endpoint_url=service_endpoints.get("s3", {}).get("endpoint_url") or endpoint or fallback.s3_endpoint_url,
        access_key_id=conn.login or None,
        secret_access_key=conn.password or None,
    )


def kms_key_id() -> str:
    return variable("securepipe_kms_key_id", os.environ.get("SECUREPIPE_KMS_KEY_ID", "alias/securepipe-demo"))


def storage_uri() -> str:
    return variable("securepipe_storage_uri", f"file://{_home() / 'storage'}")


def storage_root(uri: str | None = None) -> ObjectStoragePath:
    """One construction for file:// and s3://, so both share every line of the tasks."""
    uri = uri or storage_uri()
    if uri.startswith("file://"):
        return ObjectStoragePath(uri)
    return ObjectStoragePath(uri, conn_id=aws_conn_id())


def state_dir() -> Path:
    path = Path(variable("securepipe_state_dir", str(_home() / "securepipe-state")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def landing_uri() -> str:
    return variable("securepipe_landing_uri", f"file://{_home() / 'landing' / 'patients.csv'}")


def train_cli() -> str:
    return variable("securepipe_train_cli", str(REPO_ROOT / ".venv-train" / "bin" / "securepipe"))


def policy_dir() -> Path:
    """Where the named masking policies live (files changed by deployment, not through the UI)."""
    return Path(variable("securepipe_policy_dir", str(REPO_ROOT / "policies")))
