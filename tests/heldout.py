"""A clinical table written the way other people write them, for tests only (never the runtime).

It shares nothing with `securepipe.synth`: column names in German, French and English
shorthand ("Pat.-Nr.", "Geburtsdatum", "adresse_postale", "Tel", "dx"), in an order of
its own; names, addresses, phones and dates from Faker in four locales (en_US, en_GB,
de_DE, fr_FR) in their national formats ("Last, First", academic titles, day-first
dates, +44/+49/+33 phones, UK postcodes); a free-text address column; visit notes that
repeat the patient's identifiers in other forms, name a relative who appears nowhere
else, and start with bullets ("- stable") or signs. Some patients have several visits.

`identifiers` lists, per row, every identifier that must not survive masking, split into
what the row also holds in structured columns and what appears only inside the note.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import pandas as pd
from faker import Faker

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR")
DATE_FORMAT = {"en_US": "%m/%d/%Y", "en_GB": "%d/%m/%Y", "de_DE": "%d.%m.%Y", "fr_FR": "%d/%m/%Y"}
SEX = {"en_US": ("M", "F"), "en_GB": ("M", "F"), "de_DE": ("m", "w"), "fr_FR": ("M", "F")}
ID_PREFIX = {"en_US": "", "en_GB": "RX", "de_DE": "P-", "fr_FR": "FR"}
RELATIVE = {"en_US": "sister", "en_GB": "daughter", "de_DE": "Ehefrau", "fr_FR": "fils"}
ICD10 = ("E11.9", "I10", "J45.909", "N18.3", "I50.9", "C34.90", "E78.5", "F32.9", "M54.5", "K21.9", "Z00.00")
BULLETS = ("- stable", "+ improved", "- no change", "= unchanged from last visit", "@home, self-caring")
# Columns by what they hold: the checks know which to search and which must come out unchanged.
PII_COLUMNS = ("Pat.-Nr.", "Patient", "Geburtsdatum", "adresse_postale", "PLZ", "Tel", "courriel", "Aufnahme")
CLINICAL_COLUMNS = ("dx", "hba1c_pct", "sbp", "flag_smoker", "outcome")
ROW_KEY = "lfd. Nr."  # an unchanged running number: lets a check align input and output rows
NOTE = "visit_note"


@dataclass
class HeldOutTable:
    frame: pd.DataFrame
    row_identifiers: list[list[str]] = field(default_factory=list)  # per row: also in structured columns
    note_only_identifiers: list[list[str]] = field(default_factory=list)  # per row: only in the note


def _name_forms(fake: Faker, locale: str, rng: random.Random) -> tuple[str, str, str]:
    """(as the Patient column writes it, as the note writes it, the surname alone)."""
    first, last = fake.first_name(), fake.last_name()
    if locale == "de_DE" and rng.random() < 0.2:
        last = f"{last}-{fake.last_name()}"
    column = f"{last}, {first}" if rng.random() < 0.4 else f"{first} {last}"
    title = {"de_DE": "Dr. med. ", "en_GB": "Dr ", "fr_FR": "Mme ", "en_US": "Mr. "}[locale]
    note = rng.choice([f"{first} {last}", f"{title}{last}", f"{last}, {first}", f"{first[0]}. {last}"])
    return column, note, last


def _address(fake: Faker, locale: str) -> tuple[str, str, str]:
    street, postcode, city = fake.street_address(), fake.postcode(), fake.city()
    if locale == "en_US":
        return f"{street}, {city}, {fake.state_abbr()} {postcode}", postcode, city
    if locale == "en_GB":
        return f"{street}, {city}, {postcode}, United Kingdom", postcode, city
    return f"{street}, {postcode} {city}", postcode, city


def generate(rows: int = 300, seed: int = 0) -> HeldOutTable:
    rng = random.Random(seed)
    fakers = {locale: Faker(locale) for locale in LOCALES}
    for offset, fake in enumerate(fakers.values()):
        fake.seed_instance(seed * 31 + offset)
    patients = []
    for index in range(max(1, int(rows * 0.75))):
        locale = LOCALES[(index + index // len(LOCALES)) % len(LOCALES)]  # every note template meets every locale
        fake = fakers[locale]
        column_name, note_name, surname = _name_forms(fake, locale, rng)
        address, postcode, city = _address(fake, locale)
        born = fake.date_of_birth(minimum_age=18, maximum_age=92)
        patients.append({
            "locale": locale, "id": f"{ID_PREFIX[locale]}{rng.randrange(10**6, 10**7)}", "name": column_name,
            "note_name": note_name, "surname": surname, "born": born.strftime(DATE_FORMAT[locale]),
            "address": address, "postcode": postcode, "city": city, "phone": fake.phone_number(),
            "email": fake.email(), "sex": rng.choice(SEX[locale]),
        })
    records, row_ids, note_ids = [], [], []
    for row in range(rows):
        p = patients[row] if row < len(patients) else rng.choice(patients)  # repeat visits
        fake = fakers[p["locale"]]
        visit = fake.date_between(start_date="-2y", end_date="today").strftime(DATE_FORMAT[p["locale"]])
        relative, relative_phone = fake.name(), fake.phone_number()
        smoker = rng.random() < 0.25
        hba1c = round(rng.uniform(4.8, 11.5), 1)
        sbp = rng.randrange(95, 195)
        dx = rng.choice(ICD10)
        outcome = int(rng.random() < 0.15 + 0.05 * (hba1c > 8) + 0.2 * (dx in ("I50.9", "N18.3")))
        template = row % 4
        if template == 0:
            note = (f"{rng.choice(BULLETS)}. Pt {p['note_name']} seen {visit} for follow-up, HbA1c {hba1c}%. "
                    f"Reachable at {p['phone']}. {RELATIVE[p['locale']].capitalize()} {relative} "
                    f"({relative_phone}) informed.")
            note_only = [relative, relative_phone]
        elif template == 1:
            note = (f"Lives at {p['address']}; {RELATIVE[p['locale']]} {relative} is the emergency contact. "
                    f"BP {sbp}/80, no acute distress. Record {p['id']}.")
            note_only = [relative]
        elif template == 2:
            note = f"{rng.choice(BULLETS)} since last visit; continue current regimen, recheck labs in 3 months."
            note_only = []
        else:
            note = (f"Discharge summary for {p['note_name']}, born {p['born']}. Mail {p['email']}, "
                    f"phone {p['phone']}. Smoker: {'yes' if smoker else 'no'}.")
            note_only = []
        records.append({
            "dx": dx, "Pat.-Nr.": p["id"], "Patient": p["name"], "hba1c_pct": f"{hba1c}",
            "Geburtsdatum": p["born"], "Geschlecht": p["sex"], "adresse_postale": p["address"], "PLZ": p["postcode"],
            "Tel": p["phone"], "courriel": p["email"], "Aufnahme": visit, NOTE: note, "sbp": str(sbp),
            "flag_smoker": "Y" if smoker else "N", "outcome": str(outcome), ROW_KEY: str(row + 1),
        })
        row_ids.append([p[k] for k in ("id", "name", "note_name", "born", "address", "phone", "email")]
                       + [visit, p["surname"]])
        note_ids.append(note_only)
    return HeldOutTable(pd.DataFrame(records), row_ids, note_ids)
