"""Recognizers and validators for identifiers, built on maintained libraries.

Threat model: an identifier that is not recognized is published unmasked, and a
clinical value that is mistaken for one is destroyed. Candidates are found by
pattern and then confirmed by the library that knows the format (python-stdnum
checksums for cards, SSNs and IBANs, phonenumbers for phone numbers in any country
and with extensions, ipaddress, usaddress's CRF parser for street addresses), so
ICD-10 codes, doses and vitals do not turn into driver's licences or dates.

Two faces share the same checks:
- `VALUE_VALIDATORS`: entity -> predicate on one cell, used to classify structured
  columns from a sample and by the residual gate;
- `build_recognizers()`: Presidio recognizers for free text, adding what Presidio's
  defaults miss (Mastercard 2-series, 19-digit Visa and Maestro, international and
  extension phone formats, parsed street addresses, medical record numbers).
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import re

import phonenumbers
import usaddress
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.us import ssn as _ssn

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

TEXT_ENTITIES = (PERSON, EMAIL, PHONE, SSN, CARD, IP, IBAN, DATE, ZIP, ADDRESS, MRN, AGE)
# Presidio compiles with IGNORECASE by default; identifiers here are case-sensitive.
_FLAGS = re.MULTILINE
_DIGITS = re.compile(r"\D")

# --- cards -------------------------------------------------------------------------
# (prefix ranges, allowed lengths): issuer ranges that Presidio's default pattern misses
# included (Mastercard 2221-2720, 19-digit Visa, Maestro 12-19 digits).
_CARD_RANGES = (
    ((("4", "4"),), (13, 16, 19)),  # Visa, including 19-digit
    ((("51", "55"), ("2221", "2720")), (16,)),  # Mastercard, 2-series included
    ((("34", "34"), ("37", "37")), (15,)),  # Amex
    ((("6011", "6011"), ("644", "649"), ("65", "65")), (16, 17, 18, 19)),  # Discover
    ((("3528", "3589"),), (16, 17, 18, 19)),  # JCB
    ((("300", "305"), ("36", "36"), ("38", "39")), (14, 15, 16, 17, 18, 19)),  # Diners
    ((("50", "50"), ("56", "69")), tuple(range(12, 20))),  # Maestro
)


def _in_range(number: str, low: str, high: str) -> bool:
    head = number[: len(low)]
    return low <= head <= high


def valid_card(value: str) -> bool:
    digits = _DIGITS.sub("", value)
    if not 12 <= len(digits) <= 19 or not re.fullmatch(r"[\d \-]+", value.strip()):
        return False
    if not any(
        len(digits) in lengths and any(_in_range(digits, lo, hi) for lo, hi in ranges)
        for ranges, lengths in _CARD_RANGES
    ):
        return False
    return _luhn.is_valid(digits)


def valid_ssn(value: str) -> bool:
    value = value.strip()
    if not re.fullmatch(r"\d{3}([- ]?)\d{2}\1\d{4}", value):
        return False
    return _ssn.is_valid(_DIGITS.sub("", value))


_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,24}")


def valid_email(value: str) -> bool:
    return _EMAIL_RE.fullmatch(value.strip()) is not None


def valid_phone(value: str, region: str = "US") -> bool:
    value = value.strip()
    if not re.fullmatch(r"[+()\d][\d\s().\-+]*(?:\s*(?:ext\.?|x|extension)\s*\d{1,6})?", value, re.I):
        return False
    if len(_DIGITS.sub("", value)) < 7:
        return False
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(number)


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


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%d.%m.%Y", "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y",
                 "%Y/%m/%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")


def parse_date(value: str) -> _dt.date | None:
    value = value.strip()
    for fmt in _DATE_FORMATS:
        try:
            parsed = _dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
        if 1850 <= parsed.year <= 2200:
            return parsed.date()
    return None


def valid_date(value: str) -> bool:
    return parse_date(value) is not None


def valid_zip(value: str) -> bool:
    return re.fullmatch(r"\d{5}(?:-\d{4})?", value.strip()) is not None


_MRN_RE = re.compile(r"(?:MRN|MR|MED|PT)[-#: ]?\d{5,10}", re.I)


def valid_mrn(value: str) -> bool:
    return _MRN_RE.fullmatch(value.strip()) is not None


_ADDRESS_LABELS = frozenset(
    {
        "AddressNumber", "AddressNumberPrefix", "AddressNumberSuffix", "StreetNamePreDirectional",
        "StreetNamePreModifier", "StreetNamePreType", "StreetName", "StreetNamePostType",
        "StreetNamePostDirectional", "StreetNamePostModifier", "OccupancyType", "OccupancyIdentifier",
        "SubaddressType", "SubaddressIdentifier", "BuildingName", "PlaceName", "StateName", "ZipCode",
        "USPSBoxType", "USPSBoxID",
    }
)


def address_tokens(text: str) -> list[tuple[str, str]]:
    """The leading run of tokens that usaddress labels as parts of one street address."""
    tokens: list[tuple[str, str]] = []
    for token, label in usaddress.parse(text):
        if label not in _ADDRESS_LABELS or (label == "AddressNumber" and tokens):
            break
        tokens.append((token, label))
        if label == "ZipCode":  # a ZIP code closes a US address
            break
    return tokens


def _is_street_address(labels: set[str]) -> bool:
    has_street = "StreetName" in labels and ("StreetNamePostType" in labels or "StreetNamePreType" in labels
                                             or {"PlaceName", "StateName"} <= labels)
    return "AddressNumber" in labels and has_street or {"USPSBoxType", "USPSBoxID"} <= labels


def valid_address(value: str) -> bool:
    value = value.strip()
    if not value or not value[0].isdigit() and not value.upper().startswith("P"):
        return False
    try:
        tokens = address_tokens(value)
    except Exception:  # noqa: BLE001 - usaddress raises RepeatedLabelError on odd input: not an address
        return False
    return _is_street_address({label for _, label in tokens})


VALUE_VALIDATORS = {
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


# --- Presidio recognizers for free text -------------------------------------------------------
class _ValidatedPatternRecognizer(PatternRecognizer):
    """A pattern recognizer whose matches count only when the library validator accepts them.

    PREFILTER (here and on the other recognizers): a cheap necessary condition; a text
    that fails it cannot match, so the recognizer is not run on it.
    """

    ENTITY = ""
    PATTERNS: tuple[tuple[str, str, float], ...] = ()
    CONTEXT: tuple[str, ...] = ()

    def __init__(self):
        super().__init__(
            supported_entity=self.ENTITY,
            name=type(self).__name__,
            patterns=[Pattern(name, regex, score) for name, regex, score in self.PATTERNS],
            context=list(self.CONTEXT),
            global_regex_flags=_FLAGS,
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        return VALUE_VALIDATORS[self.ENTITY](pattern_text)


class IssuerCardRecognizer(_ValidatedPatternRecognizer):
    """Payment cards of 12-19 digits, grouped or not, confirmed by issuer range and Luhn."""

    PREFILTER = re.compile(r"\d(?:[ -]?\d){11}")
    ENTITY = CARD
    PATTERNS = (("card", r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])", 0.3),)
    CONTEXT = ("card", "visa", "mastercard", "amex", "credit", "debit")


class StdnumSsnRecognizer(_ValidatedPatternRecognizer):
    PREFILTER = re.compile(r"\d{3}[- ]\d{2}[- ]\d{4}")
    ENTITY = SSN
    PATTERNS = (("ssn-delimited", r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])", 0.5),)
    CONTEXT = ("ssn", "social security")


class SsnContextRecognizer(PatternRecognizer):
    """Nine undelimited digits count as an SSN only right after the words that announce one."""

    PREFILTER = re.compile(r"(?i)ssn|social security")

    def __init__(self):
        super().__init__(
            supported_entity=SSN,
            name="SsnContextRecognizer",
            patterns=[Pattern("ssn-after-label", r"(?i:\bssn|social security(?: number)?)\W{1,5}(\d{9})\b", 0.9)],
            global_regex_flags=_FLAGS,
        )

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        results = []
        for result in super().analyze(text, entities, nlp_artifacts, regex_flags):
            digits_start = result.end - 9
            if _ssn.is_valid(text[digits_start:result.end]):
                results.append(RecognizerResult(SSN, digits_start, result.end, 0.9))
        return results


class ValidatedEmailRecognizer(_ValidatedPatternRecognizer):
    PREFILTER = re.compile(r"@")
    ENTITY = EMAIL
    PATTERNS = (("email", r"(?<![\w.+-])[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,24}\b", 0.9),)


class IpAddressRecognizer(_ValidatedPatternRecognizer):
    PREFILTER = re.compile(r"\d\.\d|[0-9A-Fa-f]:[0-9A-Fa-f]")
    ENTITY = IP
    PATTERNS = (
        ("ipv4", r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])", 0.5),
        ("ipv6", r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])", 0.4),
    )


class StdnumIbanRecognizer(_ValidatedPatternRecognizer):
    PREFILTER = re.compile(r"[A-Z]{2}\d{2}")
    ENTITY = IBAN
    PATTERNS = (("iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", 0.5),)


_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"


class CalendarDateRecognizer(_ValidatedPatternRecognizer):
    """Calendar dates with a year (HIPAA keeps the year alone; durations are not dates)."""

    PREFILTER = re.compile(r"\d{4}|\d/\d")
    ENTITY = DATE
    PATTERNS = (
        ("iso", r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}:\d{2})?\b", 0.6),
        ("us", r"(?<![\d/])\d{1,2}/\d{1,2}/(?:\d{4}|\d{2})(?![\d/])", 0.5),
        ("dotted", r"(?<![\d.])\d{1,2}\.\d{1,2}\.\d{4}(?![\d.])", 0.4),
        ("month-day-year", rf"\b{_MONTHS} \d{{1,2}}, \d{{4}}\b", 0.6),
        ("day-month-year", rf"\b\d{{1,2}} {_MONTHS} \d{{4}}\b", 0.6),
    )

    def validate_result(self, pattern_text: str) -> bool | None:
        return parse_date(pattern_text.replace(".,", ",").replace("Sept ", "Sep ")) is not None


class MrnRecognizer(PatternRecognizer):
    """Medical record numbers: the MRN-0012345 form, or digits right after an MRN label."""

    PREFILTER = re.compile(r"(?i)\bmr|medical record")

    def __init__(self):
        super().__init__(
            supported_entity=MRN,
            name="MrnRecognizer",
            patterns=[
                Pattern("mrn-prefixed", r"\b(?:MRN|MR)[-#]\d{5,10}\b", 0.95),
                Pattern("mrn-labelled", r"(?<=\bMRN[:#]?\s{0,2})\d{5,10}\b", 0.9),
                Pattern("mrn-words", r"(?<=medical record number[:#]?\s{0,2})[A-Z]{0,3}-?\d{5,10}\b", 0.9),
            ],
            global_regex_flags=_FLAGS,
        )


class ZipContextRecognizer(PatternRecognizer):
    """A five-digit number is a ZIP code only after a ZIP label (addresses carry theirs)."""

    PREFILTER = re.compile(r"(?i)zip")

    def __init__(self):
        super().__init__(
            supported_entity=ZIP,
            name="ZipContextRecognizer",
            patterns=[Pattern("zip-labelled", r"(?<=\b(?:ZIP|zip|Zip)(?: code)?:?\s{1,2})\d{5}(?:-\d{4})?\b", 0.8)],
            global_regex_flags=_FLAGS,
        )


class AgeOver89Recognizer(PatternRecognizer):
    """Ages of 90 and over are identifiers under HIPAA Safe Harbor; younger ages are not."""

    PREFILTER = re.compile(r"(?i)year|yr|age")

    def __init__(self):
        super().__init__(
            supported_entity=AGE,
            name="AgeOver89Recognizer",
            patterns=[
                Pattern("age-years-old", r"\b(?:9\d|1[0-2]\d)(?=[- ](?:year|yr)s?[- ]old\b)", 0.8),
                Pattern("age-labelled", r"(?<=\b(?:[Aa]ge|[Aa]ged)[: ]\s?)(?:9\d|1[0-2]\d)\b", 0.8),
            ],
            global_regex_flags=_FLAGS,
        )


class PhoneNumbersRecognizer(EntityRecognizer):
    """Phone numbers: national, international (+CC) and with extensions. A pattern finds
    candidates; libphonenumber decides (a bare digit run is left to the card/account checks)."""

    _CANDIDATE = re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{1,4}\)\s?|\d{1,4}[\s.\-])\d{1,8}(?:[\s.\-]\d{1,8}){0,4}"
        r"(?:\s*(?:ext\.?|x|extension)\s*\d{1,6})?(?![\w-])",
        re.IGNORECASE,
    )

    # "+CC ..." numbers of every country parse under any region; national formats are read as US ones.
    def __init__(self, region: str = "US"):
        self.region = region
        super().__init__(supported_entities=[PHONE], name="PhoneNumbersRecognizer")

    def load(self) -> None:
        return None

    def analyze(self, text, entities, nlp_artifacts=None):
        results = []
        for match in self._CANDIDATE.finditer(text):
            if valid_phone(match.group(), self.region):
                results.append(RecognizerResult(PHONE, match.start(), match.end(), 0.7))
        return results


class StreetAddressRecognizer(EntityRecognizer):
    """Street addresses: a number followed by a capitalized word starts a candidate that
    usaddress parses; the span is the run of tokens it labels as one address."""

    _START = re.compile(r"(?<![\w-])\d{1,6}[A-Z]?\s+(?:[NSEW]\.?\s+)?[A-Z0-9][A-Za-z]+|\b(?:P\.?O\.?\s+Box|PSC)\s+\d+")
    _WINDOW_END = re.compile(r"\.\s+(?=[A-Z])|[;\n]|\.$")
    WINDOW = 120

    def __init__(self):
        super().__init__(supported_entities=[ADDRESS], name="StreetAddressRecognizer")

    def load(self) -> None:
        return None

    def analyze(self, text, entities, nlp_artifacts=None):
        results = []
        position = 0
        while True:
            match = self._START.search(text, position)
            if match is None:
                return results
            start = match.start()
            window = text[start:start + self.WINDOW]
            stop = self._WINDOW_END.search(window, match.end() - start)
            window = window[: stop.start()] if stop else window
            span_end = self._parse(window)
            if span_end is None:
                position = match.end()
                continue
            results.append(RecognizerResult(ADDRESS, start, start + span_end, 0.85))
            position = start + span_end

    @staticmethod
    def _parse(window: str) -> int | None:
        try:
            tokens = address_tokens(window)
        except Exception:  # noqa: BLE001 - usaddress raises on ambiguous input: not an address
            return None
        if not _is_street_address({label for _, label in tokens}):
            return None
        cursor = 0
        for token, _ in tokens:
            found = window.find(token, cursor)
            if found < 0:
                return None
            cursor = found + len(token)
        return len(window[:cursor].rstrip(",. "))


def build_recognizers() -> list[EntityRecognizer]:
    """Every pattern recognizer used on free text (spaCy NER adds PERSON separately)."""
    return [
        IssuerCardRecognizer(), StdnumSsnRecognizer(), SsnContextRecognizer(), ValidatedEmailRecognizer(),
        IpAddressRecognizer(), StdnumIbanRecognizer(), CalendarDateRecognizer(), MrnRecognizer(),
        ZipContextRecognizer(), AgeOver89Recognizer(), PhoneNumbersRecognizer(), StreetAddressRecognizer(),
    ]
