"""`securepipe eval pii`: recall, precision and F2 of free-text PII detection on a labeled corpus.

Why: a detector measured on the project's own generator scores the code written for that
generator. This runs exactly what `securepipe pii detect` runs (`detect_texts`, in the
same batches) on corpora written elsewhere, and Presidio's default analyzer with the same
small spaCy model on the same texts in the same run, so that the two are comparable.

Scoring is by characters, and entity types are not compared (for masking, a covered
identifier is masked whatever it was called):
- recall: a gold span is found when the predicted spans, of any type, together cover at
  least 80% of its characters; recall = found / gold spans, spans of ignored types left out;
- precision: a predicted span is right when at least 50% of its characters lie inside
  gold spans that count, neutral when instead at least 50% lie inside ignored spans,
  right when at least 50% lie inside gold spans of any kind together, else wrong;
  precision = right / (right + wrong);
- F2 weighs recall four times as much as precision: a miss publishes an identifier, a
  false alarm only masks a word.
Threat model: the figures are counts. Only `--misses` writes corpus text, to a file the
caller names, and the command warns that it does.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, NamedTuple, Sequence, TextIO

from securepipe.bench.corpus_format import Corpus, Document, GoldSpan

RECALL_COVER = 0.8  # share of a gold span's characters that predictions must cover
PRECISION_INSIDE = 0.5  # share of a prediction's characters that must lie inside gold spans
CONTEXT_CHARS = 60  # context written on each side of a span by --misses
RIGHT, WRONG, NEUTRAL = "right", "wrong", "neutral"
WARM_TEXT = "Seen by Dr. Anna Berg on 3 March 2021, phone (617) 555-0142."


class Predicted(NamedTuple):
    start: int
    end: int
    entity_type: str


@dataclass(frozen=True)
class DocumentScore:
    covered: tuple[float, ...]  # per gold span, in order: share of its characters predictions cover
    verdicts: tuple[str | None, ...]  # per prediction, in order; None for an empty one


def _mask(length: int, spans: Iterable) -> bytearray:
    mask = bytearray(length)
    for span in spans:
        start, end = max(0, span.start), min(length, span.end)
        if start < end:
            mask[start:end] = b"\x01" * (end - start)
    return mask


def score_document(text_length: int, gold: Sequence[GoldSpan], predicted: Sequence[Predicted],
                   ignore_types: frozenset[str] | set[str]) -> DocumentScore:
    """Coverage of each gold span and the verdict on each prediction (see the module doc)."""
    predicted_mask = _mask(text_length, predicted)
    counted_mask = _mask(text_length, (g for g in gold if g.type not in ignore_types))
    ignored_mask = _mask(text_length, (g for g in gold if g.type in ignore_types))
    any_mask = _mask(text_length, gold)
    covered = tuple(predicted_mask[g.start:g.end].count(1) / (g.end - g.start) for g in gold)
    verdicts: list[str | None] = []
    for p in predicted:
        start, end = max(0, p.start), min(text_length, p.end)
        if start >= end:
            verdicts.append(None)
            continue
        need = PRECISION_INSIDE * (end - start)
        if counted_mask[start:end].count(1) >= need:
            verdicts.append(RIGHT)
        elif ignored_mask[start:end].count(1) >= need:
            verdicts.append(NEUTRAL)
        elif any_mask[start:end].count(1) >= need:
            verdicts.append(RIGHT)
        else:
            verdicts.append(WRONG)
    return DocumentScore(covered, tuple(verdicts))


def f_beta(precision: float | None, recall: float | None, beta: float = 2.0) -> float | None:
    if precision is None or recall is None:
        return None
    if precision == 0 and recall == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class Tally:
    """One system's counts over a corpus split."""

    gold: int = 0
    found: int = 0
    right: int = 0
    wrong: int = 0
    neutral: int = 0
    seconds: float = 0.0
    per_type: dict[str, list[int]] = field(default_factory=dict)  # gold type -> [gold, found]

    def add(self, document: Document, score: DocumentScore, ignore_types: frozenset[str]) -> None:
        for span, covered in zip(document.spans, score.covered):
            if span.type in ignore_types:
                continue
            hit = covered >= RECALL_COVER
            self.gold += 1
            self.found += hit
            counts = self.per_type.setdefault(span.type, [0, 0])
            counts[0] += 1
            counts[1] += hit
        self.right += score.verdicts.count(RIGHT)
        self.wrong += score.verdicts.count(WRONG)
        self.neutral += score.verdicts.count(NEUTRAL)

    def summary(self, texts: int, chars: int, type_map: dict[str, str | None]) -> dict:
        recall = _ratio(self.found, self.gold)
        precision = _ratio(self.right, self.right + self.wrong)
        f2 = f_beta(precision, recall)
        seconds = max(self.seconds, 1e-9)
        return {
            "recall": recall,
            "precision": precision,
            "f2": None if f2 is None else round(f2, 4),
            "gold_spans": self.gold,
            "found": self.found,
            "predicted_spans": self.right + self.wrong + self.neutral,
            "right": self.right,
            "wrong": self.wrong,
            "neutral": self.neutral,
            "per_type": {
                kind: {"maps_to": type_map.get(kind), "gold": gold, "found": found, "recall": _ratio(found, gold)}
                for kind, (gold, found) in sorted(self.per_type.items())
            },
            "seconds": round(self.seconds, 3),
            "texts_per_s": round(texts / seconds, 1),
            "chars_per_s": round(chars / seconds, 1),
        }


