"""The compliance report: one JSON document and a self-contained HTML page with plots.

Threat model: the report is read by people outside the plaintext boundary
(auditors, the web UI) and kept as evidence. It is built only from check results
(counts and locations), the privacy ledger (epsilon per dataset) and lineage
manifests (PII counts per run), so it cannot carry a raw value. The HTML has no
external resources (no scripts, fonts or images fetched): plots are inline SVG
generated here, and every string is HTML-escaped, so a hostile dataset or run
name cannot inject markup into the page an auditor opens.
"""
from __future__ import annotations

import html
import json
import os
from datetime import datetime, UTC
from pathlib import Path

from securepipe import config
from securepipe.errors import InputError
from securepipe.storage import atomic_write

SCHEMA = "securepipe.compliance-report/v1"
REPORTS_DIR_NAME = "reports"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
HISTORY_LIMIT = 30


def default_reports_dir(env=None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("SECUREPIPE_REPORTS_DIR") or config.state_dir(env) / REPORTS_DIR_NAME)


def load_report_history(reports_dir=None) -> list[dict]:
    reports_dir = Path(reports_dir) if reports_dir else default_reports_dir()
    history = []
    for path in sorted(reports_dir.glob("compliance-*.json")) if reports_dir.is_dir() else []:
        try:
            report = json.loads(path.read_text())
            history.append({"generated_at": report["generated_at"], "run_id": report.get("run_id"),
                            "checks": {c["check"]: c["ok"] for c in report["checks"]}})
        except (ValueError, KeyError, TypeError):
            continue  # an unreadable old report is not history we can plot
    return history[-HISTORY_LIMIT:]


def build_report(results: list[dict], *, run_id: str | None = None, manifests_dir=None, ledger_path=None,
                 reports_dir=None) -> dict:
    """Assemble the report from check results plus ledger, manifests and earlier reports."""
    from securepipe.audit.ledger_view import default_ledger_path, read_ledger
    from securepipe.audit.manifest import load_manifests
    from securepipe.audit.records import RunManifest

    generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    ledger_path = Path(ledger_path) if ledger_path else default_ledger_path()
    try:
        budgets = read_ledger(ledger_path)
    except InputError:
        budgets = []
    runs = []
    for path, manifest in load_manifests(manifests_dir):
        if not isinstance(manifest, dict):
            continue
        runs.append({"manifest": path.name, **RunManifest.from_dict(manifest).summary()})
    history = load_report_history(reports_dir)
    history.append({"generated_at": generated_at, "run_id": run_id, "checks": {r["check"]: r["ok"] for r in results}})
    return {"schema": SCHEMA, "generated_at": generated_at, "run_id": run_id,
            "ok": all(r["ok"] for r in results), "passed": sum(r["ok"] for r in results),
            "failed": sum(not r["ok"] for r in results), "checks": results,
            "budgets": budgets, "runs": runs, "history": history[-HISTORY_LIMIT:]}


def write_report(report: dict, *, reports_dir=None, html_out=None, json_out=None) -> dict:
    """Write the dated JSON (kept as history), latest.json and latest.html, plus copies
    at `html_out` / `json_out` when asked. Every file is written atomically."""
    reports_dir = Path(reports_dir) if reports_dir else default_reports_dir()
    stamp = report["generated_at"].replace(":", "").replace("+0000", "Z")
    data = json.dumps(report, indent=2, sort_keys=True).encode()
    page = render_html(report).encode()
    targets = {"json": reports_dir / f"compliance-{stamp}.json", "latest_json": reports_dir / "latest.json",
               "latest_html": reports_dir / "latest.html"}
    if html_out:
        targets["html"] = Path(html_out)
    if json_out:
        targets["json_out"] = Path(json_out)
    for name, path in targets.items():
        with atomic_write(path, "wb") as handle:
            handle.write(page if name.endswith("html") else data)
    return {name: str(path) for name, path in targets.items()}


# --- HTML and SVG ---------------------------------------------------------------------------
def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _scale(value: float, low: float, high: float, out_low: float, out_high: float) -> float:
    if high == low:
        return (out_low + out_high) / 2
    return out_low + (value - low) * (out_high - out_low) / (high - low)


