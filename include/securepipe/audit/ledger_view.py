"""A read-only, independent view of the privacy-budget ledger for the audit and its report.

Threat model: a model consumer learning membership because a dataset's privacy
budget was overspent. The training stage owns the ledger
(`securepipe.training.ledger.PrivacyLedger`) and refuses runs over budget; the
audit re-reads the ledger's files itself and re-adds the runs (it does not trust a
stored total or the ledger's own status), so a ledger edited by hand, a budget
lowered below what was spent, or a refusal that was skipped still shows as an
overspent dataset. Reading takes no lock and writes nothing (an auditor may hold a
read-only copy); the ledger replaces its files atomically, so a read sees a whole one.

The files, as PrivacyLedger writes them: one per dataset, `<root>/<dataset>.json`,
    {"format": 1, "dataset": "...", "budget": {"epsilon", "delta", "set_at"} | null,
     "runs": {"<run id>": {"version", "epsilon", "delta", "charged_at", "voided_at", ...}}}
Voided runs (after an erasure reset) do not count, as in the ledger.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from securepipe import config
from securepipe.errors import InputError

LEDGER_DIRNAME = "privacy-budget"  # PrivacyLedger's directory under the path it is given
FORMAT_VERSION = 1


def default_ledger_path(env=None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("SECUREPIPE_LEDGER") or config.state_dir(env) / LEDGER_DIRNAME)


def ledger_files(path) -> list[Path]:
    """The dataset files of the ledger at `path`: a ledger directory, a directory that
    holds one (what PrivacyLedger is constructed with), or a single dataset file."""
    path = Path(path)
    if path.is_file():
        return [path]
    if (path / LEDGER_DIRNAME).is_dir():
        path = path / LEDGER_DIRNAME
    if not path.is_dir():
        raise InputError(str(path), "privacy ledger not found")
    return sorted(path.glob("*.json"))


def _read_dataset(path: Path) -> dict:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("format") != FORMAT_VERSION:
            raise ValueError
        name, budget, runs = state["dataset"], state["budget"], state["runs"]
        live = sorted(((str(r.get("charged_at", "")), float(r["epsilon"]), float(r["delta"]), run_id)
                       for run_id, r in runs.items() if r.get("voided_at") is None))
        budget_epsilon = None if budget is None else float(budget["epsilon"])
        budget_delta = None if budget is None else float(budget["delta"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(str(path), "not a privacy ledger file (format 1)") from None
    history, running = [], []
    for charged_at, epsilon, _, run_id in live:
        running.append(epsilon)
        history.append((charged_at, math.fsum(running), run_id))
    return {"dataset": name, "epsilon_budget": budget_epsilon, "delta_budget": budget_delta,
            "epsilon_spent": math.fsum(e for _, e, _, _ in live),
            "delta_spent": math.fsum(d for _, _, d, _ in live), "voided_runs": len(runs) - len(live),
            "history": history}


def read_ledger(path=None) -> list[dict]:
    """One view per dataset: {"dataset", "epsilon_budget", "delta_budget", "epsilon_spent",
    "delta_spent", "voided_runs", "history": [(time, cumulative epsilon, run_id)]}."""
    return [_read_dataset(p) for p in ledger_files(path if path is not None else default_ledger_path())]
