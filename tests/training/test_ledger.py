"""The privacy-budget ledger in the Airflow environment (the DAG charges budgets there).

Real files, real locks, real processes: concurrency is checked with separate OS processes.
"""
from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from securepipe.cli import main
from securepipe.errors import BudgetExceeded, PolicyError
from securepipe.training.ledger import LEDGER_DIRNAME, PrivacyLedger


@pytest.fixture()
def ledger(tmp_path):
    book = PrivacyLedger(tmp_path)
    book.set_budget("patients", 5.0, 1e-4)
    return book


def test_runs_compose_and_an_over_budget_run_is_refused_before_it_is_recorded(ledger):
    ledger.charge("patients", "v1", "run-1", 2.0, 1e-5)
    status = ledger.charge("patients", "v2", "run-2", 2.5, 1e-5)
    assert status["spent_epsilon"] == pytest.approx(4.5) and status["remaining_epsilon"] == pytest.approx(0.5)
    with pytest.raises(BudgetExceeded, match=r"run-3 .* refused before training.*already spent epsilon 4\.5 of 5"):
        ledger.charge("patients", "v2", "run-3", 0.6, 1e-5)
    after = ledger.status("patients")
    assert after["runs"] == 2 and after["spent_epsilon"] == pytest.approx(4.5)
    ledger.charge("patients", "v2", "run-3", 0.5, 1e-5)  # exactly filling the budget is allowed
    assert ledger.status("patients")["remaining_epsilon"] == pytest.approx(0.0)


def test_delta_budget_is_enforced_too(ledger):
    ledger.charge("patients", "v1", "run-1", 1.0, 6e-5)
    with pytest.raises(BudgetExceeded, match="delta"):
        ledger.charge("patients", "v1", "run-2", 1.0, 5e-5)


def test_recharging_a_run_id_replaces_it_never_double_counts(ledger):
    ledger.charge("patients", "v1", "run-1", 3.0, 1e-5)
    ledger.charge("patients", "v1", "run-1", 3.0, 1e-5)  # a retried task
    assert ledger.status("patients")["spent_epsilon"] == pytest.approx(3.0)
    ledger.charge("patients", "v1", "run-1", 2.9, 1e-5)  # settled to the epsilon actually spent
    assert ledger.status("patients")["spent_epsilon"] == pytest.approx(2.9)
    with pytest.raises(BudgetExceeded):
        ledger.charge("patients", "v1", "run-1", 5.5, 1e-5)
    assert ledger.status("patients")["spent_epsilon"] == pytest.approx(2.9)
    with pytest.raises(PolicyError, match="another version"):
        ledger.charge("patients", "v2", "run-1", 1.0, 1e-5)


def test_reset_of_an_erased_version_voids_only_that_version(ledger, tmp_path):
    ledger.charge("patients", "v1", "run-1", 2.0, 1e-5)
    ledger.charge("patients", "v2", "run-2", 2.0, 1e-5)
    other = PrivacyLedger(tmp_path)
    other.set_budget("claims", 5.0, 1e-4)
    other.charge("claims", "v1", "run-9", 4.0, 1e-5)
    assert ledger.reset_version("patients", "v1") == 1
    assert ledger.reset_version("patients", "v1") == 0  # idempotent
    status = ledger.status("patients")
    assert status["spent_epsilon"] == pytest.approx(2.0) and status["voided_runs"] == 1
    assert other.status("claims")["spent_epsilon"] == pytest.approx(4.0)  # another dataset's v1 untouched
    kept = json.loads(ledger.path("patients").read_text())
    assert kept["runs"]["run-1"]["voided_at"] and kept["runs"]["run-1"]["void_reason"] == "erasure"
    with pytest.raises(PolicyError, match="voided"):
        ledger.charge("patients", "v1", "run-1", 1.0, 1e-5)


def test_no_budget_fails_closed(tmp_path):
    with pytest.raises(BudgetExceeded, match="no privacy budget"):
        PrivacyLedger(tmp_path).charge("patients", "v1", "run-1", 0.1, 1e-6)


@pytest.mark.parametrize("dataset, version, run_id, epsilon, delta, message", [
    ("../etc", "v1", "r", 1.0, 1e-5, "dataset id"),
    ("patients", "v 1", "r", 1.0, 1e-5, "dataset version"),
    ("patients", "v1", "", 1.0, 1e-5, "run id"),
    ("patients", "v1", "r", 0.0, 1e-5, "run epsilon"),
    ("patients", "v1", "r", float("nan"), 1e-5, "run epsilon"),
    ("patients", "v1", "r", float("inf"), 1e-5, "run epsilon"),
    ("patients", "v1", "r", 1.0, 1.0, "run delta"),
    ("patients", "v1", "r", 1.0, -1e-5, "run delta"),
])
def test_bad_arguments_are_refused(ledger, dataset, version, run_id, epsilon, delta, message):
    with pytest.raises(PolicyError, match=message):
        ledger.charge(dataset, version, run_id, epsilon, delta)


def test_a_corrupt_ledger_is_not_read_as_empty(ledger):
    ledger.charge("patients", "v1", "run-1", 4.0, 1e-5)
    ledger.path("patients").write_text("{not json")
    with pytest.raises(PolicyError, match="unreadable"):
        ledger.charge("patients", "v1", "run-2", 0.5, 1e-5)
    ledger.path("patients").write_text(json.dumps({"format": 1, "dataset": "claims", "budget": None, "runs": {}}))
    with pytest.raises(PolicyError, match="unreadable"):
        ledger.status("patients")


def test_the_file_is_written_atomically_and_nothing_else_is_left(ledger):
    ledger.charge("patients", "v1", "run-1", 1.0, 1e-5)
    names = sorted(os.listdir(ledger.root))
    assert names == ["patients.json", "patients.lock"]


def _charge_many(state_dir: str, worker: int, runs: int) -> None:
    book = PrivacyLedger(state_dir)
    for i in range(runs):
        try:
            book.charge("patients", "v1", f"w{worker}-r{i}", 0.1, 1e-7)
        except BudgetExceeded:
            pass


def test_concurrent_processes_neither_lose_updates_nor_overspend(tmp_path):
    book = PrivacyLedger(tmp_path)
    book.set_budget("patients", 2.0, 1e-3)  # room for 20 of the 40 attempted charges
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_charge_many, args=(str(tmp_path), w, 10)) for w in range(4)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(60)
        assert proc.exitcode == 0
    status = book.status("patients")
    assert status["runs"] == 20
    assert status["spent_epsilon"] == pytest.approx(2.0)


def test_budget_cli_refuses_with_exit_code_3(tmp_path, capsys):
    base = ["budget"]
    state = ["--state-dir", str(tmp_path), "--dataset", "patients"]
    assert main([*base, "set", *state, "--epsilon", "3", "--delta", "1e-5"]) == 0
    assert main([*base, "charge", *state, "--version", "v1", "--run-id", "r1", "--epsilon", "2", "--delta", "1e-6"]) == 0
    capsys.readouterr()
    assert main([*base, "charge", *state, "--version", "v1", "--run-id", "r2", "--epsilon", "2", "--delta", "1e-6"]) == 3
    assert "refused before training" in capsys.readouterr().err
    assert main([*base, "reset", *state, "--version", "v1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["voided_now"] == 1 and out["spent_epsilon"] == 0.0
    assert (tmp_path / LEDGER_DIRNAME / "patients.json").exists()
