"""Convert the gold-standard nursing notes of PhysioNet's `deid` software (clinical text, PHI marked).

Source: "Automated De-Identification of Free-Text Medical Records", deid 1.1 on PhysioNet
(https://physionet.org/content/deid/1.1/; README.txt: GNU GPL 2.0), files `id.text`
(2,434 nursing notes of 163 patients whose PHI was replaced by realistic surrogates) and
`id-phi.phrase` (one line per PHI instance: patient, note, start, end, type, phrase; offsets
into the note's body, which starts after its `START_OF_RECORD=patient||||note||||` line).
A copy of the package is in the GitHub repository cliffordlab/DEID-2023 (course material).

No split is published, so the converter makes a deterministic 50/50 dev/test split by the
SHA-256 of the patient number: all notes of a patient are in the same split.
Usage: python convert_physionet_deid.py DIR_WITH_id.text_AND_id-phi.phrase OUT_DIR [--sample-bytes N]
"""
from __future__ import annotations

import re
from pathlib import Path

from corpus_writer import group_by_split, hash_split, run

RECORD = re.compile(r"START_OF_RECORD=(\d+)\|\|\|\|(\d+)\|\|\|\|\n(.*?)\|\|\|\|END_OF_RECORD", re.S)
META = {
    "name": "physionet-deid-nursing-notes",
    "source": "https://physionet.org/content/deid/1.1/ (id.text, id-phi.phrase)",
    "licence": "GPL-2.0 (deid 1.1 README.txt)",
    "description": (
        "2,434 ICU nursing notes (mostly upper case, terse, US) from the gold standard of PhysioNet's deid "
        "software, PHI replaced by realistic surrogates and annotated by experts: patient, relative and "
        "clinician names, dates and years, locations and hospitals, phones, ages over 89, other. Every "
        "annotated type counts; none is ignored. Dev/test: 50/50 by hash of the patient number."
    ),
    "type_map": {
        "PTName": "PERSON", "PTNameInitial": "PERSON", "RelativeProxyName": "PERSON", "HCPName": "PERSON",
        "Date": "DATE_TIME", "DateYear": "DATE_TIME", "Location": None, "Phone": "PHONE_NUMBER", "Age": "AGE",
        "Other": None,
    },
    "ignore_types": [],
}


def documents(source: Path) -> list[dict]:
    # The files are ASCII; latin-1 reads any byte, so an odd one cannot stop the conversion.
    notes = {(patient, note): body for patient, note, body in
             RECORD.findall((source / "id.text").read_text(encoding="latin-1"))}
    spans: dict[tuple[str, str], list[dict]] = {key: [] for key in notes}
    for row, line in enumerate((source / "id-phi.phrase").read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        patient, note, start, end, kind, phrase = line.split(" ", 5)
        body = notes.get((patient, note))
        if body is None or body[int(start):int(end)] != phrase:
            raise ValueError(f"id-phi.phrase row {row}: offsets do not match the note's text")
        spans[(patient, note)].append({"start": int(start), "end": int(end), "type": kind})
    return [{"id": f"{patient}-{note}", "text": body, "spans": spans[(patient, note)],
             "split": hash_split(f"patient-{patient}")} for (patient, note), body in notes.items()]


def main() -> None:
    run(__doc__.splitlines()[0], META, lambda source: (group_by_split(documents(source)), 0))

if __name__ == "__main__":
    main()
