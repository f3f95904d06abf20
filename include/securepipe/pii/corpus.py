"""A labeled corpus of synthetic clinical notes, with gold spans, for recall and precision.

Why generated here: no real notes may be used, and nothing is downloaded. The notes
mix identifiers in the formats the recognizers must catch (2-series Mastercard,
19-digit Visa, Maestro, international and extension phones, street addresses, MRNs,
dates in several styles, SSNs, e-mails, IPs, clinician and family names) with the
clinical text that trips up detectors (doses, vitals, durations, ICD-10 codes, drug
names), which is labeled as nothing. Names and places are drawn from lists distinct
from `securepipe.synth`, so the benchmark is not tuned to the table generator.
"""
from __future__ import annotations

import random

from securepipe.pii import recognizers as rec

FIRST = ("Aaliyah Bernard Camila Dmitri Esperanza Farid Giulia Hamza Ingrid Jorge Keiko Lars Mei Nikolai Oluwaseun "
         "Paloma Quentin Rosalind Santiago Tamsin Ugo Valentina Wendell Ximena Yusuf Zofia Anders Beatriz Cormac "
         "Delphine Emeka Freya Gideon Hana Idris Juniper").split()
LAST = ("Abernathy Bergstrom Castellanos Dubois Eriksen Fitzgerald Gutierrez Hoffmann Iwasaki Jablonski Kowalczyk "
        "Lindqvist Mbeki Nakamura Oyelaran Pellegrino Quinones Rasmussen Schreiber Takahashi Umarov Vasquez "
        "Whitfield Xiong Yilmaz Zielinski Achterberg Brennan Carvalho Desmond").split()
STREETS = "Birchwood Harbor Quarry Juniper Orchard Riverside Chestnut Foxglove Granite Laurel".split()
SUFFIXES = ("Street", "Avenue", "Road", "Lane", "Drive", "Court", "Blvd", "St", "Ave")
CITIES = (("Fresno", "CA"), ("Omaha", "NE"), ("Tulsa", "OK"), ("Savannah", "GA"), ("Duluth", "MN"),
          ("Boise", "ID"), ("Lubbock", "TX"), ("Trenton", "NJ"))
DRUGS = ("metoprolol 25 mg BID", "Lisinopril 10 mg daily", "Atorvastatin 40 mg", "insulin glargine 20 units qhs",
         "Amoxicillin 500 mg TID x 7 days", "Furosemide 40 mg PO")
ICD = ("E11.9", "I10", "J45.909", "N18.3", "I50.9", "K21.9", "F41.1", "M17.11")


