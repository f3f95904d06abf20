"""Synthetic sensitive records for the demo, tests and benchmarks.

Nothing is loaded from a hub: every value is generated here from a seeded RNG, so
runs are reproducible. The records look like what the pipeline protects (HIPAA
identifiers in structured columns and inside free-text notes) and carry a label
with real signal, so a model trained on the masked data learns something.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FIRST_NAMES = np.array(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Margaret "
    "Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Carol Kevin "
    "Amanda Brian Dorothy George Melissa Timothy Deborah Priya Wei Mohammed Fatima Olga Hiroshi Ana Luis".split()
)
LAST_NAMES = np.array(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall "
    "Rivera Campbell Mitchell Carter Roberts Okafor Kowalski Yamamoto Petrov Haddad".split()
)
STREETS = np.array(
    "Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Walnut Sunset Lincoln Jackson Church Highland "
    "Madison Franklin Willow Meadow".split()
)
STREET_SUFFIXES = np.array(["St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Way"])
CITIES = np.array(
    [("Springfield", "IL"), ("Boston", "MA"), ("Austin", "TX"), ("Denver", "CO"), ("Portland", "OR"),
     ("Columbus", "OH"), ("Madison", "WI"), ("Raleigh", "NC"), ("Tucson", "AZ"), ("Albany", "NY")]
)
AREA_CODES = np.array([212, 312, 415, 617, 303, 503, 614, 608, 919, 520, 718, 213])
EMAIL_DOMAINS = np.array(["example.com", "mail.example.org", "clinic.example.net", "inbox.example.io"])
ICD10 = np.array(["E11.9", "I10", "J45.909", "N18.3", "I50.9", "C34.90", "E78.5", "F32.9", "M54.5", "K21.9"])
# Diagnosis codes that carry risk: the label depends on them too.
HIGH_RISK_CODES = {"I50.9", "N18.3", "C34.90"}
CARD_PREFIXES = ("4", "51", "55", "2221", "2720", "34", "37", "6011")

FEATURES = ["age", "bmi", "systolic_bp", "glucose", "cholesterol", "heart_rate", "smoker", "prior_visits"]
PII_COLUMNS = ["patient_id", "name", "email", "phone", "ssn", "address", "zip", "date_of_birth", "card_number"]
LABEL = "readmitted"


def _luhn_complete(partial: str) -> str:
    digits = [int(d) for d in partial]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 0:  # these positions are doubled once the check digit is appended
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return partial + str((10 - total % 10) % 10)


def _card_number(rng: np.random.Generator) -> str:
    prefix = CARD_PREFIXES[rng.integers(len(CARD_PREFIXES))]
    length = 15 if prefix in ("34", "37") else (19 if prefix == "4" and rng.random() < 0.2 else 16)
    body = prefix + "".join(str(d) for d in rng.integers(0, 10, length - len(prefix) - 1))
    number = _luhn_complete(body)
    if length == 16 and rng.random() < 0.5:
        return " ".join(number[i:i + 4] for i in range(0, 16, 4))
    return number


def _phone(rng: np.random.Generator) -> str:
    area = AREA_CODES[rng.integers(len(AREA_CODES))]
    exchange, line = rng.integers(200, 999), rng.integers(1000, 9999)
    style = rng.integers(4)
    if style == 0:
        return f"({area}) {exchange}-{line}"
    if style == 1:
        return f"+1 {area}-{exchange}-{line}"
    if style == 2:
        return f"{area}.{exchange}.{line}"
    return f"{area}-{exchange}-{line} ext. {rng.integers(10, 999)}"


def _ssn(rng: np.random.Generator) -> str:
    area = rng.integers(1, 899)
    area = area + 1 if area == 666 else area
    return f"{area:03d}-{rng.integers(1, 99):02d}-{rng.integers(1, 9999):04d}"


NOTE_TEMPLATES = (
    "Patient {name} (MRN {mrn}) seen on {visit} for follow-up of {code}. Contact: {phone}. "
    "Lives at {address}. BP {bp} mmHg, glucose {glucose} mg/dL.",
    "{name} called from {phone} asking about medication refill; email {email}. Reports mild fatigue.",
    "Discharge summary for {name}, DOB {dob}. SSN on file {ssn}. Follow up in 2 weeks; "
    "no known allergies.",
    "Pt is a {age}-year-old with {code}. Spouse reachable at {phone}. Stable vitals, HR {hr}.",
    "Billing: card {card} declined; patient {name} will update at {email}. Address {address}.",
    "Routine visit. No complaints. Continue current regimen and recheck labs in 3 months.",
)


def generate_patients(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` synthetic patients: PII columns, a clinical note, numeric features and a label."""
    rng = np.random.default_rng(seed)
    first = FIRST_NAMES[rng.integers(len(FIRST_NAMES), size=n)]
    last = LAST_NAMES[rng.integers(len(LAST_NAMES), size=n)]
    names = [f"{f} {l}" for f, l in zip(first, last)]
    ids = rng.permutation(np.arange(1_000_000, 1_000_000 + max(n * 3, 10)))[:n]
    mrns = [f"MRN-{i:07d}" for i in ids]
    emails = [
        f"{f.lower()}.{l.lower()}{i % 1000}@{EMAIL_DOMAINS[i % len(EMAIL_DOMAINS)]}"
        for f, l, i in zip(first, last, ids)
    ]
    phones = [_phone(rng) for _ in range(n)]
    ssns = [_ssn(rng) for _ in range(n)]
    city_index = rng.integers(len(CITIES), size=n)
    zips = [f"{z:05d}" for z in rng.integers(1001, 99950, size=n)]
    addresses = [
        f"{rng.integers(1, 9999)} {STREETS[rng.integers(len(STREETS))]} "
        f"{STREET_SUFFIXES[rng.integers(len(STREET_SUFFIXES))]}, {CITIES[c][0]}, {CITIES[c][1]} {z}"
        for c, z in zip(city_index, zips)
    ]
    age = rng.integers(18, 91, size=n)
    birth = pd.Timestamp("2026-01-01") - pd.to_timedelta(age * 365.25 + rng.integers(0, 365, size=n), unit="D")
    dob = birth.strftime("%Y-%m-%d")
    admission = (pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 600, size=n), unit="D")).strftime(
        "%Y-%m-%d"
    )
    cards = [_card_number(rng) for _ in range(n)]
    codes = ICD10[rng.integers(len(ICD10), size=n)]

    bmi = np.round(rng.normal(27, 5, n).clip(15, 55), 1)
    systolic = np.round(rng.normal(128, 18, n).clip(85, 210)).astype(int)
    glucose = np.round(rng.normal(105, 30, n).clip(55, 350)).astype(int)
    cholesterol = np.round(rng.normal(195, 35, n).clip(100, 350)).astype(int)
    heart_rate = np.round(rng.normal(76, 12, n).clip(40, 150)).astype(int)
    smoker = (rng.random(n) < 0.22).astype(int)
    prior_visits = rng.poisson(2.0, n)
    high_risk = np.isin(codes, list(HIGH_RISK_CODES)).astype(float)
    logit = (
        -1.0
        + 0.035 * (age - 55)
        + 0.05 * (bmi - 27)
        + 0.02 * (systolic - 128)
        + 0.012 * (glucose - 105)
        + 0.6 * smoker
        + 0.35 * (prior_visits - 2)
        + 1.1 * high_risk
    )
    readmitted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

    template_index = rng.integers(len(NOTE_TEMPLATES), size=n)
    notes = [
        NOTE_TEMPLATES[t].format(
            name=names[i], mrn=mrns[i], visit=admission[i], code=codes[i], phone=phones[i], address=addresses[i],
            bp=systolic[i], glucose=glucose[i], email=emails[i], dob=dob[i], ssn=ssns[i], age=age[i],
            hr=heart_rate[i], card=cards[i],
        )
        for i, t in enumerate(template_index)
    ]
    return pd.DataFrame(
        {
            "patient_id": mrns, "name": names, "email": emails, "phone": phones, "ssn": ssns,
            "address": addresses, "zip": zips, "date_of_birth": dob, "card_number": cards,
            "sex": rng.choice(np.array(["F", "M"]), n), "admission_date": admission, "diagnosis_code": codes,
            "notes": notes, "age": age, "bmi": bmi, "systolic_bp": systolic, "glucose": glucose,
            "cholesterol": cholesterol, "heart_rate": heart_rate, "smoker": smoker,
            "prior_visits": prior_visits, LABEL: readmitted,
        }
    )


def write_patients(path, n: int, seed: int = 0) -> Path:
    """Write `n` patients to CSV or Parquet (chosen by the file's extension), atomically."""
    from securepipe.storage import atomic_write

    path = Path(path)
    frame = generate_patients(n, seed)
    with atomic_write(path) as handle:
        if path.suffix == ".parquet":
            frame.to_parquet(handle, index=False)
        elif path.suffix == ".csv":
            frame.to_csv(handle, index=False)
        else:
            raise ValueError(f"{path.name}: unsupported extension (use .csv or .parquet)")
    return path
