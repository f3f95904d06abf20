"""The human summary `make demo` prints, built from the run's lineage manifest (no values, only counts)."""
from __future__ import annotations

from pathlib import Path


def _fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render_summary(manifest: dict, *, tasks: dict, home: Path, seconds: float) -> str:
    privacy = manifest.get("privacy", {})
    card = manifest.get("model", {}).get("card", manifest.get("model_card", {}))
    pii = manifest.get("pii_report", {}).get("pii", {})
    lines = [
        "",
        "securepipe demo: secure_training finished",
        f"  run id            {manifest.get('run_id')}",
        f"  rows in           {manifest.get('rows_in', '?')}",
        f"  tasks             {sum(1 for s in tasks.values() if s == 'success')} succeeded of {len(tasks)}",
        "  PII found and masked, per column and entity type:",
    ]
    for column, counts in sorted(pii.get("columns", {}).items()):
        detail = ", ".join(f"{etype} {n}" for etype, n in sorted(counts.items()))
        lines.append(f"    {column:<16} {detail}")
    for etype, n in sorted(pii.get("text_entities", {}).items()):
        lines.append(f"    (free text)      {etype} {n}")
    kanon = manifest.get("pii_report", {}).get("k_anonymity", {})
    if kanon:
        lines.append(f"  k-anonymity       k={kanon.get('k')} (suppressed rows: {kanon.get('suppressed_rows', 0)})")
    lines += [
        f"  KMS key           {manifest.get('kms_key_id')}",
        f"  privacy           epsilon {_fmt(privacy.get('epsilon'))}, delta {privacy.get('delta')}, "
        f"budget left {_fmt(privacy.get('budget', {}).get('remaining'))}",
        f"  model             accuracy {_fmt(card.get('accuracy'))}, AUC {_fmt(card.get('auc'))}, "
        f"membership-inference AUC {_fmt(card.get('mia_auc'))}, device {card.get('device')}",
        "  outputs (encrypted):",
    ]
    for artifact in manifest.get("artifacts", []):
        if artifact.get("purpose") in ("masked-dataset", "model"):
            lines.append(f"    {artifact['purpose']:<15} {artifact['uri']}  sha256 {artifact['sha256'][:16]}…")
    lines += [
        f"  lineage manifest  {manifest.get('manifest_path')}",
        f"  audit log         {manifest.get('audit_log')}",
        f"  OpenLineage       {home / 'openlineage' / 'events.jsonl'}",
        f"  wall time         {seconds:.0f} s",
        "  web UI            make up   (or: make demo DEMO_ARGS=--keep-running), then open the printed URL",
        "",
    ]
    return "\n".join(lines)
