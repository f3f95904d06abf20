"""The human summary `make demo` prints, from publish_lineage's result (counts and hashes, no values)."""
from __future__ import annotations

from pathlib import Path

from securepipe.audit.records import PrivacyRecord


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_summary(published: dict, *, tasks: dict, home: Path, seconds: float) -> str:
    privacy = PrivacyRecord.from_dict(published.get("privacy")) or PrivacyRecord(None, None, None)
    model = published.get("model") or {}
    metrics = model.get("metrics", {})
    kanon = published.get("k_anonymity") or {}
    lines = [
        "",
        "securepipe demo: secure_training finished",
        f"  run id              {published.get('run_id')}",
        f"  rows in / out       {published.get('rows_in')} / {published.get('rows_out')}",
        f"  tasks               {sum(1 for s in tasks.values() if s == 'success')} of {len(tasks)} succeeded",
        "  PII found and masked (column: entity type count):",
    ]
    for column, counts in sorted(published.get("pii_report", {}).items()):
        detail = ", ".join(f"{entity} {n}" for entity, n in sorted(counts.items()))
        lines.append(f"    {column:<18} {detail}")
    plan = published.get("masking_plan") or {}
    if plan:
        lines += [
            f"  subject column      {plan.get('subject_column') or 'none (rows keyed by their identifiers)'}",
            f"  quasi-identifiers   {', '.join(plan.get('quasi_identifiers') or []) or 'none'}; "
            f"sensitive column {plan.get('sensitive_column') or 'none'}",
        ]
        lines += [f"  warning             {warning}" for warning in plan.get("warnings") or []]
    if kanon:
        lines.append(f"  k-anonymity         {', '.join(f'{k}={v}' for k, v in sorted(kanon.items()) if not isinstance(v, (dict, list)))}")
    columns = published.get("training_columns") or {}
    if columns:
        lines.append("  model columns (used, or why left out):")
        lines += [f"    {column:<18} {role}" for column, role in columns.items()]
    lines += [
        f"  KMS key             {published.get('kms_key_id')}",
        f"  privacy spent       epsilon {_fmt(privacy.epsilon)} (target {privacy.target_epsilon}), "
        f"delta {privacy.delta}, accountant {privacy.accountant}",
        f"  budget              epsilon spent {_fmt(privacy.spent_epsilon)} of {_fmt(privacy.budget_epsilon)}"
        f" ({_fmt(privacy.budget_left)} left, {privacy.composition} composition over "
        f"{privacy.runs} runs), delta spent {_fmt(privacy.spent_delta)} of {_fmt(privacy.budget_delta)}",
        f"  model               {', '.join(f'{k} {_fmt(v)}' for k, v in sorted(metrics.items()))}; device {model.get('device')}",
        "  encrypted outputs:",
    ]
    for name, uri in sorted(published.get("outputs", {}).items()):
        lines.append(f"    {name:<18} {uri}")
    lines += [
        f"  lineage manifest    {published.get('path')}  (securepipe lineage show {published.get('run_id')})",
        f"  audit log           {published.get('audit_log')}  (securepipe audit verify --log ...)",
        f"  OpenLineage events  {home / 'openlineage' / 'events.jsonl'}",
        f"  wall time           {seconds:.0f} s",
        "  web UI              make up  (or make demo DEMO_ARGS=--keep-running), log in as admin with the",
        f"                      password in {home / 'passwords.json'}",
        "",
    ]
    return "\n".join(lines)
