"""The evidence records, one type per kind: trigger, privacy spend, PII counts, run manifest.

Why: the pipeline writes these records and four readers use them (the audit checks,
the compliance report, the Compliance page, the demo summary). When writer and
readers each spell the fields themselves they drift apart, and a page can show an
empty cell for a field no run writes while tests pass on fixtures that do. Here each
record is defined once: writers build it (`create`, `from_airflow`, `from_ledger`,
`from_mask_report`) and store `as_dict()`; readers parse with `from_dict`, which takes
the stored evidence as it is and never raises on a missing field (an auditor must
still see the rest of an old or damaged manifest).

Records carry counts, hashes, names and pseudonyms only; trigger parameters named in
`redact` (an erasure subject) are stored as keyed hashes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from securepipe.errors import AuditError

# How a run was started. `erasure`: a run made by an erasure request (and its retraining).
TRIGGER_KINDS = ("schedule", "manual", "asset", "erasure")
# Airflow's DagRun.run_type values; a backfill replays the schedule.
_AIRFLOW_RUN_TYPES = {"scheduled": "schedule", "backfill": "schedule", "manual": "manual",
                      "asset_triggered": "asset", "asset_materialized": "asset"}


def _mapping(value) -> dict:
    return dict(value) if isinstance(value, dict) else {}


@dataclass(frozen=True)
class TriggerRecord:
    kind: str | None
    user: str | None = None
    params: dict = field(default_factory=dict)
    asset_events: dict[str, int] = field(default_factory=dict)  # asset URI -> events that triggered the run
    airflow_run_id: str | None = None

    @classmethod
    def create(cls, kind: str, *, user: str | None = None, params: dict | None = None,
               asset_events: dict[str, int] | None = None, airflow_run_id: str | None = None,
               redact=(), key=None) -> TriggerRecord:
        """A new trigger record; `kind` must be one of TRIGGER_KINDS. Parameters named in `redact` are
        replaced by a keyed hash under `key` (default: the evidence signing key)."""
        if kind not in TRIGGER_KINDS:
            raise AuditError(f"trigger kind must be one of {', '.join(TRIGGER_KINDS)}")
        params = dict(params or {})
        if any(params.get(name) is not None for name in redact):
            from securepipe.audit.signing import get_signing_key

            key = key or get_signing_key(create=True)
            for name in redact:
                if params.get(name) is not None:
                    params[name] = keyed_hash(params[name], key)
        return cls(kind, user, params, dict(asset_events or {}), airflow_run_id)

    @classmethod
    def from_airflow(cls, run_type: str, *, user: str | None, asset_events: dict[str, int] | None = None,
                     airflow_run_id: str | None = None, erasure: bool = False) -> TriggerRecord:
        """From a DagRun's `run_type` and `triggering_user_name`; `erasure` for runs an erasure request made."""
        kind = "erasure" if erasure else _AIRFLOW_RUN_TYPES.get(str(run_type).split(".")[-1].lower())
        if kind is None:
            raise AuditError(f"unknown Airflow run type {run_type!r}")
        return cls.create(kind, user=user, asset_events=asset_events, airflow_run_id=airflow_run_id)

    @classmethod
    def from_dict(cls, data) -> TriggerRecord:
        data = _mapping(data)
        return cls(data.get("kind"), data.get("user"), _mapping(data.get("params")),
                   _mapping(data.get("asset_events")), data.get("airflow_run_id"))

    def as_dict(self) -> dict:
        return asdict(self)


def keyed_hash(value: str, key) -> str:
    """A stable, non-reversible stand-in for a sensitive parameter (same value -> same hash)."""
    return "hmac-sha256:" + key.sign(b"securepipe-param:" + str(value).encode())


@dataclass(frozen=True)
class PrivacyRecord:
    """What one training run spent, and what its dataset's budget has left after it."""

    dataset: str | None
    epsilon: float | None
    delta: float | None
    target_epsilon: float | None = None
    budget_epsilon: float | None = None
    budget_delta: float | None = None
    spent_epsilon: float | None = None
    spent_delta: float | None = None
    budget_left: float | None = None  # epsilon
    runs: int | None = None
    composition: str | None = None
    noise_multiplier: float | None = None
    accountant: str | None = None
    statement: str | None = None

    @classmethod
    def from_ledger(cls, status: dict, *, epsilon: float, delta: float, target_epsilon: float | None = None,
                    noise_multiplier=None, accountant=None, statement=None) -> PrivacyRecord:
        """From `PrivacyLedger.status()` after the run was charged."""
        return cls(status["dataset"], epsilon, delta, target_epsilon, status["budget_epsilon"],
                   status["budget_delta"], status["spent_epsilon"], status["spent_delta"],
                   status["remaining_epsilon"], status["runs"], status["composition"], noise_multiplier,
                   accountant, statement)

    @classmethod
    def from_dict(cls, data) -> PrivacyRecord | None:
        if not isinstance(data, dict):
            return None
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PiiCounts:
    """PII found and masked, per column and entity type: {column: {entity: count}}, counts only."""

    columns: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_mask_report(cls, report: dict) -> PiiCounts:
        """From a (merged) `pii.mask` report: spans per entity for free text, masked cells otherwise;
        columns kept as they are count nothing."""
        return cls({
            column: (dict(entry["spans"]) if "spans" in entry
                     else {entry["entity"]: entry.get("cells_masked", entry.get("cells_with_pii", 0))})
            for column, entry in report.get("columns", {}).items() if entry.get("operator") != "keep"
        })

    @classmethod
    def from_dict(cls, data) -> PiiCounts:
        return cls({str(column): {str(entity): int(count) for entity, count in counts.items()
                                  if isinstance(count, (int, float))}
                    for column, counts in _mapping(data).items() if isinstance(counts, dict)})

    def by_type(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for counts in self.columns.values():
            for entity, count in counts.items():
                totals[entity] = totals.get(entity, 0) + count
        return totals

    def total(self) -> int:
        return sum(self.by_type().values())

    def as_dict(self) -> dict:
        return {column: dict(counts) for column, counts in self.columns.items()}


@dataclass(frozen=True)
class RunManifest:
    """A lineage manifest as the readers see it (`audit.manifest` writes and signs the full dict)."""

    dag_id: str | None
    run_id: str | None
    created_at: str | None
    trigger: TriggerRecord
    artifacts: list[dict]
    pii: PiiCounts
    privacy: PrivacyRecord | None
    model: dict
    signed_by: str | None

    @classmethod
    def from_dict(cls, data: dict) -> RunManifest:
        return cls(data.get("dag_id"), data.get("run_id"), data.get("created_at"),
                   TriggerRecord.from_dict(data.get("trigger")),
                   [a for a in data.get("artifacts") or [] if isinstance(a, dict)],
                   PiiCounts.from_dict(data.get("pii_report")), PrivacyRecord.from_dict(data.get("privacy")),
                   _mapping(data.get("model")), _mapping(data.get("signature")).get("key_id"))

    def summary(self) -> dict:
        """The row every listing of runs shows (report, Compliance page)."""
        privacy = self.privacy or PrivacyRecord(None, None, None)
        return {"dag_id": self.dag_id, "run_id": self.run_id, "created_at": self.created_at,
                "trigger": self.trigger.kind, "user": self.trigger.user, "artifacts": len(self.artifacts),
                "pii_found": self.pii.total(), "pii_by_type": self.pii.by_type(), "epsilon": privacy.epsilon,
                "budget_left": privacy.budget_left, "model_sha256": self.model.get("sha256"),
                "signed_by": self.signed_by}
