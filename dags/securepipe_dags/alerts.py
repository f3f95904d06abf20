"""Alerting for failed compliance audits: an audit entry always, a webhook when configured.

The webhook is an Airflow connection (type http) named by the variable
`securepipe_alert_conn_id`; its host (and schema/port) is the URL that gets a JSON
POST with the DAG, run and failed task ids only (never data).
"""
from __future__ import annotations

import json
import urllib.request

from airflow.sdk import BaseHook

from securepipe_dags import settings


def alert_payload(context) -> dict:
    dag_run = context.get("dag_run")
    ti = context.get("task_instance") or context.get("ti")
    return {
        "event": "securepipe.compliance_failed",
        "dag_id": getattr(dag_run, "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
    }


def notify_failure(context) -> None:
    from securepipe.audit.log import state_audit_log

    payload = alert_payload(context)
    state_audit_log(settings.state_dir(), kms_key_id=settings.kms_key_id(),
                    aws=settings.aws_settings()).append("compliance.alert", payload)
    conn_id = settings.variable("securepipe_alert_conn_id", "")
    if not conn_id:
        return
    conn = BaseHook.get_connection(conn_id)
    scheme = conn.schema or "http"
    url = conn.host if "://" in (conn.host or "") else f"{scheme}://{conn.host}:{conn.port or 80}/"
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - operator-configured endpoint
        pass
