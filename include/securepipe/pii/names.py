"""Person names and identifying places in free text, found by rules that do not need NER.

Threat model: a name that the NER model misses is published. The small spaCy model
misses names in forms it rarely saw ("Brown, Maria", "Prof. Dr. med. Karl-Heinz
Müller-Lüdenscheidt", "Jean-Luc de la Fontaine MD", names in lists and headings), and
names of people from outside the English-speaking world. So names are also found
the way Philter finds them, by what they are not: a capitalized word that is not a
known common word (a shipped lexicon of English, German and French words; see
`lexicon`) and stands where a name can stand is masked. Known given names and
surnames, titles ("Dr.", "Frau", "Mme"), degrees ("MD", "PhD", "B.Sc."), the words
that announce a person ("patient", "spouse", "seen by") and the "Last, First" order
widen or confirm a span. Places (cities, countries, and hospitals or clinics named
in the text) are found the same way and reported as LOCATION.

Trade-off, recall first: a capitalized word outside the lexicon (a rare drug brand,
a foreign word) is masked as a name. Medical eponyms followed by the word they name
("Parkinson's disease", "Glasgow Coma Scale") are not.
"""
from __future__ import annotations

import re
from typing import Iterator

from securepipe.pii.lexicon import (
    AMBIGUOUS, COMMON, LOWER, NAME, NAME_WORD, PLACE, UNKNOWN, UPPER, category, lexicon, proper_noun,
)
from securepipe.pii.recognizers import LOCATION, PERSON, Recognizer, Span

_TITLES = (r"(?:Dr|Drs|Doctor|Docteur|Dott|Dott\.ssa|Mr|Mrs|Ms|Mx|Miss|Mstr|Master|Prof|Professor|Pr|Sir|Dame|"
           r"Lady|Lord|Rev|Revd|Reverend|Fr|Father|Sister|Sr|Nurse|Judge|Justice|Herr|Frau|Hr|Fräulein|Frl|Mme|"
           r"Mlle|Mmes|Madame|Mademoiselle|Monsieur|MM|Me|Maître|Maitre|Sig|Sig\.ra|Sra|Srta|Don|Doña|Dña|Dipl\.-Ing|"
           r"Ing|Mag|Univ\.\s?-?Prof|Priv\.-Doz|PD|His\s+Honou?r(?:\s+Judge)?|Her\s+Honou?r(?:\s+Judge)?|"
           r"Lord\s+Justice|Lady\s+Justice|Chief\s+Justice|Magistrate|Registrar|Commissioner|Inspector|Sergeant|"
           r"Constable|Officer|Detective|Captain|Colonel|Major|Lieutenant|General)")
_TITLE_CHAIN = rf"{_TITLES}\.?(?:\s+(?:{_TITLES}\.?|med\.|rer\.\s?nat\.|phil\.|dent\.|vet\.|habil\.|h\.c\.|"\
               r"jur\.|oec\.|pharm\.|sc\.)){0,4}"
# "M." (Monsieur) only before a capitalized word, as a title.
_M_TITLE = r"\bM\.(?=\s+[A-ZÀ-Þ])"
_DEGREES = (r"(?:M\.?D\.?|Ph\.?\s?D\.?|D\.?O\.?|R\.?N\.?|N\.?P\.?|P\.?A\.?(?:-C)?|D\.?D\.?S\.?|D\.?M\.?D\.?|D\.?V\.?M\.?|"
            r"MBBS|MBChB|FRCP|FRCS|FRCPC|MRCP|MRCS|FACP|FACS|FAAP|MSc|M\.Sc\.|BSc|B\.Sc\.|B\.A\.|M\.A\.|BA|MA|MBA|"
            r"MPH|MSN|BSN|DNP|LPN|CNA|PharmD|Pharm\.D\.|OD|DPM|CRNA|LCSW|PsyD|EdD|JD|LLM|LL\.M\.|Esq\.?|Jr\.?|Sr\.?|"
            r"II|III|IV|Dipl\.-Ing\.|Dipl\.-Kfm\.|Dipl\.-Psych\.|Dr\.\s?med\.|MdB|M\.Eng\.|B\.Eng\.|LL\.B\.|QC|KC|MP|MEP)")
