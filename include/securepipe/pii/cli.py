"""`securepipe pii detect|mask` and `securepipe bench pii`.

Imports only the standard library at module level (the CLI also runs in the training
venv, which has no Presidio or spaCy); handlers import what they need.
Threat model: output files are written atomically, and nothing a handler prints
contains a value from the input (counts, column names and entity types only).
"""
from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

from securepipe.progress import add_quiet_flag

def _offline() -> None:
    # tldextract (via Presidio) would otherwise try to download a public suffix list.
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")


DETECT_BATCH = 5000  # notes held in memory at once: memory stays flat in the file's size


def _read_notes(source: Path):
    from securepipe.errors import InputError

    try:
        handle = open(source, "rb")
    except FileNotFoundError:
        raise InputError(source.name, "file not found") from None
    with handle:
        for row, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise InputError(source.name, "not a UTF-8 JSON object", row=row) from None
            if not isinstance(record, dict) or not isinstance(record.get("id"), str) \
                    or not isinstance(record.get("text"), str):
                raise InputError(source.name, 'expected {"id": str, "text": str}', row=row)
            yield record["id"], record["text"]


def _detect(args) -> int:
    _offline()
    from securepipe.pii.policy import load_policy
    from securepipe.pii.text import detect_texts
    from securepipe.storage import atomic_write

    policy = load_policy(args.policy)  # its detection section: NER on or off, recognizers by name
    texts_seen = spans_found = 0
    batch: list[tuple[str, str]] = []
    with atomic_write(Path(args.output), "w") as out:
        def flush():
            nonlocal spans_found
            texts = [text for _, text in batch]
            for (record_id, _), found in zip(batch, detect_texts(texts, ner=policy.ner, config=policy.recognizers)):
                spans_found += len(found)
                spans = [{"start": s.start, "end": s.end, "entity_type": s.entity_type, "score": s.score}
                         for s in found]
                out.write(json.dumps({"id": record_id, "spans": spans}) + "\n")
            batch.clear()

        for record in _read_notes(Path(args.input)):
            batch.append(record)
            texts_seen += 1
            if len(batch) >= DETECT_BATCH:
                flush()
        flush()
    print(json.dumps({"texts": texts_seen, "spans": spans_found}))
    return 0


def resolve_secret() -> bytes:
    """The pseudonym secret: KMS-wrapped and stable when a key is configured, else ephemeral."""
    from securepipe import config

    key_id = config.kms_key_id()
    if key_id is None:
        print("securepipe: warning: no KMS key configured (SECUREPIPE_KMS_KEY_ID); using an ephemeral "
              "pseudonym secret: pseudonyms will not be stable across runs", file=sys.stderr)
        return secrets.token_bytes(32)
    from securepipe.crypto.secrets import pseudonym_secret

    return pseudonym_secret(config.state_dir(), key_id, config.aws_from_env())


def _mask(args) -> int:
    _offline()
    from securepipe.ingest import estimate_rows
    from securepipe.pii.mask import mask_file
    from securepipe.pii.policy import load_policy
    from securepipe.progress import Progress

    policy = load_policy(args.policy)
    secret = resolve_secret()
    with Progress(f"mask {Path(args.input).name}", total=estimate_rows(args.input), quiet=args.quiet) as progress:
        report = mask_file(args.input, args.output, policy=policy, secret=secret, report_path=args.report,
                           keep=args.keep or (), progress=progress)
    for warning in report["plan"]["warnings"]:
        print(f"securepipe: warning: {warning}", file=sys.stderr)
    masked = {column: entry["entity"] for column, entry in report["columns"].items() if entry["operator"] != "keep"}
    summary = {"rows_in": report["rows_in"], "rows_out": report["rows_out"], "gate": "passed",
               "k": report["k_anonymity"].get("k"), "masked_columns": masked,
               **{k: v for k, v in report["plan"].items() if k != "warnings"}}
    print(json.dumps(summary))
    return 0


def _bench(args) -> int:
    _offline()
    from securepipe.pii.bench import run_bench

    result = run_bench(rows=args.rows, notes=args.notes, baseline_rows=args.baseline_rows)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def register(commands, bench) -> None:
    pii = commands.add_parser("pii", help="detect and mask PII")
    sub = pii.add_subparsers(dest="pii_command", required=True, metavar="ACTION")
    detect = sub.add_parser("detect", help="find PII spans in JSONL notes")
    detect.add_argument("--in", dest="input", required=True, help='JSONL, one {"id","text"} per line')
    detect.add_argument("--out", dest="output", required=True, help="JSONL spans, same order")
    detect.add_argument("--policy", default=None,
                        help="policy YAML whose detection section applies (default: the packaged policy)")
    detect.set_defaults(func=_detect)
    mask = sub.add_parser("mask", help="mask a CSV or Parquet table into Parquet (exit 0 only if the gate passed)")
    mask.add_argument("--in", dest="input", required=True)
    mask.add_argument("--out", dest="output", required=True,
                      help=".parquet, or .csv to open in a spreadsheet (formula-looking cells neutralized)")
    mask.add_argument("--policy", default=None, help="policy YAML (default: the packaged policy; no column named)")
    mask.add_argument("--keep", action="append", metavar="COLUMN", help="a column to leave unchanged (a label)")
    mask.add_argument("--report", default=None, help="write the JSON report here (counts only)")
    add_quiet_flag(mask)
    mask.set_defaults(func=_mask)
    pii_bench = bench.add_parser("pii", help="throughput, recall and precision against Presidio")
    pii_bench.add_argument("--rows", type=int, default=10_000)
    pii_bench.add_argument("--notes", type=int, default=1000, help="size of the labeled notes corpus")
    pii_bench.add_argument("--baseline-rows", type=int, default=200, help="table sample for Presidio's baseline")
    pii_bench.add_argument("--json", action="store_true")
    pii_bench.set_defaults(func=_bench)
