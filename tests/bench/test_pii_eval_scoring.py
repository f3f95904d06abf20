"""Table-driven tests of the character-coverage scoring of `securepipe eval pii`, negative cases included."""
from __future__ import annotations

import io
import json

import pytest

from securepipe.bench.corpus_format import Document, GoldSpan, load_corpus
from securepipe.bench.pii_eval import (NEUTRAL, RIGHT, WRONG, Predicted, Tally, evaluate, f_beta,
                                       format_table, score_document)

IGNORED = frozenset({"ORG", "TITLE"})


def g(start, end, kind="NAME"):
    return GoldSpan(start, end, kind)


def p(start, end, kind="PERSON"):
    return Predicted(start, end, kind)


# (case, gold spans, predictions, expected coverage per gold span, expected verdict per prediction)
CASES = [
    ("exact match", [g(0, 10)], [p(0, 10)], [1.0], [RIGHT]),
    ("type need not match", [g(0, 10, "PHONE")], [p(0, 10, "DATE_TIME")], [1.0], [RIGHT]),
    ("80% covered is found", [g(0, 10)], [p(2, 10)], [0.8], [RIGHT]),
    ("70% covered is missed", [g(0, 10)], [p(3, 10)], [0.7], [RIGHT]),
    ("nothing predicted", [g(0, 10)], [], [0.0], []),
    ("split across two predictions", [g(0, 10)], [p(0, 5), p(5, 10)], [1.0], [RIGHT, RIGHT]),
    ("split with a gap still 80%", [g(0, 10)], [p(0, 4), p(5, 9)], [0.8], [RIGHT, RIGHT]),
    ("overlapping predictions are not counted twice", [g(0, 10)], [p(0, 5), p(1, 5)], [0.5], [RIGHT, RIGHT]),
    ("over-long span finds the name but is wrong", [g(10, 20)], [p(0, 30)], [1.0], [WRONG]),
    ("over-long span half inside is right", [g(10, 20)], [p(5, 25)], [1.0], [RIGHT]),
    ("prediction outside every gold span", [g(0, 10)], [p(20, 30)], [0.0], [WRONG]),
    ("prediction inside an ignored span is neutral", [g(0, 10, "ORG")], [p(0, 10)], [1.0], [NEUTRAL]),
    ("half in a counted span is right, not neutral", [g(0, 5, "ORG"), g(5, 10)], [p(0, 10)], [1.0, 1.0],
     [RIGHT]),
    ("mostly gold of both kinds together is right", [g(0, 3, "ORG"), g(3, 6)], [p(0, 10)], [1.0, 1.0], [RIGHT]),
    ("40% in an ignored span, the rest outside", [g(0, 4, "ORG")], [p(0, 10)], [1.0], [WRONG]),
    ("prediction past the end of the text is clipped", [g(90, 100)], [p(90, 120)], [1.0], [RIGHT]),
    ("empty prediction is not a prediction", [g(0, 10)], [p(5, 5)], [0.0], [None]),
]


@pytest.mark.parametrize("case, gold, predicted, covered, verdicts", CASES, ids=[c[0] for c in CASES])
def test_score_document(case, gold, predicted, covered, verdicts):
    score = score_document(100, gold, predicted, IGNORED)
    assert [round(c, 3) for c in score.covered] == covered
    assert list(score.verdicts) == verdicts


def test_tally_counts_recall_precision_and_per_type():
    documents = [
        # NAME found; PHONE missed (70%); TITLE ignored; one wrong prediction; one neutral one.
        (Document("a", "x" * 100, (g(0, 2, "TITLE"), g(3, 13), g(20, 30, "PHONE"), g(40, 50, "ORG"))),
         [p(3, 13), p(23, 30), p(60, 70), p(40, 50)]),
        # DATE found by two predictions.
        (Document("b", "y" * 50, (g(0, 10, "DATE"),)), [p(0, 6), p(6, 10)]),
    ]
    tally = Tally()
    for document, predicted in documents:
        tally.add(document, score_document(len(document.text), document.spans, predicted, IGNORED), IGNORED)
    tally.seconds = 2.0
    summary = tally.summary(texts=2, chars=150, type_map={"NAME": "PERSON", "PHONE": None, "DATE": "DATE_TIME"})
    assert (summary["gold_spans"], summary["found"]) == (3, 2)
    assert (summary["right"], summary["wrong"], summary["neutral"]) == (4, 1, 1)
    assert summary["recall"] == round(2 / 3, 4)
    assert summary["precision"] == 0.8
    assert summary["f2"] == round(f_beta(0.8, round(2 / 3, 4)), 4)
    assert summary["per_type"] == {
        "DATE": {"maps_to": "DATE_TIME", "gold": 1, "found": 1, "recall": 1.0},
        "NAME": {"maps_to": "PERSON", "gold": 1, "found": 1, "recall": 1.0},
        "PHONE": {"maps_to": None, "gold": 1, "found": 0, "recall": 0.0},
    }
    assert "TITLE" not in summary["per_type"] and "ORG" not in summary["per_type"]
    assert (summary["texts_per_s"], summary["chars_per_s"]) == (1.0, 75.0)


