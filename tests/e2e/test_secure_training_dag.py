"""secure_training end to end with dag.test() on ~500 rows: real KMS emulator, real training venv."""
from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from securepipe.synth import PII_COLUMNS, generate_patients, write_patients

pytestmark = pytest.mark.slow
ROWS = 500


def _pii_needles(frame) -> set[bytes]:
    # zip is left out: five digits turn up by chance in hex digests (it is generalized, not secret);
    # admission_date too: its values look like the timestamps evidence files carry.
    return {str(v).encode() for column in PII_COLUMNS if column != "zip" for v in frame[column]}


@pytest.fixture(scope="module")
def dag_run(airflow_home, kms_env, tmp_path_factory):
    from securepipe.demo.runner import embedded_env

    work = tmp_path_factory.mktemp("secure-training")
    landing = work / "landing" / "patients.csv"
    write_patients(landing, ROWS, seed=3)
    env = embedded_env(work, kms_env.endpoint_url, kms_env.alias)
    env["AIRFLOW_VAR_SECUREPIPE_LANDING_URI"] = f"file://{landing}"
    os.environ.update(env)

    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags")).dags["secure_training"]
    run = dag.test(run_conf={"epochs": 3, "rows_per_shard": 200, "max_mia_auc": 0.75})
    return run, work, landing


def test_run_succeeds_with_every_task(dag_run):
    run, _, _ = dag_run
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert set(states) >= {"ingest", "mask_shard", "finalize_masking", "validate_data", "train_model",
                           "publish_lineage", "cleanup"}


def test_outputs_exist_and_are_ciphertext_without_pii(dag_run):
    from securepipe.crypto import is_ciphertext

    _, work, landing = dag_run
    stored = [p for p in (work / "storage").rglob("*") if p.is_file()]
    names = {p.name for p in stored}
    assert "dataset.parquet.enc" in names
    assert any(n.startswith("model") and n.endswith(".enc") for n in names)
    assert not any("/runs/" in str(p) for p in stored), "intermediate shards were not cleaned up"
    needles = _pii_needles(generate_patients(ROWS, seed=3))
    everything = stored + [p for p in (work / "securepipe-state").rglob("*") if p.is_file()]
    for path in everything:
        data = path.read_bytes()
        leaked = [n for n in needles if n in data]
        assert not leaked, f"{path} holds {len(leaked)} raw PII values"
    for path in stored:
        assert is_ciphertext(path), path
    assert landing.read_bytes() == landing.read_bytes() and landing.stat().st_size > 0  # input kept


def test_model_trained_and_epsilon_recorded(dag_run):
    _, work, _ = dag_run
    cards = list((work / "securepipe-state").rglob("model_card.json"))
    assert cards, "no model card"
    card = json.loads(cards[0].read_text())
    assert 0 < card["epsilon"] <= 3.0
    # The card's accuracy is released with DP noise (learning itself is tested in tests_train/).
    assert 0 <= card["accuracy"] <= 1 and card["released_metrics"]["accuracy_noise_std"] > 0
    assert "All released numbers within epsilon" in card["privacy_statement"]
    assert set(card["privacy"]["releases"]) == {"scaling", "accuracy"}
    ledger = json.loads((work / "securepipe-state" / "privacy-budget" / "patients.json").read_text())
    (charge,) = ledger["runs"].values()
    assert charge["epsilon"] == pytest.approx(card["epsilon"])


def _compliance_plugin():
    path = Path(__file__).resolve().parents[2] / "plugins" / "compliance_plugin.py"
    spec = importlib.util.spec_from_file_location("compliance_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compliance_page_shows_who_triggered_the_run_and_the_budget_left(dag_run):
    """The evidence a real run wrote, read through the Compliance page's own code (no fixtures)."""
    _, work, _ = dag_run
    plugin = _compliance_plugin()
    summary = plugin.gather_summary(work / "securepipe-state")
    (run,) = [r for r in summary["runs"] if r.get("dag_id") == "secure_training"]
    assert run["trigger"] == "manual" and run["user"] == "dag_test"  # dag.test() triggers as "dag_test"
    ledger = json.loads((work / "securepipe-state" / "privacy-budget" / "patients.json").read_text())
    (charge,) = ledger["runs"].values()
    assert run["budget_left"] == pytest.approx(ledger["budget"]["epsilon"] - charge["epsilon"])
    assert run["epsilon"] == pytest.approx(charge["epsilon"]) and run["pii_found"] > 0
    row = re.search(r'<table id="runs">.*?</table>', plugin.render_index(summary, "auditor"), re.S).group(0)
    # numbers for people: ε and the budget left to two decimals, counts with thousands separators
    assert "manual by dag_test" in row and f"<td>{run['budget_left']:.2f}</td>" in row
    assert f"<td>{run['epsilon']:.2f}</td>" in row and f"<td>{run['pii_found']:,}</td>" in row