def _luhn(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _card(r: random.Random) -> str:
    prefix, length = r.choice((("2221", 16), ("2720", 16), ("2500", 16), ("4", 19), ("4", 16), ("5018", 19),
                               ("6759", 18), ("51", 16), ("6011", 16), ("37", 15)))
    number = _luhn(prefix + "".join(r.choice("0123456789") for _ in range(length - len(prefix) - 1)))
    if length == 16 and r.random() < 0.5:
        return " ".join(number[i:i + 4] for i in range(0, 16, 4))
    return number


def _phone(r: random.Random) -> str:
    area, exch, line = r.randint(201, 989), r.randint(200, 989), r.randint(1000, 9999)
    return r.choice((
        f"({area}) {exch}-{line}", f"{area}-{exch}-{line}", f"+1 {area} {exch} {line}",
        f"{area}.{exch}.{line} x{r.randint(10, 9999)}", f"{area}-{exch}-{line} ext. {r.randint(1, 999)}",
        f"+44 20 {r.randint(7000, 7999)} {r.randint(1000, 9999)}", f"+49 30 {r.randint(1000000, 9999999)}",
        f"+33 1 {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)}",
    ))


def _date(r: random.Random) -> str:
    y, m, d = r.randint(1935, 2025), r.randint(1, 12), r.randint(1, 28)
    months = ("January February March April May June July August September October November December").split()
    return r.choice((f"{y}-{m:02d}-{d:02d}", f"{m}/{d}/{y}", f"{months[m - 1]} {d}, {y}", f"{d} {months[m - 1][:3]} {y}"))


def _ssn(r: random.Random) -> str:
    return f"{r.randint(1, 665):03d}-{r.randint(1, 99):02d}-{r.randint(1, 9999):04d}"


def _address(r: random.Random) -> str:
    city, state = r.choice(CITIES)
    unit = r.choice(("", "", f" Apt {r.randint(1, 40)}"))
    return f"{r.randint(1, 9899)} {r.choice(STREETS)} {r.choice(SUFFIXES)}{unit}, {city}, {state} {r.randint(10000, 99899)}"


def _name(r: random.Random) -> str:
    return f"{r.choice(FIRST)} {r.choice(LAST)}"


GENERATORS = {
    "PERSON": _name,
    "LAST": lambda r: r.choice(LAST),
    "PHONE": _phone,
    "CARD": _card,
    "DATE": _date,
    "SSN": _ssn,
    "ADDRESS": _address,
    "MRN": lambda r: r.choice((f"MRN-{r.randint(10**6, 10**7 - 1)}", f"MR#{r.randint(10**5, 10**6 - 1)}")),
    "EMAIL": lambda r: f"{r.choice(FIRST).lower()}.{r.choice(LAST).lower()}{r.randint(1, 99)}@example.org",
    "IP": lambda r: f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
}
ENTITY_OF = {
    "PERSON": rec.PERSON, "LAST": rec.PERSON, "PHONE": rec.PHONE, "CARD": rec.CARD, "DATE": rec.DATE,
    "SSN": rec.SSN, "ADDRESS": rec.ADDRESS, "MRN": rec.MRN, "EMAIL": rec.EMAIL, "IP": rec.IP,
}

# {FIELD} marks a labeled span; {drug} and {icd} are clinical distractors (not PII).
TEMPLATES = (
    "{PERSON} is a 67-year-old seen on {DATE} for {icd}. Started {drug}. BP 132/84, HR 78. Follow up in 3 weeks.",
    "Seen by Dr. {LAST} with daughter {PERSON}. MRN {MRN}. Reports chest pain x 2 days; troponin negative.",
    "Pt lives at {ADDRESS}. Contact {PHONE} or {EMAIL}. Dx {icd}; continue {drug}.",
    "Billing note: card {CARD} on file for {PERSON}; SSN {SSN}. Copay $40 collected.",
    "DOB {DATE}. Admitted {DATE} via ED. Labs: Na 138, K 4.1, Cr 1.2. Plan: {drug}, recheck in 6 months.",
    "Telehealth visit from IP {IP}; patient {PERSON} ({MRN}) reachable at {PHONE}. Glucose 142 mg/dL.",
    "Spouse {PERSON} called from {PHONE} about refill of {drug}. No changes to regimen since {DATE}.",
    "Referred to Dr. {PERSON} (cardiology). Echo showed EF 45%. ICD-10 {icd}. Return in 2 wks.",
    "Routine visit. Weight 82 kg, BMI 27.4. Continue {drug}. A1c 7.2% on 3 readings.",
    "Discharge to home at {ADDRESS}. Emergency contact {PERSON}, {PHONE}. Card {CARD} charged.",
)


def generate_notes(n: int, seed: int = 0) -> list[dict]:
    """`n` notes: {"id", "text", "spans": [{"start", "end", "entity_type"}]}."""
    r = random.Random(seed)
    notes = []
    for index in range(n):
        template = TEMPLATES[index % len(TEMPLATES)] if index < len(TEMPLATES) else r.choice(TEMPLATES)
        text, spans, cursor = [], [], 0
        for literal, field in _fields(template):
            text.append(literal)
            cursor += len(literal)
            if field is None:
                continue
            if field in ("drug", "icd"):
                value = r.choice(DRUGS if field == "drug" else ICD)
            else:
                value = GENERATORS[field](r)
                spans.append({"start": cursor, "end": cursor + len(value), "entity_type": ENTITY_OF[field]})
            text.append(value)
            cursor += len(value)
        notes.append({"id": f"note-{index:06d}", "text": "".join(text), "spans": spans})
    return notes


def _fields(template: str):
    """(literal, field) pairs of a template; the last field is None."""
    out, rest = [], template
    while "{" in rest:
        literal, _, tail = rest.partition("{")
        field, _, rest = tail.partition("}")
        out.append((literal, field))
    out.append((rest, None))
    return out


def score(gold: list[list[dict]], predicted: list[list[tuple[int, int]]], cover: float = 0.9) -> dict:
    """Recall: gold spans whose characters predicted spans cover >= `cover`.
    Precision: predicted spans that overlap some gold span. Entity types are not compared:
    for masking, a covered identifier is masked whatever it was called."""
    found = total_gold = true_pred = total_pred = 0
    for gold_spans, pred_spans in zip(gold, predicted):
        for g in gold_spans:
            total_gold += 1
            covered = sum(max(0, min(g["end"], e) - max(g["start"], s)) for s, e in pred_spans)
            found += covered >= cover * (g["end"] - g["start"])
        for s, e in pred_spans:
            total_pred += 1
            true_pred += any(s < g["end"] and g["start"] < e for g in gold_spans)
    return {
        "recall": round(found / total_gold, 4) if total_gold else None,
        "precision": round(true_pred / total_pred, 4) if total_pred else None,
        "gold_spans": total_gold,
        "predicted_spans": total_pred,
    }
