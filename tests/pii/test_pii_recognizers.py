"""Table-driven tests of the validators, the recognizer registry and free-text detection.

Each table holds the formats one recognizer must catch (several countries and languages) and
the clinical or ordinary text it must leave alone.
"""
from __future__ import annotations

import pytest
from stdnum import luhn

from securepipe.errors import PolicyError
from securepipe.pii import recognizers as rec
from securepipe.pii.recognizers import RecognizerConfig, RecognizerRegistry
from securepipe.pii.text import detect_batch


def _luhn_card(prefix: str, length: int) -> str:
    body = prefix + "0" * (length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


MAESTRO_19 = _luhn_card("5018", 19)
JCB_1800 = _luhn_card("1800", 15)  # outside the usual issuer prefixes
MAESTRO_0604 = _luhn_card("0604", 16)

VALUES = [
    (rec.CARD, "2221 0000 0000 0009", True),  # Mastercard 2-series
    (rec.CARD, "4000000000000000006", True),  # 19-digit Visa
    (rec.CARD, MAESTRO_19, True),
    (rec.CARD, JCB_1800, True),
    (rec.CARD, MAESTRO_0604, True),
    (rec.CARD, "378282246310005", True),  # Amex
    (rec.CARD, "4111111111111112", False),  # Luhn fails
    (rec.CARD, "0000000000000000", False),  # one digit repeated is not a number anyone holds
    (rec.SSN, "123-45-6789", True),
    (rec.SSN, "666-45-6789", False),
    (rec.SSN, "12-345-6789", False),
    (rec.EMAIL, "ann.lee@example.org", True),
    (rec.EMAIL, "ann.lee@", False),
    (rec.PHONE, "(617) 215-7752", True),
    (rec.PHONE, "+44 20 7946 0958", True),
    (rec.PHONE, "+44(0)191 496 0353", True),
    (rec.PHONE, "0049 30 1234567", True),
    (rec.PHONE, "+33 (0)3 87 17 77 63", True),
    (rec.PHONE, "06-12345678", True),  # Dutch mobile
    (rec.PHONE, "614-789-1778 ext. 473", True),
    (rec.PHONE, "E11.9", False),
    (rec.PHONE, "2024-01-02", False),  # a date
    (rec.IP, "10.1.2.3", True),
    (rec.IP, "2001:db8::1", True),
    (rec.IP, "300.1.2.3", False),
    (rec.IBAN, "DE89370400440532013000", True),
    (rec.IBAN, "DE89370400440532013001", False),
    (rec.DATE, "2024-02-29", True),
    (rec.DATE, "March 3, 2021", True),
    (rec.DATE, "31/12/2020", True),  # day first
    (rec.DATE, "12/31/2020", True),  # month first
    (rec.DATE, "3. März 2021", True),
    (rec.DATE, "1er mars 2021", True),
    (rec.DATE, "2023-02-29", False),
    (rec.DATE, "31/31/2020", False),
    (rec.DATE, "3 weeks", False),
    (rec.ZIP, "02134", True),
    (rec.ZIP, "2134", False),
    (rec.MRN, "MRN-0012345", True),
    (rec.MRN, "I50.9", False),
    (rec.ADDRESS, "4273 Main Dr, Austin, TX 77853", True),
    (rec.ADDRESS, "Hahnstr. 40, 44965 Prenzlau", True),
    (rec.ADDRESS, "7, boulevard Paulette Gosselin, 01812 Menton", True),
    (rec.ADDRESS, "500 mg BID", False),
    (rec.ADDRESS, "J45.909", False),
    (rec.ADDRESS, "A000001", False),  # an identifier, not an Eircode
]


@pytest.mark.parametrize(("entity", "value", "expected"), VALUES)
def test_value_validators(entity, value, expected):
    assert rec.VALUE_VALIDATORS[entity](value) is expected


# (text, the span that must be found, any entity type it may have); the span must be covered exactly.
FOUND = [
    # cards, any brand, grouped or not
    ("Card 2221 0000 0000 0009 on file.", "2221 0000 0000 0009", {rec.CARD}),
    (f"Maestro {MAESTRO_19} declined.", MAESTRO_19, {rec.CARD}),
    (f"JCB {JCB_1800} on file.", JCB_1800, {rec.CARD}),
    # phones of several countries, national and international, with extensions
    ("Call +44 20 7946 0958 today.", "+44 20 7946 0958", {rec.PHONE}),
    ("Office 312-555-1234 ext. 45 now.", "312-555-1234 ext. 45", {rec.PHONE}),
    ("Home +49 30 1234567 only.", "+49 30 1234567", {rec.PHONE}),
    ("Tel. 08368 59574 (Festnetz).", "08368 59574", {rec.PHONE}),
    ("Portable : 06 12 34 56 78.", "06 12 34 56 78", {rec.PHONE}),
    ("Contact (0118) 496 0353 after 5.", "(0118) 496 0353", {rec.PHONE}),
    ("Sister on +41 44 668 18 00.", "+41 44 668 18 00", {rec.PHONE}),
    ("Mobile 0412 345 678 (AU).", "0412 345 678", {rec.PHONE}),
    # street addresses in many countries' formats
    ("Lives at 12 Birchwood Lane, Omaha, NE 68102. BP fine.", "12 Birchwood Lane, Omaha, NE 68102", {rec.ADDRESS}),
    ("Wohnt in der Hahnstr. 40, 44965 Prenzlau seit 2019.", "Hahnstr. 40, 44965 Prenzlau", {rec.ADDRESS}),
    ("Adresse : 7, boulevard Paulette Gosselin, 01812 Menton.", "7, boulevard Paulette Gosselin, 01812 Menton",
     {rec.ADDRESS}),
    ("Moved to Flat 5, 34 Marsh Walk, Leeds LS1 4DY last May.", "Flat 5, 34 Marsh Walk, Leeds LS1 4DY",
     {rec.ADDRESS}),
    ("Address: Kerkstraat 12, 1012 AB Amsterdam.", "Kerkstraat 12, 1012 AB Amsterdam", {rec.ADDRESS}),
    ("Lives at 5/12 Smith St, Sydney NSW 2000 with her son.", "5/12 Smith St, Sydney NSW 2000", {rec.ADDRESS}),
    ("Resides at 12 Main Street, Dublin 2, D02 X285.", "12 Main Street, Dublin 2, D02 X285", {rec.ADDRESS}),
    ("Home: Bahnhofstrasse 1, 8001 Zürich.", "Bahnhofstrasse 1, 8001 Zürich", {rec.ADDRESS}),
    ("Lives at 1600 Main St W, Toronto, ON M5V 2T6 now.", "1600 Main St W, Toronto, ON M5V 2T6", {rec.ADDRESS}),
    ("Sent to PSC 1786, Box 7626, APO AE 48833 today.", "PSC 1786, Box 7626, APO AE 48833", {rec.ADDRESS}),
    ("Found at the corner of Pachergasse 64 and Radolič Harbor", "Pachergasse 64 and Radolič Harbor", {rec.ADDRESS}),
    ("> Alma Jensen\n> 91215 Harjukuja 54\n> Suite 318\n> SEINÄJOKI\n> Finland 38524",
     "91215 Harjukuja 54\n> Suite 318\n> SEINÄJOKI\n> Finland 38524", {rec.ADDRESS}),
    # dates: ISO, day first, month first, written months in three languages
    ("DOB 4/17/1956 per chart.", "4/17/1956", {rec.DATE}),
    ("Seen on 20.06.2010. Stable.", "20.06.2010", {rec.DATE}),
    ("Admitted 26/02/2023 via ED.", "26/02/2023", {rec.DATE}),
    ("Surgery on 3. März 2021 planned.", "3. März 2021", {rec.DATE}),
    ("Vu le 1er mars 2021 en consultation.", "1er mars 2021", {rec.DATE}),
    ("Discharged 2021-03-04T10:15:00 home.", "2021-03-04T10:15:00", {rec.DATE}),
    ("Follow-up on the 3rd of March, 2021.", "3rd of March, 2021", {rec.DATE}),
    ("Transferred 8/23 to the floor.", "8/23", {rec.DATE}),
    # identifiers announced by context, letters and digits
    ("Seen (MRN MRN-1000001) today.", "MRN-1000001", {rec.MRN}),
    ("MRN: 4456789 verified.", "4456789", {rec.MRN}),
    ("Chart # AB-55213 reviewed.", "AB-55213", {rec.MRN}),
    ("Health plan beneficiary number HP-4471-0923 on file.", "HP-4471-0923", {rec.IDENTIFIER}),
    ("Account no. 0032-771-45 closed.", "0032-771-45", {rec.IDENTIFIER}),
    ("The case originated in an application (no. 36244/06) against Turkey.", "36244/06", {rec.IDENTIFIER}),
    ("Insurance member ID EC107356745.", "EC107356745", {rec.IDENTIFIER}),
    ("Mr. O'Connor, account ending in 4421, called.", "4421", {rec.IDENTIFIER}),
    ("What medications is Jane Doe (Medicare ID 1EG4-TE5-MK73) taking?", "1EG4-TE5-MK73", {rec.IDENTIFIER}),
    ("What medications is Jane Doe taking?", "Jane Doe", {rec.PERSON}),
    ("SSN 123456789 on file.", "123456789", {rec.SSN}),
    ("SSN 123-45-6789 on file.", "123-45-6789", {rec.SSN}),
    ("Mailing zip 62704 only.", "62704", {rec.ZIP}),
    ("My zip code is 35350", "35350", {rec.ZIP}),
    # person names in any order and form
    ("Seen by Dr. Okonkwo today.", "Okonkwo", {rec.PERSON}),
    ("Rosalind Vasquez is a 67-year-old.", "Rosalind Vasquez", {rec.PERSON}),
    ("Patient Brown, Maria (MRN 5531222) seen.", "Brown, Maria", {rec.PERSON}),
    # (a title or degree goes with the name it belongs to)
    ("Referred by Prof. Dr. med. Karl-Heinz Müller-Lüdenscheidt for review.",
     "Prof. Dr. med. Karl-Heinz Müller-Lüdenscheidt", {rec.PERSON}),
    ("Emergency contact: Silva Köster B.Eng., +49 7322 310049.", "Silva Köster B.Eng.", {rec.PERSON}),
    ("Emergency contact: Frau Else Döhn, (08739) 21941.", "Frau Else Döhn", {rec.PERSON}),
    ("Consult with Jean-Luc de la Fontaine, MD tomorrow.", "Jean-Luc de la Fontaine", {rec.PERSON}),
    ("Emergency contact: Willemine ten Pas (daughter).", "Willemine ten Pas", {rec.PERSON}),
    ("Signed by Shane M Culp, RN.", "Shane M Culp", {rec.PERSON}),
    ("Spoke with her husband Ilkka Häkkinen by phone.", "Ilkka Häkkinen", {rec.PERSON}),
    ("Usamov and Bowers were precision engineers.", "Usamov", {rec.PERSON}),
    ("my name is olga krylova", "olga krylova", {rec.PERSON}),
    ("CK DRAWN AT 1515. DR JONES AWARE.", "JONES", {rec.PERSON}),
    ("GTT DECREASED PER DR. SMOLAREK. CI >2.", "SMOLAREK", {rec.PERSON}),
    ("by a Turkish national, Mr Atilla Kart (the applicant)", "Mr Atilla Kart", {rec.PERSON}),
    ("His Honour Judge Pryor QC held that", "His Honour Judge Pryor QC", {rec.PERSON}),
    # places and institutions that locate a person
    ("Transferred from St. Mary's Hospital overnight.", "St. Mary's Hospital", {rec.LOCATION}),
    ("Discharged to Klinikum Stuttgart.", "Klinikum Stuttgart", {rec.LOCATION}),
    ("She grew up in Remniku.", "Remniku", {rec.LOCATION}),
    ("Travelled to Böblingen last week.", "Böblingen", {rec.LOCATION}),
    # ages (the policy decides which ones are masked) and other identifiers
    ("Pt is a 92-year-old with CHF.", "92", {rec.AGE}),
    ("She retired at the age of 61 and moved.", "61", {rec.AGE}),
    ("Flew to Oslo on Tuesday morning.", "Tuesday", {rec.DATE}),
    ("She arrived in the United Kingdom in 2000 as an asylum seeker.", "2000", {rec.DATE}),
    ("three children born in 1986, 1989 and 1990.", "1989", {rec.DATE}),
    ("during the 22nd Parliament [2002-2007] 299 files", "2002-2007", {rec.DATE}),
    ("On 23 and 24 January 2008 the applicant filed", "23 and 24 January 2008", {rec.DATE}),
    ("He was sentenced to three years and four months' imprisonment.", "three years and four months", {rec.DATE}),
    ("They were given the numbers 3/107 and 3/129 later.", "3/129", {rec.IDENTIFIER}),
    # postcodes and capitalized towns after the place or street they belong to
    ("Send it to Ana Dias, ul. Słowicza 10, Wrocław 53-320.", "Wrocław 53-320", {rec.LOCATION, rec.ADDRESS}),
    ("Address: Skoanveien 226 FAUSKE nan 8200", "Skoanveien 226 FAUSKE nan 8200", {rec.ADDRESS}),
    ("Looking to support Allianz in Acquapendente 1021 in its mission.", "Acquapendente 1021",
     {rec.LOCATION, rec.ADDRESS}),
    # notes in capitals: the place after "to/at/from", a facility word or a ward number with it
    ("PT WAS ADMITTED TO FREDERICK MEMORIAL FOR VFIB ARREST.", "FREDERICK MEMORIAL", {rec.LOCATION}),
    ("TRANSFERRED TO QUARTERMAIN 3 POST PROCEDURE.", "QUARTERMAIN", {rec.LOCATION}),
    # month and two-digit year of a past event, a year with an apostrophe
    ("PMH: CAD, AVR 8/88, DDD PMR, REFLUX.", "8/88", {rec.DATE}),
    ("pmh: cad s/p cabg '84, h/o dvt.", "'84", {rec.DATE}),
    # Spanish records: the address after "Domicilio:", "C/" streets, the record number after "NHC:"
    ("Domicilio: calle cartagena 19, 3B.\nLocalidad/ Provincia: Madrid.", "calle cartagena 19, 3B", {rec.ADDRESS}),
    ("Remitido a C/ Arnaiz, 4, 3 A por la tarde.", "C/ Arnaiz, 4", {rec.ADDRESS}),
    ("NHC: 136412.\nNASS: 36 74651289 36.", "136412", {rec.IDENTIFIER, rec.MRN}),
    ("Localidad/ Provincia: Madrid.\nCP: 28035.\nDatos asistenciales.", "28035", {rec.IDENTIFIER, rec.ZIP}),
    ("Varón de 64 años que consultó en mayo de 2006 por disestesia facial.", "mayo de 2006", {rec.DATE}),
    ("Fecha de nacimiento: 23-febrero-1931.", "23-febrero-1931", {rec.DATE}),
    # Spanish ages carry their unit
    ("Paciente varón de 47 años de edad, acude por disuria.", "47 años", {rec.AGE}),
    # "Last, First" with a surname that is also a word
    ("Brown, Derek (DOB 19.10.1970) presented with chest pain.", "Brown, Derek", {rec.PERSON}),
    # a lower-case name before a possessive, a surname first in a sentence beside another name
    ("olga krylova's killers sentenced to life in prison", "olga krylova", {rec.PERSON}),
    ("Abramovich and Wilson were precision engineers.", "Abramovich", {rec.PERSON}),
    # a name in lower case after "my name is", "call me", "dr"
    ("some mild stridor noted, dr green aware.", "green", {rec.PERSON}),
    ("my name is vitoria and i need help", "vitoria", {rec.PERSON}),
    ("sometimes people call me višeslav", "višeslav", {rec.PERSON}),
    ("He lived outside the Borough of Southwark for years.", "Borough of Southwark", {rec.LOCATION}),
    ("Telehealth from 192.168.10.4 ok.", "192.168.10.4", {rec.IP}),
    ("See https://example.org/patients/8812 for the scan.", "https://example.org/patients/8812", {rec.URL}),
    ("Device serial 4471-9920-1187 replaced.", "4471-9920-1187", {rec.IDENTIFIER, rec.PHONE}),
]


@pytest.mark.parametrize(("text", "expected", "entities"), FOUND)
def test_identifier_is_found(text, expected, entities):
    """The identifier is covered by one span of an expected type that takes in at most a
    neighbouring word besides (recall first: a few characters more cost a little utility)."""
    spans = detect_batch([text])[0]
    start = text.index(expected)
    found = [(text[s.start:s.end], s.entity_type) for s in spans]
    assert any(s.start <= start and start + len(expected) <= s.end and s.entity_type in entities
               and (s.end - s.start) - len(expected) <= 8 for s in spans), found


CLEAN = [
    "Metformin 500 mg BID; BP 130/85, HR 78. Follow up in 3 weeks.",
    "Dx E11.9 and I50.9; ICD-10 J45.909. A1c 7.2% on 3 readings.",
    "Routine visit. No complaints. Continue current regimen and recheck labs in 3 months.",
    "Weight 82 kg, BMI 27.4, glucose 142 mg/dL, Na 138, K 4.1.",
    "- stable on metformin 500 mg BID\n- recheck in 3 months",
    "Neuro: alert, oriented x3. Abd soft. Foley draining clear yellow urine. Propofol weaned.",
    "Vent settings 500x12, PEEP 5, FiO2 40%. Strength 5/5 in all limbs, 2/6 murmur.",
    "Parkinson's disease, Crohn's disease and a Glasgow Coma Scale of 15.",
    "Nightshift 1900-0700: SBP 100-120/50-60, fluids 1000-1200 cc.",
    "Take 1/2 tab at bedtime; increase to 3/4 tab if needed.",
    "Gave 2000 ml NS; recheck in 3 weeks; 1800 cc out.",
    "Continue current regimen and recheck labs in three months; mammogram every two years.",
    "Transferred from the ICU at 2200 hrs; call me tomorrow with the results.",
    "Metformin and Lisinopril were continued; the patient's wife's car was parked outside.",
    "UNABLE TO EXTUBATE TODAY. TRANSFERRED TO MICU FOR CLOSER MONITORING, THEN TO FLOOR.",
]


@pytest.mark.parametrize("text", CLEAN)
def test_clinical_text_has_no_spans(text):
    spans = detect_batch([text])[0]
    assert [(text[s.start:s.end], s.entity_type) for s in spans] == []


def test_a_long_digit_run_is_masked_even_without_a_checksum():
    """Recall first: 16 digits that fail Luhn are not a card, but still an identifier."""
    text = "Number 4111 1111 1111 1112 on the form."
    spans = detect_batch([text])[0]
    assert [(text[s.start:s.end], s.entity_type) for s in spans] == [("4111 1111 1111 1112", rec.IDENTIFIER)]


def test_overlapping_spans_merge_into_one_that_covers_both():
    """A phone-shaped date and the date: one span, typed by the more specific detector."""
    text = "Seen 2021-03-04 12:20:39 in clinic."
    spans = detect_batch([text], ner=False)[0]
    assert [(text[s.start:s.end], s.entity_type) for s in spans] == [("2021-03-04 12:20:39", rec.DATE)]


def test_a_chain_of_overlapping_spans_becomes_one():
    from securepipe.pii.text import merge_spans

    chain = [rec.Span(0, 4, rec.PERSON, 0.5), rec.Span(3, 8, rec.DATE, 0.7), rec.Span(7, 12, rec.PHONE, 0.6)]
    assert merge_spans(chain) == [rec.Span(0, 12, rec.DATE, 0.7)]


def test_known_values_of_the_row_are_found_as_whole_words():
    text = "Annual visit: Ann Lee (Lee family) doing well."
    spans = detect_batch([text], [[("Ann Lee", rec.PERSON)]], ner=False)[0]
    assert [text[s.start:s.end] for s in spans] == ["Ann Lee", "Lee"]


def test_our_surrogates_are_not_reported():
    text = "Pt [PERSON:abcdefghijklmnopqr] called from <PHONE_NUMBER>; seen in clinic."
    assert detect_batch([text])[0] == []


def test_a_span_running_into_a_surrogate_stops_at_it():
    """Masking a masked note again must never wrap a pseudonym token in another."""
    text = "Wife Anna [PERSON:abcdefghijklmnopqr] called."
    spans = detect_batch([text])[0]
    assert [text[s.start:s.end] for s in spans] == ["Anna"]


# --- the registry ------------------------------------------------------------------------------------
def test_registry_disables_and_adds_recognizers_by_name():
    config = RecognizerConfig.parse({
        "disable": ["email"],
        "add": [{"name": "lab_kit", "entity": "IDENTIFIER", "patterns": [{"regex": r"\bKIT-[A-Z]{4}\b", "score": 0.9}],
                 "context": ["kit"]}],
    })
    registry = RecognizerRegistry(config)
    assert "email" not in registry.names and "lab_kit" in registry.names
    text = ("The kit KIT-ABCD went to ann@example.org. Nothing announced the code that came back with the "
            "courier this morning, KIT-WXYZ.")
    spans = detect_batch([text], ner=False, config=config)[0]
    assert [text[s.start:s.end] for s in spans] == ["KIT-ABCD"]


def test_registry_reads_phone_regions():
    text = "Ring 07700 900123 tonight."
    us_only = RecognizerConfig.parse({"phone_regions": ["US"], "disable": ["digit_run"]})
    uk = RecognizerConfig.parse({"phone_regions": ["GB"], "disable": ["digit_run"]})
    assert [s.entity_type for s in detect_batch([text], ner=False, config=uk)[0]] == [rec.PHONE]
    assert [s.entity_type for s in detect_batch([text], ner=False, config=us_only)[0]] == []


@pytest.mark.parametrize(("raw", "message"), [
    ({"disable": ["no_such_recognizer"]}, "recognizer names"),
    ({"add": [{"name": "x", "entity": "NOPE", "patterns": [{"regex": "a"}]}]}, "entity"),
    ({"add": [{"name": "x", "entity": "IDENTIFIER", "patterns": [{"regex": "("}]}]}, "not a valid regular expression"),
    ({"add": [{"name": "email", "entity": "IDENTIFIER", "patterns": [{"regex": "a"}]}]}, "already taken"),
    ({"add": [{"name": "x", "entity": "IDENTIFIER", "patterns": [{"regex": "a"}], "validator": "magic"}]}, "validator"),
    ({"phone_regions": ["XX"]}, "ISO region codes"),
    ({"colour": "blue"}, "unknown key"),
])
def test_registry_config_refuses_bad_entries(raw, message):
    with pytest.raises(PolicyError, match=message):
        RecognizerConfig.parse(raw)


def test_a_policy_configures_the_recognizers_of_every_detector_call(tmp_path):
    """`detection.recognizers` in a policy file reaches `pii detect` (and masking, which shares it)."""
    import json
    import subprocess
    import sys

    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nextends: default\ndetection:\n  ner: false\n  recognizers:\n"
                      "    disable: [email]\n    add:\n      - name: lab_kit\n        entity: IDENTIFIER\n"
                      "        patterns: [{regex: 'KIT-[A-Z]{4}'}]\n")
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "1", "text": "Kit KIT-ABCD for ann@example.org"}) + "\n")
    out = tmp_path / "spans.jsonl"
    subprocess.run([sys.executable, "-m", "securepipe.cli", "pii", "detect", "--in", str(notes), "--out", str(out),
                    "--policy", str(policy)], check=True, capture_output=True)
    spans = json.loads(out.read_text())["spans"]
    assert [(s["start"], s["end"], s["entity_type"]) for s in spans] == [(4, 12, rec.IDENTIFIER)]
