"""Convert the Text Anonymization Benchmark (TAB): English court judgments, human-annotated.

Source: https://github.com/NorskRegnesentral/text-anonymization-benchmark (MIT licence),
files `echr_train.json`, `echr_dev.json`, `echr_test.json`: 1,268 judgments of the European
Court of Human Rights, each with the mentions one or more annotators marked
({entity_type, start_offset, end_offset, span_text, identifier_type, ...}).

Choices, applied the same way to every document:
- Annotator: the lowest-numbered annotator among those the document lists in
  `quality_checked`, or among all its annotators when it lists none (train documents have
  one annotator; dev and test documents several).
- What counts: mentions the annotator marked DIRECT or QUASI identifiers (what must be
  masked to protect the person) of types PERSON, LOC, DATETIME, CODE and MISC. Mentions of
  those types marked NO_MASK become the ignored type NO_MASK: a detector that masks them
  is not wrong, and need not find them.
- Ignored: ORG, DEM (demographics, nationalities, job titles) and QUANTITY, whatever their
  identifier type, and an honorific ("Mr", "Mrs", "Ms", "Miss", "Dr", ...) that opens a
  PERSON mention, which becomes a separate ignored TITLE span.
- A mention whose offsets do not match its `span_text` is left out and counted.
The published train/dev/test split is kept.
Usage: python convert_tab.py TAB_CHECKOUT OUT_DIR [--sample-bytes N]
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from corpus_writer import run

SPLIT_FILES = {"train": "echr_train.json", "dev": "echr_dev.json", "test": "echr_test.json"}
MASKED = {"DIRECT", "QUASI"}
COUNTED_TYPES = {"PERSON", "LOC", "DATETIME", "CODE", "MISC"}
IGNORED_TYPES = {"ORG", "DEM", "QUANTITY"}
TITLE = re.compile(r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor|Sir|Dame|Lord|Lady)\.?\s+")
META = {
    "name": "tab-echr",
    "source": "https://github.com/NorskRegnesentral/text-anonymization-benchmark",
    "licence": "MIT",
    "description": (
        "Text Anonymization Benchmark: English judgments of the European Court of Human Rights, annotated by "
        "hand. Counted: mentions marked DIRECT or QUASI identifiers (persons, places, dates, codes such as "
        "application numbers, other identifying facts), from the lowest-numbered quality-checked annotator "
        "of each document. Ignored: organisations, demographics, quantities, honorifics before names, and "
        "mentions the annotator marked NO_MASK. Published train/dev/test split."
    ),
    "type_map": {"PERSON": "PERSON", "LOC": None, "DATETIME": "DATE_TIME", "CODE": None, "MISC": None},
    "ignore_types": ["ORG", "DEM", "QUANTITY", "TITLE", "NO_MASK"],
}


def _annotator(document: dict) -> str:
    def number(name: str) -> tuple[int, str]:
        digits = re.sub(r"\D", "", name)
        return (int(digits) if digits else 0, name)

    candidates = [a for a in document.get("quality_checked") or [] if a in document["annotations"]]
    return min(candidates or document["annotations"], key=number)


def _spans(mention: dict) -> list[dict]:
    kind, start, end = mention["entity_type"], mention["start_offset"], mention["end_offset"]
    if kind in IGNORED_TYPES:
        return [{"start": start, "end": end, "type": kind}]
    if kind not in COUNTED_TYPES:
        raise ValueError(f"mention {mention.get('entity_mention_id')}: unknown entity type {kind!r}")
    if mention.get("identifier_type") not in MASKED:
        return [{"start": start, "end": end, "type": "NO_MASK"}]
    title = TITLE.match(mention["span_text"]) if kind == "PERSON" else None
    if title and title.end() < end - start:
        return [{"start": start, "end": start + len(title.group(0).rstrip()), "type": "TITLE"},
                {"start": start + title.end(), "end": end, "type": kind}]
    return [{"start": start, "end": end, "type": kind}]


def convert_document(document: dict) -> tuple[dict, int]:
    """The converted document and the number of mentions left out for bad offsets."""
    text = document["text"]
    spans, skipped = [], 0
    for mention in document["annotations"][_annotator(document)]["entity_mentions"]:
        if text[mention["start_offset"]:mention["end_offset"]] != mention["span_text"]:
            skipped += 1
            continue
        spans += _spans(mention)
    return {"id": document["doc_id"], "text": text, "spans": sorted(spans, key=lambda s: (s["start"], s["end"]))}, \
        skipped


def splits(source: Path) -> tuple[dict[str, list[dict]], int]:
    """The converted splits found in `source` and the number of mentions left out."""
    converted: dict[str, list[dict]] = {}
    skipped = 0
    for split, file in SPLIT_FILES.items():
        path = source / file
        if not path.exists():
            continue  # a checkout without the training split can still give dev and test
        converted[split] = []
        for document in json.loads(path.read_text(encoding="utf-8")):
            result, missed = convert_document(document)
            converted[split].append(result)
            skipped += missed
    if not converted:
        raise SystemExit(f"no {', '.join(SPLIT_FILES.values())} in {source}")
    return converted, skipped


def main() -> None:
    run(__doc__.splitlines()[0], META, splits)

if __name__ == "__main__":
    main()
