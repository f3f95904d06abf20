"""Settings read from the environment, one place for every name.

The CLI reads AWS settings from the standard AWS variables (AWS_ENDPOINT_URL_KMS or
AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, credentials) and the KMS key from
`--kms-key-id` or SECUREPIPE_KMS_KEY_ID. DAGs resolve the same values from Airflow
connections and variables and pass them in explicitly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AwsSettings:
    region: str
    kms_endpoint_url: str | None
    s3_endpoint_url: str | None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def boto3_kwargs(self, service: str) -> dict:
        kwargs = {"region_name": self.region}
        endpoint = self.kms_endpoint_url if service == "kms" else self.s3_endpoint_url
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if self.access_key_id and self.secret_access_key:
            kwargs["aws_access_key_id"] = self.access_key_id
            kwargs["aws_secret_access_key"] = self.secret_access_key
        return kwargs


def aws_from_env(env=None) -> AwsSettings:
    env = os.environ if env is None else env
    generic = env.get("AWS_ENDPOINT_URL") or None
    return AwsSettings(
        region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
        kms_endpoint_url=env.get("AWS_ENDPOINT_URL_KMS") or generic,
        s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or generic,
    )


def kms_key_id(cli_value: str | None = None, env=None) -> str | None:
    env = os.environ if env is None else env
    return cli_value or env.get("SECUREPIPE_KMS_KEY_ID") or None


def state_dir(env=None) -> Path:
    """Where ledgers, audit logs and wrapped keys live (never plaintext data)."""
    env = os.environ if env is None else env
    path = Path(env.get("SECUREPIPE_STATE_DIR") or Path.cwd() / ".securepipe")
    path.mkdir(parents=True, exist_ok=True)
    return path
