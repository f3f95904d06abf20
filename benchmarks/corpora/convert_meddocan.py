"""Convert MEDDOCAN (Spanish clinical cases with PHI marked by hand; BRAT standoff files).

Source: https://github.com/PlanTL-GOB-ES/SPACCC_MEDDOCAN (CC BY 4.0), `corpus/{train,dev,test}/brat/`:
1,000 clinical case reports from SciELO, rewritten as patient records with synthetic
personal data (names, record and insurance numbers, addresses, dates, phones, e-mails) and
annotated by hand in 22 types. One `.txt` and one `.ann` per case; each `T` line of an
`.ann` file is `id <TAB> TYPE start end[;start end] <TAB> surface`, offsets in characters of
the UTF-8 text.

Counted: names of patients and clinicians, ages, dates, streets, towns/provinces/postcodes
(TERRITORIO), hospitals and health centres, patient, insurance, contact, licence and
employment numbers, phones, faxes, e-mails. Ignored: sex, country, relatives and other
demographic mentions ("padre", "casada"), professions and institutions (organisations).
The published train/dev/test split is kept.
Usage: python convert_meddocan.py MEDDOCAN_CHECKOUT OUT_DIR [--sample-bytes N]
"""
from __future__ import annotations

from pathlib import Path

from corpus_writer import run

SPLITS = ("train", "dev", "test")
META = {
    "name": "meddocan-es",
    "source": "https://github.com/PlanTL-GOB-ES/SPACCC_MEDDOCAN (corpus/*/brat)",
    "licence": "CC BY 4.0",
    "description": (
        "MEDDOCAN: 1,000 Spanish clinical case reports (Spain) with synthetic personal data annotated by hand: "
        "patient and clinician names, ages, dates, streets, towns and postcodes, hospitals, record, insurance "
        "and licence numbers, phones, e-mails. Sex, country, relatives, other demographics, professions and "
        "institutions are ignored. Published train/dev/test split."
    ),
    "type_map": {
        "NOMBRE_SUJETO_ASISTENCIA": "PERSON", "NOMBRE_PERSONAL_SANITARIO": "PERSON",
        "EDAD_SUJETO_ASISTENCIA": "AGE", "FECHAS": "DATE_TIME", "CALLE": "STREET_ADDRESS", "TERRITORIO": None,
        "HOSPITAL": None, "CENTRO_SALUD": None, "ID_SUJETO_ASISTENCIA": "MEDICAL_RECORD_NUMBER",
        "ID_ASEGURAMIENTO": None, "ID_CONTACTO_ASISTENCIAL": None, "ID_TITULACION_PERSONAL_SANITARIO": None,
        "ID_EMPLEO_PERSONAL_SANITARIO": None, "NUMERO_TELEFONO": "PHONE_NUMBER", "NUMERO_FAX": "PHONE_NUMBER",
        "CORREO_ELECTRONICO": "EMAIL_ADDRESS",
    },
    "ignore_types": ["SEXO_SUJETO_ASISTENCIA", "PAIS", "FAMILIARES_SUJETO_ASISTENCIA", "OTROS_SUJETO_ASISTENCIA",
                     "PROFESION", "INSTITUCION"],
}


def parse_ann(ann: str, text: str, name: str) -> list[dict]:
    """The spans of one `.ann` file, checked against the text (a discontinuous span gives one
    span per piece)."""
    spans = []
    for row, line in enumerate(ann.splitlines(), start=1):
        if not line.startswith("T"):
            continue  # relations, notes and attributes carry no span
        _, kind_and_ranges, surface = line.split("\t", 2)
        kind, ranges = kind_and_ranges.split(" ", 1)
        pieces = [tuple(map(int, piece.split())) for piece in ranges.split(";")]
        if " ".join(text[start:end] for start, end in pieces) != surface:
            raise ValueError(f"{name} row {row}: offsets do not match the annotated text")
        spans += [{"start": start, "end": end, "type": kind} for start, end in pieces]
    return sorted(spans, key=lambda s: (s["start"], s["end"]))


def documents(folder: Path) -> list[dict]:
    converted = []
    for txt in sorted(folder.glob("*.txt")):
        # newline="" keeps "\r\n" as two characters, as the annotation offsets count them
        with open(txt, encoding="utf-8", newline="") as handle:
            text = handle.read()
        ann = txt.with_suffix(".ann").read_text(encoding="utf-8")
        converted.append({"id": txt.stem, "text": text, "spans": parse_ann(ann, text, txt.with_suffix(".ann").name)})
    return converted


def splits(source: Path) -> tuple[dict[str, list[dict]], int]:
    found = {split: documents(source / "corpus" / split / "brat") for split in SPLITS
             if (source / "corpus" / split / "brat").is_dir()}
    if not found:
        raise SystemExit(f"no corpus/{{train,dev,test}}/brat in {source}")
    return found, 0


def main() -> None:
    run(__doc__.splitlines()[0], META, splits)


if __name__ == "__main__":
    main()
