"""Errors that are safe to show: they name where a problem is, never the value.

Threat model: a reader of logs, XCom or the metadata DB must never see raw PII.
Every error this package raises on purpose is a `SecurePipeError`; its message is
built from file names, row numbers, column names and reasons only. The CLI prints
nothing else (any other exception is reported by type only).
"""
from __future__ import annotations


class SecurePipeError(Exception):
    """Base class: the message is safe to log."""

    exit_code = 2


class InputError(SecurePipeError):
    """Bad input. Names the file, row (1-based, header excluded) and column; never the value."""

    def __init__(self, file: str, reason: str, *, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column, self.reason = str(file), row, column, reason
        where = [f"file {self.file}"]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {reason}")


class PolicyError(SecurePipeError):
    """A masking/privacy policy is invalid."""


class DeterministicRefusal(SecurePipeError):
    """A refusal the same inputs would give again (a gate, a budget, a compliance check that found a
    violation): retrying cannot change the answer, so a task fails at once instead of retrying."""

    exit_code = 3


class GateFailed(DeterministicRefusal):
    """A fail-closed gate refused to publish (residual PII, budget, ...)."""


class CryptoError(SecurePipeError):
    """Decryption/verification failed or the key is unusable. Never carries key material."""

    exit_code = 4


class KmsUnavailable(CryptoError):
    """KMS could not be reached after retries; nothing was written in plaintext."""


class BudgetExceeded(GateFailed):
    """A training run would exceed the dataset's privacy budget."""


class AuditError(SecurePipeError):
    """The audit chain or a signature does not verify."""

    exit_code = 5


class DataValidationFailed(DeterministicRefusal):
    """A new batch failed the data checks (schema, drift, duplicates, outliers, label noise) before any ε
    was spent. The message names checks and columns, never a value."""