_PARTICLE = r"(?:van|von|vom|de|del|della|der|den|des|di|da|dos|das|du|la|le|ter|ten|zu|zur|bin|ibn|al|el|y|af|av|op|'t|d['’]|l['’])"
_INITIAL = r"[A-Z]\.(?![A-Za-z])|[A-Z](?=\s+[A-ZÀ-Þ][a-zß-ÿ])"
# A name token: a capitalized word or an initial; particles may sit between tokens.
# A name word never takes a sentence's closing dot ("... Menton."); initials and titles keep theirs.
_WORD_NO_DOT = NAME_WORD[:-len(r"\.?")] if NAME_WORD.endswith(r"\.?") else NAME_WORD
_TOKEN = rf"(?:{_INITIAL}|{_WORD_NO_DOT}(?![\w]|\.[A-Za-z])|[{UPPER}]{{2,}}(?=[\s,]))"
_RUN = re.compile(rf"(?<![\w'’-])({_TOKEN}(?:(?:\s+|\s*-\s*)(?:{_PARTICLE}\s+)*{_TOKEN}){{0,5}})")
_IS_TITLE = re.compile(rf"(?i:{_TITLES})\.?")
_TITLE_BEFORE = re.compile(rf"(?:\b(?i:{_TITLE_CHAIN})|{_M_TITLE})\s*$")
_DEGREE_AFTER = re.compile(rf"^,?\s+{_DEGREES}(?![\w])")
_DEGREES_AFTER = re.compile(rf"^(?:,?\s+{_DEGREES}(?![\w]))+")
# Words after which a capitalized run is a person.
_ANNOUNCERS = re.compile(
    r"(?i:\b(?:patient(?:in|e)?|pt|client|resident|member|subject|name[d]?|called|nom|nommée?|"
    r"spouse|wife|husband|partner|son|daughter|mother|father|mom|dad|brother|sister|sibling|aunt|uncle|"
    r"cousin|grand(?:mother|father|son|daughter)|niece|nephew|guardian|caregiver|carer|friend|neighbou?r|"
    r"(?:seen|referred|signed|dictated|transcribed|reviewed|examined|evaluated|treated|accompanied|visited|"
    r"discussed|authored|approved|witnessed|cosigned|prescribed|performed)\s+by|attending|resident|fellow|"
    r"intern|physician|surgeon|doctor|nurse|therapist|pharmacist|psychologist|pcp|provider|consultant|"
    r"cardiologist|oncologist|neurologist|radiologist|anesthesiologist|pediatrician|dentist|midwife|"
    r"contact|emergency\s+contact|next\s+of\s+kin|nok|poa|proxy|cc|dear|"
    r"ehefrau|ehemann|sohn|tochter|mutter|vater|bruder|schwester|hausarzt|hausärztin|ärztin|arzt|"
    r"épouse|époux|fils|fille|mère|père|frère|sœur|soeur|médecin(?:\s+traitant)?|infirmière?|"
    r"applicant|applicants|claimant|petitioner|respondent|defendant|plaintiff|appellant|witness|counsel|"
    r"lawyer|solicitor|barrister|advocate|represented\s+by|born|née|nee|alias|aka|said|says|told|asked|replied|"
    r"wrote|starring|featuring|(?:directed|written|produced|composed|sung|performed|interviewed|hired|married)\s+by|"
    r"according\s+to|thanks\s+to|meet|met|married|call\s+me|i['’]m|i\s+am|this\s+is|name\s+is|"
    r"last\s+name(?:\s+is)?\??|first\s+name(?:\s+is)?\??|surname(?:\s+is)?|prénom|nachname|vorname)\s*[:,]?\s*)$"
)
_SENTENCE_START = re.compile(r"(?:^|[.!?\n•*>|]\s*|^\s*[-–]\s*|\n\s*[-–]\s*)[\"'“‘(]?$")
# A word the lexicon does not know looks like a name, even first in a sentence, when it carries
# letters English words do not, or an ending of family names.
_NAME_LOOK = re.compile(
    r".*[À-ÖØ-öø-ÿĀ-ž].*|.*(?:ov|ova|ev|eva|ski|ska|sky|cki|cka|wicz|czyk|vić|vic|ić|ić|sson|sen|son|berg|stein|mann|"
    r"ez|escu|opoulos|idis|oglu|oğlu|yan|ian|enko|chuk|uk|ak|ek|ec|ini|elli|etti|ucci|iou|aki|oto|ura|ita|ashi)"
)
# A capitalized word followed by one of these is an eponym or a title, not a person.
_EPONYM_AFTER = re.compile(
    r"^(?:['’]s?)?\s+(?:disease|syndrome|sign|signs|scale|score|criteria|classification|index|reflex|maneuver|"
    r"manoeuvre|test|procedure|operation|catheter|tube|fracture|palsy|phenomenon|law|method|technique|stain|"
    r"formula|equation|cell|cells|node|nodes|ulcer|tumou?r|lymphoma|sarcoma|disorder|triad|reaction|position|"
    r"scissors|clamps?|forceps|retractors?|drains?|needles?|stitch(?:es)?|sutures?|stand|catheters?|ligaments?|"
    r"fascia|space|pouch|triangle|incision|cautery|electrocautery|dilators?|speculum|blades?|sheath|trocars?|"
    r"scope|tenaculum|elevator|curettes?|rongeurs?|sponges?|pads?|dressings?|bandages?|staples?|knots?|repair|"
    r"approach|grade|hernia|fracture|ligature|mesh|plug|valve|shunt|pump|bag|balloon|stent|wire|"
    r"Coma|Criteria|Score|Scale|Disease|Syndrome)\b"
)
_FACILITY_WORDS = (r"(?:Hospital|Hospitals|General|Clinic|Clinics|Infirmary|Sanatorium|Hospice|Medical\s+Cent(?:er|re)|"
                   r"Health\s+Cent(?:er|re)|Health\s+System|Healthcare|Health\s+Care|Nursing\s+Home|Care\s+Home|"
                   r"Rehabilitation\s+Cent(?:er|re)|Rehab|Surgery|Practice|Memorial|Children['’]s|University\s+Hospital|"
                   r"Cancer\s+Cent(?:er|re)|Medical\s+Group|Pharmacy|Laboratory|Labs|Klinikum|Klinik|Kliniken|"
                   r"Krankenhaus|Spital|Praxis|Uniklinik|Universitätsklinikum|Hôpital|Hopital|Clinique|Polyclinique|"
                   r"Maternité|EHPAD|CHU|CHR|Centre\s+Hospitalier|Ospedale|Policlinico|Hospitalario)")
