"""A labeled PII corpus on disk: `corpus.json` plus one JSONL file per split.

Format (docs/PII-EVAL.md says it in full):
- `corpus.json`: {"name", "source", "licence", "description", "type_map", "ignore_types",
  "splits"}. `type_map` maps each gold type that is personal data to this project's
  entity type, or to null where there is none; `ignore_types` lists the gold types that
  are not personal data in this corpus; `splits` maps a split name to its JSONL file,
  relative to the corpus directory.
- each split: one {"id", "text", "spans": [{"start", "end", "type"}]} per line,
  character offsets into `text`, end exclusive.

Every gold type must be either mapped or ignored, so that a corpus author decides what
counts; an unknown type is an error, not a silent miss.
Threat model: a corpus holds personal data (real or realistic). Errors name the file,
row and field, never a value from it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from securepipe.errors import InputError

CORPUS_FILE = "corpus.json"
_REQUIRED_TEXT_FIELDS = ("name", "source", "licence", "description")


@dataclass(frozen=True)
class GoldSpan:
    start: int
    end: int
    type: str


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    spans: tuple[GoldSpan, ...]


@dataclass(frozen=True)
class Corpus:
    root: Path
    name: str
    source: str
    licence: str
    description: str
    type_map: dict[str, str | None]
    ignore_types: frozenset[str]
    splits: dict[str, str]

    def split_path(self, split: str) -> Path:
        if split not in self.splits:
            raise InputError(CORPUS_FILE, f"no split {split!r} (this corpus has: {', '.join(sorted(self.splits))})",
                             column="splits")
        return self.root / self.splits[split]

    def count_documents(self, split: str) -> int:
        """Non-blank lines of the split file (one document each), without parsing them: a progress total."""
        try:
            with open(self.split_path(split), "rb") as handle:
                return sum(1 for line in handle if line.strip())
        except FileNotFoundError:
            return 0  # documents() says so when it is read

    def documents(self, split: str, limit: int | None = None) -> Iterator[Document]:
        """The split's documents in file order, validated one line at a time."""
        path = self.split_path(split)
        known = set(self.type_map) | self.ignore_types
        seen: set[str] = set()
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            raise InputError(path.name, "split file not found") from None
        with handle:
            count = 0
            for row, raw in enumerate(handle, start=1):
                if limit is not None and count >= limit:
                    return
                if not raw.strip():
                    continue
                document = _parse_document(raw, path.name, row, known)
                if document.id in seen:
                    raise InputError(path.name, "duplicate id", row=row, column="id")
                seen.add(document.id)
                count += 1
                yield document


def _parse_document(raw: bytes, file: str, row: int, known: set[str]) -> Document:
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(file, "not a UTF-8 JSON object", row=row) from None
    if not isinstance(record, dict):
        raise InputError(file, "not a JSON object", row=row)
    for field, kind in (("id", str), ("text", str), ("spans", list)):
        if not isinstance(record.get(field), kind):
            raise InputError(file, f"expected {kind.__name__}", row=row, column=field)
    text = record["text"]
    spans = []
    for number, span in enumerate(record["spans"]):
        field = f"spans[{number}]"
        if not isinstance(span, dict):
            raise InputError(file, "expected an object", row=row, column=field)
        start, end, kind = span.get("start"), span.get("end"), span.get("type")
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or isinstance(end, bool):
            raise InputError(file, "start and end must be integers", row=row, column=field)
        if not 0 <= start < end <= len(text):
            raise InputError(file, f"offsets outside the text (0 <= start < end <= {len(text)})", row=row, column=field)
        if not isinstance(kind, str) or kind not in known:
            raise InputError(file, "type is neither in type_map nor in ignore_types of corpus.json",
                             row=row, column=field)
        spans.append(GoldSpan(start, end, kind))
    return Document(record["id"], text, tuple(spans))


def load_corpus(directory: str | Path) -> Corpus:
    """Read and check `corpus.json`; the split files are read lazily by `Corpus.documents`."""
    root = Path(directory)
    path = root / CORPUS_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{root.name}/{CORPUS_FILE}", "file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(CORPUS_FILE, "not a UTF-8 JSON object") from None
    if not isinstance(meta, dict):
        raise InputError(CORPUS_FILE, "not a JSON object")
    for field in _REQUIRED_TEXT_FIELDS:
        if not isinstance(meta.get(field), str) or not meta[field].strip():
            raise InputError(CORPUS_FILE, "expected a non-empty string", column=field)
    type_map = meta.get("type_map")
    if not isinstance(type_map, dict) or not type_map \
            or not all(isinstance(v, str) or v is None for v in type_map.values()):
        raise InputError(CORPUS_FILE, "expected a non-empty object of gold type -> entity type or null",
                         column="type_map")
    ignore = meta.get("ignore_types", [])
    if not isinstance(ignore, list) or not all(isinstance(v, str) for v in ignore):
        raise InputError(CORPUS_FILE, "expected a list of strings", column="ignore_types")
    both = set(type_map) & set(ignore)
    if both:
        raise InputError(CORPUS_FILE, f"types both mapped and ignored: {', '.join(sorted(both))}",
                         column="ignore_types")
    splits = meta.get("splits")
    if not isinstance(splits, dict) or not splits or not all(isinstance(v, str) for v in splits.values()):
        raise InputError(CORPUS_FILE, "expected a non-empty object of split name -> JSONL file", column="splits")
    for name, relative in splits.items():
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise InputError(CORPUS_FILE, f"split {name!r}: the file must lie inside the corpus directory",
                             column="splits")
    return Corpus(root=root, name=meta["name"], source=meta["source"], licence=meta["licence"],
                  description=meta["description"], type_map=dict(type_map), ignore_types=frozenset(ignore),
                  splits=dict(splits))
