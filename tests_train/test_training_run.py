"""Real DP training runs on CPU, small enough for seconds: the model, the CLI, the card, the ledger."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from securepipe.cli import main
from securepipe.synth import write_patients
from securepipe.training import data, model
from securepipe.training.ledger import PrivacyLedger

REQUIRED_CARD_KEYS = {"epsilon", "delta", "noise_multiplier", "sampling_rate", "steps", "accountant", "accuracy",
                      "released_metrics", "device"}


@pytest.fixture(scope="module")
def patients_file(tmp_path_factory):
    # CSV here; Parquet parsing is covered in test_training_data_eval.py
    return write_patients(tmp_path_factory.mktemp("data") / "patients.csv", 600, seed=5)


def _last_json_line(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_dp_network_uses_fast_clipping_and_learns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    network = model.build_network(4, noise_multiplier=0.5)
    assert network._enable_fast_peg_computation  # noqa: SLF001 - the fast path, not microbatches
    trained = model.fit(x, y, epochs=5, batch_size=64, noise_multiplier=0.5)
    assert trained.private and trained.examples_seen == 5 * 512
    assert np.mean((trained.predict_proba(x) >= 0.5) == y) > 0.85


def test_batches_are_poisson_sampled_as_the_accountant_assumes():
    import tensorflow as tf

    n, batch = 400, 40
    x = np.arange(n, dtype=np.float32).reshape(-1, 1)
    batches, steps = model.poisson_batches(x, np.zeros(n), batch)
    assert steps == 10
    tf.random.set_seed(0)
    drawn = [bx.numpy().ravel().astype(int) for bx, _ in batches.take(3000)]
    sizes = np.array([len(b) for b in drawn])
    q = batch / n
    # fixed-size batches would have variance 0; Poisson sampling has n q (1 - q) = 36
    assert sizes.mean() == pytest.approx(batch, rel=0.02)
    assert sizes.var() == pytest.approx(n * q * (1 - q), rel=0.15)
    counts = np.bincount(np.concatenate(drawn), minlength=n) / len(drawn)
    assert counts.mean() == pytest.approx(q, rel=0.02) and counts.min() > q / 2 and counts.max() < 2 * q


def test_training_takes_the_accounted_number_of_steps_and_sums_clipped_gradients():
    import tensorflow as tf

    from securepipe.training import accounting

    rng = np.random.default_rng(2)
    x = rng.normal(size=(480, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    trained = model.fit(x, y, epochs=3, batch_size=64, noise_multiplier=1.0)
    plan = accounting.noise_for_epsilon(50.0, 480, 64, 3, 1e-5)
    assert int(trained.network.optimizer.iterations.numpy()) == plan.steps == 24
    # the noisy SUM is released (a mean would divide by the data-dependent batch size)
    assert trained.network.loss.reduction == tf.keras.losses.Reduction.SUM


def test_noise_is_really_added():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    # the same seed, data and batches: only the noise differs, and huge noise must wreck the fit
    clean = model.fit(x, y, epochs=3, batch_size=64, noise_multiplier=1e-6, seed=1)
    noisy = model.fit(x, y, epochs=3, batch_size=64, noise_multiplier=1000.0, seed=1)
    weights_clean = np.concatenate([w.ravel() for w in clean.network.get_weights()])
    weights_noisy = np.concatenate([w.ravel() for w in noisy.network.get_weights()])
    assert np.linalg.norm(weights_clean - weights_noisy) > 1.0


def test_dp_noise_cannot_be_regenerated_without_a_seed():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def weights(seed):
        trained = model.fit(x, y, epochs=1, batch_size=64, noise_multiplier=1.0, seed=seed)
        return np.concatenate([w.ravel() for w in trained.network.get_weights()])

    assert np.array_equal(weights(0), weights(0))  # a seed reproduces an experiment...
    assert not np.array_equal(weights(None), weights(0))  # ...and a run without one is not seed 0's
    assert not np.array_equal(weights(None), weights(None))


def test_train_cli_writes_model_card_and_loadable_model(tmp_path, patients_file, capsys):
    import tensorflow as tf

    out = tmp_path / "out"
    code = main(["train", "--data", str(patients_file), "--label", "readmitted", "--target-epsilon", "3",
                 "--epochs", "3", "--batch-size", "64", "--out", str(out), "--nonprivate-baseline",
                 "--masking-policy-hash", "ab" * 32])
    assert code == 0
    summary = _last_json_line(capsys.readouterr().out)
    card = json.loads((out / "model_card.json").read_text())
    internal = json.loads((out / "evaluation_internal.json").read_text())
    assert REQUIRED_CARD_KEYS <= card.keys()
    assert not {"auc", "ece", "brier", "mia_auc", "nonprivate_baseline", "metrics"} & card.keys()  # not released
    assert card["epsilon"] <= 3.0 and card["delta"] <= 1 / 480  # default delta <= 1/n
    assert card["steps"] == 3 * 8 and card["sampling_rate"] == pytest.approx(64 / 480)
    assert card["device"] == "CPU" and card["accountant"] == "pld"
    assert 0.0 <= internal["metrics"]["mia_auc"] <= 1.0 and internal["nonprivate_baseline"]["mia_auc"] is not None
    assert internal["released"] is False
    assert card["data"]["masking_policy_sha256"] == "ab" * 32 and len(card["data"]["file_sha256"]) == 64
    assert card["privacy"]["statement"] == card["privacy_statement"]
    assert "Poisson sampling" in card["privacy_statement"] and card["privacy"]["sampling"] == "poisson"
    assert "All released numbers within epsilon" in card["privacy_statement"]
    assert summary["epsilon"] == card["epsilon"] and "nonprivate_mia_auc" in summary
    markdown = (out / "model_card.md").read_text()
    assert "are not released" in markdown and f"{card['noise_multiplier']:.4g}" in markdown
    # the saved model takes raw features and reproduces the card's accuracy on the held-out split
    served = tf.keras.models.load_model(out / "model.keras")
    frame, digest = data.load_table(patients_file)
    assert card["data"]["file_sha256"] == digest
    split = data.prepare(frame, "readmitted", file="p", seed=0, scaling_noise_multiplier=1.0)
    raw_test = split.x_test * split.std + split.mean
    probabilities = served.predict(raw_test, verbose=0).reshape(-1)
    assert np.mean((probabilities >= 0.5) == split.y_test) == pytest.approx(internal["metrics"]["accuracy"], abs=1e-9)
    assert sorted(os.listdir(out)) == ["evaluation_internal.json", "model.keras", "model_card.json", "model_card.md"]


def test_over_budget_run_is_refused_before_training(tmp_path, patients_file, capsys):
    ledger = PrivacyLedger(tmp_path / "state")
    ledger.set_budget("patients", 4.0, 1e-4)
    ledger.charge("patients", "v1", "earlier-run", 2.0, 1e-6)
    out = tmp_path / "out"
    argv = ["train", "--data", str(patients_file), "--label", "readmitted", "--target-epsilon", "3",
            "--epochs", "2", "--out", str(out), "--state-dir", str(tmp_path / "state"),
            "--budget-dataset", "patients", "--dataset-version", "v2", "--run-id", "run-2"]
    assert main(argv) == 3
    assert "refused before training" in capsys.readouterr().err
    assert not out.exists()  # nothing trained, nothing written
    assert ledger.status("patients")["spent_epsilon"] == pytest.approx(2.0)
    # within budget the run is charged with the epsilon it actually spends
    assert main([*argv[:6], "1.5", *argv[7:]]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert ledger.status("patients")["spent_epsilon"] == pytest.approx(2.0 + card["epsilon"])
    assert card["privacy"]["budget"]["runs"] == 2


@pytest.mark.parametrize("argv, message", [
    (["--encrypt-model"], "--model-context"),
    (["--model-context", "run=1"], "only apply with --encrypt-model"),
    (["--run-id", "r1"], "--budget-dataset"),
    (["--target-epsilon", "0.0001"], "unreachable"),
])
def test_train_cli_refuses_bad_options_with_a_clear_message(tmp_path, patients_file, capsys, argv, message):
    base = ["train", "--data", str(patients_file), "--label", "readmitted", "--target-epsilon", "3",
            "--epochs", "1", "--out", str(tmp_path / "out")]
    assert main(base + argv) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "model_card.json").exists()


def test_train_cli_names_a_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("age,readmitted\n" + "\n".join(f"{30 + i},{i % 2}" for i in range(30)) + "\n40,yes\n")
    assert main(["train", "--data", str(bad), "--label", "readmitted", "--target-epsilon", "3"]) == 2
    err = capsys.readouterr().err
    assert f"file {bad}, row 31, column 'readmitted': a label class has a single row" in err and "yes" not in err


def test_multiclass_label_with_categorical_features_trains_and_says_what_it_used(tmp_path):
    import pandas as pd

    from securepipe.training.pipeline import train_and_report

    rng = np.random.default_rng(3)
    n = 600
    severity = rng.choice(["mild", "moderate", "severe"], n)
    score = rng.normal(size=n) + (severity == "severe") * 2.0 + (severity == "moderate") * 1.0
    outcome = np.where(score > 1.6, "icu", np.where(score > 0.4, "ward", "home"))
    frame = pd.DataFrame({"severity": severity, "sbp": rng.normal(130, 15, n).round(),
                          "note": [f"patient seen today, stable, continue the current regimen, visit {i}" for i in range(n)],
                          "outcome": outcome})
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    summary = train_and_report(tmp_path / "t.parquet", "outcome", 8.0, tmp_path / "out", epochs=8, batch_size=64)
    card = json.loads((tmp_path / "out" / "model_card.json").read_text())
    assert card["data"]["classes"] == ["home", "icu", "ward"]
    assert card["data"]["columns"]["note"] == "left out: free text"
    assert card["data"]["columns"]["severity"].startswith("categorical (3 categories")
    assert "severity=severe" in card["data"]["features"] and "softmax (3 classes)" in card["model"]["architecture"]
    internal = json.loads((tmp_path / "out" / "evaluation_internal.json").read_text())["metrics"]
    assert internal["accuracy"] > 0.5 and internal["auc"] > 0.6  # chance is about 0.4
    assert 0 <= internal["mia_auc"] <= 1 and 0 <= internal["ece"] <= 1
    markdown = (tmp_path / "out" / "model_card.md").read_text()
    assert "## Columns" in markdown and "| note | left out: free text |" in markdown
