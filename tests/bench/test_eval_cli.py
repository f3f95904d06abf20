"""`securepipe eval pii` end to end on the hand-written fixture corpus: our detector and Presidio, for real."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from securepipe.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "tiny"


def test_eval_pii_scores_both_systems_and_writes_misses(tmp_path, capsys):
    misses = tmp_path / "misses.jsonl"
    assert main(["eval", "pii", "--corpus", str(FIXTURE), "--json", "--misses", str(misses)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "will contain corpus text" in captured.err
    assert result["systems"] == ["securepipe", "presidio"]
    assert (result["texts"], result["ignored_gold_spans"]) == (3, 2)
    for name in ("securepipe", "presidio"):
        assert result[name]["gold_spans"] == 4
        assert set(result[name]["per_type"]) == {"NAME", "PHONE", "DATE", "CASE"}
        assert result[name]["texts_per_s"] > 0
    ours = result["securepipe"]["per_type"]
    assert ours["NAME"]["found"] == ours["PHONE"]["found"] == 1  # a plain name and a US phone: both must be found
    assert result["speed_ratio"] > 0
    records = [json.loads(line) for line in misses.read_text().splitlines()]
    missed = {r["gold_type"] for r in records if r["kind"] == "missed"}
    assert missed <= {"CASE", "DATE"} and all("[[" in r["context"] for r in records)
    assert "Jonathan" not in captured.out and "Jonathan" not in captured.err  # figures only, no corpus text


def test_eval_pii_refuses_an_unknown_split_before_loading_models(capsys):
    assert main(["eval", "pii", "--corpus", str(FIXTURE), "--split", "train", "--no-baseline"]) == 2
    assert "no split 'train'" in capsys.readouterr().err


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_eval_pii_refuses_a_limit_below_one(limit, capsys):
    assert main(["eval", "pii", "--corpus", str(FIXTURE), "--limit", limit, "--no-baseline"]) == 2
    assert "--limit" in capsys.readouterr().err