_FACILITY = re.compile(
    rf"(?:(?:\b(?:St\.?|Saint|Sankt|San|Santa|Sainte|Ste\.?|Mount|Mt\.?)\s+)?(?:{NAME_WORD}\s+){{1,4}}{_FACILITY_WORDS}\b"
    rf"(?:\s+(?:of|de|du|des|für|di)\s+{NAME_WORD}(?:\s+{NAME_WORD}){{0,2}})?"
    rf"|\b(?:Klinikum|Klinik|Krankenhaus|Spital|Hôpital|Hopital|Clinique|Polyclinique|CHU|CHR|Centre\s+Hospitalier|"
    rf"Ospedale|Hospital|Universitätsklinikum|Uniklinik)\s+(?:(?:de\s+la|de\s+l['’]|de|du|des|der|am|an\s+der|"
    rf"Universitario|Universitaire|Régional|Regional)\s+)?{NAME_WORD}(?:[\s-]{NAME_WORD}){{0,3}})"
)


def _is_sentence_start(text: str, start: int) -> bool:
    return _SENTENCE_START.search(text, max(0, start - 4), start) is not None or start == 0


def _tokens(run: str, offset: int) -> list[tuple[int, int, str]]:
    return [(offset + m.start(), offset + m.end(), m.group())
            for m in re.finditer(rf"{_TOKEN}|{_PARTICLE}(?=\s)", run)]


def _kind(word: str) -> str:
    if re.fullmatch(r"[A-Z]\.?", word):
        return NAME  # an initial
    if re.fullmatch(_PARTICLE, word):
        return "particle"
    word = re.sub(r"['’]s$|['’]$", "", word)
    if re.fullmatch(r"[A-Z]{2,}s", word):
        return COMMON  # "IVs", "LFTs": a plural acronym
    found = category(word)
    if word.isupper() and len(word) > 1:
        # An upper-case word is an acronym or jargon unless the lexicon knows it as a name
        # or a place: in notes written in capitals, unknown words are not names.
        return found if found in (NAME, PLACE, AMBIGUOUS) and len(word) > 3 else COMMON
    return found


