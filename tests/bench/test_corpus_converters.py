"""The converters in benchmarks/corpora/, on small sources written here in each corpus's published format.

The converted output must load with `securepipe.bench.corpus_format` (the format contract),
and each converter's choices (annotator, ignored types, splits) must hold.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from securepipe.bench.corpus_format import load_corpus

CONVERTERS = Path(__file__).resolve().parents[2] / "benchmarks" / "corpora"
sys.path.insert(0, str(CONVERTERS))

import corpus_writer  # noqa: E402
import convert_physionet_deid  # noqa: E402
import convert_tab  # noqa: E402


def _convert(script: str, source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CONVERTERS / script), str(source), str(out), *extra],
                          capture_output=True, text=True, check=False)


def _documents(out: Path, split: str) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """id -> (text, [(type, covered text)]) through the loader that `eval pii` uses."""
    corpus = load_corpus(out)
    return {d.id: (d.text, [(s.type, d.text[s.start:s.end]) for s in d.spans]) for d in corpus.documents(split)}


# --- TAB -----------------------------------------------------------------------------------------
TAB_TEXT = "The applicant, Mr Ivo Brandt, lives in Ghent. He was born in 1961 and works at Acme Bank (no. 12345/06)."


def _mention(kind, needle, identifier="QUASI", text=TAB_TEXT, span_text=None):
    start = text.index(needle)
    return {"entity_type": kind, "entity_mention_id": f"m-{needle}", "start_offset": start,
            "end_offset": start + len(needle), "span_text": span_text or needle, "identifier_type": identifier}


def _tab_document(doc_id, annotations, quality_checked):
    return {"doc_id": doc_id, "text": TAB_TEXT, "annotations": annotations, "quality_checked": quality_checked,
            "dataset_type": "test"}


def test_tab_conversion_keeps_identifiers_and_ignores_the_rest(tmp_path):
    chosen = {"entity_mentions": [
        _mention("PERSON", "Mr Ivo Brandt", "DIRECT"), _mention("LOC", "Ghent"), _mention("DATETIME", "1961"),
        _mention("ORG", "Acme Bank"), _mention("CODE", "12345/06", "DIRECT"), _mention("DEM", "works", "NO_MASK"),
        _mention("LOC", "Acme", "NO_MASK"),
        _mention("DATETIME", "born", span_text="borne"),  # offsets that do not match: left out, counted
    ]}
    other = {"entity_mentions": [_mention("PERSON", "applicant", "DIRECT")]}
    source = tmp_path / "tab"
    source.mkdir()
    (source / "echr_test.json").write_text(json.dumps([
        # annotator2 is quality-checked, annotator1 is not: annotator2 is used
        _tab_document("d1", {"annotator1": other, "annotator2": chosen}, ["annotator2"]),
        # none quality-checked: the lowest-numbered annotator is used (annotator10 sorts after annotator2)
        _tab_document("d2", {"annotator10": other, "annotator2": chosen}, []),
    ]))
    (source / "echr_dev.json").write_text(json.dumps([_tab_document("d3", {"annotator1": chosen}, ["annotator1"])]))
    done = _convert("convert_tab.py", source, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "3 annotations skipped" in done.stdout  # one per document
    assert set(load_corpus(tmp_path / "out").splits) == {"dev", "test"}
    documents = _documents(tmp_path / "out", "test")
    expected = [("TITLE", "Mr"), ("PERSON", "Ivo Brandt"), ("LOC", "Ghent"), ("DATETIME", "1961"),
                ("ORG", "Acme Bank"), ("NO_MASK", "Acme"), ("CODE", "12345/06")]
    assert sorted(documents["d1"][1]) == sorted(expected + [("DEM", "works")])
    assert documents["d1"][1] == documents["d2"][1]
    assert ("PERSON", "applicant") not in documents["d1"][1]


@pytest.mark.parametrize("span_text, expected", [
    ("Mr Ivo Brandt", [("TITLE", "Mr"), ("PERSON", "Ivo Brandt")]),
    ("Dr. Ivo", [("TITLE", "Dr."), ("PERSON", "Ivo")]),
    ("Mr", [("PERSON", "Mr")]),  # a title alone stays what the annotator said
    ("Mrsa Ivo", [("PERSON", "Mrsa Ivo")]),  # not a title
])
def test_tab_title_is_split_from_a_person(span_text, expected):
    text = f"Seen: {span_text}."
    document = {"doc_id": "d", "text": text, "quality_checked": ["annotator1"],
                "annotations": {"annotator1": {"entity_mentions": [_mention("PERSON", span_text, "DIRECT", text)]}}}
    converted, skipped = convert_tab.convert_document(document)
    assert skipped == 0
    assert [(s["type"], text[s["start"]:s["end"]]) for s in converted["spans"]] == expected


def test_tab_refuses_an_unknown_entity_type():
    document = {"doc_id": "d", "text": TAB_TEXT, "quality_checked": [],
                "annotations": {"annotator1": {"entity_mentions": [_mention("JOB", "works")]}}}
    with pytest.raises(ValueError, match="unknown entity type 'JOB'"):
        convert_tab.convert_document(document)


# --- presidio-research ---------------------------------------------------------------------------
def test_presidio_research_conversion_splits_by_template(tmp_path):
    sentences = [(1, "Call Ann Lee at Acme.", [("PERSON", "Ann Lee"), ("ORGANIZATION", "Acme")]),
                 (1, "Call Bo Wu at Initech.", [("PERSON", "Bo Wu"), ("ORGANIZATION", "Initech")]),
                 (2, "My IBAN is DE89370400440532013000", [("IBAN_CODE", "DE89370400440532013000")]),
                 (3, "What are my options?", [])]
    records = [{"full_text": text, "template_id": template, "spans": [
        {"entity_type": kind, "entity_value": value, "start_position": text.index(value),
         "end_position": text.index(value) + len(value)} for kind, value in spans]}
        for template, text, spans in sentences]
    (tmp_path / "pr" / "data").mkdir(parents=True)
    (tmp_path / "pr" / "data" / "synth_dataset_v2.json").write_text(json.dumps(records))
    done = _convert("convert_presidio_research.py", tmp_path / "pr", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    by_split = {split: _documents(tmp_path / "out", split) for split in ("dev", "test")}
    converted = {**by_split["dev"], **by_split["test"]}
    assert converted["synth-0000"][1] == [("PERSON", "Ann Lee"), ("ORGANIZATION", "Acme")]
    assert converted["synth-0003"][1] == []
    same_template = {split for split, documents in by_split.items() if {"synth-0000", "synth-0001"} & set(documents)}
    assert len(same_template) == 1  # one template, one split


# --- PhysioNet deid ------------------------------------------------------------------------------
NOTES = [("7", "1", "PT SEEN BY DR SMITH ON 3/14. WIFE MARY AT BEDSIDE.\n"),
         ("7", "2", "NO CHANGES.\n"),
         ("12", "1", "CALL 617-555-0142 RE: MRS JONES.\n")]
PHRASES = [("7", "1", "SMITH", "HCPName"), ("7", "1", "3/14", "Date"), ("7", "1", "MARY", "RelativeProxyName"),
           ("12", "1", "617-555-0142", "Phone"), ("12", "1", "JONES", "PTName")]


def _deid_source(root: Path, phrases=PHRASES) -> Path:
    root.mkdir()
    bodies = {(p, n): body for p, n, body in NOTES}
    (root / "id.text").write_text("".join(f"START_OF_RECORD={p}||||{n}||||\n{body}||||END_OF_RECORD\n\n"
                                          for p, n, body in NOTES))
    lines = []
    for patient, note, phrase, kind in phrases:
        start = bodies[(patient, note)].find(phrase)
        lines.append(f"{patient} {note} {start} {start + len(phrase)} {kind} {phrase}\n")
    (root / "id-phi.phrase").write_text("".join(lines))
    return root


def test_deid_conversion_splits_by_patient(tmp_path):
    source = _deid_source(tmp_path / "deid")
    done = _convert("convert_physionet_deid.py", source, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    converted = {**_documents(tmp_path / "out", "dev"), **_documents(tmp_path / "out", "test")}
    assert set(converted) == {"7-1", "7-2", "12-1"}
    assert converted["7-1"][1] == [("HCPName", "SMITH"), ("Date", "3/14"), ("RelativeProxyName", "MARY")]
    assert converted["7-2"][1] == []
    patient_split = {patient: corpus_writer.hash_split(f"patient-{patient}") for patient in ("7", "12")}
    for split in ("dev", "test"):
        ids = set(_documents(tmp_path / "out", split))
        assert ids == {i for i in converted if patient_split[i.split("-")[0]] == split}


def test_deid_refuses_offsets_that_do_not_match(tmp_path):
    source = _deid_source(tmp_path / "deid")
    (source / "id-phi.phrase").write_text("7 1 0 4 PTName SMITH\n")
    with pytest.raises(ValueError, match="row 1: offsets do not match"):
        convert_physionet_deid.documents(source)


# --- the writer ----------------------------------------------------------------------------------
META = {"name": "t", "source": "https://example.org", "licence": "CC0", "description": "test.",
        "type_map": {"NAME": "PERSON"}, "ignore_types": ["ORG"]}


def test_writer_sample_keeps_dev_and_test_within_the_budget(tmp_path):
    documents = [{"id": str(i), "text": "Ann Lee " * 50, "spans": [{"start": 0, "end": 7, "type": "NAME"}]}
                 for i in range(100)]
    counts = corpus_writer.write_corpus(tmp_path / "c", META, {"train": documents, "dev": documents,
                                                               "test": documents}, sample_bytes=20_000)
    assert set(counts) == {"dev", "test"} and 0 < counts["test"] < 100
    assert sum(p.stat().st_size for p in (tmp_path / "c").iterdir()) <= 20_000
    assert "This is a sample" in load_corpus(tmp_path / "c").description


@pytest.mark.parametrize("span, message", [
    ({"start": 0, "end": 99, "type": "NAME"}, "span 0 lies outside the text"),
    ({"start": 3, "end": 3, "type": "NAME"}, "span 0 lies outside the text"),
    ({"start": 0, "end": 3, "type": "JOB"}, "unmapped type 'JOB'"),
])
def test_writer_refuses_bad_spans_and_leaves_no_partial_corpus(tmp_path, span, message):
    with pytest.raises(ValueError, match=message):
        corpus_writer.write_corpus(tmp_path / "c", META, {"test": [{"id": "x", "text": "Ann", "spans": [span]}]})
    assert not (tmp_path / "c").exists() and list(tmp_path.iterdir()) == []


def test_hash_split_is_deterministic_and_roughly_even():
    splits = [corpus_writer.hash_split(f"key-{i}") for i in range(1000)]
    assert splits == [corpus_writer.hash_split(f"key-{i}") for i in range(1000)]
    assert 400 < splits.count("dev") < 600


def test_converter_refuses_a_missing_source(tmp_path):
    done = _convert("convert_presidio_research.py", tmp_path / "absent", tmp_path / "out")
    assert done.returncode == 2 and "not a directory" in done.stderr
