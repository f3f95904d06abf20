"""Privacy-budget ledger: how much epsilon each dataset has spent, refused before training.

Threat model: an operator (or a scheduler retrying tasks) must not be able to train on a
dataset beyond its privacy budget. Each DP run's privacy loss adds up: the ledger keeps,
per dataset, one entry per run id, and `charge` refuses a run that would take the total
over the budget BEFORE any training starts (fail closed: no budget set -> refused too).

Design choices and what they trade:
- Composition is BASIC: total epsilon = sum of the runs' epsilons, total delta = sum of
  their deltas. It is always valid (any mix of accountants, datasets versions and
  mechanisms) and simple to audit; advanced composition would be tighter for many runs.
- Versions of one dataset hold the same people, so all versions share one budget.
- A run is charged when it is planned (its epsilon is fixed by the accountant before the
  first step), so a crash mid-training still counts: parameters may already have left
  the worker. Charging the same run id again replaces that run's entry (idempotent; a
  retried task never double counts), after re-checking the budget without the old entry.
- `reset_version` is for an erased dataset version: it voids only that version's runs.
  Voiding is justified only because erasure also destroys that version's data and the
  models trained on it; the voided entries stay in the file, marked, for the audit trail.
- Storage: one JSON file per dataset under `<state_dir>/privacy-budget/`, read and written
  under an exclusive `fcntl` lock, and replaced atomically (temp file + rename), so
  concurrent workers on one host neither lose updates nor see half-written files. The
  lock is advisory and local: a state dir on a network file system needs one writer.

Pure standard library, because the Airflow environment (which records budgets from the
DAG) and the training environment both import it.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import math
import re
from pathlib import Path
from typing import Iterator

from securepipe.errors import BudgetExceeded, PolicyError
from securepipe.storage import atomic_write

LEDGER_DIRNAME = "privacy-budget"
FORMAT_VERSION = 1
# Identifiers become file names and appear in logs: keep them to a safe alphabet.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")
# Float sums of epsilons are compared with this slack so 1.0 + 2.0 fits a budget of 3.0.
_EPS_SLACK = 1e-9


def _utcnow() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _SAFE_ID.match(value):
        raise PolicyError(f"{kind} must match {_SAFE_ID.pattern} (letters, digits, . _ : @ + -)")
    return value


def _check_positive(kind: str, value: float, *, upper: float | None = None) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0 or (upper is not None and value >= upper):
        bound = f" and < {upper}" if upper is not None else ""
        raise PolicyError(f"{kind} must be a finite number > 0{bound}")
    return value


class PrivacyLedger:
    """The privacy budgets of every dataset under one state directory."""

    def __init__(self, state_dir):
        self.root = Path(state_dir) / LEDGER_DIRNAME

    def path(self, dataset: str) -> Path:
        return self.root / f"{_check_id('dataset id', dataset)}.json"

    @contextlib.contextmanager
    def _locked(self, dataset: str) -> Iterator[Path]:
        path = self.path(dataset)
        self.root.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, path: Path, dataset: str) -> dict:
        if not path.exists():
            return {"format": FORMAT_VERSION, "dataset": dataset, "budget": None, "runs": {}}
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if state.get("format") != FORMAT_VERSION or state.get("dataset") != dataset:
                raise ValueError
            state["runs"]  # noqa: B018 - presence check
        except (ValueError, KeyError, AttributeError):
            # A ledger that does not parse must not be taken as "nothing spent".
            raise PolicyError(f"privacy ledger {path} is unreadable; refusing to guess the budget") from None
        return state

    @staticmethod
    def _write(path: Path, state: dict) -> None:
        with atomic_write(path, "w") as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
            handle.write("\n")

    @staticmethod
    def _totals(state: dict, *, excluding_run: str | None = None) -> tuple[float, float]:
        live = [r for rid, r in state["runs"].items() if rid != excluding_run and r.get("voided_at") is None]
        return math.fsum(r["epsilon"] for r in live), math.fsum(r["delta"] for r in live)

    def set_budget(self, dataset: str, epsilon: float, delta: float) -> dict:
        """Set (or change) a dataset's total budget. Lowering it below what is spent is allowed
        (further runs are then refused) but recorded; it never voids runs."""
        epsilon = _check_positive("budget epsilon", epsilon)
        delta = _check_positive("budget delta", delta, upper=1.0)
        with self._locked(dataset) as path:
            state = self._read(path, dataset)
            state["budget"] = {"epsilon": epsilon, "delta": delta, "set_at": _utcnow()}
            self._write(path, state)
        return self.status(dataset)

    def charge(self, dataset: str, version: str, run_id: str, epsilon: float, delta: float) -> dict:
        """Record a run's (epsilon, delta) if it fits the budget; raise BudgetExceeded if not.

        Call it before training. Charging an existing run id again replaces that entry.
        Returns the dataset's status after the charge.
        """
        _check_id("dataset version", version)
        _check_id("run id", run_id)
        epsilon = _check_positive("run epsilon", epsilon)
        delta = _check_positive("run delta", delta, upper=1.0)
        with self._locked(dataset) as path:
            state = self._read(path, dataset)
            budget = state["budget"]
            if budget is None:
                raise BudgetExceeded(f"dataset {dataset} has no privacy budget set; refusing to train (fail closed)")
            previous = state["runs"].get(run_id)
            if previous is not None and previous.get("version") != version:
                raise PolicyError(f"run id {run_id} is already charged to another version of dataset {dataset}")
            if previous is not None and previous.get("voided_at") is not None:
                raise PolicyError(f"run id {run_id} was voided by an erasure reset; use a new run id")
            spent_eps, spent_delta = self._totals(state, excluding_run=run_id)
            if spent_eps + epsilon > budget["epsilon"] + _EPS_SLACK or spent_delta + delta > budget["delta"] + _EPS_SLACK:
                raise BudgetExceeded(
                    f"run {run_id} on dataset {dataset} refused before training: it needs epsilon {epsilon:.4g}, "
                    f"delta {delta:.3g}; already spent epsilon {spent_eps:.4g} of {budget['epsilon']:.4g}, "
                    f"delta {spent_delta:.3g} of {budget['delta']:.3g} (basic composition)"
                )
            state["runs"][run_id] = {
                "version": version, "epsilon": epsilon, "delta": delta,
                "charged_at": (previous or {}).get("charged_at") or _utcnow(),
                **({"updated_at": _utcnow()} if previous else {}),
                "voided_at": None,
            }
            self._write(path, state)
        return self.status(dataset)

    def reset_version(self, dataset: str, version: str, reason: str = "erasure") -> int:
        """Void every run charged to `version` of `dataset` (after its erasure). Returns how many."""
        _check_id("dataset version", version)
        with self._locked(dataset) as path:
            state = self._read(path, dataset)
            voided = 0
            for run in state["runs"].values():
                if run["version"] == version and run.get("voided_at") is None:
                    run["voided_at"], run["void_reason"] = _utcnow(), reason
                    voided += 1
            if voided:
                self._write(path, state)
        return voided

    def status(self, dataset: str) -> dict:
        """Budget, spent and remaining (epsilon, delta), and the run count, for one dataset."""
        path = self.path(dataset)
        with self._locked(dataset):
            state = self._read(path, dataset)
        spent_eps, spent_delta = self._totals(state)
        budget = state["budget"]
        live_runs = sum(1 for r in state["runs"].values() if r.get("voided_at") is None)
        return {
            "dataset": dataset,
            "composition": "basic",
            "budget_epsilon": budget and budget["epsilon"],
            "budget_delta": budget and budget["delta"],
            "spent_epsilon": spent_eps,
            "spent_delta": spent_delta,
            "remaining_epsilon": None if budget is None else max(0.0, budget["epsilon"] - spent_eps),
            "remaining_delta": None if budget is None else max(0.0, budget["delta"] - spent_delta),
            "runs": live_runs,
            "voided_runs": len(state["runs"]) - live_runs,
        }