# --- the two systems -----------------------------------------------------------------------------
class SecurePipeDetector:
    """What `securepipe pii detect` runs: `detect_texts`, batch by batch."""

    name = "securepipe"

    def warm(self, batch_size: int) -> None:
        # Load spaCy (a text whose names the shapes catch never reaches it) and the recognizers,
        # and start the worker pool if the batches are large enough to be sharded.
        from securepipe.pii.text import SHARD_MIN_TEXTS, detect_texts, load_nlp

        load_nlp()
        detect_texts([WARM_TEXT] * (SHARD_MIN_TEXTS if batch_size >= SHARD_MIN_TEXTS else 1))

    def __call__(self, texts: Sequence[str]) -> list[list[Predicted]]:
        from securepipe.pii.text import detect_texts

        return [[Predicted(s.start, s.end, s.entity_type) for s in spans] for spans in detect_texts(texts)]


class PresidioBaseline:
    """Presidio's `AnalyzerEngine`, default recognizers, the same spaCy model, batched."""

    name = "presidio"
    BATCH_SIZE = 64

    def __init__(self):
        os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # no suffix-list download
        from securepipe.pii.bench import _presidio

        self._analyzer, _ = _presidio()

    def warm(self, batch_size: int) -> None:
        self([WARM_TEXT])

    def __call__(self, texts: Sequence[str]) -> list[list[Predicted]]:
        found = self._analyzer.analyze_iterator(list(texts), language="en", batch_size=self.BATCH_SIZE)
        return [[Predicted(r.start, r.end, r.entity_type) for r in results] for results in found]


