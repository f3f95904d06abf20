"""Recognizers and validators for identifiers, and the registry that holds them.

Threat model: an identifier that is not recognized is published unmasked, and a
clinical value that is mistaken for one is destroyed. Recall comes first: where a
string has the shape of an identifier (a long digit run, a code of letters and
digits, a number announced by "MRN", "account", "case no."), it is masked even
when no checksum confirms it; checksums and libraries (python-stdnum for cards,
SSNs and IBANs, phonenumbers for phone numbers of any country, ipaddress) decide
which entity type a match is, and keep ICD-10 codes, doses, vitals and lab values
out.

Two faces share the same checks:
- `VALUE_VALIDATORS`: entity -> predicate on one cell, used to classify structured
  columns from a sample and by the residual gate;
- `RecognizerRegistry`: named recognizers for free text (Presidio's shape: a base
  class, `PATTERNS` with scores, `CONTEXT` words, a validator hook), enabled,
  disabled or added by name from the masking policy.

Recognizers here are plain regular expressions plus validators (no NER, no
Presidio engine): they run on every text, so they are kept cheap, and each has a
`PREFILTER` that skips texts that cannot match.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Sequence

import phonenumbers
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.us import ssn as _ssn

from securepipe.errors import PolicyError

PERSON = "PERSON"
EMAIL = "EMAIL_ADDRESS"
PHONE = "PHONE_NUMBER"
SSN = "US_SSN"
CARD = "CREDIT_CARD"
IP = "IP_ADDRESS"
IBAN = "IBAN_CODE"
DATE = "DATE_TIME"
ZIP = "US_ZIP_CODE"
ADDRESS = "STREET_ADDRESS"
MRN = "MEDICAL_RECORD_NUMBER"
AGE = "AGE"
LOCATION = "LOCATION"
IDENTIFIER = "IDENTIFIER"
URL = "URL"

TEXT_ENTITIES = (PERSON, EMAIL, PHONE, SSN, CARD, IP, IBAN, DATE, ZIP, ADDRESS, MRN, AGE, LOCATION, IDENTIFIER, URL)
_DIGITS = re.compile(r"\D")

# Phone numbers without a country code are read in these regions (the policy may change the list).
DEFAULT_PHONE_REGIONS = ("US", "CA", "GB", "IE", "DE", "AT", "CH", "FR", "NL", "BE", "AU", "ES", "IT")


class Span(NamedTuple):
    start: int
    end: int
    entity_type: str
    score: float


# --- validators of one value --------------------------------------------------------------------
def valid_card(value: str) -> bool:
    """Any Luhn-valid number of 12-19 digits, grouped by spaces or hyphens or not.

    Issuer ranges are not checked: brands outside the usual prefixes (JCB 1800/2131,
    Maestro 0604/6390, UnionPay, national schemes) must still be caught.
    """
    value = value.strip()
    if not re.fullmatch(r"\d(?:[ -]?\d){11,18}", value):
        return False
    digits = _DIGITS.sub("", value)
    return len(set(digits)) > 1 and _luhn.is_valid(digits)


def valid_ssn(value: str) -> bool:
    value = value.strip()
    if not re.fullmatch(r"\d{3}([- ]?)\d{2}\1\d{4}", value):
        return False
    return _ssn.is_valid(_DIGITS.sub("", value))


_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,24}")


def valid_email(value: str) -> bool:
    return _EMAIL_RE.fullmatch(value.strip()) is not None


_PHONE_SHAPE = re.compile(
    r"(?:\+|00)?[\d(][\d\s().\-/]*\d(?:\s*(?:ext\.?|x|extension|poste|Durchwahl|DW)\s*\d{1,6})?", re.I
)


def valid_phone(value: str, regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> bool:
    """A phone number of any of `regions` (national format) or of any country (+CC / 00CC)."""
    value = value.strip()
    if not _PHONE_SHAPE.fullmatch(value) or parse_date(value) is not None:
        return False
    digits = _DIGITS.sub("", re.split(r"(?i)\s*(?:ext|x|extension|poste|durchwahl|dw)", value)[0])
    if not 7 <= len(digits) <= 17:
        return False
    candidate = "+" + value[2:] if value.startswith("00") else value
    for region in regions:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            return True
        if candidate.startswith("+"):
            return False  # the region plays no part in an international number
    return False


def valid_ip(value: str) -> bool:
    value = value.strip()
    if not re.fullmatch(r"[0-9A-Fa-f:.]{3,45}", value) or value.count(".") not in (0, 3):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def valid_iban(value: str) -> bool:
    value = value.strip()
    return bool(re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9 ]{10,32}", value)) and _iban.is_valid(value)


# Month names in English, German and French (full and abbreviated), mapped to their number.
MONTHS = {
    **{name: number for number, names in enumerate((
        "january jan jänner januar janv janvier", "february feb febr februar février fevrier févr fevr",
        "march mar märz maerz mrz mars", "april apr avril avr", "may mai", "june jun juni juin",
        "july jul juli juillet juil", "august aug août aout", "september sep sept septembre",
        "october oct okt oktober octobre", "november nov novembre", "december dec dez dezember décembre decembre déc",
    ), start=1) for name in names.split()},
    # Spanish ("ago", "ene", "dic" left out: "ago" is an English word)
    **{name: number for number, names in enumerate((
        "enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre setiembre", "octubre",
        "noviembre", "diciembre"), start=1) for name in names.split()},
}
_MONTH_WORD = r"(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"


def _year(text: str) -> int | None:
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < 50 else 1900
    return year if 1850 <= year <= 2200 else None


def _calendar(year: int | None, month: int, day: int) -> bool:
    if year is None:
        year = 2000  # a leap year: 29 February without a year is a date
    try:
        _dt.date(year, month, day)
    except ValueError:
        return False
    return True


def parse_date(value: str) -> _dt.date | None:
    """The calendar date a value names, if it names one: numeric day-first, month-first or
    ISO forms, and written months in English, German or French."""
    value = value.strip()
    match = re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?",
                         value)
    if match:
        year, month, day = _year(match[1]), int(match[2]), int(match[3])
        return _dt.date(year, month, day) if year and _calendar(year, month, day) else None
    match = re.fullmatch(r"(\d{1,2})\s?([-/.])\s?(\d{1,2})\s?\2\s?(\d{4}|\d{2})", value)
    if match:
        first, second, year = int(match[1]), int(match[3]), _year(match[4])
        if year is None:
            return None
        # US month-first when the slash form allows it, day-first otherwise (and for dots).
        for month, day in ((first, second), (second, first)) if match[2] == "/" else ((second, first), (first, second)):
            if _calendar(year, month, day):
                return _dt.date(year, month, day)
        return None
    words = re.findall(r"[^\W\d_]+|\d+", value.lower())
    months = [MONTHS[w] for w in words if w in MONTHS]
    numbers = [w for w in words if w.isdigit()]
    if len(months) != 1 or not numbers:
        return None
    years = [_year(n) for n in numbers if len(n) == 4]
    days = [int(n) for n in numbers if len(n) <= 2]
    if len(years) != 1 or years[0] is None or not all(1 <= d <= 31 for d in days):
        return None
    day = days[-1] if days else 1  # "23 and 24 January 2008": the last day of a list
    return _dt.date(years[0], months[0], day) if _calendar(years[0], months[0], day) else None


def valid_date(value: str) -> bool:
    return parse_date(value) is not None


def valid_zip(value: str) -> bool:
    return re.fullmatch(r"\d{5}(?:-\d{4})?", value.strip()) is not None


_MRN_RE = re.compile(r"(?:MRN|MR|MED|PT|PID)[-#: ]?[A-Z]{0,3}\d{5,12}", re.I)


def valid_mrn(value: str) -> bool:
    return _MRN_RE.fullmatch(value.strip()) is not None


def valid_address(value: str) -> bool:
    """A value that is mostly one street address (any supported country's format)."""
    from securepipe.pii.addresses import address_spans

    value = value.strip()
    if not value or not any(ch.isdigit() for ch in value):
        return False
    covered = sum(span.end - span.start for span in address_spans(value))
    return covered >= 0.6 * len(value)


VALUE_VALIDATORS: dict[str, Callable[[str], bool]] = {
    EMAIL: valid_email,
    SSN: valid_ssn,
    CARD: valid_card,
    IBAN: valid_iban,
    IP: valid_ip,
    MRN: valid_mrn,
    DATE: valid_date,
    ZIP: valid_zip,
    PHONE: valid_phone,
    ADDRESS: valid_address,
}
# Named validators a policy may attach to a recognizer it adds.
NAMED_VALIDATORS = {"luhn": lambda v: _luhn.is_valid(_DIGITS.sub("", v)), **{
    name: VALUE_VALIDATORS[entity] for name, entity in (
        ("card", CARD), ("ssn", SSN), ("email", EMAIL), ("phone", PHONE), ("ip", IP), ("iban", IBAN),
        ("date", DATE), ("zip", ZIP))}}


# --- recognizers ------------------------------------------------------------------------------------
class Recognizer:
    """Base class: a named finder of one entity type in free text.

    `PREFILTER` is a cheap necessary condition: a text it does not match is skipped.
    Subclasses implement `find`; `PatternRecognizer` covers the usual case.
    """

    name = ""
    entity = ""
    PREFILTER: re.Pattern | None = None

    def applies(self, text: str) -> bool:
        return self.PREFILTER is None or self.PREFILTER.search(text) is not None

    def find(self, text: str) -> Iterator[Span]:
        raise NotImplementedError


class PatternRecognizer(Recognizer):
    """Matches of scored patterns, kept when `validate` accepts them and, when `CONTEXT`
    words are required, when one of them occurs within `CONTEXT_WINDOW` characters before
    the match. A pattern's group named `span`, if it has one, is the span; otherwise the
    whole match."""

    PATTERNS: tuple[tuple[str, str, float], ...] = ()
    CONTEXT: tuple[str, ...] = ()
    CONTEXT_REQUIRED = False
    CONTEXT_WINDOW = 40
    FLAGS = 0

    def __init__(self):
        self._patterns = [(name, re.compile(pattern, self.FLAGS), score) for name, pattern, score in self.PATTERNS]
        self._context = (re.compile(r"(?i)\b(?:" + "|".join(map(re.escape, self.CONTEXT)) + r")\b")
                         if self.CONTEXT else None)

    def validate(self, value: str) -> bool:
        return True

    def find(self, text: str) -> Iterator[Span]:
        for _, pattern, score in self._patterns:
            for match in pattern.finditer(text):
                group = "span" if "span" in match.re.groupindex else 0
                start, end = match.span(group)
                if start == end or not self.validate(match.group(group)):
                    continue
                if self.CONTEXT_REQUIRED and not self._context.search(text, max(0, start - self.CONTEXT_WINDOW), start):
                    continue
                yield Span(start, end, self.entity, score)


class CardRecognizer(PatternRecognizer):
    """Payment cards: 12-19 digits, grouped or not, confirmed by the Luhn checksum."""

    name = "card"
    entity = CARD
    PREFILTER = re.compile(r"\d(?:[ -]?\d){11}")
    PATTERNS = (("card", r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])", 0.9),)

    def validate(self, value):
        return valid_card(value)


class SsnRecognizer(PatternRecognizer):
    """US SSNs: delimited anywhere; nine bare digits only right after "SSN"/"social security"."""

    name = "us_ssn"
    entity = SSN
    PREFILTER = re.compile(r"\d{3}[- ]?\d{2}[- ]?\d{4}")
    PATTERNS = (
        ("ssn-delimited", r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])", 0.8),
        ("ssn-after-label", r"(?i:\bssn|social security(?: number| no\.?)?)\W{1,5}(?P<span>\d{9})\b", 0.9),
    )

    def find(self, text):
        for span in super().find(text):
            if _ssn.is_valid(_DIGITS.sub("", text[span.start:span.end])):
                yield span


