"""The corpus format of `securepipe eval pii`: what loads, and what is refused with file, row and field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from securepipe.bench.corpus_format import GoldSpan, load_corpus
from securepipe.errors import InputError

FIXTURE = Path(__file__).parent / "fixtures" / "tiny"
META = {"name": "t", "source": "https://example.org/t", "licence": "CC0", "description": "test corpus",
        "type_map": {"NAME": "PERSON", "CASE": None}, "ignore_types": ["ORG"], "splits": {"test": "test.jsonl"}}
GOOD = {"id": "1", "text": "Ann Lee of Acme", "spans": [{"start": 0, "end": 7, "type": "NAME"},
                                                         {"start": 11, "end": 15, "type": "ORG"}]}


def _corpus(tmp_path, meta=META, lines=(GOOD,)):
    (tmp_path / "corpus.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    (tmp_path / "test.jsonl").write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return tmp_path


def test_fixture_loads_with_its_splits():
    corpus = load_corpus(FIXTURE)
    assert corpus.name == "tiny" and set(corpus.splits) == {"test", "dev"}
    assert corpus.type_map["CASE"] is None and corpus.ignore_types == {"ORG", "TITLE"}
    documents = list(corpus.documents("test"))
    assert [d.id for d in documents] == ["t1", "t2", "t3"]
    assert documents[0].spans[1] == GoldSpan(3, 21, "NAME")
    assert documents[0].text[3:21] == "Jonathan Whitfield"
    assert [d.id for d in corpus.documents("test", limit=1)] == ["t1"]


@pytest.mark.parametrize("meta, message", [
    ("{not json", "not a UTF-8 JSON object"),
    ({**META, "licence": ""}, "column 'licence': expected a non-empty string"),
    ({k: v for k, v in META.items() if k != "source"}, "column 'source'"),
    ({**META, "type_map": {}}, "column 'type_map'"),
    ({**META, "type_map": {"NAME": 3}}, "column 'type_map'"),
    ({**META, "ignore_types": "ORG"}, "column 'ignore_types': expected a list"),
    ({**META, "ignore_types": ["ORG", "NAME"]}, "types both mapped and ignored: NAME"),
    ({**META, "splits": {}}, "column 'splits'"),
    ({**META, "splits": {"test": "../outside.jsonl"}}, "must lie inside the corpus directory"),
    ({**META, "splits": {"test": "/etc/passwd"}}, "must lie inside the corpus directory"),
])
def test_bad_corpus_json_is_refused(tmp_path, meta, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        load_corpus(_corpus(tmp_path, meta))


SECRET = "Zebulon Quartermaine"


@pytest.mark.parametrize("line, message", [
    ("{broken", "row 1: not a UTF-8 JSON object"),
    ("[1, 2]", "row 1: not a JSON object"),
    ({"id": 1, "text": SECRET, "spans": []}, "row 1, column 'id': expected str"),
    ({"id": "1", "spans": []}, "row 1, column 'text'"),
    ({"id": "1", "text": SECRET}, "row 1, column 'spans'"),
    ({"id": "1", "text": SECRET, "spans": ["x"]}, r"column 'spans\[0\]': expected an object"),
    ({"id": "1", "text": SECRET, "spans": [{"start": 0, "end": 99, "type": "NAME"}]}, "offsets outside the text"),
    ({"id": "1", "text": SECRET, "spans": [{"start": 5, "end": 5, "type": "NAME"}]}, "offsets outside the text"),
    ({"id": "1", "text": SECRET, "spans": [{"start": -1, "end": 3, "type": "NAME"}]}, "offsets outside the text"),
    ({"id": "1", "text": SECRET, "spans": [{"start": "0", "end": 3, "type": "NAME"}]}, "must be integers"),
    ({"id": "1", "text": SECRET, "spans": [{"start": 0, "end": 7, "type": "JOB"}]},
     "neither in type_map nor in ignore_types"),
])
def test_bad_document_is_refused_without_its_text(tmp_path, line, message):
    corpus = load_corpus(_corpus(tmp_path, lines=[line]))
    with pytest.raises(InputError, match=message) as error:
        list(corpus.documents("test"))
    assert "test.jsonl" in str(error.value) and SECRET not in str(error.value)


def test_duplicate_id_and_unknown_split_are_refused(tmp_path):
    corpus = load_corpus(_corpus(tmp_path, lines=[GOOD, "", GOOD]))
    with pytest.raises(InputError, match="row 3, column 'id': duplicate id"):
        list(corpus.documents("test"))
    with pytest.raises(InputError, match="no split 'dev' \\(this corpus has: test\\)"):
        corpus.split_path("dev")


def test_missing_corpus_is_refused(tmp_path):
    with pytest.raises(InputError, match="corpus.json: file not found"):
        load_corpus(tmp_path / "none")