# --- the evaluation ------------------------------------------------------------------------------
def _batches(documents: Iterator[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for document in documents:
        batch.append(document)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _context(text: str, start: int, end: int) -> tuple[int, int, str]:
    left, right = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
    return left, right, f"{text[left:start]}[[{text[start:end]}]]{text[end:right]}"


def _miss_records(document: Document, predicted: Sequence[Predicted], score: DocumentScore,
                  ignore_types: frozenset[str], baseline: DocumentScore | None) -> Iterator[dict]:
    """Each missed gold span and each wrong prediction of one document, with context."""
    text = document.text
    for number, (span, covered) in enumerate(zip(document.spans, score.covered)):
        if span.type in ignore_types or covered >= RECALL_COVER:
            continue
        left, right, context = _context(text, span.start, span.end)
        record = {
            "kind": "missed", "id": document.id, "gold_type": span.type, "start": span.start, "end": span.end,
            "text": text[span.start:span.end], "covered": round(covered, 3), "context": context,
            "predicted_nearby": [{"start": p.start, "end": p.end, "entity_type": p.entity_type,
                                  "text": text[p.start:p.end]} for p in predicted if p.start < right and left < p.end],
        }
        if baseline is not None:
            record["baseline_found"] = baseline.covered[number] >= RECALL_COVER
        yield record
    for p, verdict in zip(predicted, score.verdicts):
        if verdict != WRONG:
            continue
        left, right, context = _context(text, p.start, p.end)
        yield {
            "kind": "wrong", "id": document.id, "entity_type": p.entity_type, "start": p.start, "end": p.end,
            "text": text[p.start:p.end], "context": context,
            "gold_nearby": [{"start": g.start, "end": g.end, "type": g.type, "text": text[g.start:g.end]}
                            for g in document.spans if g.start < right and left < g.end],
        }


def evaluate(corpus: Corpus, split: str, systems: Sequence, *, limit: int | None = None,
             batch_size: int | None = None, misses: TextIO | None = None, progress=None) -> dict:
    """Score each system on the split, batch by batch (memory stays flat in the corpus size).
    `progress`: a securepipe.progress.Progress advanced by the texts of each batch scored.

    `systems[0]` is the one under test: `misses` receives its misses and wrong predictions,
    and `speed_ratio` is its speed over that of `systems[1]`, when there is one.
    """
    if batch_size is None:
        from securepipe.pii.cli import DETECT_BATCH

        batch_size = DETECT_BATCH
    tallies = {system.name: Tally() for system in systems}
    texts = chars = ignored_gold = 0
    warmed = False
    for batch in _batches(corpus.documents(split, limit), batch_size):
        if not warmed:
            for system in systems:
                system.warm(len(batch))
            warmed = True
        inputs = [document.text for document in batch]
        results = {}
        for system in systems:
            started = time.perf_counter()
            results[system.name] = system(inputs)
            tallies[system.name].seconds += time.perf_counter() - started
        for index, document in enumerate(batch):
            scores = {name: score_document(len(document.text), document.spans, found[index], corpus.ignore_types)
                      for name, found in results.items()}
            for name, score in scores.items():
                tallies[name].add(document, score, corpus.ignore_types)
            if misses is not None:
                main = systems[0].name
                baseline = scores[systems[1].name] if len(systems) > 1 else None
                for record in _miss_records(document, results[main][index], scores[main], corpus.ignore_types,
                                            baseline):
                    misses.write(json.dumps(record, ensure_ascii=False) + "\n")
        texts += len(batch)
        if progress is not None:
            progress.advance(len(batch))
        chars += sum(len(text) for text in inputs)
        ignored_gold += sum(1 for d in batch for g in d.spans if g.type in corpus.ignore_types)
    result = {
        "corpus": corpus.name, "split": split, "source": corpus.source, "licence": corpus.licence,
        "texts": texts, "chars": chars, "ignored_gold_spans": ignored_gold, "cpu_count": os.cpu_count(),
        "systems": [system.name for system in systems],
    }
    for system in systems:
        result[system.name] = tallies[system.name].summary(texts, chars, corpus.type_map)
    if len(systems) > 1:
        ours, theirs = (result[system.name]["chars_per_s"] for system in systems[:2])
        result["speed_ratio"] = round(ours / theirs, 2) if theirs else None
    return result


def format_table(result: dict) -> str:
    """The result as a plain-text table, the systems side by side."""
    names = result["systems"]
    rows = [("recall", "recall"), ("precision", "precision"), ("F2", "f2"), ("gold spans", "gold_spans"),
            ("found", "found"), ("predicted", "predicted_spans"), ("right", "right"), ("wrong", "wrong"),
            ("neutral (in ignored)", "neutral"), ("seconds", "seconds"), ("texts/s", "texts_per_s"),
            ("chars/s", "chars_per_s")]
    width = 34
    lines = [f"corpus {result['corpus']} (split {result['split']}): {result['texts']} texts, {result['chars']} chars, "
             f"{result['ignored_gold_spans']} ignored gold spans",
             "".ljust(width) + "".join(name.rjust(14) for name in names)]
    for label, key in rows:
        lines.append(label.ljust(width) + "".join(str(result[name][key]).rjust(14) for name in names))
    kinds = sorted({kind for name in names for kind in result[name]["per_type"]})
    for kind in kinds:
        counts = result[names[0]]["per_type"].get(kind, {})
        label = f"recall {kind} (n={counts.get('gold', 0)})"
        lines.append(label[:width - 1].ljust(width) + "".join(
            str(result[name]["per_type"].get(kind, {}).get("recall")).rjust(14) for name in names))
    if "speed_ratio" in result:
        lines.append(f"speed ratio {names[0]}/{names[1]}: {result['speed_ratio']}x (cpu_count {result['cpu_count']})")
    return "\n".join(lines)
