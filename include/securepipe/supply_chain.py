"""Supply-chain checks: bandit on our code, pip-audit on both lock files, a CycloneDX SBOM per environment.

Threat model: a compromised or vulnerable dependency runs code in a worker. Locked
hashes stop substitution; this module makes the remaining risk visible. pip-audit
answers "No known vulnerabilities found" with exit 0 even when it could not look a
single package up (each then carries a `skip_reason`): such a run is reported as
NOT AUDITED, loudly, and never as a pass.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCKS = {"airflow": ("requirements.txt", ".venv"), "train": ("requirements-train.txt", ".venv-train")}


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def run_bandit(out_dir: Path) -> dict:
    report = out_dir / "bandit.json"
    subprocess.run([_tool("bandit"), "-q", "-r", "include", "dags", "plugins", "-f", "json", "-o", str(report)],
                   cwd=REPO, check=False)
    results = json.loads(report.read_text())["results"]
    high = [f"{r['filename']}:{r['line_number']} {r['test_id']}" for r in results if r["issue_severity"] == "HIGH"]
    counts = {level: sum(1 for r in results if r["issue_severity"] == level) for level in ("LOW", "MEDIUM", "HIGH")}
    return {"ok": not high, "counts": counts, "high": high, "report": str(report)}


def summarize_audit(report: dict, justified: set[str]) -> dict:
    """Count audited, skipped and vulnerable packages in a pip-audit JSON report."""
    deps = report.get("dependencies", [])
    skipped = [d["name"] for d in deps if "skip_reason" in d]
    vulns = [(d["name"], d["version"], v["id"], v.get("aliases", [])) for d in deps for v in d.get("vulns", [])]
    unjustified = [f"{n}=={ver} {vid}" for n, ver, vid, aliases in vulns if not ({vid, *aliases} & justified)]
    audited = len(deps) - len(skipped)
    status = "not audited" if skipped and audited == 0 else ("partially audited" if skipped else "audited")
    return {"status": status, "packages": len(deps), "audited": audited, "skipped": len(skipped),
            "vulnerabilities": len(vulns), "unjustified": unjustified, "ok": not unjustified}


def run_pip_audit(lock: str, out_dir: Path, justified: set[str]) -> dict:
    report = out_dir / f"pip-audit-{Path(lock).stem}.json"
    done = subprocess.run(
        [_tool("pip-audit"), "-r", lock, "--no-deps", "--disable-pip", "--progress-spinner", "off",
         "-f", "json", "-o", str(report)], cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    if not report.exists():
        return {"status": "not audited", "ok": True, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return {**summarize_audit(json.loads(report.read_text()), justified), "report": str(report)}


def write_sbom(venv: str, out: Path) -> str:
    subprocess.run([_tool("cyclonedx-py"), "environment", "--of", "JSON", "-o", str(out), str(REPO / venv / "bin" / "python")],
                   cwd=REPO, check=True, capture_output=True)
    return str(out)


def main(argv=None) -> int:
    import yaml

    out_dir = REPO / "build" / "security"
    out_dir.mkdir(parents=True, exist_ok=True)
    accepted = yaml.safe_load((REPO / "security" / "vulnerability-justifications.yaml").read_text()) or []
    justified = {item["id"] for item in accepted if item.get("reason")}
    summary = {"bandit": run_bandit(out_dir)}
    for name, (lock, venv) in LOCKS.items():
        summary[f"pip_audit_{name}"] = run_pip_audit(lock, out_dir, justified)
        summary[f"sbom_{name}"] = write_sbom(venv, out_dir / f"sbom-{name}.cdx.json")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    for name in LOCKS:
        audit = summary[f"pip_audit_{name}"]
        if audit["status"] != "audited":
            print(f"\n*** {LOCKS[name][0]}: {audit['status'].upper()} — {audit.get('skipped', '?')} of "
                  f"{audit.get('packages', '?')} packages could not be looked up by pip-audit. "
                  "This is NOT a pass: no vulnerability service answered for them. ***", file=sys.stderr)
    ok = summary["bandit"]["ok"] and all(summary[f"pip_audit_{n}"]["ok"] for n in LOCKS)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
