"""Table-driven tests of the validators and free-text recognizers, with negative cases."""
from __future__ import annotations

import pytest
from stdnum import luhn

from securepipe.pii import recognizers as rec
from securepipe.pii.text import detect_batch

MAESTRO_19 = "501800000000000000" + luhn.calc_check_digit("501800000000000000")

VALUES = [
    (rec.CARD, "2221 0000 0000 0009", True),  # Mastercard 2-series
    (rec.CARD, "2720990430613098", True),
    (rec.CARD, "4000000000000000006", True),  # 19-digit Visa
    (rec.CARD, MAESTRO_19, True),  # 19-digit Maestro
    (rec.CARD, "378282246310005", True),  # Amex
    (rec.CARD, "4111111111111112", False),  # Luhn fails
    (rec.CARD, "9111111111111111", False),  # no issuer range
    (rec.SSN, "123-45-6789", True),
    (rec.SSN, "666-45-6789", False),
    (rec.SSN, "000-12-3456", False),
    (rec.SSN, "12-345-6789", False),
    (rec.EMAIL, "ann.lee@example.org", True),
    (rec.EMAIL, "ann.lee@", False),
    (rec.PHONE, "(617) 215-7752", True),
    (rec.PHONE, "+44 20 7946 0958", True),
    (rec.PHONE, "614-789-1778 ext. 473", True),
    (rec.PHONE, "E11.9", False),
    (rec.PHONE, "2024-01-02", False),
    (rec.IP, "10.1.2.3", True),
    (rec.IP, "2001:db8::1", True),
    (rec.IP, "300.1.2.3", False),
    (rec.IBAN, "DE89370400440532013000", True),
    (rec.IBAN, "DE89370400440532013001", False),
    (rec.DATE, "2024-02-29", True),
    (rec.DATE, "March 3, 2021", True),
    (rec.DATE, "2023-02-29", False),
    (rec.DATE, "3 weeks", False),
    (rec.ZIP, "02134", True),
    (rec.ZIP, "2134", False),
    (rec.MRN, "MRN-0012345", True),
    (rec.MRN, "I50.9", False),
    (rec.ADDRESS, "4273 Main Dr, Austin, TX 77853", True),
    (rec.ADDRESS, "500 mg BID", False),
    (rec.ADDRESS, "J45.909", False),
]


@pytest.mark.parametrize(("entity", "value", "expected"), VALUES)
def test_value_validators(entity, value, expected):
    assert rec.VALUE_VALIDATORS[entity](value) is expected


TEXTS = [
    ("Card 2221 0000 0000 0009 on file.", rec.CARD, "2221 0000 0000 0009"),
    ("Visa 4000000000000000006 charged.", rec.CARD, "4000000000000000006"),
    (f"Maestro {MAESTRO_19} declined.", rec.CARD, MAESTRO_19),
    ("Call +44 20 7946 0958 today.", rec.PHONE, "+44 20 7946 0958"),
    ("Office 312-555-1234 ext. 45 now.", rec.PHONE, "312-555-1234 ext. 45"),
    ("Home +49 30 1234567 only.", rec.PHONE, "+49 30 1234567"),
    ("Lives at 12 Birchwood Lane, Omaha, NE 68102. BP fine.", rec.ADDRESS, "12 Birchwood Lane, Omaha, NE 68102"),
    ("Seen (MRN MRN-1000001) today.", rec.MRN, "MRN-1000001"),
    ("MRN: 4456789 verified.", rec.MRN, "4456789"),
    ("SSN 123456789 on file.", rec.SSN, "123456789"),
    ("SSN 123-45-6789 on file.", rec.SSN, "123-45-6789"),
    ("Mailing zip 62704 only.", rec.ZIP, "62704"),
    ("DOB 4/17/1956 per chart.", rec.DATE, "4/17/1956"),
    ("Seen by Dr. Okonkwo today.", rec.PERSON, "Okonkwo"),
    ("Rosalind Vasquez is a 67-year-old.", rec.PERSON, "Rosalind Vasquez"),
    ("Telehealth from 192.168.10.4 ok.", rec.IP, "192.168.10.4"),
    ("Pt is a 92-year-old with CHF.", rec.AGE, "92"),
]


@pytest.mark.parametrize(("text", "entity", "expected"), TEXTS)
def test_recognizers_find_span(text, entity, expected):
    spans = detect_batch([text])[0]
    assert [(text[s.start:s.end], s.entity_type) for s in spans] == [(expected, entity)]


CLEAN = [
    "Metformin 500 mg BID; BP 130/85, HR 78. Follow up in 3 weeks.",
    "Dx E11.9 and I50.9; ICD-10 J45.909. A1c 7.2% on 3 readings.",
    "Routine visit. No complaints. Continue current regimen and recheck labs in 3 months.",
    "Card 4111 1111 1111 1112 is not a valid number.",
    "Weight 82 kg, BMI 27.4, glucose 142 mg/dL, Na 138, K 4.1.",
    "Pt is a 67-year-old with CHF; BP 130/85 for 2 weeks.",
]


@pytest.mark.parametrize("text", CLEAN)
def test_clinical_text_has_no_spans(text):
    assert detect_batch([text])[0] == []


def test_known_values_of_the_row_are_found_as_whole_words():
    text = "Annual visit: Ann Lee (Lee family) doing well."
    spans = detect_batch([text], [[("Ann Lee", rec.PERSON)]], ner=False)[0]
    assert [text[s.start:s.end] for s in spans] == ["Ann Lee", "Lee"]