def _segments(tokens: list, kinds: list) -> list[tuple[list, list]]:
    """A capitalized run split at its common words: a name holds none ("Dr Lee Reports
    Fever" is the name "Lee" and two words), particles and the word after one excepted
    ("Willemine ten Pas"), and a last word after a given name ("Jane Doe")."""
    segments, current = [], ([], [])
    for index, (token, kind) in enumerate(zip(tokens, kinds)):
        after_particle = index > 0 and kinds[index - 1] == "particle" and current[0]
        # A surname that is also a word ends a run after a given name ("Jane Doe", "Justin Beet").
        surname = (index == len(tokens) - 1 and index > 0 and kinds[index - 1] == NAME and current[0]
                   and _TITLE_CASE.fullmatch(token[2]) and _TITLE_CASE.fullmatch(tokens[index - 1][2]))
        if kind == COMMON and not after_particle and not surname:
            if current[0]:
                segments.append(current)
            current = ([], [])
        else:
            current[0].append(token)
            current[1].append(kind)
    if current[0]:
        segments.append(current)
    return segments


class NameRecognizer(Recognizer):
    """Person names from titles, degrees, announcing words, "Last, First", known names and
    unknown capitalized words; lower-case known names where two stand together."""

    name = "person_rules"
    entity = PERSON
    PREFILTER = re.compile(rf"[{UPPER}{LOWER}]{{2}}")

    def find(self, text: str) -> Iterator[Span]:
        found = list(self._find(text))
        yield from found
        yield from _coordinated(text, found)

    def _find(self, text: str) -> Iterator[Span]:
        for match in _RUN.finditer(text):
            tokens = _tokens(match.group(1), match.start(1))
            kinds = [_kind(word) for _, _, word in tokens]
            # A title splits a run, and the (up to three) words after it are the name even where they
            # are also common words ("Frau Else Döhn", "Mr Atilla Kart", "Ms Y. Renda").
            titled_from = 0 if _TITLE_BEFORE.search(text, max(0, match.start(1) - 40), match.start(1)) else None
            for index, (_, _, word) in enumerate(tokens):
                if _IS_TITLE.fullmatch(word):
                    kinds[index] = COMMON
                    titled_from = index + 1
            if titled_from is not None:  # (a common word in capitals stays one: "DR JONES AWARE")
                for index in range(titled_from, min(titled_from + 3, len(tokens))):
                    word = tokens[index][2]
                    if kinds[index] == COMMON and (_TITLE_CASE.fullmatch(word) or len(word) > 3 and
                                                   category(word) != COMMON):
                        kinds[index] = AMBIGUOUS
            for segment, segment_kinds in _segments(tokens, kinds):
                yield from self._judge(text, segment, segment_kinds)
        yield from self._lowercase_names(text)

    def _judge(self, text: str, tokens: list, kinds: list) -> Iterator[Span]:
        while tokens and kinds[0] == "particle":
            tokens, kinds = tokens[1:], kinds[1:]
        while tokens and kinds[-1] == "particle":
            tokens, kinds = tokens[:-1], kinds[:-1]
        if not tokens:
            return
        start, end = tokens[0][0], tokens[-1][1]
        before = text[max(0, start - 40):start]
        after = text[end:end + 30]
        titled = _TITLE_BEFORE.search(before) is not None
        announced = _ANNOUNCERS.search(before) is not None
        named = titled or announced or _DEGREE_AFTER.match(after) is not None
        if not titled and _EPONYM_AFTER.match(after):
            return
        if all(re.fullmatch(r"[A-Z]\.?", word) for _, _, word in tokens):
            return  # "C.", "K" or "I" alone is an abbreviation or a pronoun; initials count beside a name
        strong = sum(k in (NAME, UNKNOWN) for k in kinds)
        # "Brown, Derek": a surname that is also a word, written before a known given name and a comma.
        last_first = re.match(rf",\s*({_TOKEN})(?![\w'’-])", after)
        if not named and strong == 0 and last_first and all(k == AMBIGUOUS for k in kinds) \
                and _kind(last_first.group(1)) == NAME:
            named = True
        if not named:
            if all(k == PLACE for k in kinds if k != "particle"):
                return  # PlaceRecognizer reports it
            if strong == 0 and sum(k == AMBIGUOUS for k in kinds) < 2:
                return
            if len(tokens) == 1 and kinds[0] == UNKNOWN and not _NAME_LOOK.fullmatch(tokens[0][2]) and (
                    _is_sentence_start(text, start) or after.startswith(":") or tokens[0][2].endswith(".")):
                return  # a note's heading or a sentence's first word, not a name
        score = 0.85 if named else (0.7 if NAME in kinds else 0.5)
        # The title before and the degrees after go with the name ("Prof. Dr. Anna Roth, MD").
        title = _TITLE_BEFORE.search(before)
        outer_start = start - (len(before) - title.start()) if title else start
        degrees = _DEGREES_AFTER.match(after)
        outer_end = end + degrees.end() if degrees else end
        yield Span(outer_start, outer_end, PERSON, score)
        # "Last, First": a name followed by a comma and a given name.
        tail = re.match(rf",\s*({_TOKEN}(?:\s+{_TOKEN})?)(?![\w'’-])", after)
        if tail:
            first_kinds = [_kind(w) for w in tail.group(1).split()]
            if first_kinds[0] in (NAME, AMBIGUOUS, UNKNOWN) and (NAME in kinds or NAME in first_kinds or named):
                yield Span(outer_start, end + tail.end(1), PERSON, score)

    @staticmethod
    def _lowercase_names(text: str) -> Iterator[Span]:
        """Known names written in lower case ("olga krylova", "dr green"): two together, or one
        after a title or an announcing word or before "'s"."""
        for match in _LOWER_RUN.finditer(text):
            words = [(m.start() + match.start(), m.end() + match.start(), m.group())
                     for m in re.finditer(r"[^\W\d_][\w'’-]*?(?=['’]s\b|[^\w'’-]|$)", match.group())
                     if m.end() - m.start() > 1]  # (not the "s" of a possessive)
            kinds = [category(w) for _, _, w in words]
            start, end = words[0][0], words[-1][1]
            before = text[max(0, start - 40):start]
            if NAME not in kinds:
                # After "my name is" / "call me" / "dr" any word that is not a common one is the name.
                if kinds[0] != COMMON and (_SELF_NAMING.search(before) or _LOWER_TITLE.search(before)):
                    named = 2 if len(kinds) == 2 and kinds[1] != COMMON else 1
                    yield Span(start, words[named - 1][1], PERSON, 0.5)
                continue
            pair = len(words) >= 2 and all(k == NAME or k == UNKNOWN and _NAME_LOOK.fullmatch(w)
                                           for k, (_, _, w) in zip(kinds, words))
            if pair or \
                    _TITLE_BEFORE.search(before) or _ANNOUNCERS.search(before) or text.startswith("'s", end) \
                    or text.startswith("’s", end) or text.startswith(":", end) and len(words) == 1 and kinds[0] == NAME:
                yield Span(start, end, PERSON, 0.5)


