"""Gather what the compliance checks need from this Airflow deployment, inside a task."""
from __future__ import annotations

import json
import os
from pathlib import Path

from airflow.configuration import conf
from airflow.sdk import get_current_context

from securepipe_dags import settings


def _metadata_db_url() -> str:
    return settings.variable("securepipe_metadata_db_url", conf.get("database", "sql_alchemy_conn"))


def _query(db_url: str, sql: str) -> list[tuple]:
    """Read the metadata DB directly: tasks may not use Airflow's ORM session in Airflow 3."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as db:
            return [tuple(row) for row in db.execute(sa.text(sql)).fetchall()]
    finally:
        engine.dispose()


def _connections(db_url: str) -> list[dict]:
    """Connections from the metadata DB and the environment: flags and key names only, never values."""
    found = []
    rows = _query(db_url, "SELECT conn_id, password, is_encrypted, extra, is_extra_encrypted FROM connection")
    for conn_id, password, is_encrypted, extra, extra_encrypted in rows:
        keys = []
        if extra and not extra_encrypted:
            try:
                keys = sorted(json.loads(extra))
            except ValueError:
                keys = ["<unparseable>"]
        found.append({"conn_id": conn_id, "source": "db", "has_password": bool(password),
                      "password_encrypted": bool(is_encrypted), "extra_keys": keys,
                      "extra_encrypted": bool(extra_encrypted)})
    for name, value in os.environ.items():
        if not name.startswith("AIRFLOW_CONN_"):
            continue
        try:
            parsed = json.loads(value)
        except ValueError:  # URI form: a password sits between ':' and '@' of the authority
            authority = value.split("://", 1)[-1].split("/", 1)[0]
            parsed = {"password": "x"} if "@" in authority and ":" in authority.split("@", 1)[0] else {}
        extra = parsed.get("extra") or {}
        found.append({"conn_id": name[len("AIRFLOW_CONN_"):].lower(), "source": "env",
                      "has_password": bool(parsed.get("password")), "password_encrypted": False,
                      "extra_keys": sorted(extra) if isinstance(extra, dict) else [], "extra_encrypted": False})
    return found


def _users() -> list[dict]:
    spec = conf.get("core", "simple_auth_manager_users", fallback="")
    return [{"username": item.split(":")[0], "roles": [item.split(":")[1].lower()]}
            for item in spec.split(",") if ":" in item]


def _finished_training_runs(db_url: str) -> list[tuple[str, str]]:
    from securepipe.pipeline import safe_run_id

    rows = _query(db_url, "SELECT dag_id, run_id FROM dag_run WHERE dag_id = 'secure_training' AND state = 'success'")
    # The pipeline records runs under a path-safe run id.
    return [(dag_id, safe_run_id(run_id)) for dag_id, run_id in rows]


def _utc(value):
    """A metadata-DB timestamp as an aware UTC datetime (SQLite hands raw SQL a naive UTC string)."""
    from datetime import datetime, timezone

    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _erasure_requests(db_url: str) -> list[dict]:
    """Every erasure run with its state and times (run ids and timestamps only: the conf holds
    nothing but a ciphertext, and it is not read)."""
    rows = _query(db_url, "SELECT run_id, state, COALESCE(queued_at, run_after), end_date FROM dag_run "
                          "WHERE dag_id = 'erasure_request'")
    return [{"run_id": run_id, "state": str(state), "submitted_at": _utc(submitted), "end_date": _utc(ended)}
            for run_id, state, submitted, ended in rows]


def _retention() -> list:
    from securepipe.audit.checks import RetentionPolicy

    spec = json.loads(settings.variable(
        "securepipe_retention", json.dumps([{"pattern": "*/masked/*", "max_age_days": 365, "action": "flag"},
                                            {"pattern": "*/runs/*", "max_age_days": 2, "action": "delete"}])))
    return [RetentionPolicy(**item) for item in spec]


def audit_settings(params: dict):
    from securepipe.compliance import AuditSettings
    from securepipe.erasure import DEFAULT_DEADLINE_HOURS

    context = get_current_context()
    db_url = _metadata_db_url()
    storage = settings.storage_uri()
    return AuditSettings(
        audit_run_id=context["run_id"],
        state_dir=settings.state_dir(),
        kms_key_id=settings.kms_key_id(),
        aws=settings.aws_settings(),
        storage_root=Path(storage[len("file://"):]) if storage.startswith("file://") else None,
        landing_uri=settings.landing_uri(),
        log_dir=Path(conf.get("logging", "base_log_folder")),
        metadata_db_url=db_url,
        sample_rows=int(params.get("sample_rows", 2000)),
        retention=_retention(),
        budget_limits=json.loads(settings.variable("securepipe_budget_limits", "{}")),
        users=_users(),
        connections=_connections(db_url),
        finished_runs=_finished_training_runs(db_url),
        erasure_requests=_erasure_requests(db_url),
        erasure_deadline_hours=float(settings.variable("securepipe_erasure_deadline_hours",
                                                                  str(DEFAULT_DEADLINE_HOURS))),
        resolve_uri=lambda uri: settings.storage_root(uri) if not uri.startswith("file://") else Path(uri[7:]),
    )
