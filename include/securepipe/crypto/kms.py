"""The one door to AWS KMS: key-state checks, retries, call counting.

Why: every data key the pipeline uses is wrapped by a KMS key that never leaves
KMS. This module is the only place that talks to KMS, so the rules below hold
for every caller (envelope encryption, wrapped secrets including the evidence
signing key, rotation, the compliance audit's key check).

Threats it defends against:
- A disabled or pending-deletion key still being used. Real KMS refuses such a
  key, but the local emulator (moto) does not, and a shredded dataset key must
  stop working at once: every operation first checks `DescribeKey` state ==
  Enabled (cached for `state_ttl_s` seconds, so a run of many shards costs one
  check, and a disable takes effect within that time).
- Silent loss of protection when KMS is unreachable: there is no plaintext
  fallback anywhere. Transient failures (connection refused, timeouts,
  throttling, KMS 5xx) are retried with exponential backoff and jitter; after
  the last attempt `KmsUnavailable` is raised and the caller writes nothing.
- Leaking key material through errors: messages carry the operation, the key id
  (not secret) and the KMS error code, never plaintext, ciphertext or contexts.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from securepipe.config import AwsSettings, aws_from_env
from securepipe.errors import CryptoError, KmsUnavailable

# KMS error codes that say "try again later" rather than "no".
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# Context keys with this prefix are set by securepipe itself; callers may not use them.
RESERVED_CONTEXT_PREFIX = "securepipe:"


def validate_context(context: dict[str, str]) -> dict[str, str]:
    """An encryption context: a non-empty str->str mapping without reserved keys."""
    if not isinstance(context, dict) or not context:
        raise CryptoError("an encryption context (at least one key=value pair) is required")
    for name, value in context.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name or not value:
            raise CryptoError("encryption context keys and values must be non-empty strings")
        if name.startswith(RESERVED_CONTEXT_PREFIX):
            raise CryptoError(f"encryption context key {name!r} uses the reserved prefix {RESERVED_CONTEXT_PREFIX!r}")
    return dict(sorted(context.items()))


class KmsClient:
    """boto3 KMS with state checks, bounded retries and a call counter (`calls`, per API call made)."""

    def __init__(
        self,
        aws: AwsSettings | None = None,
        *,
        state_ttl_s: float = 30.0,
        attempts: int = 4,
        backoff_s: float = 0.2,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        session=None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """`session`: a boto3 Session carrying credentials, e.g. from Airflow's
        `AwsBaseHook(aws_conn_id="aws_default").get_session()`; default: boto3's own chain."""
        self.aws = aws or aws_from_env()
        # boto3's own retries are off: this class owns the retry policy so that the
        # number of attempts and the final error are the same for every call.
        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
        )
        self._client = (session or boto3).client("kms", config=config, **self.aws.boto3_kwargs("kms"))
        self.state_ttl_s = state_ttl_s
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._states: dict[str, tuple[float, str, str]] = {}
        self._lock = threading.Lock()
        self.calls = 0

    # -- plumbing --------------------------------------------------------------------------
    def _call(self, operation: str, key_id: str, **kwargs) -> dict:
        method = getattr(self._client, operation)
        last_reason = "unknown"
        for attempt in range(self.attempts):
            with self._lock:
                self.calls += 1
            try:
                return method(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "Unknown")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code not in RETRYABLE_CODES and status < 500:
                    raise CryptoError(f"KMS refused {operation} with key {key_id}: {code}") from None
                last_reason = code
            except BotoCoreError as exc:  # connection refused, DNS, timeouts
                last_reason = type(exc).__name__
            if attempt + 1 < self.attempts:
                delay = self.backoff_s * (2**attempt)
                self._sleep(delay + random.uniform(0, delay / 2))  # noqa: S311 # nosec B311
        raise KmsUnavailable(
            f"KMS {operation} with key {key_id} failed after {self.attempts} attempts ({last_reason}); "
            "nothing was written unprotected"
        )

    # -- key state -------------------------------------------------------------------------
    def key_state(self, key_id: str) -> tuple[str, str]:
        """(key ARN, KeyState), cached for `state_ttl_s` seconds."""
        now = time.monotonic()
        cached = self._states.get(key_id)
        if cached and now - cached[0] < self.state_ttl_s:
            return cached[1], cached[2]
        meta = self._call("describe_key", key_id, KeyId=key_id)["KeyMetadata"]
        arn, state = meta["Arn"], meta["KeyState"]
        if meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
            raise CryptoError(f"KMS key {key_id} is not a symmetric ENCRYPT_DECRYPT key")
        self._states[key_id] = self._states[arn] = (now, arn, state)
        return arn, state

    def require_enabled(self, key_id: str) -> str:
        """The key's ARN; `CryptoError` unless its state is Enabled (enforced here, not trusted to KMS)."""
        arn, state = self.key_state(key_id)
        if state != "Enabled":
            raise CryptoError(f"KMS key {arn} is {state}, not Enabled: refusing to use it")
        return arn

    def forget_key_states(self) -> None:
        self._states.clear()

    # -- wrapping --------------------------------------------------------------------------
    def wrap(self, key_id: str, plaintext: bytes, context: dict[str, str]) -> tuple[bytes, str]:
        """KMS Encrypt under `key_id` with `context`: (ciphertext blob, key ARN)."""
        self.require_enabled(key_id)
        response = self._call("encrypt", key_id, KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)
        return response["CiphertextBlob"], response["KeyId"]

    def unwrap(self, key_id: str, blob: bytes, context: dict[str, str]) -> bytes:
        """KMS Decrypt; KMS itself checks that `blob` was wrapped by `key_id` under exactly `context`."""
        self.require_enabled(key_id)
        return self._call("decrypt", key_id, KeyId=key_id, CiphertextBlob=blob, EncryptionContext=context)["Plaintext"]

    def rewrap(self, blob: bytes, source_key_id: str, context: dict[str, str], to_key_id: str) -> tuple[bytes, str]:
        """KMS ReEncrypt: the data key never leaves KMS in plaintext. (new blob, new key ARN)."""
        self.require_enabled(source_key_id)
        self.require_enabled(to_key_id)
        response = self._call(
            "re_encrypt",
            source_key_id,
            CiphertextBlob=blob,
            SourceKeyId=source_key_id,
            SourceEncryptionContext=context,
            DestinationKeyId=to_key_id,
            DestinationEncryptionContext=context,
        )
        return response["CiphertextBlob"], response["KeyId"]

    def enable_rotation(self, key_id: str) -> bool:
        """Turn on KMS automatic rotation of the key material (the ARN stays; old versions still decrypt)."""
        arn = self.require_enabled(key_id)
        self._call("enable_key_rotation", arn, KeyId=arn)
        return self.rotation_enabled(arn)

    def rotation_enabled(self, key_id: str) -> bool:
        """Whether KMS rotates the key's material automatically."""
        return bool(self._call("get_key_rotation_status", key_id, KeyId=key_id)["KeyRotationEnabled"])


_DEFAULT_CLIENTS: dict[AwsSettings, KmsClient] = {}


def default_kms(aws: AwsSettings | None = None) -> KmsClient:
    """One shared client per AWS settings (from the environment when None), so state checks are cached."""
    settings = aws or aws_from_env()
    client = _DEFAULT_CLIENTS.get(settings)
    if client is None:
        client = _DEFAULT_CLIENTS[settings] = KmsClient(settings)
    return client