def svg_epsilon_chart(budgets: list[dict], width: int = 640, height: int = 260) -> str:
    """Cumulative epsilon per dataset over time, each with its budget as a dashed line."""
    points = [(t, eps) for b in budgets for t, eps, _ in b["history"]]
    if not points:
        return '<p class="empty">No privacy spend recorded yet.</p>'
    times = sorted({t for t, _ in points})
    top = max([eps for _, eps in points] + [b["epsilon_budget"] or 0 for b in budgets]) * 1.1 or 1.0
    left, right, top_pad, bottom = 48, width - 130, 16, height - 36
    x_of = {t: _scale(i, 0, max(len(times) - 1, 1), left, right) for i, t in enumerate(times)}
    parts = [f'<svg id="epsilon-chart" role="img" aria-label="epsilon spent over time" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#444"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{bottom}" stroke="#444"/>']
    for tick in range(5):
        value = top * tick / 4
        y = _scale(value, 0, top, bottom, top_pad)
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{value:.2f}</text>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="10">{_e(times[0][:10])}</text>')
    parts.append(f'<text x="{right}" y="{height - 8}" font-size="10" text-anchor="end">{_e(times[-1][:10])}</text>')
    for index, budget in enumerate(budgets):
        colour = PALETTE[index % len(PALETTE)]
        coords = [(x_of[t], _scale(eps, 0, top, bottom, top_pad)) for t, eps, _ in budget["history"]]
        if coords:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in coords)
        if budget["epsilon_budget"] is not None:
            y = _scale(budget["epsilon_budget"], 0, top, bottom, top_pad)
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="{colour}" '
                         f'stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{right + 8}" y="{top_pad + 14 * (index + 1)}" font-size="11" fill="{colour}">'
                     f'{_e(budget["dataset"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_pii_chart(runs: list[dict], width: int = 640, height: int = 220) -> str:
    """PII values found (and masked) per run, one bar each."""
    runs = runs[-40:]
    if not runs:
        return '<p class="empty">No runs recorded yet.</p>'
    left, bottom, top_pad = 48, height - 40, 16
    top = max(r["pii_found"] for r in runs) * 1.1 or 1.0
    slot = (width - left - 10) / len(runs)
    parts = [f'<svg id="pii-chart" role="img" aria-label="PII found per run" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#444"/>',
             f'<text x="{left - 6}" y="{top_pad + 4}" font-size="10" text-anchor="end">{top:.0f}</text>']
    for index, run in enumerate(runs):
        h = _scale(run["pii_found"], 0, top, 0, bottom - top_pad)
        x = left + index * slot + slot * 0.15
        parts.append(f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                     f'fill="{PALETTE[0]}"><title>{_e(run["dag_id"])} {_e(run["run_id"])}: '
                     f'{run["pii_found"]}</title></rect>')
    parts.append(f'<text x="{left}" y="{height - 20}" font-size="10">{_e((runs[0]["created_at"] or "")[:10])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_check_history(history: list[dict], width: int = 640) -> str:
    """A grid: one row per check, one column per report; green passed, red failed."""
    names = sorted({name for h in history for name in h["checks"]})
    if not names:
        return '<p class="empty">No checks run yet.</p>'
    label_w, cell, top_pad = 200, min(18, max(6, (width - 200) // max(len(history), 1))), 6
    height = top_pad + cell * len(names) + 24
    parts = [f'<svg id="history-chart" role="img" aria-label="check history" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for row, name in enumerate(names):
        y = top_pad + row * cell
        parts.append(f'<text x="{label_w - 6}" y="{y + cell * 0.75:.1f}" font-size="10" text-anchor="end">'
                     f'{_e(name)}</text>')
        for col, report in enumerate(history):
            verdict = report["checks"].get(name)
            colour = "#ddd" if verdict is None else ("#2ca02c" if verdict else "#d62728")
            parts.append(f'<rect x="{label_w + col * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                         f'fill="{colour}"><title>{_e(report["generated_at"])}</title></rect>')
    parts.append(f'<text x="{label_w}" y="{height - 6}" font-size="10">{_e(history[0]["generated_at"][:10])}'
                 f' … {_e(history[-1]["generated_at"][:10])}</text></svg>')
    return "".join(parts)


def _details_text(details: dict) -> str:
    return json.dumps(details, sort_keys=True, default=str)[:2000]


def render_html(report: dict) -> str:
    rows = "".join(
        f'<tr class="{"pass" if c["ok"] else "fail"}"><td>{_e(c["check"])}</td>'
        f'<td>{"PASS" if c["ok"] else "FAIL"}</td><td><code>{_e(_details_text(c["details"]))}</code></td></tr>'
        for c in report["checks"])
    budget_rows = "".join(
        f'<tr><td>{_e(b["dataset"])}</td><td>{b["epsilon_spent"]:.3f}</td>'
        f'<td>{"none" if b["epsilon_budget"] is None else format(b["epsilon_budget"], ".3f")}</td>'
        f'<td>{b["delta_spent"]:.3g}</td><td>{_e(b["delta_budget"])}</td></tr>' for b in report["budgets"])
    verdict = "PASS" if report["ok"] else "FAIL"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>securepipe compliance report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1rem; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
tr.pass td:nth-child(2) {{ color: #1a7f37; font-weight: bold; }}
tr.fail td:nth-child(2) {{ color: #c00; font-weight: bold; }}
code {{ font-size: 11px; word-break: break-all; }} .verdict-PASS {{ color: #1a7f37; }} .verdict-FAIL {{ color: #c00; }}
.empty {{ color: #777; }}
</style></head><body>
<h1>Compliance report <span id="verdict" class="verdict-{verdict}">{verdict}</span></h1>
<p>Generated {_e(report["generated_at"])}{f" by run {_e(report['run_id'])}" if report.get("run_id") else ""}:
{report["passed"]} checks passed, {report["failed"]} failed.</p>
<h2>Checks</h2>
<table id="checks"><tr><th>check</th><th>verdict</th><th>details (counts and locations only)</th></tr>{rows}</table>
<h2>Privacy budget: &epsilon; spent over time per dataset</h2>
{svg_epsilon_chart(report["budgets"])}
<table id="budgets"><tr><th>dataset</th><th>&epsilon; spent</th><th>&epsilon; budget</th><th>&delta; spent</th>
<th>&delta; budget</th></tr>
{budget_rows}</table>
<h2>PII found per run</h2>
{svg_pii_chart(report["runs"])}
<h2>Check history</h2>
{svg_check_history(report["history"])}
</body></html>
"""
