"""Writes a converted corpus in the format `securepipe eval pii` reads (docs/PII-EVAL.md).

Shared by the converters in this folder, which use only the standard library and pandas so
that they run anywhere the source data is. Each converter turns one public corpus into
{"id", "text", "spans": [{"start", "end", "type"}]} documents per split; this module checks
every span against its text, writes the split files and `corpus.json` in one step, and can
write a small sample of the same corpus (the first documents of each split, within a byte
budget) for tests and quick runs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

SAMPLE_SPLITS = ("dev", "test")  # what a sample holds: the splits used for tuning and reporting


def hash_split(key: str) -> str:
    """A deterministic 50/50 dev/test assignment by the SHA-256 of `key`."""
    return "dev" if hashlib.sha256(key.encode("utf-8")).digest()[0] % 2 == 0 else "test"


def check_document(document: dict, known_types: set[str]) -> dict:
    """The document if every span lies inside its text and has a known type; else ValueError
    naming the document id and the span number (never the text)."""
    text = document["text"]
    for number, span in enumerate(document["spans"]):
        if not 0 <= span["start"] < span["end"] <= len(text):
            raise ValueError(f"document {document['id']}: span {number} lies outside the text")
        if span["type"] not in known_types:
            raise ValueError(f"document {document['id']}: span {number} has an unmapped type {span['type']!r}")
    return document


def _write_split(path: Path, documents: Iterable[dict], known_types: set[str], budget: int | None) -> int:
    written = size = 0
    with open(path, "w", encoding="utf-8") as out:
        for document in documents:
            line = json.dumps(check_document(document, known_types), ensure_ascii=False) + "\n"
            if budget is not None and written and size + len(line.encode("utf-8")) > budget:
                break
            out.write(line)
            size += len(line.encode("utf-8"))
            written += 1
    return written


def write_corpus(out_dir: Path, meta: dict, splits: dict[str, Iterable[dict]], *,
                 sample_bytes: int | None = None) -> dict[str, int]:
    """Write the corpus into `out_dir`, replacing what was there only once all of it is written.

    With `sample_bytes`, only the dev and test splits are written, each with the first
    documents that fit in its share of the budget (at least one).
    """
    if sample_bytes is not None:
        splits = {name: documents for name, documents in splits.items() if name in SAMPLE_SPLITS}
    known_types = set(meta["type_map"]) | set(meta["ignore_types"])
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        staging.chmod(0o755)
        counts = {}
        for name, documents in splits.items():
            share = None if sample_bytes is None else (sample_bytes - 2048) // len(splits)
            counts[name] = _write_split(staging / f"{name}.jsonl", documents, known_types, share)
        description = meta["description"]
        if sample_bytes is not None:
            description += f" This is a sample: the first documents of each split, {sample_bytes} bytes at most."
        corpus = {**meta, "description": description, "splits": {name: f"{name}.jsonl" for name in splits}}
        (staging / "corpus.json").write_text(json.dumps(corpus, indent=2, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return counts


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("source", type=Path, help="the corpus as published (a checkout or an unpacked download)")
    parser.add_argument("out", type=Path, help="directory to write the converted corpus into")
    parser.add_argument("--sample-bytes", type=int, default=None,
                        help="write only a sample of the dev and test splits, this many bytes at most")
    args = parser.parse_args()
    if not args.source.is_dir():
        parser.error(f"{args.source}: not a directory (docs/PII-EVAL.md says where each corpus comes from)")
    return args


def group_by_split(documents: Iterable[dict]) -> dict[str, list[dict]]:
    """Documents that carry their split under "split", grouped by it (dev first, then test)."""
    splits: dict[str, list[dict]] = {"dev": [], "test": []}
    for document in documents:
        splits.setdefault(document["split"], []).append({k: v for k, v in document.items() if k != "split"})
    return splits


def run(description: str, meta: dict, convert: Callable[[Path], tuple[dict[str, list[dict]], int]]) -> None:
    """A converter's command line: `convert(source)` gives the splits and the number of
    annotations it left out; they are written and reported."""
    args = arguments(description)
    splits, skipped = convert(args.source)
    counts = write_corpus(args.out, meta, splits, sample_bytes=args.sample_bytes)
    listed = ", ".join(f"{split} {count}" for split, count in counts.items())
    note = f"; {skipped} annotations skipped (see the converter)" if skipped else ""
    print(f"{meta['name']}: wrote {args.out} ({listed} documents{note})")
