"""pip-audit's output is read honestly: skipped packages are 'not audited', never a pass."""
from __future__ import annotations

import pytest

from securepipe.supply_chain import summarize_audit

SKIPPED = {"name": "a", "skip_reason": "Dependency not found on PyPI and could not be audited: a (1.0)"}
CLEAN = {"name": "b", "version": "2.0", "vulns": []}
VULN = {"name": "c", "version": "3.0", "vulns": [{"id": "GHSA-1111", "aliases": ["CVE-2026-1"], "fix_versions": []}]}


@pytest.mark.parametrize(
    "deps,justified,status,ok,unjustified",
    [
        ([SKIPPED, dict(SKIPPED, name="z")], set(), "not audited", True, []),
        ([SKIPPED, CLEAN], set(), "partially audited", True, []),
        ([CLEAN], set(), "audited", True, []),
        ([CLEAN, VULN], set(), "audited", False, ["c==3.0 GHSA-1111"]),
        ([CLEAN, VULN], {"CVE-2026-1"}, "audited", True, []),
        ([VULN, SKIPPED], {"GHSA-1111"}, "partially audited", True, []),
    ],
)
def test_summarize_audit(deps, justified, status, ok, unjustified):
    summary = summarize_audit({"dependencies": deps}, justified)
    assert (summary["status"], summary["ok"], summary["unjustified"]) == (status, ok, unjustified)
    assert summary["audited"] + summary["skipped"] == len(deps)