class EmailRecognizer(PatternRecognizer):
    name = "email"
    entity = EMAIL
    PREFILTER = re.compile(r"@")
    PATTERNS = (("email", r"(?<![\w.+-])[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,24}\b", 0.95),)


class UrlRecognizer(PatternRecognizer):
    """Web addresses: a personal page or a link with an identifier in it names a person."""

    name = "url"
    entity = URL
    PREFILTER = re.compile(r"(?i)https?://|www\.")
    PATTERNS = (("url", r"(?i)\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)\]]", 0.8),)


class IpAddressRecognizer(PatternRecognizer):
    name = "ip_address"
    entity = IP
    PREFILTER = re.compile(r"\d\.\d|[0-9A-Fa-f]:[0-9A-Fa-f]")
    PATTERNS = (
        ("ipv4", r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d]|\.\d)", 0.6),
        ("ipv6", r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])", 0.5),
    )

    def validate(self, value):
        return valid_ip(value)


class IbanRecognizer(PatternRecognizer):
    name = "iban"
    entity = IBAN
    PREFILTER = re.compile(r"[A-Z]{2}\d{2}")
    PATTERNS = (("iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", 0.9),)

    def validate(self, value):
        return valid_iban(value)


_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th|er|e|\.)?"
# Days listed before their month ("23 and 24 January 2008", "3-5 March").
_DAYS = rf"{_DAY}(?:\s*(?:,|and|&|-|–|to|und|et)\s*{_DAY})*"
_UNITS = r"ml|mg|mcg|cc|kg|g|iu|units?|u|mmhg|bpm|cm|mm|m|km|hrs?|h|min|sec|s|am|pm"
_NUMBER_WORDS = (r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
                 r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|a\s+few|several")
_YEAR = r"(?:1[89]\d\d|2[01]\d\d)"
_WEEKDAY = (r"(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag"
            r"|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche),?\s+")


class DateRecognizer(PatternRecognizer):
    """Calendar dates and their parts that HIPAA counts as identifiers: day-first,
    month-first and ISO numeric forms, written months in English, German and French,
    month + year, day + month. Durations ("3 weeks") and bare numbers are not dates.
    Written-month patterns run only on texts that name a month."""

    name = "date"
    entity = DATE
    PREFILTER = re.compile(r"\d[./-]|\d{4}|\d\s?\.\s?\d")
    # PREFILTER gates the numeric patterns and bare years; month/day and written months have their own.
    PATTERNS = (
        ("iso", r"(?<![\d.])\d{4}([-/.])\d{1,2}\1\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
                r"(?![\d]|[./-]\d)", 0.8),
        ("numeric", r"(?<![\d./-])\d{1,2}\s?([./-])\s?\d{1,2}\s?\1\s?(?:\d{4}|\d{2})(?![\d]|[./-]\d)", 0.7),
    )
    # Month and day without a year, as notes write them ("seen 8/23", "d/c'd 10/16"): not a
    # fraction or a score ("1/2 tab", "5/5 strength", "2/6 murmur").
    # Month and two-digit year of a past event ("CABG 1/78", "AVR 8/88"): a second number above 31
    # cannot be a day, so no clinical fraction or ratio reads like it ("5/5", "2/6", "8/10").
    MONTH_YEAR = re.compile(r"(?<![\w/.:-])(?P<span>(?:1[0-2]|0?[1-9])/[3-9]\d)(?![\w/]|[.,:]\d|\s?%)"
                            r"(?!\s*(?:mg|mcg|ml|cc|units?|mmhg|mm|cm|kg|sec|min|hrs?|bpm))")
    # A year written with an apostrophe ("MI '91", "s/p cabg '84").
    APOSTROPHE_YEAR = re.compile(r"(?<![\w'’])(?P<span>['’]\d{2})(?![\w'’%])")
    MONTH_DAY = re.compile(r"(?<![\w/.:-])(?P<span>(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9]))(?![\w/]|[.,:]\d|\s?%)"
                           r"(?!\s*(?:strength|murmur|tabs?|tablets?|pills?|doses?|power|motor|pulses?|reflex|ml|mg|"
                           r"mcg|cc|units?|of|x\b|times|cm|mm|sec|min|hrs?|hours?|days?|weeks?|months?|years?|scale|"
                           r"score|pain|positive|negative|systolic|holo|dose))")
    # A bare year after a word that places something in time ("in 2014", "since 1998").
    YEAR = re.compile(r"(?i:\b(?:in|since|from|until|till|to|of|by|during|before|after|between|and|year|circa|c\.|"
                      r"around|early|late|mid|spring|summer|autumn|fall|winter|im|seit|bis|von|jahr|en|depuis|"
                      r"année|annee|dès|des)\s)(?P<span>(?:1[89]|20)\d{2})\b(?![.,]?\d|\s?(?:%|" + _UNITS + r")\b)")
    # More years listed with one ("born in 1986, 1989 and 1990") and year ranges ("[2002-2007]").
    YEAR_LIST = re.compile(r"(?<=\d{4})(?:,\s*|\s+(?:and|or|und|et)\s+)(?P<span>(?:1[89]|20)\d{2})\b(?![.,]?\d)")
    YEAR_RANGE = re.compile(r"(?<![\d/.-])(?P<span>(?:1[89]|20)\d{2}\s?[-–]\s?(?:(?:1[89]|20)\d{2}|\d{2}))(?![\d/.-])")
    # Durations written in words ("five years", "three years and four months") fix events in time in
    # a narrative (court judgments count them as quasi-identifiers); durations in digits ("3 weeks")
    # are clinical routine and stay, and so do intervals ahead or repeating ("recheck in three months",
    # "every six months"): they say when care happens next, not when something happened to the person.
    DURATION = re.compile(r"(?i)\b(?:" + _NUMBER_WORDS + r")(?:[\s-](?:" + _NUMBER_WORDS + r"))?\s+(?:years?|months?)"
                          r"(?:\s+and\s+(?:" + _NUMBER_WORDS + r")\s+(?:months?|weeks?|days?))?\b")
    INTERVAL_AHEAD = re.compile(r"(?i)\b(?:in|within|every|each|per|next|another|after)\s+$")
    MONTH_PREFILTER = re.compile(rf"(?i)\b{_MONTH_WORD}")
    # A day of the week narrows a date down ("flew in on Tuesday").
    WEEKDAY = re.compile(r"\b(?:(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day|Montag|Dienstag|Mittwoch|Donnerstag|"
                         r"Freitag|Samstag|Sonnabend|Sonntag)\b|(?i:\bon\s+(?P<day>(?:mon|tues|wednes|thurs|fri|satur|"
                         r"sun)day))\b")
    MONTH_PATTERNS = tuple(re.compile(pattern, re.IGNORECASE) for pattern in (
        rf"\b(?:{_WEEKDAY})?{_DAYS}\s*(?:of\s+|de\s+|-\s*)?{_MONTH_WORD}"
        rf",?\s*(?:-\s*|del?\s+)?(?:{_YEAR}|'\d\d)\b",
        rf"\b(?:{_WEEKDAY})?{_MONTH_WORD}\s+{_DAY},?\s+{_YEAR}\b",
        rf"\b{_MONTH_WORD},?\s+(?:of\s+|del?\s+)?{_YEAR}\b",
        rf"\b(?:{_WEEKDAY})?{_DAY}\s+(?:of\s+)?{_MONTH_WORD}(?![\w])",
        rf"\b{_MONTH_WORD}\s+{_DAY}(?![\w])",
    ))

    def applies(self, text):
        return True

    def find(self, text):
        for match in self.WEEKDAY.finditer(text):
            span = match.span("day") if match.group("day") else match.span()
            yield Span(*span, DATE, 0.4)
        if self.PREFILTER.search(text):
            yield from super().find(text)
            for pattern in (self.YEAR, self.YEAR_LIST, self.YEAR_RANGE):
                for match in pattern.finditer(text):
                    yield Span(match.start("span"), match.end("span"), DATE, 0.5)
        if "'" in text or "’" in text:
            for match in self.APOSTROPHE_YEAR.finditer(text):
                yield Span(match.start("span"), match.end("span"), DATE, 0.4)
        for match in self.DURATION.finditer(text):
            if not self.INTERVAL_AHEAD.search(text, max(0, match.start() - 16), match.start()):
                yield Span(match.start(), match.end(), DATE, 0.3)
        if "/" in text:
            for match in self.MONTH_YEAR.finditer(text):
                yield Span(match.start("span"), match.end("span"), DATE, 0.4)
            for match in self.MONTH_DAY.finditer(text):
                month, day = match.group("span").split("/")
                if not (int(month) <= 5 and int(day) <= 5 and len(day) == 1):
                    yield Span(match.start("span"), match.end("span"), DATE, 0.4)
        if self.MONTH_PREFILTER.search(text):
            for pattern in self.MONTH_PATTERNS:
                for match in pattern.finditer(text):
                    if self._valid_written(match.group()):
                        yield Span(match.start(), match.end(), DATE, 0.7)

    def validate(self, value):
        return parse_date(value) is not None

    @staticmethod
    def _valid_written(value: str) -> bool:
        words = re.findall(r"[^\W\d_]+", value.lower())
        month_word = next((w for w in words if w in MONTHS), None)
        if month_word is None:
            return False
        if re.search(r"\d{4}", value):
            return parse_date(value) is not None
        if re.search(r"'\d\d\b", value):
            return True
        # "may 3", "mar 5" in lower case are a verb and a word: only a capitalized month counts.
        if month_word in ("may", "mar", "march", "jun", "sept", "dec", "oct", "nov", "mai", "mars") and \
                not re.search(r"[A-Z]", value):
            return False
        day = int(re.search(r"\d+", value).group())
        return 1 <= day <= 31


# "1900-0700", "1000-1200": a range of times or amounts, not a phone number.
_RANGE = re.compile(r"(\d{4})\s?-\s?(\d{4})")


def _is_hhmm(value: str) -> bool:
    return int(value[:2]) <= 24 and int(value[2:]) < 60


class PhoneRecognizer(PatternRecognizer):
    """Phone numbers of any country: national formats of the configured regions, +CC and
    00CC international forms, a trunk "(0)", extensions. A pattern finds candidates of at
    least seven digits; libphonenumber confirms they are possible numbers."""

    name = "phone"
    entity = PHONE
    PREFILTER = re.compile(r"\d[\s().\-/]?\d[\s().\-/]?\d")
    PATTERNS = (
        ("phone", r"(?<![\w+/.,-])(?:(?:\+|00)\d{1,3}[\s.\-]?(?:\(0\)\s?)?)?(?:\(\d{1,5}\)[\s.\-]?)?\d{1,12}"
                  r"(?:[\s.\-]\d{1,12}){0,5}(?:\s*(?:ext\.?|x|extension|poste|Durchwahl|DW)\s*\d{1,6})?(?![\w/-]|[.,]\d)",
         0.7),
    )

    def __init__(self, regions: Sequence[str] = DEFAULT_PHONE_REGIONS):
        super().__init__()
        self.regions = tuple(regions)

    def validate(self, value):
        digits = len(_DIGITS.sub("", value))
        if digits < 7 or (digits < 9 and not re.search(r"[\s.\-()+]", value)):
            return False  # a short bare digit run is left to the identifier recognizers
        ranged = _RANGE.fullmatch(value)
        if ranged and (int(ranged[1]) < int(ranged[2]) or _is_hhmm(ranged[1]) and _is_hhmm(ranged[2])):
            return False
        return valid_phone(value, self.regions)


class ContextIdentifierRecognizer(PatternRecognizer):
    """Identifiers announced by their label: medical record, chart, account, member,
    health plan, policy, application, case, claim, licence, passport numbers and the
    like, in English, German and French, made of letters and digits. A medical record
    or chart label makes it a MEDICAL_RECORD_NUMBER."""

    name = "labelled_identifier"
    entity = IDENTIFIER
    FLAGS = re.IGNORECASE
    LABELS = (
        r"mrn|medical\s+record(?:\s+number)?|med(?:ical)?\s*rec(?:ord)?|chart|record|account|acct|member(?:ship)?"
        r"|subscriber|beneficiary|health\s*plan|insurance|insurer|policy|application|app|case|claim|file|docket"
        r"|reference|ref|licen[cs]e|passport|patient|encounter|visit|accession|specimen|sample|serial|device"
        r"|certificate|registration|vin|npi|dea|nhs|nino|national\s+insurance|tax|tin|ssn|sin|employee|staff"
        r"|student|customer|client|order|invoice|transaction|booking|ticket|badge|id|identifier|number|no|nr|n°"
        r"|num(?:é|e)ro|dossier|aktenzeichen|az|versichertennummer|versicherungsnummer|versicherten-?nr|fallnummer"
        r"|fall-?nr|patientennummer|patienten-?nr|kennnummer|steuer-?id|iban|bic|swift|routing|sort\s+code"
        r"|matricule|numéro\s+de\s+s[ée]curit[ée]\s+sociale|s[ée]cu|mutuelle|ipp|nip|nhc|nass|cipa"
        r"|historia\s+cl[íi]nica|n[úu]mero\s+de\s+historia|cp|c\.p|c[óo]digo\s+postal|plz|postleitzahl|postcode"
        r"|post\s+code|code\s+postal|zip"
    )
    MRN_LABEL = re.compile(r"(?i)mrn|medical\s+record|med(?:ical)?\s*rec|chart|ipp|patientennummer|patienten-?nr")
    PREFILTER = re.compile(r"\d")
    PATTERNS = (
        ("label-value",
         rf"\b(?P<label>{LABELS})s?(?:\s+(?:id|number|no|nr|num|#|code)s?)?\.?\s*(?:is|was|are|:|#|=|-|no\.?|nr\.?|n°)?\s*"
         r"(?P<span>(?=[A-Z0-9/.-]*\d)[A-Z0-9](?:[A-Z0-9]|[-/.](?=[A-Z0-9])){3,29})(?![\w-])", 0.85),
    )

    # The visible tail of a card or account number ("account ending in 4421") identifies it too.
    TAIL = re.compile(r"(?i)\b(?:ending|ends|end)\s+(?:in|with)\s+(?:#\s?)?(?P<span>\d{4,6})\b|"
                      r"\blast\s+(?:4|four|5|five|6|six)(?:\s+digits)?(?:\s+(?:are|is|of))?:?\s+(?P<last>\d{4,6})\b")

    # Further values listed after a labelled one ("numbers 3/107 and 3/129").
    LISTED = re.compile(r"(?:,\s*|\s+(?:and|or|&|und|et)\s+)(?P<span>(?=[A-Z0-9/.-]*\d)[A-Z0-9](?:[A-Z0-9]|[-/.]"
                        r"(?=[A-Z0-9])){2,29})(?![\w-])", re.IGNORECASE)

    def find(self, text):
        for _, pattern, score in self._patterns:
            for match in pattern.finditer(text):
                if self.validate(match.group("span")):
                    entity = MRN if self.MRN_LABEL.fullmatch(match.group("label")) else IDENTIFIER
                    yield Span(match.start("span"), match.end("span"), entity, score)
                    end = match.end("span")
                    while (listed := self.LISTED.match(text, end)) and self.validate(listed.group("span")):
                        yield Span(listed.start("span"), listed.end("span"), entity, score)
                        end = listed.end("span")
        for match in self.TAIL.finditer(text):
            group = "span" if match.group("span") else "last"
            yield Span(match.start(group), match.end(group), IDENTIFIER, 0.7)

    def validate(self, value):
        digits = sum(ch.isdigit() for ch in value)
        if digits < 3 or re.fullmatch(r"\d{1,3}(?:\.\d+)?", value):
            return False  # "No. 2", "1.5": counts and amounts, not identifiers
        return parse_date(value) is None


_MEASURE = re.compile(r"(?i)\d+(?:\.\d+)?(?:\s?[-x/]\s?\d+(?:\.\d+)?)*\s?(?:[a-z]{1,5}|%)?|\d+[a-z]{0,5}-\d+[a-z]{1,5}")


class CodeShapeRecognizer(PatternRecognizer):
    """Codes whose shape alone says they identify something: letters mixed with at least
    four digits ("EC107356745", "AB-123456"), and application or file numbers with a
    slash ("36244/06"). ICD-10 codes ("E11.9", "J45.909"), doses and lab names are too
    short to match."""

    name = "code_shape"
    entity = IDENTIFIER
    PREFILTER = re.compile(r"\d{3}")
    PATTERNS = (
        ("letters-digits", r"(?<![\w-])(?=[A-Za-z0-9-]*\d{2})(?=[A-Za-z0-9-]*[A-Za-z])"
                           r"(?=(?:[A-Za-z-]*\d){4})[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){4,24}(?![\w-])", 0.6),
        ("slash-number", r"(?<![\w/.-])\d{4,7}/\d{2}(?![\w/.-]|\.\d)", 0.6),
    )

    def validate(self, value):
        if "/" in value:
            return parse_date(value) is None
        # "500x12", "1000U", "20-30cc", "90-110s": settings, doses and ranges with a unit
        if _MEASURE.fullmatch(value):
            return False
        # "60-69-year-old", "5-day-course": numbers joined to common words, not a code
        from securepipe.pii.lexicon import COMMON, category

        words = re.findall(r"[A-Za-z]{3,}", value)
        return not (words and all(category(word) == COMMON for word in words))


class DigitRunRecognizer(PatternRecognizer):
    """Any run of seven or more digits (single spaces, dots or hyphens between them) that no better recognizer claimed: account, member and device numbers, phones
    in unknown formats. Amounts with thousands commas and decimals are not runs."""

    name = "digit_run"
    entity = IDENTIFIER
    PREFILTER = re.compile(r"\d(?:[\s.-]?\d){6}")
    PATTERNS = (("digits", r"(?<![\w.,/-])\d(?:[\s.-]?\d){6,}(?![\w]|[.,/-]\d)", 0.5),)

    def validate(self, value):
        # "12 3456789 ..." joined over plain spaces must still read as one number: groups of
        # two or more digits when spaces join them.
        groups = re.split(r"[\s.-]", value)
        ranged = _RANGE.fullmatch(value)
        if ranged and (int(ranged[1]) < int(ranged[2]) or _is_hhmm(ranged[1]) and _is_hhmm(ranged[2])):
            return False  # "1900-0700", "1000-1200": times or amounts
        return sum(len(g) for g in groups) >= 7 and (" " not in value or all(len(g) >= 2 for g in groups))


class ZipContextRecognizer(PatternRecognizer):
    """A postcode on its own, after its label ("zip code is 35350", "PLZ 80331"); postcodes in
    addresses are found with the address."""

    name = "us_zip_labelled"
    entity = ZIP
    PREFILTER = re.compile(r"(?i)zip|post|plz|code")
    PATTERNS = (("zip-labelled", r"(?i:\b(?:zip|postal|post|postcode|plz|code\s+postal|cp)(?:\s*code)?(?:\s+is)?:?\s{1,2})"
                                 r"(?P<span>(?=[A-Z0-9 -]*\d)[A-Z0-9](?:[A-Z0-9]|[ -](?=[A-Z0-9])){2,9})\b", 0.8),)


class AgeRecognizer(PatternRecognizer):
    """Ages a text states ("67-year-old", "aged 92", "74 yo", "âgée de 81 ans", "53 Jahre
    alt"). HIPAA counts ages of 90 and over as identifiers; the masking policy decides what
    happens to younger ones (by default they are kept)."""

    name = "age"
    entity = AGE
    FLAGS = re.IGNORECASE
    PREFILTER = re.compile(r"(?i)year|yr|\by/?o\b|\bage|jahr|\bans\b|años|meses|días|edad|\bturn|\b(?:was|is|am|are|were|['’][smr])\s+\d")
    PATTERNS = (
        ("age-years-old", r"(?<![\w.,-])(?P<span>\d{1,3})(?=\s?(?:-\s?)?(?:years?|yrs?|y)\.?(?:[\s-]old\b|[\s-]of[\s-]age\b))", 0.8),
        ("age-yo", r"(?<![\w.,-])(?P<span>\d{1,3})(?=\s?(?:y/o|yo|y\.o\.)(?![\w]))", 0.8),
        ("age-labelled", r"\b(?:age|aged|age\s+of|âgée?\s+de|edad|alter|im\s+alter\s+von|turn|turns|turned|turning)[:\s]\s?"
                         r"(?P<span>\d{1,3})\b(?![.,]\d|\s?(?:%|mg|kg|cm|mm|ml|units?|times|tabs?|hours|days|weeks))", 0.7),
        ("age-was", r"\b(?:he|she|i|they|you|we)(?:\s+(?:was|is|am|are|were)|['’](?:s|m|re))\s+(?P<span>\d{1,3})"
                    r"(?=\s*(?:[.,;!?]|$|years|yrs))", 0.6),
        ("age-foreign", r"(?<![\w.,-])(?P<span>\d{1,3})(?=[\s-]?(?:jährige|jähriger|jährig|Jahre\s+alt|ans\b))", 0.8),
        # Spanish states the unit with the age, and its records count the unit as part of it ("de 63 años").
        ("age-spanish", r"\b(?:de|con|edad:?)\s+(?P<span>\d{1,3}\s+(?:años|meses|días))(?![\w])(?!\s+de\s+(?:evolución|"
                        r"seguimiento|controles|tratamiento|duración))", 0.7),
    )

    def validate(self, value):
        return 0 < int(re.match(r"\d+", value).group()) <= 125


class AddressRecognizer(Recognizer):
    """Street addresses and postcode + city in US, CA, UK, IE, DE, AT, CH, FR, NL, AU and
    similar formats (see `securepipe.pii.addresses`)."""

    name = "street_address"
    entity = ADDRESS
    PREFILTER = re.compile(r"\d")

    def find(self, text):
        from securepipe.pii.addresses import address_spans

        return iter(address_spans(text))


# --- recognizers a policy adds -----------------------------------------------------------------------
MAX_POLICY_PATTERN = 500


def custom_recognizer(spec: dict, where: str) -> PatternRecognizer:
    """A pattern recognizer described in a policy file: name, entity, patterns (regex and
    score), optional context words (required when given) and a named validator."""
    allowed = {"name", "entity", "patterns", "context", "validator"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise PolicyError(f"policy: {where}: unknown key(s) {', '.join(map(repr, unknown))}")
    name, entity = spec.get("name"), spec.get("entity")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
        raise PolicyError(f"policy: {where}.name must be a lower-case identifier")
    if entity not in TEXT_ENTITIES:
        raise PolicyError(f"policy: {where}.entity must be one of {', '.join(TEXT_ENTITIES)}")
    patterns = spec.get("patterns")
    if not isinstance(patterns, list) or not patterns:
        raise PolicyError(f"policy: {where}.patterns must be a non-empty list")
    compiled = []
    for index, pattern in enumerate(patterns):
        regex = pattern.get("regex") if isinstance(pattern, dict) else None
        score = pattern.get("score", 0.8) if isinstance(pattern, dict) else None
        if not isinstance(regex, str) or len(regex) > MAX_POLICY_PATTERN:
            raise PolicyError(f"policy: {where}.patterns[{index}].regex must be a string of at most "
                              f"{MAX_POLICY_PATTERN} characters")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 < score <= 1:
            raise PolicyError(f"policy: {where}.patterns[{index}].score must be a number in (0, 1]")
        try:
            re.compile(regex)
        except re.error:
            raise PolicyError(f"policy: {where}.patterns[{index}].regex is not a valid regular expression") from None
        compiled.append((f"{name}-{index}", regex, float(score)))
    context = spec.get("context", [])
    if not isinstance(context, list) or not all(isinstance(word, str) and word for word in context):
        raise PolicyError(f"policy: {where}.context must be a list of words")
    validator = spec.get("validator")
    if validator is not None and validator not in NAMED_VALIDATORS:
        raise PolicyError(f"policy: {where}.validator must be one of {', '.join(sorted(NAMED_VALIDATORS))}")

    class PolicyPatternRecognizer(PatternRecognizer):
        PATTERNS = tuple(compiled)
        CONTEXT = tuple(context)
        CONTEXT_REQUIRED = bool(context)

        def validate(self, value):
            return validator is None or NAMED_VALIDATORS[validator](value)

    recognizer = PolicyPatternRecognizer()
    recognizer.name, recognizer.entity = name, entity
    return recognizer


# --- the registry ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecognizerConfig:
    """What a policy says about recognizers: which to disable, which to add (their specs,
    checked on parse, kept as canonical JSON so the config is hashable and can cross into
    worker processes), and the regions whose national phone formats are read."""

    disabled: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS

    @classmethod
    def parse(cls, raw, where: str = "detection.recognizers") -> "RecognizerConfig":
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise PolicyError(f"policy: {where} must be a mapping")
        unknown = sorted(set(raw) - {"disable", "add", "phone_regions"})
        if unknown:
            raise PolicyError(f"policy: {where}: unknown key(s) {', '.join(map(repr, unknown))}")
        disabled = raw.get("disable", [])
        known = {recognizer.name for recognizer in _built_in(DEFAULT_PHONE_REGIONS)}
        if not isinstance(disabled, list) or any(name not in known for name in disabled):
            raise PolicyError(f"policy: {where}.disable must list recognizer names ({', '.join(sorted(known))})")
        added = raw.get("add", [])
        if not isinstance(added, list):
            raise PolicyError(f"policy: {where}.add must be a list")
        names = []
        for index, spec in enumerate(added):
            names.append(custom_recognizer(spec if isinstance(spec, dict) else {}, f"{where}.add[{index}]").name)
        clash = [name for name in names if name in known or names.count(name) > 1]
        if clash:
            raise PolicyError(f"policy: {where}.add: recognizer name {clash[0]!r} is already taken")
        regions = raw.get("phone_regions", list(DEFAULT_PHONE_REGIONS))
        if (not isinstance(regions, list) or not regions
                or any(region not in phonenumbers.SUPPORTED_REGIONS for region in regions)):
            raise PolicyError(f"policy: {where}.phone_regions must list ISO region codes such as US, GB, DE")
        return cls(tuple(disabled), tuple(json.dumps(spec, sort_keys=True) for spec in added), tuple(regions))


def _built_in(phone_regions: Sequence[str]) -> list[Recognizer]:
    from securepipe.pii.names import NameRecognizer, PlaceRecognizer

    return [
        EmailRecognizer(), UrlRecognizer(), CardRecognizer(), SsnRecognizer(), IbanRecognizer(), IpAddressRecognizer(),
        DateRecognizer(), PhoneRecognizer(phone_regions), AddressRecognizer(), ContextIdentifierRecognizer(),
        CodeShapeRecognizer(), DigitRunRecognizer(), ZipContextRecognizer(), AgeRecognizer(),
        NameRecognizer(), PlaceRecognizer(),
    ]


class RecognizerRegistry:
    """The recognizers in force, by name: the built-in ones less those a policy disables,
    plus those it adds."""

    def __init__(self, config: RecognizerConfig = RecognizerConfig()):
        self.config = config
        self.recognizers = [r for r in _built_in(config.phone_regions) if r.name not in config.disabled]
        self.recognizers += [custom_recognizer(json.loads(spec), "detection.recognizers.add") for spec in config.added]

    @property
    def names(self) -> list[str]:
        return [recognizer.name for recognizer in self.recognizers]

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        for recognizer in self.recognizers:
            if recognizer.applies(text):
                spans.extend(recognizer.find(text))
        return spans