# Only the titles that precede a surname in lower-case notes ("dr green aware"); _TITLE_BEFORE's full list
# ("general", "major", "sister", "me") would make ordinary lower-case words names.
_LOWER_TITLE = re.compile(r"\b(?:dr|drs|doctor|mr|mrs|ms|prof|nurse)\.?\s+$")
_SELF_NAMING = re.compile(r"(?i:\b(?:my\s+name\s+is|name['’]s|call\s+me|calls\s+me|called\s+me|known\s+as|named)\s+)$")
_TITLE_CASE = re.compile(rf"[{UPPER}][{LOWER}][\w'’-]*")
_COORDINATED_AFTER = re.compile(rf"^(?:,\s*|\s+(?:and|&|und|et|y|e)\s+)({_WORD_NO_DOT})(?![\w])")
_COORDINATED_BEFORE = re.compile(rf"(?<![\w'’-])({_WORD_NO_DOT})(?:,\s*|\s+(?:and|&|und|et|y|e)\s+)$")


def _coordinated(text: str, found: list[Span]) -> Iterator[Span]:
    """Names listed with a name ("Monjeau, Graves and Reed"): a capitalized word joined to a
    person by a comma or "and" is a person too, unless it is a common word."""
    for span in found:
        after = _COORDINATED_AFTER.match(text[span.end:span.end + 40])
        if after and _TITLE_CASE.fullmatch(after.group(1)) and _kind(after.group(1)) != COMMON:
            yield Span(span.end + after.start(1), span.end + after.end(1), PERSON, 0.5)
        before = _COORDINATED_BEFORE.search(text, max(0, span.start - 40), span.start)
        # (first in a sentence only a word the lexicon does not know: "Abramovich and Wilson were")
        if before and _TITLE_CASE.fullmatch(before.group(1)) and _kind(before.group(1)) != COMMON \
                and (not _is_sentence_start(text, before.start(1)) or _kind(before.group(1)) == UNKNOWN):
            yield Span(before.start(1), before.end(1), PERSON, 0.5)