@pytest.mark.parametrize("precision, recall, expected", [
    (1.0, 1.0, 1.0),
    (0.5, 1.0, 0.8333),
    (1.0, 0.5, 0.5556),  # recall weighs more: the same loss costs more on recall
    (0.0, 0.0, 0.0),
    (None, 1.0, None),
    (1.0, None, None),
])
def test_f2(precision, recall, expected):
    result = f_beta(precision, recall)
    assert (None if result is None else round(result, 4)) == expected


class FixedSystem:
    """Stands in for a detector (not under test here): returns given spans per text id."""

    def __init__(self, name, by_text):
        self.name, self.by_text, self.warmed = name, by_text, 0

    def warm(self, batch_size):
        self.warmed += 1

    def __call__(self, texts):
        return [self.by_text.get(text, []) for text in texts]


def _write_corpus(root, documents, *, ignore=("ORG",), type_map=None):
    root.mkdir(parents=True, exist_ok=True)
    meta = {"name": "t", "source": "https://example.org/t", "licence": "CC0", "description": "test corpus",
            "type_map": type_map or {"NAME": "PERSON", "PHONE": "PHONE_NUMBER"}, "ignore_types": list(ignore),
            "splits": {"test": "test.jsonl"}}
    (root / "corpus.json").write_text(json.dumps(meta))
    (root / "test.jsonl").write_text("".join(json.dumps(d) + "\n" for d in documents))
    return root


def test_evaluate_batches_systems_and_writes_misses(tmp_path):
    texts = ["Call Ann Lee at 555-0100 about Acme Corp.", "Ann Lee again.", "Nothing here."]
    documents = [
        {"id": "1", "text": texts[0], "spans": [{"start": 5, "end": 12, "type": "NAME"},
                                                {"start": 16, "end": 24, "type": "PHONE"},
                                                {"start": 31, "end": 40, "type": "ORG"}]},
        {"id": "2", "text": texts[1], "spans": [{"start": 0, "end": 7, "type": "NAME"}]},
        {"id": "3", "text": texts[2], "spans": []},
    ]
    corpus = load_corpus(_write_corpus(tmp_path / "c", documents))
    ours = FixedSystem("ours", {texts[0]: [p(5, 12), p(31, 40, "ORGANIZATION")], texts[2]: [p(0, 7)]})
    theirs = FixedSystem("theirs", {texts[0]: [p(5, 24)], texts[1]: [p(0, 7)]})
    misses = io.StringIO()
    result = evaluate(corpus, "test", [ours, theirs], batch_size=2, misses=misses)
    assert ours.warmed == theirs.warmed == 1
    assert (result["texts"], result["chars"], result["ignored_gold_spans"]) == (3, sum(map(len, texts)), 1)
    assert (result["ours"]["found"], result["ours"]["gold_spans"]) == (1, 3)
    assert (result["ours"]["right"], result["ours"]["wrong"], result["ours"]["neutral"]) == (1, 1, 1)
    assert (result["theirs"]["found"], result["theirs"]["precision"]) == (3, 1.0)
    assert "speed_ratio" in result
    records = [json.loads(line) for line in misses.getvalue().splitlines()]
    assert [(r["kind"], r["id"]) for r in records] == [("missed", "1"), ("missed", "2"), ("wrong", "3")]
    phone = records[0]
    assert (phone["gold_type"], phone["text"], phone["baseline_found"]) == ("PHONE", "555-0100", True)
    assert phone["context"] == "Call Ann Lee at [[555-0100]] about Acme Corp."
    assert [n["text"] for n in phone["predicted_nearby"]] == ["Ann Lee", "Acme Corp"]
    assert records[2]["text"] == "Nothing" and records[2]["gold_nearby"] == []
    assert "recall PHONE (n=1)" in format_table(result)


def test_evaluate_limit_reads_only_the_first_texts(tmp_path):
    documents = [{"id": str(i), "text": f"Ann Lee {i}", "spans": [{"start": 0, "end": 7, "type": "NAME"}]}
                 for i in range(5)]
    corpus = load_corpus(_write_corpus(tmp_path / "c", documents))
    result = evaluate(corpus, "test", [FixedSystem("ours", {})], limit=2)
    assert (result["texts"], result["ours"]["gold_spans"], result["ours"]["recall"]) == (2, 2, 0.0)
    assert "speed_ratio" not in result
