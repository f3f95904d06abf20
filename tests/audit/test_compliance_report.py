"""The report: JSON and self-contained HTML with plots, history kept, hostile names escaped."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from securepipe.audit import checks
from securepipe.audit.report import build_report, render_html, svg_epsilon_chart, write_report


@pytest.fixture
def state(tmp_path, monkeypatch, kms_env):
    monkeypatch.setenv("SECUREPIPE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SECUREPIPE_KMS_KEY_ID", kms_env.key_arn)
    from securepipe.training.ledger import PrivacyLedger

    ledger = PrivacyLedger(tmp_path / "state")
    ledger.set_budget("patients", 8.0, 1e-4)
    ledger.charge("patients", "v1", "r1", 1.0, 1e-5)
    ledger.charge("patients", "v1", "r2", 2.0, 1e-5)
    # A hostile dataset name can only come from a hand-made file; the report must still escape it.
    (ledger.root / "hostile.json").write_text(json.dumps({
        "format": 1, "dataset": "<script>alert(1)</script>", "budget": {"epsilon": 2.0, "delta": 1e-6},
        "runs": {"r3": {"version": "v1", "epsilon": 0.5, "delta": 1e-7, "charged_at": "2026-11-21T00:00:00+00:00"}}}))
    return tmp_path


def test_report_contents_and_history(state):
    results = [checks.result("audit_chain", True, entries=3), checks.result("privacy_budgets", False, over=["x"])]
    first = build_report(results, run_id="audit-1")
    assert not first["ok"] and first["passed"] == 1 and first["failed"] == 1
    budgets = {b["dataset"]: b for b in first["budgets"]}
    assert budgets["patients"]["epsilon_spent"] == 3.0
    assert [h[1] for h in budgets["patients"]["history"]] == [1.0, 3.0]  # cumulative over time
    paths = write_report(first, html_out=state / "out" / "report.html")
    second = build_report([checks.result("audit_chain", True), checks.result("privacy_budgets", True)],
                          run_id="audit-2")
    assert [h["run_id"] for h in second["history"]] == ["audit-1", "audit-2"]
    assert second["history"][0]["checks"] == {"audit_chain": True, "privacy_budgets": False}
    page = (state / "out" / "report.html").read_text()
    assert page == open(paths["latest_html"]).read()
    assert json.loads(open(paths["latest_json"]).read())["run_id"] == "audit-1"


def test_html_is_self_contained_escaped_and_has_plots(state):
    from securepipe.audit.manifest import build_manifest, write_manifest
    from securepipe.audit.records import PiiCounts, TriggerRecord

    for run, found in (("r1", 5), ("r2", 7)):
        write_manifest(build_manifest(dag_id="ingest", run_id=run, trigger=TriggerRecord.create("schedule"), artifacts=[],
                                      pii_report=PiiCounts.from_dict({"notes": {"PERSON": found}})))
    page = render_html(build_report([checks.result("access_review", False, users=["<b>x</b>"])]))
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>x</b>" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)  # nothing fetched from anywhere
    for chart in ("epsilon-chart", "pii-chart", "history-chart"):
        svg = re.search(rf'<svg id="{chart}".*?</svg>', page, re.S)
        assert svg, chart
        ET.fromstring(svg.group(0))  # well-formed SVG
    assert page.count("<rect") >= 2 and ": 7</title>" in page  # one bar per run


def test_epsilon_chart_draws_budget_lines_and_points():
    svg = svg_epsilon_chart([{"dataset": "a", "epsilon_budget": 4.0, "delta": None, "epsilon_spent": 3.0,
                              "history": [("2026-01-01", 1.0, "r1"), ("2026-01-02", 3.0, "r2")]}])
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}circle")) == 2
    assert any(line.get("stroke-dasharray") for line in root.findall(f"{ns}line"))
    assert "No privacy spend" in svg_epsilon_chart([])