# (a possessive "'s" may follow: "olga krylova's killers")
_LOWER_RUN = re.compile(rf"(?<![\w'’-])[{LOWER}][{LOWER}'’-]{{2,}}?(?:\s+[{LOWER}][{LOWER}'’-]{{2,}}?)?(?![\w'’-]|['’](?!s\b))")


def refine_person_or_place(text: str, start: int, end: int) -> tuple[int, int] | None:
    """An NER span less the common words at its edges ("Patient Brown" -> "Brown"); None
    when nothing name-like is left."""
    tokens = _tokens(text[start:end], start)
    kinds = [_kind(word) for _, _, word in tokens]
    while tokens and kinds[0] in (COMMON, "particle"):
        tokens, kinds = tokens[1:], kinds[1:]
    while tokens and kinds[-1] in (COMMON, "particle"):
        tokens, kinds = tokens[:-1], kinds[:-1]
    if not tokens or all(re.fullmatch(r"[A-Z]\.?", word) for _, _, word in tokens):
        return None
    if _EPONYM_AFTER.match(text[tokens[-1][1]:tokens[-1][1] + 30]):
        return None  # "Parkinson's disease"
    return tokens[0][0], tokens[-1][1]


# Words after which a capitalized word the lexicon does not know is a place ("grew up in Remniku").
_PLACE_ANNOUNCERS = re.compile(
    r"(?i:\b(?:(?:grew\s+up|born|lives?|lived|living|based|located|raised|stationed|resides?|resided|stays?|stayed|"
    r"settled|work(?:s|ed)?|studied|hospitali[sz]ed|treated|admitted)\s+(?:in|at|near)|(?:moved|came|comes|coming|"
    r"returned|relocated|travel(?:l)?ed|flew|drove|trip|flight|transferred|emigrated|immigrated|fled|arrived|"
    r"going|went|headed|heading|visit(?:ed|ing)?|here)\s+(?:to|from|in|at)|from|to|in|at|near|visited|visiting|"
    r"outside|around|via|towards?|nach|aus|bei|à|au|aux|en|de|depuis|vers|près\s+de)\s+)$"
)
_UPPER_PLACE = re.compile(rf"[{UPPER}]{{4,}}(?:[\s-][{UPPER}]{{2,}}){{0,2}}")


# Administrative areas named with their kind ("Borough of Southwark", "Dorset County", "Canton of Vaud").
_AREA = re.compile(
    rf"\b(?:(?:Borough|County|District|Municipality|Province|Region|Canton|Department|Prefecture|Parish|Township|"
    rf"Shire|State|Commune|Gemeinde|Landkreis|Kreis|Bezirk|Département|Comté)\s+of\s+(?:the\s+)?"
    rf"{NAME_WORD}(?:[\s-]{NAME_WORD}){{0,2}}|{NAME_WORD}(?:[\s-]{NAME_WORD}){{0,2}}\s+(?:County|Borough|Shire|"
    rf"District|Province|Parish|Township|Landkreis|Kreis))\b"
)


# Notes written in capitals ("TRANSFERRED TO QUARTERMAIN 3", "ADMITTED TO FREDERICK MEMORIAL"): the
# capitalized-run rules see one run from the verb on, so the word after "to/at/from/in" is judged here.
_CAPS_ANNOUNCED = re.compile(r"\b(?P<prep>TO|AT|FROM|IN|NEAR)\s+(?:THE\s+)?(?P<run>[A-Z][A-Z']{3,}(?:\s+[A-Z][A-Z']{2,}){0,2})"
                             r"(?![\w'-])(?P<ward>\s*\d)?")
_CAPS_FACILITY = re.compile(r"(?:HOSPITAL|HOSP|MEMORIAL|REGIONAL|GENERAL|CAMPUS|CLINIC|INFIRMARY|MEDICAL)")
# Hospital units are where a patient is, not who or where they are: "TO MICU", "FROM PACU".
_CARE_UNIT = re.compile(r"[A-Z]{0,3}ICU|[A-Z]{0,2}CCU|PACU|CSRU|CVRU|NARD|[A-Z]{1,3}U|CATH|STEPDOWN")


class PlaceRecognizer(Recognizer):
    """Cities, countries and states the lexicon knows, hospitals or clinics by name, and
    capitalized words the lexicon does not know right after "in", "from", "grew up in"."""

    name = "place_rules"
    entity = LOCATION
    PREFILTER = re.compile(rf"[{UPPER}]")

    def find(self, text: str) -> Iterator[Span]:
        for pattern in (_FACILITY, _AREA):
            for match in pattern.finditer(text):
                yield Span(match.start(), match.end() - match.group().endswith("."), LOCATION, 0.8)
        for match in _RUN.finditer(text):
            yield from self._places(text, match.start(1), match.group(1))
            yield from self._announced_place(text, match.start(1), match.group(1))
        yield from self._lowercase_places(text)
        yield from self._caps_announced(text)

    @staticmethod
    def _caps_announced(text: str) -> Iterator[Span]:
        for match in _CAPS_ANNOUNCED.finditer(text):
            words = list(re.finditer(r"\S+", match.group("run")))
            first = words[0].group()
            kind = category(first)
            if _CARE_UNIT.fullmatch(first) or kind not in (UNKNOWN, PLACE, NAME) or _CAPS_FACILITY.fullmatch(first):
                continue
            end = words[0].end()
            for word in words[1:]:  # the facility words and further unknown words go with it
                if _CAPS_FACILITY.fullmatch(word.group()) or category(word.group()) in (UNKNOWN, PLACE, NAME):
                    end = word.end()
                else:
                    break
            # After "to" an unknown word is as often a verb ("TO EXTUBATE") as a place: only a
            # facility word or a ward number after it makes it one.
            if match.group("prep") == "TO" and kind == UNKNOWN and end == words[0].end() and (
                    len(words) > 1 or not match.group("ward")):
                continue
            start = match.start("run")
            yield Span(start, start + end, LOCATION, 0.5)

    @staticmethod
    def _lowercase_places(text: str) -> Iterator[Span]:
        """A known place written in lower case right after "from", "in", "to" ("moved here from tunisia")."""
        for match in _LOWER_RUN.finditer(text):
            words = match.group().split()
            if category(words[0]) == PLACE and _PLACE_ANNOUNCERS.search(text, max(0, match.start() - 40),
                                                                         match.start()):
                yield Span(match.start(), match.start() + len(words[0]), LOCATION, 0.5)

    @staticmethod
    def _announced_place(text: str, start: int, run: str) -> Iterator[Span]:
        if not _PLACE_ANNOUNCERS.search(text, max(0, start - 40), start):
            return
        words = re.match(rf"(?:{NAME_WORD}|{_UPPER_PLACE.pattern})(?:[\s-](?:{NAME_WORD}|{_PARTICLE}))*", run)
        if words is None:
            return
        kinds = [_kind(w) if not w.isupper() else (UNKNOWN if len(w) >= 4 and category(w) != COMMON else COMMON)
                 for w in words.group().split()]
        if any(k in (UNKNOWN, PLACE) for k in kinds) or any(proper_noun(w) for w in words.group().split()):
            yield Span(start, start + len(words.group().rstrip(".,")), LOCATION, 0.6)

    def _places(self, text: str, start: int, run: str) -> Iterator[Span]:
        words = [(m.start(), m.end()) for m in re.finditer(r"\S+", run)]
        entries = lexicon()
        index = 0
        while index < len(words):
            # The longest known place name starting at this word.
            for stop in range(min(len(words), index + 5), index, -1):
                phrase = run[words[index][0]:words[stop - 1][1]].rstrip(".,")
                if entries.get(phrase.lower()) == PLACE and phrase[:1].isupper() and not _EPONYM_AFTER.match(
                        run[words[stop - 1][1]:] + text[start + len(run):start + len(run) + 30]):
                    yield Span(start + words[index][0], start + words[index][0] + len(phrase), LOCATION, 0.7)
                    index = stop
                    break
            else:
                index += 1
